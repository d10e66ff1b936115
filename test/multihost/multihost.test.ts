/**
 * End to end on three phynodes of the test bed, driven by the built `dune` CLI as a user
 * would, each command a fresh process reaching the hosts only over SSH.
 *
 * Rate over VXLAN: htb on a node's VXLAN device meters the *inner* Ethernet frame (the
 * outer IP/UDP/VXLAN headers are added below the qdisc, by the tunnel's transmit), so with
 * the cross-host MTU of 1450 a full TCP segment is 1450 + 14 = 1464 bytes at the qdisc and
 * carries 1450 - 20 (IP) - 20 (TCP) - 12 (timestamps) = 1398 bytes of payload: goodput =
 * rate × 1398/1464. (On a same-host veth link, 1500-byte MTU: rate × 1448/1514.)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '@dune/compiler';
import { RemoteAgent, hostView } from '@dune/transport';
import { built, CLI, isRoot, REASON, Testbed, type CliRun, type TestPhynode } from './testbed.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
if (!isRoot || !built) console.log(`skipping multi-host e2e tests: ${REASON}`);

let tb: Testbed;
let env: Record<string, string>;

function dune(args: string[], extraEnv: Record<string, string> = {}, timeoutMs = 120_000): CliRun {
  return tb.dune(args, { env: extraEnv, timeoutMs });
}

function ph(n: number): TestPhynode {
  return tb.phynodes[n - 1] as TestPhynode;
}

/** A command in a lab namespace of a phynode, bypassing SSH (the test's own view). */
function inNode(p: TestPhynode, ns: string, argv: string[]): { code: number; out: string; err: string } {
  return tb.inPhynode(p, ['ip', 'netns', 'exec', ns, ...argv]);
}

function writeTopology(name: string, body: string, infra = tb.infrastructureToml()): string {
  const dir = join(tb.dir, 'topo');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, name);
  writeFileSync(f, `${body}\n${infra}`);
  return f;
}

function planOf(file: string): Plan {
  const r = dune(['plan', file, '--json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as Plan;
}

/** What of lab `lab` is on a phynode: namespaces, journal, marked interfaces, agent processes. */
function leftovers(p: TestPhynode, lab: string): string[] {
  const left: string[] = [];
  const ns = tb.inPhynode(p, ['ip', 'netns', 'list']).out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`dune.${lab}.`));
  left.push(...ns.map((n) => `namespace ${n}`));
  if (tb.inPhynode(p, ['test', '-e', `/run/dune/${lab}`]).code === 0) left.push(`journal /run/dune/${lab}`);
  const links = tb.inPhynode(p, ['ip', '-d', '-o', 'link', 'show']).out.split('\n').filter((l) => l.includes(`alias dune:${lab}:`));
  left.push(...links.map((l) => `interface ${l.split(': ')[1]}`));
  return left;
}

async function waitGone(p: TestPhynode, lab: string, ms = 5000): Promise<string[]> {
  const deadline = Date.now() + ms;
  let left = leftovers(p, lab);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = leftovers(p, lab);
  }
  return left;
}

/**
 * The agent daemons serving the phynode now: in the mount namespace of its sshd (whose /run
 * holds their socket). A test that restarts sshd gives it a fresh mount namespace; a daemon
 * left in the old one is nobody's to reach, and not counted.
 */
function agentPids(p: TestPhynode): number[] {
  const mnt = (pid: number): string | undefined => {
    try {
      return readlinkSync(`/proc/${pid}/ns/mnt`);
    } catch {
      return undefined;
    }
  };
  const sshd = mnt(p.sshdPid);
  const agents = tb.processes(p).filter((pid) => {
    try {
      return mnt(pid) === sshd && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('dune-agent.mjs\0daemon');
    } catch {
      return false;
    }
  });
  // A child the daemon is starting (an exec op's process between fork and exec) still shows
  // the daemon's command line: only the daemons themselves count.
  const parent = (pid: number): number => {
    try {
      return Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? -1);
    } catch {
      return -1;
    }
  };
  return agents.filter((pid) => !agents.includes(parent(pid)));
}

describe.skipIf(!isRoot || !built)(`dune across three phynodes over SSH (${REASON})`, () => {
  let file: string;
  let plan: Plan;
  const ns = (node: string): string => plan.nodes.find((n) => n.node === node)?.ns as string;
  const where = (node: string): TestPhynode => ph(Number(plan.nodes.find((n) => n.node === node)?.phynode.slice(2)));

  beforeAll(async () => {
    tb = await Testbed.create({ count: 3 });
    env = tb.env();
    file = writeTopology('three-hosts.toml', readFileSync(join(root, 'test/multihost/fixtures/three-hosts.toml'), 'utf8'));
    plan = planOf(file);
  }, 120_000);

  afterAll(async () => {
    if (tb) {
      dune(['down', file]);
      await tb.teardown();
    }
  });

  it('checks every host before building: SSH, node, iproute2, agent, kernel, underlay, MTU', () => {
    const r = dune(['check', file]);
    // The compiler's note that cross-host links get MTU 1450 is all there is on stderr.
    expect(r.err.replace(/^note\[vxlan-mtu\].*\n.*hint:.*\n/m, '')).toBe('');
    expect(r.code).toBe(0);
    for (const p of tb.phynodes) expect(r.out).toContain(`ok   ${p.name} (root@${p.underlay}:22)`);
    expect(r.out).toMatch(/agent copied to the host's cache/);
    expect(r.out).toContain(`✓ route to ${ph(2).underlay}: via eth0, mtu 1500 ≥ 1500`);
    expect(r.out).toContain('all 3 hosts can build lab mh3');
    // Second time: the agent is found by its hash, not copied again.
    expect(dune(['check', file]).out).not.toMatch(/copied/);
  });

  it('brings the lab up on all three hosts', () => {
    const r = dune(['up', file]);
    expect(r.err.replace(/^note\[vxlan-mtu\].*\n.*hint:.*\n/m, '')).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^lab mh3 is up on 3 hosts in \d+\.\d\ds$/m);
    // Where the time went, per host, and what the hosts' own work does not account for.
    expect(r.out.match(/^ {4}time: .*\d+\.\d\ds/gm)).toHaveLength(3);
    expect(r.out).toMatch(/^ {2}beyond the slowest host's own \d+\.\d\ds: \d+\.\d\ds \(/m);
    expect(r.out).toContain('6 nodes, 6 links (3 between hosts over VXLAN)');
    for (const n of plan.nodes) expect(tb.inPhynode(where(n.node), ['ip', 'netns', 'list']).out).toContain(n.ns);
    // Each phynode sees its own nodes only.
    expect(tb.inPhynode(ph(1), ['ip', 'netns', 'list']).out).not.toContain(ns('r2'));
  });

  it('converges: a second up changes nothing', () => {
    const r = dune(['up', file]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/lab mh3 is already up as planned on 3 hosts/);
  });

  it('lets every node reach every other over IPv4 and IPv6, across VXLAN', () => {
    const failed: string[] = [];
    for (const a of plan.nodes) {
      for (const b of plan.nodes) {
        if (a === b) continue;
        for (const addr of [b.v4, b.v6]) {
          const r = inNode(where(a.node), a.ns, ['ping', '-c1', '-W3', addr as string]);
          if (r.code !== 0) failed.push(`${a.node} -> ${b.node} ${addr}`);
        }
      }
    }
    expect(failed).toEqual([]);
  });

  it('passes full-size packets across VXLAN without fragmenting, and says so beyond', () => {
    const link = plan.links.find((l) => l.kind === 'vxlan' && l.a.node === 'r1' && l.b.node === 'r2');
    expect(link).toBeDefined();
    const r2v4 = link?.b.v4?.split('/')[0] as string;
    const r2v6 = link?.b.v6?.split('/')[0] as string;
    const mtu = Number(tb.inPhynode(ph(1), ['ip', 'netns', 'exec', ns('r1'), 'cat', `/sys/class/net/${link?.a.dev}/mtu`]).out.trim() || inNode(ph(1), ns('r1'), ['ip', '-j', 'link', 'show', link?.a.dev as string]).out.match(/"mtu":(\d+)/)?.[1]);
    expect(mtu).toBe(1450);
    expect(inNode(ph(1), ns('r1'), ['ping', '-c2', '-W3', '-M', 'do', '-s', String(mtu - 28), r2v4]).code).toBe(0);
    expect(inNode(ph(1), ns('r1'), ['ping', '-6', '-c2', '-W3', '-M', 'do', '-s', String(mtu - 48), r2v6]).code).toBe(0);
    // One byte more does not fit, and ping is told so (no silent black hole).
    const over = inNode(ph(1), ns('r1'), ['ping', '-c1', '-W2', '-M', 'do', '-s', String(mtu - 27), r2v4]);
    expect(over.code).not.toBe(0);
    expect(over.out + over.err).toMatch(/message too long|mtu ?= ?1450/i);
    // End to end, h1's own 1500-byte link: path MTU discovery finds the 1450 hop.
    const h2 = plan.nodes.find((n) => n.node === 'h2')?.v4 as string;
    inNode(ph(1), ns('h1'), ['ping', '-c1', '-W2', '-M', 'do', '-s', '1472', h2]);
    expect(inNode(ph(1), ns('h1'), ['ping', '-c2', '-W3', '-M', 'do', '-s', String(mtu - 28), h2]).code).toBe(0);
  });

  it('limits the rate of a cross-host link to within 5 %', async () => {
    const link = plan.links.find((l) => l.kind === 'vxlan' && l.a.node === 'r1' && l.b.node === 'r2');
    const server = link?.b.v4?.split('/')[0] as string;
    const srv = spawn('nsenter', ['-t', String(ph(2).sshdPid), '-m', '-n', '--', 'ip', 'netns', 'exec', ns('r2'), 'iperf3', '-s', '-1', '-B', server], { stdio: 'ignore' });
    try {
      let r = { code: 1, out: '', err: '' };
      for (let i = 0; i < 20 && r.code !== 0; i++) {
        await new Promise((res) => setTimeout(res, 150));
        r = inNode(ph(1), ns('r1'), ['iperf3', '-c', server, '-t', '6', '-O', '1', '-J']);
      }
      expect(r.code).toBe(0);
      const j = JSON.parse(r.out) as { end: { sum_received: { bits_per_second: number } } };
      const got = j.end.sum_received.bits_per_second;
      const expected = 40e6 * (1398 / 1464);
      console.log(`iperf3 over VXLAN at 40 Mbit/s: ${(got / 1e6).toFixed(2)} Mbit/s goodput, expected ${(expected / 1e6).toFixed(2)} (${((got / expected - 1) * 100).toFixed(1)} %)`);
      expect(Math.abs(got / expected - 1)).toBeLessThan(0.05);
    } finally {
      srv.kill();
    }
    // The other direction is impaired on r2's side, on another host: the same figure.
    const back = spawn('nsenter', ['-t', String(ph(2).sshdPid), '-m', '-n', '--', 'ip', 'netns', 'exec', ns('r2'), 'iperf3', '-s', '-1', '-B', server], { stdio: 'ignore' });
    try {
      let r = { code: 1, out: '', err: '' };
      for (let i = 0; i < 20 && r.code !== 0; i++) {
        await new Promise((res) => setTimeout(res, 150));
        r = inNode(ph(1), ns('r1'), ['iperf3', '-c', server, '-t', '4', '-O', '1', '-R', '-J']);
      }
      expect(r.code).toBe(0);
      const got = (JSON.parse(r.out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
      console.log(`iperf3 -R (r2 -> r1, shaped on ph2): ${(got / 1e6).toFixed(2)} Mbit/s`);
      expect(Math.abs(got / (40e6 * (1398 / 1464)) - 1)).toBeLessThan(0.05);
    } finally {
      back.kill();
    }
  });

  it('answers status, exec and set from fresh CLI processes', () => {
    const s = dune(['status', '--lab', 'mh3', '--json']);
    expect(s.code).toBe(0);
    const st = JSON.parse(s.out) as { phase: string; nodes: { node: string; present: boolean }[]; links: { link: string; up: boolean; txPackets: number }[]; hosts: { phynode: string; phase: string }[] };
    expect(st.phase).toBe('up');
    expect(st.nodes.every((n) => n.present)).toBe(true);
    expect(st.nodes.map((n) => n.node).sort()).toEqual(['h1', 'h2', 'h3', 'r1', 'r2', 'r3']);
    expect(st.links).toHaveLength(12);
    expect(st.links.every((l) => l.up)).toBe(true);
    expect(st.hosts.map((h) => `${h.phynode}:${h.phase}`)).toEqual(['ph1:up', 'ph2:up', 'ph3:up']);
    const text = dune(['status', '--lab', 'mh3']);
    expect(text.out).toMatch(/^lab mh3: up, 6 nodes, 6 links$/m);
    expect(text.out).toMatch(new RegExp(`^ph2 +root@${ph(2).underlay.replace(/\./g, '\\.')}:22 +2 +up$`, 'm'));

    const h3 = plan.nodes.find((n) => n.node === 'h3')?.v4 as string;
    const e = dune(['exec', '--lab', 'mh3', 'h1', '--', 'ping', '-c1', '-W3', h3]);
    expect(e.code).toBe(0);
    expect(e.out).toContain('1 received');
    // Words reach the node intact, and the exit status comes back.
    const w = dune(['exec', '--lab', 'mh3', 'r2', '--', 'sh', '-c', 'printf "%s|" "$@"; exit 7', 'sh', "it's", '$(id)', 'a b']);
    expect(w.out).toBe("it's|$(id)|a b|");
    expect(w.code).toBe(7);

    const set = dune(['set', '--lab', 'mh3', 'r1:eth1', 'bw=20mbit', 'loss=1%']);
    expect(set.code).toBe(0);
    expect(set.out.trim()).toBe('r1:eth1 → loss 1%, rate 20mbit');
    const after = JSON.parse(dune(['status', '--lab', 'mh3', '--json']).out) as { links: { node: string; dev: string; impairment: { rateBitsPerSec?: number } }[] };
    expect(after.links.find((l) => l.node === 'r1' && l.dev === 'eth1')?.impairment.rateBitsPerSec).toBe(20e6);
    expect(dune(['set', '--lab', 'mh3', 'r1:eth1', 'bw=40mbit', 'loss=none']).code).toBe(0);
  });

  it('captures on a node of another host into a local pcap file', async () => {
    const pcap = join(tb.dir, 'r2.pcap');
    const child = spawn(process.execPath, [CLI, 'capture', '--lab', 'mh3', 'r2:eth1', '-c', '2', '-w', pcap, 'icmp'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const done = new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
    const r2 = plan.nodes.find((n) => n.node === 'r2')?.v4 as string;
    for (let i = 0; i < 40 && child.exitCode === null; i++) {
      inNode(ph(1), ns('r1'), ['ping', '-c1', '-W1', r2]);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(await done).toBe(0);
    const head = readFileSync(pcap);
    expect(head.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(head.length).toBeGreaterThan(24 + 2 * 16);
  });

  it('finds the lab from the topology file alone (another controller, no record)', () => {
    const elsewhere = { DUNE_CONTROLLER_STATE: join(tb.dir, 'other-controller') };
    const s = dune(['status', file, '--json'], elsewhere);
    expect(s.code).toBe(0);
    expect((JSON.parse(s.out) as { phase: string }).phase).toBe('up');
    expect(dune(['exec', '-f', file, 'h2', '--', 'true'], elsewhere).code).toBe(0);
  });

  it('keeps the lab running when SSH connections are cut; the next command reconnects', async () => {
    const target = { phynode: 'ph2', host: ph(2).underlay, user: 'root', identity: tb.clientKey };
    const a = new RemoteAgent(target, { knownHostsFile: tb.knownHosts, sshConfigFile: null, agentSocket: null, cacheRoot: tb.cacheDir });
    try {
      expect((await a.status('mh3')).phase).toBe('up');
      for (const p of tb.phynodes) await tb.cutConnections(p);
      await new Promise((r) => setTimeout(r, 200));
      expect(a.connectionForTests?.closed).toBe(true);
      // The daemons and the lab did not notice.
      for (const p of tb.phynodes) expect(agentPids(p).length).toBeLessThanOrEqual(1);
      const h3 = plan.nodes.find((n) => n.node === 'h3')?.v4 as string;
      expect(inNode(ph(1), ns('h1'), ['ping', '-c1', '-W3', h3]).code).toBe(0);
      // Same object, next call: a new connection.
      expect((await a.status('mh3')).phase).toBe('up');
      expect(a.connectionForTests?.closed).toBe(false);
    } finally {
      a.close();
    }
    expect(dune(['status', '--lab', 'mh3']).code).toBe(0);
  });

  it('reuses a running agent of its version without starting one; replaces one of another version', () => {
    const p = ph(2);
    const [pid] = agentPids(p);
    expect(pid).toBeGreaterThan(0);
    const cmdline = (n: number): string[] => readFileSync(`/proc/${n}/cmdline`, 'utf8').split('\0');
    const script = cmdline(pid as number)[1] as string;
    const version = cmdline(pid as number)[cmdline(pid as number).indexOf('--version') + 1] as string;
    // A fresh CLI: the daemon answers over the connection, no other agent process is started.
    expect(dune(['status', '--lab', 'mh3']).code).toBe(0);
    expect(agentPids(p)).toEqual([pid]);
    // Another version takes the socket (as an older controller's `start` would)...
    expect(tb.inPhynode(p, ['node', script, 'start', '--version', 'some-other-version']).code).toBe(0);
    const [other] = agentPids(p);
    expect(other).not.toBe(pid);
    expect(cmdline(other as number)).toContain('some-other-version');
    // ...and the next command puts this version back in its place, the lab untouched.
    const s = dune(['status', '--lab', 'mh3', '--json']);
    expect(s.code).toBe(0);
    expect((JSON.parse(s.out) as { phase: string }).phase).toBe('up');
    const now = agentPids(p);
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(other);
    expect(cmdline(now[0] as number)).toContain(version);
  });

  it('removes everything from every phynode with down from a fresh process, given only the file', async () => {
    const r = dune(['down', file], { DUNE_CONTROLLER_STATE: join(tb.dir, 'third-controller') });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^lab mh3 removed from 3 hosts in \d+\.\d\ds: 6 namespaces, 0 processes, 6 files$/m);
    for (const p of tb.phynodes) {
      expect(await waitGone(p, 'mh3')).toEqual([]);
      // The agent daemon exits once no lab is left; no lab process lingers.
      for (let i = 0; i < 20 && tb.processes(p).length > 0; i++) await new Promise((res) => setTimeout(res, 100));
      expect(tb.processes(p)).toEqual([]);
    }
    // The first controller's record is stale now; down through it is harmless.
    const again = dune(['down', '--lab', 'mh3']);
    expect(again.code).toBe(0);
    expect(existsSync(join(env['DUNE_CONTROLLER_STATE'] as string, 'mh3.json'))).toBe(false);
  });

  it('runs pinned processes on their host, on the cores placement gave them; pre-flight refuses missing cores', () => {
    const body = [
      '[topology]', 'lab = "pin"',
      '[topology.nodes.a]', 'phynode = "ph1"', '[[topology.nodes.a.pinned]]', 'cmd = "sleep 600"',
      '[topology.nodes.b]', 'phynode = "ph2"', '[[topology.nodes.b.pinned]]', 'cmd = "sleep 600"', 'environ = { SECOND_CORE = "{{core_1}}" }',
      '[[topology.links]]', 'endpoints = ["a:eth0", "b:eth0"]', '',
    ].join('\n');
    const cores: Record<string, string> = { ph1: 'cores = [[1]]', ph2: 'cores = [[0, 1]]', ph3: '' };
    const f = writeTopology('pinned.toml', body, tb.infrastructureToml((p) => cores[p.name] ?? ''));
    const r = dune(['up', f]);
    expect(r.code).toBe(0);
    try {
      const st = JSON.parse(dune(['status', '--lab', 'pin', '--json']).out) as { processes: { name: string; node: string; pid: number; alive: boolean; cpus: number[] }[] };
      const byNode = Object.fromEntries(st.processes.map((p) => [p.node, p]));
      expect(byNode['a']?.cpus).toEqual([1]);
      expect(byNode['b']?.cpus).toEqual([0, 1]);
      expect(st.processes.every((p) => p.alive)).toBe(true);
      // One kernel: the pids are this machine's too. Affinity and namespace are as planned.
      const allowed = (pid: number): string => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
      expect(allowed(byNode['a']?.pid as number)).toBe('1');
      expect(allowed(byNode['b']?.pid as number)).toBe('0-1');
      expect(tb.processes(ph(2))).toContain(byNode['b']?.pid);
      expect(tb.processes(ph(1))).not.toContain(byNode['b']?.pid);
      // The environment carries the second core's id, rendered.
      expect(readFileSync(`/proc/${byNode['b']?.pid}/environ`, 'utf8').split('\0')).toContain('SECOND_CORE=1');
    } finally {
      expect(dune(['down', '--lab', 'pin']).code).toBe(0);
    }
    // A core the host does not have: refused before anything is built.
    const bad = writeTopology('badcores.toml', body.replace('lab = "pin"', 'lab = "pinbad"'), tb.infrastructureToml((p) => (p.name === 'ph1' ? 'cores = [[7]]' : cores[p.name] ?? '')));
    const c = dune(['up', bad]);
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/error\[preflight-failed\]: the pre-flight check failed on 1 of 3 hosts; nothing was built:\n {2}ph1 \(root@198\.51\.100\.11:22\): processes are pinned to cpu 7, but this host has 2 \(0-1\)/);
    expect(leftovers(ph(2), 'pinbad')).toEqual([]);
  });

  it('checks the underlay MTU for VXLAN over IPv6 (70 bytes), and carries full-size packets once the links fit', () => {
    const body = (lab: string, mtu: string) => [
      '[topology]', `lab = "${lab}"`,
      '[topology.nodes.a]', 'phynode = "ph1"', '[topology.nodes.b]', 'phynode = "ph2"',
      '[[topology.links]]', 'endpoints = ["a:eth0", "b:eth0"]', mtu, '',
    ].join('\n');
    const v6 = (text: string): string => tb.phynodes.reduce((t, p) => t.replace(`underlay = "${p.underlay}"`, `underlay = "${p.underlay6}"`), text);
    const tooBig = writeTopology('v6-1450.toml', body('v6a', ''), v6(tb.infrastructureToml()));
    const c = dune(['check', tooBig]);
    expect(c.code).toBe(1);
    expect(c.out).toContain(`✗ error[underlay-mtu]: VXLAN to ${ph(2).underlay6} leaves through eth0 with MTU 1500, but the cross-host links' MTU 1450 needs 1520 (70 bytes of VXLAN overhead): full-size packets would be dropped`);
    expect(c.out).toContain('hint: set mtu = 1430 on the links between phynodes, or raise the underlay MTU to 1520');
    expect(dune(['up', tooBig]).code).toBe(1);
    expect(leftovers(ph(1), 'v6a')).toEqual([]);

    const fits = writeTopology('v6-1430.toml', body('v6b', 'mtu = 1430'), v6(tb.infrastructureToml()));
    const up = dune(['up', fits]);
    expect(up.code).toBe(0);
    try {
      const p = planOf(fits);
      const nsA = p.nodes.find((n) => n.node === 'a')?.ns as string;
      const b = p.links[0]?.b.v4?.split('/')[0] as string;
      expect(inNode(ph(1), nsA, ['ping', '-c2', '-W3', '-M', 'do', '-s', String(1430 - 28), b]).code).toBe(0);
    } finally {
      expect(dune(['down', fits]).code).toBe(0);
    }
  });

  it('carries traffic over a cross-host link once both ends exist, each created on its own', async () => {
    const f = writeTopology('halves.toml', [
      '[topology]', 'lab = "half"',
      '[topology.nodes.a]', 'phynode = "ph1"', '[topology.nodes.b]', 'phynode = "ph2"',
      '[[topology.links]]', 'endpoints = ["a:eth0", "b:eth0"]', '',
    ].join('\n'));
    const p = planOf(f);
    const opts = { knownHostsFile: tb.knownHosts, sshConfigFile: null, agentSocket: null, cacheRoot: tb.cacheDir };
    const agents = [1, 2].map((i) => new RemoteAgent({ phynode: `ph${i}`, host: ph(i).underlay, user: 'root', identity: tb.clientKey }, opts));
    const [a1, a2] = agents as [RemoteAgent, RemoteAgent];
    const nsA = p.nodes.find((n) => n.node === 'a')?.ns as string;
    const b = p.links[0]?.b.v4?.split('/')[0] as string;
    try {
      await a1.up(hostView(p, ['ph1']), () => undefined);
      // a's VXLAN end exists and is up; nothing answers on the other side yet.
      expect(inNode(ph(1), nsA, ['ip', '-br', 'link', 'show', 'eth0']).out).toMatch(/UP|UNKNOWN/);
      expect(inNode(ph(1), nsA, ['ping', '-c1', '-W1', b]).code).not.toBe(0);
      await a2.up(hostView(p, ['ph2']), () => undefined);
      expect(inNode(ph(1), nsA, ['ping', '-c2', '-W3', b]).code).toBe(0);
    } finally {
      for (const a of agents) await a.down('half', () => undefined);
      for (const a of agents) a.close();
    }
  });

  describe('faults', () => {
    const small = (lab: string, extra = ''): string => [
      '[topology]', `lab = "${lab}"`,
      '[topology.nodes.a]', 'phynode = "ph1"', '[topology.nodes.b]', 'phynode = "ph2"', extra,
      '[[topology.links]]', 'endpoints = ["a:eth0", "b:eth0"]', '',
    ].join('\n');

    it('an unreachable phynode: a clear error within the timeout, nothing built elsewhere', () => {
      const infra = tb.infrastructureToml().replace(`host = "${ph(2).underlay}"`, 'host = "198.51.100.99"');
      const f = writeTopology('unreachable.toml', small('fu'), infra);
      const r = dune(['up', f, '--connect-timeout', '3']);
      expect(r.code).toBe(1);
      expect(r.ms).toBeLessThan(15_000);
      expect(r.err).toMatch(/error\[hosts-unreachable\]: 1 of 3 hosts could not be reached or cannot run the agent; nothing was built:\n {2}ph2 \(root@198\.51\.100\.99:22\): (no SSH handshake within 3\.0 s|no SSH session within 3\.0 s|no route to the host|the connection timed out)/);
      for (const p of tb.phynodes) expect(leftovers(p, 'fu')).toEqual([]);
    });

    it('a phynode whose sshd is down: refused at once', async () => {
      await tb.stopSsh(ph(3));
      try {
        const f = writeTopology('refused.toml', small('fr', '[topology.nodes.c]\nphynode = "ph3"'));
        const r = dune(['up', f]);
        expect(r.code).toBe(1);
        expect(r.err).toContain(`ph3 (root@${ph(3).underlay}:22): connection refused (is sshd running and listening there?)`);
        expect(leftovers(ph(1), 'fr')).toEqual([]);
      } finally {
        await tb.startSsh(ph(3));
      }
    });

    it('a wrong host key: refused, with the fingerprint; nothing built', () => {
      const kh = join(tb.dir, 'wrong_known_hosts');
      // ph2's address with ph3's key.
      writeFileSync(kh, [`${ph(1).underlay} ${ph(1).hostKey}`, `${ph(2).underlay} ${ph(3).hostKey}`, `${ph(3).underlay} ${ph(3).hostKey}`, ''].join('\n'));
      const f = writeTopology('wrongkey.toml', small('fk'));
      const r = dune(['up', f, '--known-hosts', kh, '--accept-new-host-keys']);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/ph2 \(root@198\.51\.100\.12:22\): the ssh-ed25519 host key of phynode ph2 \(root@198\.51\.100\.12:22\) has CHANGED: it is now SHA256:[A-Za-z0-9+/]{43}, not the one at .*wrong_known_hosts:2/);
      expect(r.err).toContain(`ssh-keygen -R '${ph(2).underlay}'`);
      expect(leftovers(ph(1), 'fk')).toEqual([]);
    });

    it('an unknown host key: refused unless --accept-new-host-keys, which records it', () => {
      const kh = join(tb.dir, 'partial_known_hosts');
      writeFileSync(kh, `${ph(1).underlay} ${ph(1).hostKey}\n`);
      const f = writeTopology('newkey.toml', small('fn'));
      const r = dune(['check', f, '--known-hosts', kh]);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/FAIL ph2 .*\n(.*\n)*.*does not know: SHA256:.*\n.*--accept-new-host-keys/);
      const ok = dune(['check', f, '--known-hosts', kh, '--accept-new-host-keys']);
      expect(ok.code).toBe(0);
      expect(ok.err).toMatch(new RegExp(`note: recorded the host key of phynode ph2 \\(${ph(2).underlay.replace(/\./g, '\\.')}\\): SHA256:`));
      expect(readFileSync(kh, 'utf8')).toContain(`${ph(2).underlay} ${ph(2).hostKey}`);
    });

    it('the agent killed mid-up: every host is rolled back', async () => {
      // b's exec keeps ph2's agent busy after its network is built: the agent dies there.
      const f = writeTopology('killed.toml', [
        '[topology]', 'lab = "fx"',
        '[topology.nodes.a]', 'phynode = "ph1"',
        '[topology.nodes.b]', 'phynode = "ph2"', 'exec = ["sleep 4"]',
        '[topology.nodes.c]', 'phynode = "ph3"',
        '[[topology.links]]', 'endpoints = ["a:eth0", "b:eth0"]',
        '[[topology.links]]', 'endpoints = ["b:eth1", "c:eth0"]', '',
      ].join('\n'));
      const child = spawn(process.execPath, [CLI, 'up', f, '--json'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let killed = 0;
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (killed === 0 && /"phynode":"ph2","type":"phase","phase":"exec"/.test(out)) {
          const pids = agentPids(ph(2));
          for (const pid of pids) process.kill(pid, 'SIGKILL');
          killed = pids.length;
        }
      });
      const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
      expect(killed).toBe(1);
      expect(out).toMatch(/"phynode":"ph2","type":"step","step":"rollback"/);
      expect(code).toBe(1);
      expect(err).toMatch(/error\[multihost-up-failed\]: up of lab fx failed on ph2; rolled back on every host \(ph1, ph2, ph3\):\n {2}ph2 \(root@198\.51\.100\.12:22\): the agent on phynode ph2 .* went away \(connection closed\) during up/);
      for (const p of tb.phynodes) expect(await waitGone(p, 'fx')).toEqual([]);
    });
  });
});
