/**
 * Links that change over time, followed on a running lab: a CSV rate trace stepping
 * 10 → 2 → 10 Mbit/s and a Mahimahi trace measured by iperf3 per step (htb, the kernel
 * backend here), latency steps of a `[[topology.schedule]]` seen by ping (the userspace
 * engine: this kernel has no netem). The timeline itself is checked without a kernel.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followTimeline, Lab, timeline, tracesLengthMs, type PlanTrace, type TraceChange } from '@dune/lab';

const dir = mkdtempSync(join(tmpdir(), 'dune-trace-lab-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const isRoot = process.getuid?.() === 0;
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = !isRoot ? 'needs root (namespaces, veth, htb)' : !has('iperf3') ? 'needs iperf3' : !has('ping') ? 'needs ping' : '';

const steps = (node: string, dev: string, loop: boolean, s: [number, number][], periodMs: number): PlanTrace =>
  ({ node, dev, file: 'x.csv', format: 'steps', loop, periodMs, steps: s.map(([atMs, rate]) => ({ atMs, set: { rateBitsPerSec: rate } })) });

/**
 * A virtual clock for the follower: a sleep lands exactly when due (a real one can be late on
 * a busy host, and a late change would rightly be merged with the next); `advance` is time
 * spent in an apply.
 */
function virtualClock(start = 0): { now: () => number; sleep: (ms: number) => Promise<void>; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, sleep: async (ms) => void (t += Math.max(0, ms)), advance: (ms) => void (t += ms) };
}

describe('the timeline of traces', () => {
  it('holds the last row without loop, starts over at the last row with loop (which is never applied)', () => {
    const held = timeline([steps('a', 'eth0', false, [[0, 10], [4000, 2], [8000, 10]], 8000)], 20_000);
    expect(held.map((c) => [c.atMs, c.set.rateBitsPerSec])).toEqual([[0, 10], [4000, 2], [8000, 10]]);
    const looped = timeline([steps('a', 'eth0', true, [[0, 10], [4000, 2], [8000, 99]], 8000)], 17_000);
    expect(looped.map((c) => [c.atMs, c.set.rateBitsPerSec])).toEqual([[0, 10], [4000, 2], [8000, 10], [12_000, 2], [16_000, 10]]);
    expect(tracesLengthMs([steps('a', 'eth0', false, [[0, 10], [4000, 2]], 4000)])).toBe(4000);
  });

  it('merges directions in time order and, when behind, applies only the newest change due per direction', async () => {
    const changes: TraceChange[] = [
      { atMs: 1, node: 'a', dev: 'eth0', set: { rateBitsPerSec: 1 }, removed: [] },
      { atMs: 2, node: 'a', dev: 'eth0', set: { delayUs: 5 }, removed: [] },
      { atMs: 3, node: 'b', dev: 'eth0', set: { rateBitsPerSec: 3 }, removed: [] },
      { atMs: 4, node: 'a', dev: 'eth0', set: { rateBitsPerSec: 4 }, removed: [] },
    ];
    const given = structuredClone(changes);
    const applied: TraceChange[] = [];
    const clock = virtualClock();
    // The first change (after the clock starts: 0 would be applied before it) takes 50 ms: the rest are all due when it ends.
    const done = await followTimeline(changes, async (c) => {
      applied.push(c);
      if (applied.length === 1) clock.advance(50);
    }, clock);
    expect(applied.map((c) => [c.node, c.set])).toEqual([
      ['a', { rateBitsPerSec: 1 }],
      ['a', { delayUs: 5, rateBitsPerSec: 4 }],
      ['b', { rateBitsPerSec: 3 }],
    ]);
    expect(done.map((r) => [r.elapsedMs, r.tookMs, r.skipped])).toEqual([[1, 50, 0], [51, 0, 1], [51, 0, 0]]);
    expect(changes).toEqual(given);
  });

  it('applies each change when due while it keeps up', async () => {
    const changes: TraceChange[] = [
      { atMs: 10, node: 'a', dev: 'eth0', set: { rateBitsPerSec: 1 }, removed: [] },
      { atMs: 20, node: 'a', dev: 'eth0', set: { delayUs: 5 }, removed: [] },
      { atMs: 20, node: 'b', dev: 'eth0', set: { rateBitsPerSec: 3 }, removed: [] },
    ];
    const clock = virtualClock(1000);
    const done = await followTimeline(changes, async () => clock.advance(2), clock);
    expect(done.map((r) => [r.node, r.elapsedMs, r.skipped])).toEqual([['a', 10, 0], ['a', 20, 0], ['b', 22, 0]]);
  });
});

/** iperf3's per-second rates as the receiver saw them (the sender's are its writes into a large socket buffer). */
function intervals(json: string): number[] {
  const r = JSON.parse(json) as { intervals: { sum: { bits_per_second: number } }[] };
  return r.intervals.map((i) => i.sum.bits_per_second);
}

/** Waits until something listens on iperf3's port in the node. */
async function listening(node: { run(argv: string[]): Promise<{ stdout: string }> }): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await node.run(['ss', '-Hltn', 'sport = :5201'])).stdout.trim() !== '') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('iperf3 -s did not listen within 5 s');
}

const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;

describe.skipIf(skip !== '')(`traces followed on a running lab ${skip}`, () => {
  let lab: Lab;
  const rows: string[] = [];

  beforeAll(async () => {
    spawnSync(process.execPath, [join(import.meta.dirname, '../../cli/dist/bin/dune.js'), 'down', '--lab', 'tracelab'], { encoding: 'utf8' });
    writeFileSync(join(dir, 'steps.csv'), 'time,rate\n0s,10mbit\n4s,2mbit\n8s,10mbit\n');
    // Mahimahi: 3 s at one opportunity per 2 ms (6 Mbit/s), then 3 s at one per 4 ms (3 Mbit/s).
    const mm = [...Array.from({ length: 1500 }, (_, i) => 2 * (i + 1)), ...Array.from({ length: 750 }, (_, i) => 3000 + 4 * (i + 1))];
    writeFileSync(join(dir, 'cell.down'), `${mm.join('\n')}\n`);
    writeFileSync(join(dir, 'lab.toml'), `
[topology]
lab = "tracelab"

[[topology.links]]
endpoints = ["a:eth0", "b:eth0"]
"a:eth0" = { trace = "steps.csv" }
"b:eth0" = { trace = "cell.down" }

[[topology.schedule]]
at = "0s"
link = "a:eth0"
settings = { latency = "10ms" }

[[topology.schedule]]
at = "3s"
link = "a:eth0"
settings = { latency = "50ms" }

[[topology.schedule]]
at = "6s"
link = "a:eth0"
settings = { latency = "none" }
`);
    lab = await Lab.fromFile(join(dir, 'lab.toml'));
    await lab.up();
  }, 120_000);

  afterAll(async () => {
    await lab?.down();
    console.log(rows.join('\n'));
  }, 60_000);

  const trace = (pick: (t: PlanTrace) => boolean): PlanTrace[] => (lab.plan.traces ?? []).filter(pick);

  it('a CSV rate trace 10 → 2 → 10 Mbit/s: iperf3 within 10 % of each step (htb)', async () => {
    const b = lab.node('b');
    const srv = await b.spawn(['iperf3', '-s', '-1', '-J']);
    let json = '';
    srv.stdout.on('data', (d: Buffer) => (json += d.toString()));
    await listening(b);
    const following = lab.followTraces({ traces: trace((t) => t.node === 'a' && t.format === 'steps' && t.file.endsWith('steps.csv')), durationMs: 12_000 });
    const c = await lab.node('a').run(['iperf3', '-c', b.address(4), '-t', '12'], { timeoutMs: 60_000 });
    const reports = await following;
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    await srv.wait();
    const per = intervals(json).map((g) => (g * 1514) / 1448);
    rows.push(`csv per second: ${per.map((x) => (x / 1e6).toFixed(2)).join(' ')}`);
    // Each step's seconds after the first (TCP settles, the change lands): 1-3, 5-7, 9-11.
    for (const [from, want] of [[1, 10e6], [5, 2e6], [9, 10e6]] as const) {
      const got = mean(per.slice(from, from + 3));
      rows.push(`csv trace step at ${from - 1}s: requested ${want / 1e6} Mbit/s, delivered ${(got / 1e6).toFixed(2)} Mbit/s (${(((got - want) / want) * 100).toFixed(1)} %)`);
      expect(Math.abs(got - want) / want).toBeLessThan(0.1);
    }
    rows.push(`csv changes applied ${reports.map((r) => `${Math.round(r.elapsedMs - r.atMs)}+${Math.round(r.tookMs)} ms`).join(', ')} (late + took)`);
  }, 90_000);

  it('a Mahimahi trace 6 → 3 Mbit/s: iperf3 within 10 % of each part (htb, 100 ms windows)', async () => {
    const a = lab.node('a');
    const srv = await a.spawn(['iperf3', '-s', '-1', '-J']);
    let json = '';
    srv.stdout.on('data', (d: Buffer) => (json += d.toString()));
    await listening(a);
    const following = lab.followTraces({ traces: trace((t) => t.format === 'mahimahi') });
    // b → a: b:eth0's egress follows the trace.
    const c = await lab.node('b').run(['iperf3', '-c', a.address(4), '-t', '6'], { timeoutMs: 60_000 });
    const reports = await following;
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    await srv.wait();
    const per = intervals(json).map((g) => (g * 1500) / 1448); // Mahimahi counts 1500-byte packets
    rows.push(`mahimahi per second: ${per.map((x) => (x / 1e6).toFixed(2)).join(' ')}`);
    for (const [from, want] of [[1, 6e6], [4, 3e6]] as const) {
      const got = mean(per.slice(from, from + 2));
      rows.push(`mahimahi part at ${from - 1}s: trace ${want / 1e6} Mbit/s, delivered ${(got / 1e6).toFixed(2)} Mbit/s (${(((got - want) / want) * 100).toFixed(1)} %)`);
      expect(Math.abs(got - want) / want).toBeLessThan(0.1);
    }
    const late = reports.map((r) => r.elapsedMs + r.tookMs - r.atMs);
    rows.push(`mahimahi: ${reports.length} changes (100 ms windows), each done at most ${Math.max(...late).toFixed(1)} ms after its time, median took ${[...reports.map((r) => r.tookMs)].sort((x, y) => x - y)[Math.floor(reports.length / 2)]?.toFixed(1)} ms, ${reports.reduce((s, r) => s + r.skipped, 0)} skipped`);
  }, 90_000);

  it('latency steps of [[topology.schedule]] 10 → 50 → 0 ms seen by ping (userspace engine)', async () => {
    const b = lab.node('b');
    const t0 = Date.now();
    const following = lab.followTraces({ traces: trace((t) => t.file.endsWith('lab.toml')), durationMs: 6000 });
    const p = await lab.node('a').run(['ping', '-D', '-n', '-i', '0.1', '-w', '9', b.address(4)], { timeoutMs: 30_000 });
    await following;
    const samples = p.stdout.split('\n').map((l) => /^\[(\d+\.\d+)\].*time=([\d.]+) ms/.exec(l)).filter((m) => m !== null)
      .map((m) => ({ s: Number(m[1]) - t0 / 1000, rtt: Number(m[2]) }));
    for (const [from, to, want] of [[0.5, 2.5, 10], [3.5, 5.5, 50], [6.5, 8.5, 0]] as const) {
      const xs = samples.filter((x) => x.s >= from && x.s < to).map((x) => x.rtt).sort((x, y) => x - y);
      const median = xs[Math.floor(xs.length / 2)] as number;
      rows.push(`latency step ${want} ms (${from}-${to} s): median RTT ${median} ms over ${xs.length} pings`);
      expect(xs.length).toBeGreaterThan(10);
      expect(median).toBeGreaterThan(want);
      expect(median).toBeLessThan(want + 3);
    }
  }, 60_000);
});

const AGENT = join(import.meta.dirname, '../../agent/dist/bin/dune-agent.js');
function nfqueue(): { ok: boolean; why: string } {
  try {
    const c = JSON.parse(spawnSync(process.execPath, [AGENT, 'probe'], { encoding: 'utf8' }).stdout) as Record<string, { ok: boolean; error?: string }>;
    return { ok: c['nfqueue']?.ok === true, why: c['nfqueue']?.error ?? 'not found' };
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
}
const engineSkip = skip !== '' ? skip : ((q) => (q.ok ? '' : `needs the iptables NFQUEUE target for the userspace engine (${q.why})`))(nfqueue());

describe.skipIf(engineSkip !== '')(`a Mahimahi trace followed per packet by the userspace engine ${engineSkip}`, () => {
  let lab: Lab;
  const rows: string[] = [];

  beforeAll(async () => {
    spawnSync(process.execPath, [join(import.meta.dirname, '../../cli/dist/bin/dune.js'), 'down', '--lab', 'tracepkt'], { encoding: 'utf8' });
    // 3 s at one opportunity per 2 ms (6 Mbit/s), then 3 s at one per 4 ms (3 Mbit/s); no loop: the last second holds.
    const mm = [...Array.from({ length: 1500 }, (_, i) => 2 * (i + 1)), ...Array.from({ length: 750 }, (_, i) => 3000 + 4 * (i + 1))];
    writeFileSync(join(dir, 'pkt.down'), `${mm.join('\n')}\n`);
    writeFileSync(join(dir, 'pkt.toml'), `
[topology]
lab = "tracepkt"
impairment_backend = "userspace"

[[topology.links]]
endpoints = ["a:eth0", "b:eth0"]
"b:eth0" = { trace = "pkt.down" }
`);
    lab = await Lab.fromFile(join(dir, 'pkt.toml'));
    await lab.up();
  }, 120_000);

  afterAll(async () => {
    await lab?.down();
    console.log(rows.join('\n'));
  }, 60_000);

  it('iperf3 follows a Mahimahi trace 6 → 3 Mbit/s within 10 % of each part; status names the trace', async () => {
    const a = lab.node('a');
    const srv = await a.spawn(['iperf3', '-s', '-1', '-J']);
    let json = '';
    srv.stdout.on('data', (d: Buffer) => (json += d.toString()));
    await listening(a);
    // The follower's first (and only) change hands the engine the trace, which starts then: iperf3 starts after it.
    let set!: () => void;
    const applied = new Promise<void>((r) => (set = r));
    const following = lab.followTraces({ onChange: () => set() });
    await applied;
    // b → a: b:eth0's egress follows the trace.
    const c = await lab.node('b').run(['iperf3', '-c', a.address(4), '-t', '8'], { timeoutMs: 60_000 });
    const reports = await following;
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    await srv.wait();
    expect(reports.map((r) => [r.node, r.dev, r.set.deliveryTrace?.opportunitiesMs.length, r.set.rateBitsPerSec])).toEqual([['b', 'eth0', 2250, undefined]]);
    const per = intervals(json).map((g) => (g * 1500) / 1448); // 1500-byte IP packets, one per opportunity
    rows.push(`mahimahi per packet, per second: ${per.map((x) => (x / 1e6).toFixed(2)).join(' ')}`);
    // The trace starts a few ms before iperf3 does: its step at 3 s falls in iperf3's third second,
    // which is left out; every other whole second is held to the trace (from 6 s on, its last second holds).
    for (const [from, n, want] of [[0, 2, 6e6], [3, 3, 3e6], [6, 2, 3e6]] as const) {
      const got = per.slice(from, from + n);
      rows.push(`mahimahi per packet, seconds ${from}-${from + n}: trace ${want / 1e6} Mbit/s, delivered ${got.map((x) => (x / 1e6).toFixed(2)).join(' ')} Mbit/s (worst ${(Math.max(...got.map((x) => Math.abs(x - want) / want)) * 100).toFixed(1)} %)`);
      expect(got).toHaveLength(n);
      for (const x of got) expect(Math.abs(x - want) / want).toBeLessThan(0.1);
    }
    const st = await lab.status();
    const b = st.links.find((l) => l.node === 'b' && l.dev === 'eth0');
    expect(b?.impairment.deliveryTrace?.opportunitiesMs.length).toBe(2250);
    expect(b?.engine).toBeDefined();
  }, 90_000);
});
