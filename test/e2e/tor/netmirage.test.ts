/**
 * The Tor network as NetMirage's users ran it, for real: `netmirage-core` emulates the
 * twelve-client GraphML (its delays through the userspace engine on a kernel without
 * netem), `netmirage-edge -I ips.txt` gives the edge its virtual addresses, `dune tor init
 * --ip-file ips.txt` writes the network, start.sh runs every tor on the edge bound to those
 * addresses, and the traffic between them crosses the emulated topology. Then everything is
 * removed and both machines are as before.
 *
 *   tortest-core (nic1) ──veth── tortest-edge (eth1: 198.51.100.2 + 12 virtual addresses)
 *
 * Root and the kernel lock: flock /tmp/dune-kernel.lock npx vitest run test/e2e/tor/netmirage.test.ts
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duneOk, isRoot, pidAlive, removeTemp, REPO, requireBuilt, ROOT_REASON, run, sh, tempDir } from '../helpers.js';

const has = (cmd: string) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd]).status === 0;
const SKIP = !isRoot ? ROOT_REASON : !has('tor') || !has('tor-gencert') ? 'skipped: Debian\'s tor is not installed (scripts/setup installs it)' : !has('curl') ? 'skipped: curl is not installed (scripts/setup installs it)' : '';
const CORE = 'tortest-core';
const EDGE = 'tortest-edge';
const PREFIX = 'nmtor-';
const CORE_BIN = join(REPO, 'packages/netmirage/dist/bin/netmirage-core.js');
const EDGE_BIN = join(REPO, 'packages/netmirage/dist/bin/netmirage-edge.js');
const inNs = (ns: string, argv: string[]) => ['nsenter', `--net=/run/netns/${ns}`, '--', ...argv];

interface Net {
  dir: string;
  nodes: { name: string; role: string; addr: string }[];
  web: { url: string; addr: string; root: string };
}

function snapshot(ns: string): string {
  return [['addr'], ['rule'], ['route', 'show', 'table', 'all']]
    .map((a) => sh(['ip', '-n', ns, ...a]).out.replace(/@if\d+/g, '').replace(/ link-netns \S+/g, '').replace(/NO-CARRIER,/g, '').replace(/ state \S+ /g, ' '))
    .join('\n');
}

describe.skipIf(SKIP !== '')(`tor network over netmirage-core and netmirage-edge ${SKIP}`, () => {
  let dir = '';
  let net: Net | undefined;
  let ips: string[] = [];
  const before: Record<string, string> = {};
  const pids: number[] = [];

  beforeAll(async () => {
    requireBuilt();
    dir = tempDir('tor-netmirage');
    for (const ns of [CORE, EDGE]) {
      sh(['ip', 'netns', 'add', ns]);
      for (const k of ['all', 'default']) sh(inNs(ns, ['sysctl', '-q', '-w', `net.ipv6.conf.${k}.disable_ipv6=1`]));
    }
    sh(['ip', '-n', CORE, 'link', 'add', 'nic1', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', EDGE]);
    sh(['ip', '-n', CORE, 'addr', 'add', '198.51.100.1/30', 'dev', 'nic1']);
    sh(['ip', '-n', EDGE, 'addr', 'add', '198.51.100.2/30', 'dev', 'eth1']);
    for (const [ns, d] of [[CORE, 'lo'], [CORE, 'nic1'], [EDGE, 'lo'], [EDGE, 'eth1']] as const) sh(['ip', '-n', ns, 'link', 'set', d, 'up']);
    await new Promise((r) => setTimeout(r, 300));
    for (const ns of [CORE, EDGE]) before[ns] = snapshot(ns);

    const core = await run(inNs(CORE, [process.execPath, CORE_BIN, '-p', PREFIX, '--client-node', 'client', '-e', '198.51.100.2,iface=nic1,rdev=eth1,rapps=12', '-f', 'test/netmirage/twelve.graphml', '-E', join(dir, 'edges.txt')]), { timeoutMs: 180_000 });
    if (core.code !== 0) throw new Error(`netmirage-core: ${core.stderr}`);
    const line = readFileSync(join(dir, 'edges.txt'), 'utf8').trim();
    // This program's own output of safe tokens: split on spaces.
    const edge = await run(inNs(EDGE, [process.execPath, EDGE_BIN, ...line.split(' ').slice(1), '-I', join(dir, 'ips.txt')]));
    if (edge.code !== 0) throw new Error(`netmirage-edge: ${edge.stderr}`);
    ips = readFileSync(join(dir, 'ips.txt'), 'utf8').trim().split('\n');
    await duneOk(['tor', 'init', '-o', join(dir, 'net'), '--ip-file', join(dir, 'ips.txt'), '--authorities', '3', '--relays', '3', '--exits', '1', '--clients', '1'], { timeoutMs: 120_000 });
    net = JSON.parse(readFileSync(join(dir, 'net', 'network.json'), 'utf8')) as Net;
  }, 400_000);

  afterAll(async () => {
    if (net !== undefined && existsSync(join(net.dir, 'stop.sh'))) await run(inNs(EDGE, [join(net.dir, 'stop.sh')]));
    const deadline = Date.now() + 15_000;
    while (pids.some(pidAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const removed = await run(inNs(EDGE, [process.execPath, EDGE_BIN, '--remove', 'eth1']));
    const destroyed = await run(inNs(CORE, [process.execPath, CORE_BIN, '-d', '-p', PREFIX]), { timeoutMs: 120_000 });
    const after = { [CORE]: snapshot(CORE), [EDGE]: snapshot(EDGE) };
    for (const ns of [CORE, EDGE]) sh(['ip', 'netns', 'del', ns]);
    if (dir) removeTemp(dir);
    expect(pids.filter(pidAlive)).toEqual([]);
    expect(removed.stderr).toBe('');
    expect(destroyed.stderr).toBe('');
    expect(after).toEqual(before);
    expect(sh(['ip', 'netns', 'list']).out.split('\n').filter((l) => l.startsWith(PREFIX))).toEqual([]);
  }, 120_000);

  it('every tor and web run on the edge\'s virtual addresses; the client bootstraps across the emulated network', async () => {
    const n = net as Net;
    for (const x of n.nodes) expect(ips).toContain(x.addr);
    const r = await run(inNs(EDGE, [join(n.dir, 'start.sh')]));
    expect(r.code, r.stderr).toBe(0);
    for (const x of [...n.nodes.map((y) => y.name), 'web']) pids.push(Number(readFileSync(join(n.dir, 'nodes', x, 'pid'), 'utf8')));
    expect(pids.filter(pidAlive)).toHaveLength(n.nodes.length + 1);
    const w = await duneOk(['tor', 'wait', '--dir', n.dir, '--timeout', '300'], { timeoutMs: 320_000 });
    expect(w.stdout).toMatch(/bootstrapped: client0 in/);
  }, 340_000);

  it('client0 fetches web through an exit; the path between two tor addresses has the GraphML\'s latency', async () => {
    const n = net as Net;
    const client = n.nodes.find((x) => x.role === 'client') as Net['nodes'][number];
    const page = readFileSync(join(n.web.root, 'index.html'), 'utf8');
    let body = '';
    const errors: string[] = [];
    for (let i = 0; i < 6 && body !== page; i++) {
      // From the client's own address, as an application on an edge must: an unbound source
      // (the edge's real address) is not in any client subnet, so the core has no path for it.
      const c = await run(inNs(EDGE, ['curl', '-sS', '-m', '30', '--interface', client.addr, '--socks5-hostname', `${client.addr}:9050`, n.web.url]), { timeoutMs: 45_000 });
      body = c.stdout;
      if (body !== page) {
        errors.push(`try ${i + 1}: ${c.code} ${c.stderr}`);
        await new Promise((res) => setTimeout(res, 5000));
      }
    }
    expect(body, errors.join('\n')).toBe(page);
    // Two virtual addresses of one edge talk through the core: application i sits on client
    // c(i mod 12); c0 → c1 is c0–r0–c1, 1 + 1 ms each way.
    const p = await run(inNs(EDGE, ['ping', '-n', '-q', '-c', '5', '-i', '0.2', '-I', ips[0] as string, ips[1] as string]));
    const min = Number(/= ([\d.]+)\//.exec(p.stdout)?.[1]);
    expect(Math.abs(min - 4)).toBeLessThanOrEqual(1.5);
  }, 300_000);

  it('no tor or web socket is on an address outside the ip file', () => {
    const ss = sh(inNs(EDGE, ['ss', '-Htanp']));
    expect(ss.code).toBe(0);
    const ours = ss.out.split('\n').filter((l) => /users:\(\("(tor|python[\d.]*)"/.test(l));
    expect(ours.length).toBeGreaterThan((net as Net).nodes.length);
    for (const l of ours) expect(ips.includes((l.trim().split(/\s+/)[3] ?? '').replace(/:\d+$/, '')), l).toBe(true);
  });
});
