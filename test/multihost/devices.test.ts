/**
 * Device bricks across hosts: every brick on ph2, the nodes using them on ph1, so each one's
 * traffic crosses the lab's VXLAN between the phynodes first. Built, used and taken down by
 * fresh CLI processes over SSH (the agent on ph2 reads the nic's state at its `up`).
 *
 *   ph1: h1 ══ fab (vtep) :ph2 ── VXLAN 4242 to a peer in ph1's own namespace (outside the lab)
 *   ph1: h2 ══ up (nic) :ph2   ── dnic0, a veth of ph2's namespace, its far end dnicp there
 *   ph1: h3 ══ vm (tap) :ph2   ── a tap client (tapclient.py) answering pings
 *   ph1: a ══ cap (capture) :ph2 ══ b :ph1 — the pcap ring on ph2 holds the pings
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { built, CLI, isRoot, REASON, Testbed, type CliRun, type TestPhynode } from './testbed.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const TAPCLIENT = join(root, 'test/e2e/bricks/tapclient.py');
const LAB = 'mhdev';
const CAPTURE_DIR = '/var/tmp/dune-mh-capture';

let tb: Testbed;
let ph1: TestPhynode;
let ph2: TestPhynode;

const dune = (args: string[]): CliRun => tb.dune(args);

function must(ph: TestPhynode, argv: string[]): string {
  const r = tb.inPhynode(ph, argv);
  if (r.code !== 0) throw new Error(`${ph.name}: ${argv.join(' ')}: ${r.out}`);
  return r.out;
}

function topology(): string {
  const body = [
    '[topology]', `lab = "${LAB}"`, 'routing = "static"',
    'links = [',
    '  { endpoints = ["h1:eth0", "fab:eth0"] }, { endpoints = ["h2:eth0", "up:eth0"] }, { endpoints = ["h3:eth0", "vm:eth0"] },',
    '  { endpoints = ["a:eth0", "cap:eth0"] }, { endpoints = ["cap:eth1", "b:eth0"] },',
    ']',
    '[topology.nodes.h1]', 'phynode = "ph1"', 'addrs = { eth0 = ["10.99.0.1/24"] }',
    '[topology.nodes.h2]', 'phynode = "ph1"', 'addrs = { eth0 = ["203.0.113.17/28"] }',
    '[topology.nodes.h3]', 'phynode = "ph1"', 'addrs = { eth0 = ["10.77.0.1/24"] }',
    '[topology.nodes.a]', 'phynode = "ph1"', '[topology.nodes.b]', 'phynode = "ph1"',
    '[topology.nodes.fab]', 'phynode = "ph2"', 'kind = "vtep"', 'vni = 4242', `remote = "${ph1.underlay}"`, `local = "${ph2.underlay}"`, 'dev = "eth0"', 'port = 4799',
    '[topology.nodes.up]', 'phynode = "ph2"', 'kind = "nic"', 'dev = "dnic0"', 'name = "wan0"',
    '[topology.nodes.vm]', 'phynode = "ph2"', 'kind = "tap"',
    '[topology.nodes.cap]', 'phynode = "ph2"', 'kind = "capture"', `dir = "${CAPTURE_DIR}"`, 'files = 2', 'size_mb = 1', '',
  ].join('\n');
  const dir = join(tb.dir, 'topo');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, `${LAB}.toml`);
  writeFileSync(f, `${body}\n${tb.infrastructureToml()}`);
  return f;
}

const ping = (from: string, to: string) => dune(['exec', '--lab', LAB, from, '--', 'ping', '-c', '3', '-i', '0.2', '-W', '2', to]);

function v4Of(node: string): string {
  const r = dune(['exec', '--lab', LAB, node, '--', 'ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']);
  return (JSON.parse(r.out) as { addr_info: { local: string }[] }[])[0]?.addr_info[0]?.local ?? '';
}

describe.skipIf(!isRoot || !built)(`device bricks on another phynode (${REASON})`, () => {
  let file = '';
  let dnicBefore = '';
  beforeAll(async () => {
    tb = await Testbed.create({ count: 2 });
    [ph1, ph2] = tb.phynodes as [TestPhynode, TestPhynode];
    // The fabric's peer VTEP: ph1's own namespace, outside the lab.
    must(ph1, ['ip', 'link', 'add', 'dvx0', 'type', 'vxlan', 'id', '4242', 'remote', ph2.underlay, 'local', ph1.underlay, 'dstport', '4799', 'dev', 'eth0']);
    must(ph1, ['ip', 'addr', 'add', '10.99.0.2/24', 'dev', 'dvx0']);
    must(ph1, ['ip', 'link', 'set', 'dvx0', 'up']);
    // The nic's interface on ph2, its wire's far end there too.
    must(ph2, ['ip', 'link', 'add', 'dnic0', 'mtu', '1400', 'type', 'veth', 'peer', 'name', 'dnicp', 'mtu', '1400']);
    must(ph2, ['ip', 'addr', 'add', '203.0.113.30/28', 'dev', 'dnic0']);
    must(ph2, ['ip', 'link', 'set', 'dnic0', 'up']);
    must(ph2, ['ip', 'addr', 'add', '203.0.113.18/28', 'dev', 'dnicp']);
    must(ph2, ['ip', 'link', 'set', 'dnicp', 'up']);
    for (let i = 0; i < 100 && must(ph2, ['ip', '-j', 'addr', 'show', 'dev', 'dnic0']).includes('tentative'); i++) await new Promise((r) => setTimeout(r, 100));
    dnicBefore = must(ph2, ['ip', '-j', 'addr', 'show', 'dev', 'dnic0']);
    rmSync(CAPTURE_DIR, { recursive: true, force: true });
    file = topology();
  }, 120_000);
  afterAll(async () => {
    if (tb) {
      dune(['down', file]);
      await tb.teardown();
    }
    rmSync(CAPTURE_DIR, { recursive: true, force: true });
  });

  it('comes up with every brick on ph2', () => {
    const up = dune(['up', file]);
    expect(up.code, up.err).toBe(0);
    expect(tb.inPhynode(ph2, ['test', '-e', '/sys/class/net/dnic0']).code).not.toBe(0);
  });

  it('vtep: h1 on ph1 reaches the fabric peer in ph1\'s namespace through the vtep on ph2', () => {
    const r = ping('h1', '10.99.0.2');
    expect(r.code, r.out + r.err).toBe(0);
    expect(must(ph1, ['bridge', 'fdb', 'show', 'dev', 'dvx0'])).toContain(`dst ${ph2.underlay}`);
  });

  it('nic: h2 on ph1 reaches the wire of ph2\'s dnic0', () => {
    const r = ping('h2', '203.0.113.18');
    expect(r.code, r.out + r.err).toBe(0);
  });

  it('tap: a tap client on ph2\'s tap answers h3\'s pings', async () => {
    const child = spawn(process.execPath, [CLI, 'exec', '--lab', LAB, 'vm', '--', 'python3', '-', 'tap0', '10.77.0.2', '02:00:00:77:00:02', '0', '6'], { env: { ...process.env, ...tb.env() }, stdio: ['pipe', 'pipe', 'pipe'] });
    // The client's code goes over stdin: ph2 has no copy of the repository.
    child.stdin.end(spawnSync('cat', [TAPCLIENT], { encoding: 'utf8' }).stdout);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const done = new Promise<void>((r) => child.once('exit', () => r()));
    for (let i = 0; i < 200 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(out).toContain('ready');
    const p = await new Promise<number>((resolve) => {
      const c = spawn(process.execPath, [CLI, 'exec', '--lab', LAB, 'h3', '--', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.77.0.2'], { env: { ...process.env, ...tb.env() }, stdio: 'ignore' });
      c.once('exit', (code) => resolve(code ?? -1));
    });
    await done;
    const [, arps, echoes] = (out.trim().split('\n').pop() ?? '').split(' ').map(Number);
    expect(p).toBe(0);
    expect(arps).toBeGreaterThanOrEqual(1);
    expect(echoes).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('capture: the ring on ph2 holds the pings between a and b (both on ph1)', async () => {
    const b = v4Of('b');
    expect(ping('a', b).code).toBe(0);
    let lines: string[] = [];
    for (let i = 0; i < 30 && lines.filter((l) => l.includes('echo request')).length < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      lines = must(ph2, ['tcpdump', '-n', '-r', `${CAPTURE_DIR}/cap.pcap0`, 'icmp']).trim().split('\n');
    }
    console.log(`capture on ph2: ${lines.length} ICMP packets; ${must(ph2, ['ls', '-l', CAPTURE_DIR]).replace(/\n/g, ' ')}`);
    expect(lines.filter((l) => l.includes(`> ${b}: ICMP echo request`)).length).toBeGreaterThanOrEqual(3);
    expect(lines.filter((l) => l.includes('echo reply')).length).toBeGreaterThanOrEqual(3);
  });

  it('comes down: dnic0 back on ph2 as it was, tcpdump gone, nothing of the lab left', async () => {
    expect(dune(['down', file]).code).toBe(0);
    let now = '';
    for (let i = 0; i < 100; i++) {
      now = must(ph2, ['ip', '-j', 'addr', 'show', 'dev', 'dnic0']);
      if (now === dnicBefore) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(JSON.parse(now)).toEqual(JSON.parse(dnicBefore));
    expect(tb.inPhynode(ph2, ['pgrep', '-f', `tcpdump .*${CAPTURE_DIR}`]).code).not.toBe(0);
    for (const p of tb.phynodes) {
      expect(tb.inPhynode(p, ['ip', 'netns', 'list']).out).not.toContain(`dune.${LAB}.`);
      expect(tb.inPhynode(p, ['test', '-e', `/run/dune/${LAB}`]).code).not.toBe(0);
    }
  });
});
