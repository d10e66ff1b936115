/**
 * The API driving a lab on two phynodes of the multi-host test bed (namespaces with their
 * own sshd, reached only over SSH): run, spawn, set, link down/up and down, the same calls
 * as on one host, across a VXLAN link.
 *
 *   ph1: a ══(VXLAN)══ b ──(veth)── c :ph2
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type LabNode } from '@dune/lab';
import { BUNDLE, isRoot, Testbed, testbedLeftovers, type TestPhynode } from '../../../test/multihost/testbed.js';

const busy = isRoot ? testbedLeftovers() : [];
const skip = !isRoot ? 'needs root (namespaces, sshd)' : !existsSync(BUNDLE) ? 'needs the agent bundle (npm run build)' : busy.length > 0 ? `another multi-host test bed is in use here (${busy[0]})` : '';

describe.skipIf(skip !== '')(`@dune/lab on two phynodes over SSH ${skip}`, () => {
  let tb: Testbed;
  let lab: Lab;
  let a: LabNode;
  let b: LabNode;
  let c: LabNode;
  const saved: Record<string, string | undefined> = {};
  const ph = (n: number): TestPhynode => tb.phynodes[n - 1] as TestPhynode;

  function left(p: TestPhynode): string[] {
    return tb.inPhynode(p, ['ip', 'netns', 'list']).out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith('dune.apimh.'));
  }

  beforeAll(async () => {
    tb = await Testbed.create({ count: 2 });
    for (const [k, v] of Object.entries(tb.env())) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    const hosts = Object.fromEntries(tb.phynodes.map((p) => [p.name, { host: p.underlay, port: p.sshPort, user: 'root', identity: tb.clientKey, underlay: p.underlay }]));
    lab = new Lab({ name: 'apimh', hosts, routingWeight: 'hops' });
    a = lab.node('a', { phynode: 'ph1' });
    b = lab.node('b', { phynode: 'ph2', pinned: [{ cmd: 'sleep 3600' }] });
    c = lab.node('c', { phynode: 'ph2' });
    lab.link('a:eth0', 'b:eth0');
    lab.link('b:eth1', 'c:eth0');
    await lab.up();
  }, 240_000);

  afterAll(async () => {
    try {
      if (lab?.isUp) await lab.down();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      if (tb) await tb.teardown();
    }
    expect(testbedLeftovers()).toEqual([]);
  }, 120_000);

  it('the plan puts a on ph1 and b, c on ph2, joined over VXLAN', () => {
    expect(Object.fromEntries(lab.plan.nodes.map((n) => [n.node, n.phynode]))).toEqual({ a: 'ph1', b: 'ph2', c: 'ph2' });
    expect(lab.plan.links.map((l) => l.kind)).toEqual(['vxlan', 'veth']);
  });

  it('run across hosts: ping from ph1 to ph2 over the tunnel', async () => {
    const r = await a.run(['ping', '-c', '2', '-i', '0.2', c.address(4)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/2 received/);
  });

  it('spawn on another host: streams, its pid there, kill and wait', async () => {
    const srv = await c.spawn(['iperf3', '-s', '-1']);
    // The bed's phynodes share this machine's pids: the pid is the program's own.
    await new Promise((res) => setTimeout(res, 400));
    expect(readFileSync(`/proc/${srv.pid}/cmdline`, 'utf8').split('\0')[0]).toBe('iperf3');
    const cl = await a.run(['iperf3', '-c', c.address(4), '-t', '1', '-J'], { timeoutMs: 30_000 });
    expect(cl.code, cl.stderr).toBe(0);
    expect((JSON.parse(cl.stdout) as { end: { sum_received: { bytes: number } } }).end.sum_received.bytes).toBeGreaterThan(0);
    expect(await srv.wait()).toEqual({ code: 0, signal: null });
    const sl = await b.spawn(['sleep', '60']);
    await sl.kill('SIGTERM');
    expect(await sl.wait()).toEqual({ code: null, signal: 'SIGTERM' });
    expect((await b.run(['sh', '-c', 'echo "$DUNE_NODE" >&2; exit 4'])).stderr).toBe('b\n');
  });

  it('set and link failure across hosts', async () => {
    await lab.allLinks()[0]?.set({ loss: '100%' }, { from: a });
    expect((await a.run(['ping', '-c', '1', '-W', '1', c.address(4)])).code).not.toBe(0);
    await lab.allLinks()[0]?.set({ loss: null });
    expect((await a.run(['ping', '-c', '1', '-W', '2', c.address(4)])).code).toBe(0);
    const bc = lab.allLinks()[1];
    await bc?.down();
    expect((await a.run(['ping', '-c', '1', '-W', '1', c.address(4)])).code).not.toBe(0);
    await bc?.up();
    expect((await a.run(['ping', '-c', '1', '-W', '2', c.address(4)])).code).toBe(0);
  });

  it('node stop and start across hosts: b (ph2, the VXLAN end) stopped cuts a off c; started, both back', async () => {
    type S = { nodes: { node: string; stopped: boolean }[]; links: { node: string; dev: string; up: boolean | null }[]; processes: { node: string; pid: number; alive: boolean }[] };
    const st = async () => (await lab.status()) as unknown as S;
    const before = await st();
    const p0 = before.processes.find((p) => p.node === 'b');
    expect(p0?.alive).toBe(true);
    await b.stop();
    const stopped = await st();
    expect(stopped.nodes.find((n) => n.node === 'b')?.stopped).toBe(true);
    expect(stopped.nodes.find((n) => n.node === 'a')?.stopped).toBe(false);
    expect(stopped.processes.filter((p) => p.node === 'b' && p.alive)).toEqual([]);
    // Both of b's link ends parked: the VXLAN end on ph2 and the veth to c.
    expect(stopped.links.filter((l) => l.node === 'b').map((l) => [l.dev, l.up]).sort()).toEqual([['eth0', false], ['eth1', false]]);
    expect(stopped.links.find((l) => l.node === 'a')?.up).toBe(true);
    expect((await a.run(['ping', '-c', '1', '-W', '1', c.address(4)])).code).not.toBe(0);
    await b.start();
    const started = await st();
    expect(started.nodes.find((n) => n.node === 'b')?.stopped).toBe(false);
    const p1 = started.processes.find((p) => p.node === 'b');
    expect(p1?.alive).toBe(true);
    expect(p1?.pid).not.toBe(p0?.pid);
    expect((await a.run(['ping', '-c', '1', '-W', '2', c.address(4)])).code).toBe(0);
  });

  it('down removes it from both hosts', async () => {
    await lab.down();
    expect(left(ph(1))).toEqual([]);
    expect(left(ph(2))).toEqual([]);
  }, 60_000);
});
