/**
 * Kernel tests of applyOps, teardown and live impairments on the host kernel (root only).
 *
 *   a ──eth0─── eth0── b ──eth1─── eth0── c        (lab dunetestap)
 *   10.1.0.0/31  .1      .2/31     .3
 *   fd7a:de00::/127 ::1  ::2/127   ::3
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Op } from '@dune/compiler';
import { applyOps, changeImpairment, probeCapabilities, readImpairment, readLinks, readRoutes, releaseAdopted, rollback, savedInterface, teardownLab, undoHostOps, ApplyError, type Caps } from '../src/index.js';
import { isRoot, node, ns, nsList, ping, ROOT_REASON, sh, veth } from './helpers.js';
import { namespaceJob } from '../src/apply.js';
import { createNamespacesAsync } from '../src/netns.js';

const LAB = 'dunetestap';
const A = ns(LAB, 'a');
const B = ns(LAB, 'b');
const C = ns(LAB, 'c');

function linePlan(): Op[] {
  const up = (n: string, dev: string): Op => ({ op: 'up', ns: ns(LAB, n), dev });
  const addr = (n: string, dev: string, cidr: string): Op => ({ op: 'addr', ns: ns(LAB, n), dev, cidr });
  const route = (n: string, dst: string, via: string): Op => ({ op: 'route', ns: ns(LAB, n), dst, via, dev: 'eth0' });
  return [
    ...node(LAB, 'a'),
    ...node(LAB, 'b'),
    ...node(LAB, 'c'),
    ...veth(LAB, 'a', 'eth0', 'b', 'eth0'),
    ...veth(LAB, 'b', 'eth1', 'c', 'eth0'),
    { op: 'sysctl', ns: B, key: 'net.ipv4.ip_forward', value: '1' },
    { op: 'sysctl', ns: B, key: 'net.ipv6.conf.all.forwarding', value: '1' },
    addr('a', 'eth0', '10.1.0.0/31'),
    addr('b', 'eth0', '10.1.0.1/31'),
    addr('b', 'eth1', '10.1.0.2/31'),
    addr('c', 'eth0', '10.1.0.3/31'),
    addr('a', 'eth0', 'fd7a:de00::/127'),
    addr('b', 'eth0', 'fd7a:de00::1/127'),
    addr('b', 'eth1', 'fd7a:de00::2/127'),
    addr('c', 'eth0', 'fd7a:de00::3/127'),
    ...['a', 'b', 'c'].map((n) => up(n, 'lo')),
    up('a', 'eth0'),
    up('b', 'eth0'),
    up('b', 'eth1'),
    up('c', 'eth0'),
    route('a', '10.1.0.2/31', '10.1.0.1'),
    route('c', '10.1.0.0/31', '10.1.0.2'),
    route('a', 'fd7a:de00::2/127', 'fd7a:de00::1'),
    route('c', 'fd7a:de00::/127', 'fd7a:de00::2'),
    { op: 'exec', ns: A, node: 'a', argv: ['true'] },
  ];
}

describe.skipIf(!isRoot)(`applyOps on the host kernel (${ROOT_REASON})`, () => {
  let caps: Caps;
  beforeAll(async () => {
    await teardownLab(LAB);
    caps = await probeCapabilities();
  });
  afterAll(async () => {
    await teardownLab(LAB);
    expect(nsList(`dune.${LAB}.`)).toEqual([]);
  });

  it('builds a 3-node line and pings across 2 hops, IPv4 and IPv6', async () => {
    const events: string[] = [];
    const r = await applyOps(linePlan(), { caps, onEvent: (e) => e.type === 'progress' && events.push(`${e.kind} ${e.done}/${e.total}`) });
    expect(r.deferred.map((o) => o.op)).toEqual(['exec']);
    expect(r.journal.namespaces).toEqual([A, B, C]);
    expect(events).toContain('veth 2/2');
    expect(ping(A, '10.1.0.3').code).toBe(0);
    expect(ping(A, 'fd7a:de00::3').code).toBe(0);
    expect(ping(C, '10.1.0.0').code).toBe(0);
    const links = readLinks(B);
    expect(links.find((l) => l.name === 'eth1')).toMatchObject({ alias: `dune:${LAB}:b:eth1`, up: true, operstate: 'up' });
    // lo: marked, and up as the plan says (both set in one message while the namespace is made).
    expect(readLinks(A).find((l) => l.name === 'lo')).toMatchObject({ alias: `dune:${LAB}:a:lo`, up: true });
    const eth0 = readLinks(A).find((l) => l.name === 'eth0');
    expect(Number(eth0?.stats?.txPackets ?? 0n)).toBeGreaterThan(0);
    // Both ends of a veth are made with one queue each way (not one per CPU cut back later).
    for (const [n, dev] of [[A, 'eth0'], [B, 'eth0'], [B, 'eth1'], [C, 'eth0']] as const) {
      const d = sh(['ip', '-n', n, '-d', 'link', 'show', dev]).out;
      expect(d, `${n} ${dev}`).toMatch(/numtxqueues 1 /);
      expect(d, `${n} ${dev}`).toMatch(/numrxqueues 1 /);
    }
    const routes = readRoutes(A).filter((x) => x.protocol === 0x44);
    expect(routes.map((x) => `${x.dst} via ${x.via} dev ${x.dev}`).sort()).toEqual([
      '10.1.0.2/31 via 10.1.0.1 dev eth0',
      'fd7a:de00::2/127 via fd7a:de00::1 dev eth0',
    ]);
  });

  it('builds a Linux bridge with enslaved veths (a switch node) and switches between hosts', async () => {
    const S = ns(LAB, 's');
    const ops: Op[] = [
      ...node(LAB, 's'),
      ...node(LAB, 'h1'),
      ...node(LAB, 'h2'),
      { op: 'bridge', ns: S, name: 'br0', alias: `dune:${LAB}:s:br0` },
      ...veth(LAB, 'h1', 'eth0', 's', 'p1'),
      ...veth(LAB, 'h2', 'eth0', 's', 'p2'),
      { op: 'enslave', ns: S, dev: 'p1', master: 'br0' },
      { op: 'enslave', ns: S, dev: 'p2', master: 'br0' },
      { op: 'addr', ns: ns(LAB, 'h1'), dev: 'eth0', cidr: '10.4.0.1/24' },
      { op: 'addr', ns: ns(LAB, 'h2'), dev: 'eth0', cidr: '10.4.0.2/24' },
      ...['br0', 'p1', 'p2'].map((dev): Op => ({ op: 'up', ns: S, dev })),
      { op: 'up', ns: ns(LAB, 'h1'), dev: 'eth0' },
      { op: 'up', ns: ns(LAB, 'h2'), dev: 'eth0' },
    ];
    const r = await applyOps(ops, { caps });
    expect(r.counts).toMatchObject({ bridge: 1, enslave: 2, veth: 2 });
    const links = readLinks(S);
    const br = links.find((l) => l.name === 'br0');
    expect(br).toMatchObject({ kind: 'bridge', up: true, alias: `dune:${LAB}:s:br0` });
    expect(links.filter((l) => l.master === br?.index).map((l) => l.name).sort()).toEqual(['p1', 'p2']);
    expect(ping(ns(LAB, 'h1'), '10.4.0.2', ['-c', '2', '-i', '0.2']).code).toBe(0);
  });

  it("runs the caller's `meanwhile` work once while the links are made, and rethrows its error only after their answers are read", async () => {
    const ops: Op[] = [...node(LAB, 'mx'), ...node(LAB, 'my'), ...veth(LAB, 'mx', 'eth0', 'my', 'eth0')];
    let calls = 0;
    const err = await applyOps(ops, {
      caps,
      meanwhile: () => {
        calls++;
        throw new Error('files could not be written');
      },
    }).catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect((err as Error).message).toBe('files could not be written');
    // The links it was sent with were made and answered (no half-read socket left behind).
    expect(readLinks(ns(LAB, 'mx')).map((l) => l.name)).toContain('eth0');
    for (const n of ['mx', 'my']) sh(['ip', 'netns', 'del', ns(LAB, n)]);
    expect(nsList(ns(LAB, 'm'))).toEqual([]);
  });

  it('says which op failed, with the kernel message, and journals what it created', async () => {
    const ops: Op[] = [...node(LAB, 'x'), ...node(LAB, 'y'), ...veth(LAB, 'x', 'eth0', 'y', 'eth0'), { op: 'addr', ns: ns(LAB, 'x'), dev: 'eth0', cidr: '10.2.0.0/31' }, { op: 'route', ns: ns(LAB, 'x'), dst: '10.3.0.0/24', via: '10.9.9.9', dev: 'eth0' }];
    const err = await applyOps(ops, { caps }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplyError);
    const e = err as ApplyError;
    expect(e.message).toMatch(/^route 10\.3\.0\.0\/24 via 10\.9\.9\.9 dev eth0 in dune\.dunetestap\.x: .*(ENETUNREACH|EINVAL)/);
    expect(e.journal.namespaces).toEqual([ns(LAB, 'x'), ns(LAB, 'y')]);
    expect(await rollback(e.journal)).toEqual([]);
    expect(nsList(ns(LAB, 'x'))).toEqual([]);
  });

  it('writes the sysctls of each namespace in that namespace, in plan order; a missing one and a refused value are named with their op', async () => {
    const x = ns(LAB, 'sx');
    const y = ns(LAB, 'sy');
    const sysctl = (n: string, key: string, value: string): Op => ({ op: 'sysctl', ns: n, key, value });
    const base: Op[] = [
      ...node(LAB, 'sx'), ...node(LAB, 'sy'), ...veth(LAB, 'sx', 'eth0', 'sy', 'eth0'),
      sysctl(x, 'net.ipv4.ip_forward', '1'), sysctl(x, 'net.ipv4.conf.eth0.rp_filter', '0'), sysctl(x, 'net.ipv4.conf.eth0.arp_ignore', '1'),
      sysctl(y, 'net.ipv4.ip_forward', '0'), sysctl(y, 'net.ipv4.conf.eth0.arp_ignore', '1'),
      // x again, after y: its last write wins, however the namespaces are shared out.
      sysctl(x, 'net.ipv4.conf.eth0.arp_ignore', '2'),
    ];
    const r = await applyOps(base, { caps });
    // No `up` op for lo here: marked, but left down.
    expect(readLinks(x).find((l) => l.name === 'lo')).toMatchObject({ alias: `dune:${LAB}:sx:lo`, up: false });
    const read = (n: string, key: string): string => sh(['ip', 'netns', 'exec', n, 'sysctl', '-n', key]).out.trim();
    expect([read(x, 'net.ipv4.ip_forward'), read(x, 'net.ipv4.conf.eth0.arp_ignore'), read(y, 'net.ipv4.ip_forward'), read(y, 'net.ipv4.conf.eth0.arp_ignore')]).toEqual(['1', '2', '0', '1']);
    expect(await rollback(r.journal)).toEqual([]);

    for (const [bad, message, hint] of [
      [sysctl(y, 'net.ipv4.conf.eth9.rp_filter', '0'), /^sysctl net\.ipv4\.conf\.eth9\.rp_filter=0 in dune\.dunetestap\.sy: cannot open \/proc\/sys\/net\/ipv4\/conf\/eth9\/rp_filter: .*ENOENT/, /no such sysctl/],
      [sysctl(y, 'net.ipv4.conf.eth0.arp_ignore', 'many'), /^sysctl net\.ipv4\.conf\.eth0\.arp_ignore=many in dune\.dunetestap\.sy: the kernel refused the value \(.*EINVAL/, /check the value's range for net\.ipv4\.conf\.eth0\.arp_ignore/],
      [sysctl(ns(LAB, 'nosuch'), 'net.ipv4.ip_forward', '1'), /^sysctl net\.ipv4\.ip_forward=1 in dune\.dunetestap\.nosuch: cannot enter the namespace: .*ENOENT/, /neither exists nor is created by a netns op/],
    ] as const) {
      const err = await applyOps([...base, bad], { caps }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApplyError);
      expect((err as ApplyError).message).toMatch(message);
      expect((err as ApplyError).hint).toMatch(hint);
      expect(await rollback((err as ApplyError).journal)).toEqual([]);
    }
    expect(nsList(x)).toEqual([]);
  });

  it('sends large route tables from the background senders, all of them, and still maps a failure to its op', async () => {
    // 2 × 20,000 routes (several 64 KiB batches per socket, both sender threads), then a
    // route op repeating one destination of x's table: EEXIST, named as that op.
    const dsts = Array.from({ length: 20_000 }, (_, i) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
    const ops: Op[] = [
      ...node(LAB, 'x'), ...node(LAB, 'y'), ...veth(LAB, 'x', 'eth0', 'y', 'eth0'),
      { op: 'addr', ns: ns(LAB, 'x'), dev: 'eth0', cidr: '10.2.0.0/31' },
      { op: 'addr', ns: ns(LAB, 'y'), dev: 'eth0', cidr: '10.2.0.1/31' },
      { op: 'up', ns: ns(LAB, 'x'), dev: 'eth0' },
      { op: 'up', ns: ns(LAB, 'y'), dev: 'eth0' },
      { op: 'routes', ns: ns(LAB, 'x'), dev: 'eth0', via: '10.2.0.1', dst: dsts },
      { op: 'routes', ns: ns(LAB, 'y'), dev: 'eth0', via: '10.2.0.0', dst: dsts },
    ];
    const r = await applyOps(ops, { caps });
    expect(r.counts).toMatchObject({ routes: 2 });
    for (const n of ['x', 'y']) expect(readRoutes(ns(LAB, n)).filter((x) => x.dst.startsWith('10.10')).length).toBe(20_000);
    expect(await rollback(r.journal)).toEqual([]);
    const dup: Op = { op: 'route', ns: ns(LAB, 'x'), dst: dsts[12_345] as string, via: '10.2.0.1', dev: 'eth0' };
    const err = await applyOps([...ops, dup], { caps }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplyError);
    expect((err as ApplyError).message).toBe(`route ${dsts[12_345]} via 10.2.0.1 dev eth0 in ${ns(LAB, 'x')}: File exists (EEXIST, errno 17)`);
    expect(await rollback((err as ApplyError).journal)).toEqual([]);
    expect(nsList(ns(LAB, 'x'))).toEqual([]);
  });

  it('takes over namespaces made ahead (marked, lo up as planned), makes those they lack, and rolls both back', async () => {
    const p = ns(LAB, 'pa');
    const q = ns(LAB, 'pq');
    const ops: Op[] = [...node(LAB, 'pa'), ...node(LAB, 'pq'), { op: 'up', ns: p, dev: 'lo' }, ...veth(LAB, 'pa', 'eth0', 'pq', 'eth0')];
    // Made ahead: only the first of the two (as `up` of a new lab does, while it stages its plan).
    const job = namespaceJob(ops);
    expect(job).toMatchObject({ names: [p, q], loAliases: [`dune:${LAB}:pa:lo`, `dune:${LAB}:pq:lo`], loUp: [true, false] });
    const ahead = createNamespacesAsync({ names: [p], init: job.init, loAliases: [job.loAliases[0] as string], loUp: [true] });
    let taken = 0;
    const r = await applyOps(ops, { caps, namespaces: () => (taken++, ahead) });
    expect(taken).toBe(1);
    expect(r.journal.namespaces.sort()).toEqual([p, q]);
    expect(readLinks(p).find((l) => l.name === 'lo')).toMatchObject({ alias: `dune:${LAB}:pa:lo`, up: true });
    expect(readLinks(q).find((l) => l.name === 'lo')).toMatchObject({ alias: `dune:${LAB}:pq:lo`, up: false });
    expect(readLinks(p).find((l) => l.name === 'eth0')?.alias).toBe(`dune:${LAB}:pa:eth0`);
    expect(await rollback(r.journal)).toEqual([]);
    expect([...nsList(p), ...nsList(q)]).toEqual([]);
  });

  it('refuses to adopt an existing namespace', async () => {
    const err = (await applyOps(node(LAB, 'a'), { caps }).catch((e: unknown) => e)) as ApplyError;
    expect(err.message).toBe(`netns ${A}: File exists (EEXIST, errno 17)`);
    expect(err.journal.namespaces).toEqual([]);
  });

  it('shapes a link with htb: read back, and measured with iperf3 within ±5 %', async () => {
    const rate = 50_000_000;
    await changeImpairment(A, 'eth0', { rateBitsPerSec: rate }, { caps });
    const tc = sh(['ip', 'netns', 'exec', A, 'tc', '-s', 'class', 'show', 'dev', 'eth0']).out;
    expect(tc).toMatch(/class htb 1:1 root .*rate 50Mbit ceil 50Mbit/);
    expect(sh(['ip', 'netns', 'exec', A, 'tc', 'qdisc', 'show', 'dev', 'eth0']).out).toMatch(/qdisc htb 1: root/);
    const back = await readImpairment(A, 'eth0');
    expect(back.impairment.rateBitsPerSec).toBe(rate);

    const server = sh(['ip', 'netns', 'exec', C, 'iperf3', '-s', '-1', '-D', '-B', '10.1.0.3', '--pidfile', `/tmp/dunetest-iperf-${process.pid}.pid`]);
    expect(server.code).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    const client = sh(['ip', 'netns', 'exec', A, 'iperf3', '-c', '10.1.0.3', '-t', '3', '-J']);
    expect(client.code).toBe(0);
    const j = JSON.parse(client.out) as { end: { sum_received: { bits_per_second: number } } };
    const got = j.end.sum_received.bits_per_second;
    // htb counts whole frames (1514 bytes at MTU 1500); iperf3 counts TCP payload (MSS 1448 with timestamps).
    const expected = (rate * 1448) / 1514;
    console.log(`htb ${rate / 1e6} Mbit/s: iperf3 measured ${(got / 1e6).toFixed(2)} Mbit/s goodput, expected ${(expected / 1e6).toFixed(2)}`);
    expect(Math.abs(got - expected) / expected).toBeLessThan(0.05);
  });

  it('drops 30 % with nftables (binomial 99.9 % interval on 400 pings), then removes it live', async () => {
    await changeImpairment(A, 'eth0', { lossPct: 30 }, { caps });
    expect((await readImpairment(A, 'eth0')).impairment).toEqual({ lossPct: 30 });
    const r = sh(['ip', 'netns', 'exec', A, 'ping', '-i', '0.002', '-c', '400', '-q', '-W', '1', '10.1.0.3']);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.out);
    const lost = Number(m?.[1]) - Number(m?.[2]);
    // n = 400, p = 0.3: mean 120, sd 9.17; 99.9 % (±3.29 sd): 90..150. Not 99 %: the suite
    // runs a dozen statistical checks, and at 1 % each a correct build would fail CI too
    // often (this one saw 92). 20 % or 40 % loss (mean 80 or 160) is still > 4 sd outside.
    console.log(`nftables 30 % loss: ${lost}/400 lost`);
    expect(lost).toBeGreaterThanOrEqual(90);
    expect(lost).toBeLessThanOrEqual(150);
    await changeImpairment(A, 'eth0', {}, { caps });
    expect((await readImpairment(A, 'eth0')).impairment).toEqual({});
    expect(ping(A, '10.1.0.3', ['-c', '5', '-i', '0.01']).code).toBe(0);
  });

  it('applies impair ops in a plan, and refuses what this kernel cannot do, naming it', async () => {
    const op: Op = { op: 'impair', ns: B, dev: 'eth1', link: '1:a', mtu: 1500, impairment: { rateBitsPerSec: 10_000_000, queuePackets: 50, lossPct: 1 } };
    const r = await applyOps([op], { caps });
    expect(r.impairments[0]?.plan.assignments).toEqual({ rateBitsPerSec: 'htb', queuePackets: 'htb', lossPct: 'nftables-loss' });
    expect(sh(['ip', 'netns', 'exec', B, 'tc', 'qdisc', 'show', 'dev', 'eth1']).out).toMatch(/pfifo 10: parent 1:1 limit 50p/);
    const back = await readImpairment(B, 'eth1');
    expect(back.impairment).toEqual({ rateBitsPerSec: 10_000_000, queuePackets: 50, lossPct: 1 });
    if (!caps.netem.ok) {
      const bad: Op = { ...op, dev: 'eth0', impairment: { delayUs: 20_000, lossPct: 1 } };
      const err = (await applyOps([bad], { caps }).catch((e: unknown) => e)) as ApplyError;
      expect(err.message).toMatch(/^dune\.dunetestap\.b\/eth0 \(link 1:a\): cannot apply delayUs on this kernel \(no sch_netem/);
      expect(err.hint).toMatch(/sch_netem/);
    }
  });
});

describe.skipIf(!isRoot)(`VXLAN between namespaces over a veth underlay (${ROOT_REASON})`, () => {
  const L = 'dunetestvx';
  afterAll(async () => {
    await teardownLab(L);
    expect(nsList(`dune.${L}.`)).toEqual([]);
  });

  it('carries pings between two "phynodes" without touching the host namespace', async () => {
    const caps = await probeCapabilities();
    await teardownLab(L);
    const ph1 = ns(L, 'ph1');
    const ph2 = ns(L, 'ph2');
    await applyOps(
      [
        ...node(L, 'ph1'),
        ...node(L, 'ph2'),
        ...veth(L, 'ph1', 'u0', 'ph2', 'u0'),
        { op: 'addr', ns: ph1, dev: 'u0', cidr: '198.51.100.1/30' },
        { op: 'addr', ns: ph2, dev: 'u0', cidr: '198.51.100.2/30' },
        { op: 'up', ns: ph1, dev: 'u0' },
        { op: 'up', ns: ph2, dev: 'u0' },
      ],
      { caps },
    );
    const host = (n: string, local: string, remote: string, addr: string): Op[] => [
      ...node(L, n),
      { op: 'vxlan', ns: ns(L, n), name: 'vx0', vni: 4242, local, remote, port: 4789, underlayDev: 'u0', mtu: 1450, alias: `dune:${L}:${n}:vx0` },
      { op: 'addr', ns: ns(L, n), dev: 'vx0', cidr: addr },
      { op: 'up', ns: ns(L, n), dev: 'lo' },
      { op: 'up', ns: ns(L, n), dev: 'vx0' },
    ];
    await applyOps(host('n1', '198.51.100.1', '198.51.100.2', '10.9.0.1/30'), { caps, hostNs: ph1 });
    await applyOps(host('n2', '198.51.100.2', '198.51.100.1', '10.9.0.2/30'), { caps, hostNs: ph2 });
    const vx = readLinks(ns(L, 'n1')).find((l) => l.name === 'vx0');
    expect(vx).toMatchObject({ kind: 'vxlan', mtu: 1450, alias: `dune:${L}:n1:vx0` });
    expect(ping(ns(L, 'n1'), '10.9.0.2', ['-c', '3', '-i', '0.2']).code).toBe(0);
    // The encapsulated packets crossed the underlay inside ph1/ph2, not the host.
    const u0 = readLinks(ph1).find((l) => l.name === 'u0');
    expect(Number(u0?.stats?.txPackets ?? 0n)).toBeGreaterThanOrEqual(3);
  });
});

describe.skipIf(!isRoot)(`teardown from kernel marks (${ROOT_REASON})`, () => {
  const L = 'dunetesttd';
  const FOREIGN_NS = 'dunetest-foreign';
  const FOREIGN_PREFIXED = `dune.${L}.foreign`;
  const FOREIGN_IF = 'dunetestfor0';
  const MARKED_IF = 'dunetestmrk0';
  beforeAll(async () => {
    await teardownLab(L);
  });
  afterAll(async () => {
    await teardownLab(L);
    sh(['ip', 'netns', 'del', FOREIGN_NS]);
    sh(['ip', 'netns', 'del', FOREIGN_PREFIXED]);
    sh(['ip', 'link', 'del', FOREIGN_IF]);
    sh(['ip', 'link', 'del', MARKED_IF]);
  });

  it('deletes only marked namespaces and interfaces, reports foreign ones, and is idempotent', async () => {
    const caps = await probeCapabilities();
    await applyOps([...node(L, 'a'), ...node(L, 'b'), ...veth(L, 'a', 'eth0', 'b', 'eth0')], { caps });
    expect(sh(['ip', 'netns', 'add', FOREIGN_NS]).code).toBe(0);
    expect(sh(['ip', 'netns', 'add', FOREIGN_PREFIXED]).code).toBe(0);
    expect(sh(['ip', 'link', 'add', FOREIGN_IF, 'type', 'veth', 'peer', 'name', 'dunetestfor1']).code).toBe(0);
    expect(sh(['ip', 'link', 'set', FOREIGN_IF, 'alias', 'dunetest: not ours']).code).toBe(0);
    expect(sh(['ip', 'link', 'add', MARKED_IF, 'type', 'veth', 'peer', 'name', 'dunetestmrk1']).code).toBe(0);
    expect(sh(['ip', 'link', 'set', MARKED_IF, 'alias', `dune:${L}:host:${MARKED_IF}`]).code).toBe(0);

    // Only this test's lab: teardownAll() would take every other lab on the machine with it
    // (other test files, benchmarks, a developer's own lab).
    const r = await teardownLab(L);
    expect(r.deletedNamespaces).toEqual(expect.arrayContaining([ns(L, 'a'), ns(L, 'b')]));
    expect(r.foreign).toContainEqual({ ns: FOREIGN_PREFIXED, reason: 'no mark on lo: foreign, left alone' });
    expect(r.deletedHostInterfaces).toContain(MARKED_IF);
    expect(r.errors).toEqual([]);
    expect(nsList(`dune.${L}.`)).toEqual([FOREIGN_PREFIXED]);
    expect(nsList(FOREIGN_NS)).toEqual([FOREIGN_NS]);
    expect(sh(['ip', 'link', 'show', FOREIGN_IF]).code).toBe(0);
    expect(sh(['ip', 'link', 'show', MARKED_IF]).code).not.toBe(0);

    const again = await teardownLab(L);
    expect(again.deletedNamespaces).toEqual([]);
    expect(again.errors).toEqual([]);
  });
});

describe.skipIf(!isRoot)(`adopted interfaces, policy rules and routes in tables (${ROOT_REASON})`, () => {
  const LAB2 = 'dunetestad';
  const H = 'dunetestad-host';
  const R = ns(LAB2, 'r');
  afterAll(async () => {
    await teardownLab(LAB2);
    sh(['ip', 'netns', 'del', H]);
    expect(nsList(`dune.${LAB2}.`)).toEqual([]);
  });

  it('moves a host interface in with what it had (same ifindex), routes by policy, and puts everything back exactly', async () => {
    sh(['ip', 'netns', 'add', H]);
    for (const k of ['all', 'default']) sh(['ip', 'netns', 'exec', H, 'sysctl', '-q', '-w', `net.ipv6.conf.${k}.disable_ipv6=1`]);
    sh(['ip', '-n', H, 'link', 'add', 'nic1', 'type', 'veth', 'peer', 'name', 'peer1']);
    sh(['ip', '-n', H, 'addr', 'add', '198.51.100.1/30', 'dev', 'nic1']);
    for (const d of ['lo', 'nic1', 'peer1']) sh(['ip', '-n', H, 'link', 'set', d, 'up']);
    sh(['ip', '-n', H, 'route', 'add', '203.0.113.0/24', 'via', '198.51.100.2', 'dev', 'nic1']);
    await new Promise((r) => setTimeout(r, 200));
    const snap = () => [['addr'], ['rule'], ['route', 'show', 'table', 'all']].map((a) => sh(['ip', '-n', H, ...a]).out.replace(/@if\d+/g, '').replace(/NO-CARRIER,/g, '').replace(/ state \S+ /g, ' ')).join('\n');
    const before = snap();
    const index = readLinks(H).find((l) => l.name === 'nic1')?.index;
    const saved = savedInterface(H, 'nic1');
    expect(saved).toMatchObject({ mtu: 1500, up: true, addrs: ['198.51.100.1/30'] });
    expect(saved?.routes.map((r) => `${r.dst} ${r.via}`)).toEqual(['203.0.113.0/24 198.51.100.2']);
    const ops: Op[] = [
      ...node(LAB2, 'r'),
      { op: 'adopt', ns: R, dev: 'nic1', saved: saved as NonNullable<typeof saved> },
      { op: 'up', ns: R, dev: 'lo' },
      { op: 'route', ns: R, table: 100, dst: '10.9.0.0/16', via: '198.51.100.2', dev: 'nic1' },
      { op: 'rule', ns: R, priority: 1000, table: 100, src: '10.8.0.0/16', iif: 'nic1' },
      { op: 'addr', ns: '', dev: 'lo', cidr: '198.51.100.200/32' },
      { op: 'rule', ns: '', priority: 1001, table: 101, src: '10.7.0.0/16' },
    ];
    await applyOps(ops, { hostNs: H, lab: LAB2 });
    expect(readLinks(R).find((l) => l.name === 'nic1')?.index).toBe(index);
    expect(sh(['ip', '-n', R, '-4', 'addr', 'show', 'dev', 'nic1']).out).toContain('inet 198.51.100.1/30');
    expect(sh(['ip', '-n', R, 'route']).out).toContain('203.0.113.0/24 via 198.51.100.2 dev nic1');
    expect(sh(['ip', '-n', R, 'route', 'show', 'table', '100']).out).toContain('10.9.0.0/16 via 198.51.100.2 dev nic1');
    expect(sh(['ip', '-n', R, 'rule']).out).toMatch(/^1000:\s+from 10\.8\.0\.0\/16 iif nic1 lookup 100/m);
    expect(sh(['ip', '-n', H, 'rule']).out).toMatch(/^1001:\s+from 10\.7\.0\.0\/16 lookup 101/m);
    expect(sh(['ip', '-n', H, 'addr', 'show', 'dev', 'lo']).out).toContain('198.51.100.200/32');
    expect([...releaseAdopted(ops, H), ...undoHostOps(ops, H)]).toEqual([]);
    await teardownLab(LAB2);
    expect(snap()).toBe(before);
    // A second release finds nothing to do.
    expect([...releaseAdopted(ops, H), ...undoHostOps(ops, H)]).toEqual([]);
  });
});
