/**
 * The userspace impairment backend on a lab spread over two hosts (the multi-host test bed:
 * phynodes as namespaces with their own sshd, the CLI reaching them over SSH): one engine per
 * host and lab, started by each host's agent daemon from the shipped bundle, each serving
 * the link ends of its own host, a cross-host (VXLAN) link's two ends included.
 *
 *   ph1: a ══(VXLAN, 15 ms)══ b ──(veth, 5 ms)── c :ph2
 *
 * RTT a → c = 2 × (15 + 5) ms on top of the path's own; 4 passes through an engine each way
 * (two on each host), so the tolerance is the single-host test's per pass (see
 * userspace.test.ts): 1 ms for 8 passes, plus the VXLAN path's base (measured here before
 * the delays).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, testbedLeftovers, type TestPhynode } from '../../multihost/testbed.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(root, 'packages/cli/dist/bin/dune.js');
const BUNDLE = join(root, 'packages/transport/dist/agent/dune-agent.mjs');
const isRoot = process.getuid?.() === 0;
const built = existsSync(CLI) && existsSync(BUNDLE);
// The bed's names are fixed: another bed on the machine (a concurrent multihost run) would be torn down by ours.
const busy = isRoot ? testbedLeftovers() : [];
const skip = !isRoot ? 'needs root (namespaces, sshd)' : !built ? 'needs the built CLI and agent bundle (npm run build)' : busy.length > 0 ? `another multi-host test bed is in use here (${busy[0]})` : '';

const TOPO = `
[topology]
lab = "mhuser"
routing_weight = "hops"
impairment_backend = "userspace"
links = [
  { endpoints = ["a:eth0", "b:eth0"], latency = "15ms" },
  { endpoints = ["b:eth1", "c:eth0"], latency = "5ms" },
]

[topology.nodes.a]
phynode = "ph1"
[topology.nodes.b]
phynode = "ph2"
[topology.nodes.c]
phynode = "ph2"
`;

let tb: Testbed;
let env: Record<string, string>;

function dune(args: string[], timeoutMs = 120_000): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function ok(args: string[]): string {
  const r = dune(args);
  if (r.code !== 0) throw new Error(`dune ${args.join(' ')} exited ${r.code}:\n${r.out}\n${r.err}`);
  return r.out;
}

/** Engine processes on a phynode (by command line). */
function engines(p: TestPhynode): number[] {
  return tb.processes(p).filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv.includes('impair-engine') && argv[argv.indexOf('--lab') + 1] === 'mhuser';
    } catch {
      return false;
    }
  });
}

function minRtt(out: string): number {
  const m = /rtt min\/avg\/max\/mdev = ([\d.]+)\//.exec(out);
  if (m === null) throw new Error(`no RTT in:\n${out}`);
  return Number(m[1]);
}

describe.skipIf(skip !== '')(`e2e: the userspace backend on two hosts ${skip}`, () => {
  let file = '';
  let base = NaN;
  const ph = (n: number): TestPhynode => tb.phynodes[n - 1] as TestPhynode;

  beforeAll(async () => {
    tb = await Testbed.create({ count: 2 });
    env = tb.env();
    mkdirSync(join(tb.dir, 'topo'), { recursive: true });
    // The base: the same lab without its delays.
    const plain = join(tb.dir, 'topo', 'plain.toml');
    writeFileSync(plain, `${TOPO.replace(/, latency = "\d+ms"/g, '').replace('lab = "mhuser"', 'lab = "mhuserbase"')}\n${tb.infrastructureToml()}`);
    ok(['up', plain]);
    const c = JSON.parse(ok(['status', plain, '--json'])) as { nodes: { node: string; v4: string }[] };
    base = minRtt(ok(['exec', '-f', plain, 'a', '--', 'ping', '-n', '-q', '-c', '20', '-i', '0.02', c.nodes.find((n) => n.node === 'c')?.v4 as string]));
    ok(['down', plain]);
    file = join(tb.dir, 'topo', 'mhuser.toml');
    writeFileSync(file, `${TOPO}\n${tb.infrastructureToml()}`);
  }, 240_000);

  afterAll(async () => {
    if (tb) {
      dune(['down', file]);
      await tb.teardown();
    }
    expect(testbedLeftovers()).toEqual([]);
  });

  it('up: one engine on each host, each serving its own link ends; RTT = 2 × (15 + 5) ms + base; dune set live across hosts; down stops both', () => {
    ok(['up', file]);
    expect(engines(ph(1))).toHaveLength(1);
    expect(engines(ph(2))).toHaveLength(1);
    const st = JSON.parse(ok(['status', file, '--json'])) as {
      nodes: { node: string; v4: string }[];
      links: { node: string; dev: string; engine?: { params: Record<string, unknown> } }[];
      hosts: { phynode: string; impairEngine?: { running: boolean; pipes?: number } }[];
    };
    expect(st.hosts.map((h) => [h.phynode, h.impairEngine?.running, h.impairEngine?.pipes])).toEqual([['ph1', true, 1], ['ph2', true, 3]]);
    expect(Object.fromEntries(st.links.map((l) => [`${l.node}:${l.dev}`, l.engine?.params]))).toEqual({
      'a:eth0': { delayUs: 15_000 }, 'b:eth0': { delayUs: 15_000 }, 'b:eth1': { delayUs: 5000 }, 'c:eth0': { delayUs: 5000 },
    });
    const text = ok(['status', file]);
    expect(text).toMatch(/^ph1 .* up; userspace engine pid \d+ running \(1 link directions\)$/m);
    const c = st.nodes.find((n) => n.node === 'c')?.v4 as string;
    const want = 2 * (15 + 5);
    let got = NaN;
    const seen: number[] = [];
    for (let i = 0; i < 3 && !(got - base >= want && got - base <= want + 1); i++) {
      got = minRtt(ok(['exec', '-f', file, 'a', '--', 'ping', '-n', '-q', '-c', '20', '-i', '0.05', c]));
      seen.push(got);
    }
    console.log(`two hosts, a → c: base ${base} ms, min RTT ${seen.join(', ')} ms for ${want} ms of delays`);
    expect(got - base).toBeGreaterThanOrEqual(want);
    expect(got - base).toBeLessThanOrEqual(want + 1);

    // The cross-host link's ph1 end, changed live through ph1's agent and engine.
    expect(ok(['set', '-f', file, 'a:eth0', 'latency=25ms']).trim()).toBe('a:eth0 → delay 25ms');
    got = minRtt(ok(['exec', '-f', file, 'a', '--', 'ping', '-n', '-q', '-c', '10', '-i', '0.05', c]));
    expect(got - base).toBeGreaterThanOrEqual(want + 10);
    expect(got - base).toBeLessThanOrEqual(want + 10 + 1.5);

    ok(['down', file]);
    expect(engines(ph(1))).toEqual([]);
    expect(engines(ph(2))).toEqual([]);
    for (const p of [ph(1), ph(2)]) {
      expect(tb.inPhynode(p, ['ip', 'netns', 'list']).out.split('\n').filter((l) => l.startsWith('dune.mhuser.'))).toEqual([]);
      expect(tb.inPhynode(p, ['iptables-save']).out).not.toMatch(/dune:mhuser:/);
      expect(tb.inPhynode(p, ['test', '-e', '/run/dune/mhuser']).code).not.toBe(0);
    }
  }, 240_000);
});
