/**
 * Trace files (Mahimahi packet-delivery traces, CSV steps) and `[[topology.schedule]]`: read
 * into timed settings, errors at file:line with a fix, and the impairment key table they
 * share with the TOML reader and `dune set`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  describeImpairment, Diagnostics, IMPAIRMENT_TABLE, LIVE_KEYS, mahimahiSteps, parseImpairmentAssignments, parseMahimahi, parseStepsCsv,
  readTopology, TopologyError,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dune-traces-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function errors(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof TopologyError) return e.diagnostics.map((d) => `${d.loc?.file.replace(dir, 'DIR')}:${d.loc?.line}: ${d.message} | ${d.hint ?? ''}`);
    throw e;
  }
  return [];
}

function topo(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('Mahimahi traces', () => {
  it('reads one opportunity a line; a file holding "1" is 12 Mbit/s', () => {
    const d = new Diagnostics();
    expect(parseMahimahi(d, '1\n', 'x')).toEqual([1]);
    expect(mahimahiSteps([1], 100)).toEqual([{ atMs: 0, set: { rateBitsPerSec: 12_000_000 } }]);
    // 1 opportunity per ms over a 1000 ms period: 12 Mbit/s in every window.
    const ms = Array.from({ length: 1000 }, (_, i) => i + 1);
    const steps = mahimahiSteps(ms, 100);
    expect(steps).toHaveLength(10);
    // Windows [0,100) hold 1..99, [900,1000] 900..1000: every opportunity counted once.
    expect(steps.map((s) => (s.set.rateBitsPerSec ?? 0) / 120_000)).toEqual([99, 100, 100, 100, 100, 100, 100, 100, 100, 101]);
  });

  it('turns bursts and silences into the rate of each window, silences at the smallest rate htb takes', () => {
    // 50 opportunities in [0,100), none in [100,200), two in [200,300] (the last one ends the round).
    const ms = [...Array.from({ length: 50 }, () => 5), 250, 300];
    const steps = mahimahiSteps(ms, 100);
    expect(steps.map((s) => s.set.rateBitsPerSec)).toEqual([50 * 12_000 * 10, 8000, 2 * 12_000 * 10]);
  });

  it('refuses what mm-link refuses, at file:line', () => {
    const d = new Diagnostics();
    expect(parseMahimahi(d, '1\n5\n3\n\nx\n', 'up.trace')).toBeUndefined();
    expect(d.items.map((i) => `${i.loc?.line}: ${i.message}`)).toEqual([
      '3: timestamp 3 comes after 5: a Mahimahi trace never goes back in time',
      '4: an empty line in a Mahimahi trace',
      '5: "x" is not a millisecond timestamp',
    ]);
    const z = new Diagnostics();
    expect(parseMahimahi(z, '0\n0\n', 'z')).toBeUndefined();
    expect(z.items[0]?.message).toMatch(/last timestamp is 0/);
  });
});

describe('CSV traces of steps', () => {
  it('takes TOML units, `rate` for bw, empty cells keep a value', () => {
    const d = new Diagnostics();
    const steps = parseStepsCsv(d, 'time,rate,latency,loss\n0s,10mbit,5ms,\n4s,2mbit,,1%\n8s,10mbit,20ms,\n', 'x.csv');
    expect(d.items).toEqual([]);
    expect(steps).toEqual([
      { atMs: 0, set: { rateBitsPerSec: 10_000_000, delayUs: 5000 } },
      { atMs: 4000, set: { rateBitsPerSec: 2_000_000, lossPct: 1 } },
      { atMs: 8000, set: { rateBitsPerSec: 10_000_000, delayUs: 20_000 } },
    ]);
  });

  it('locates every problem at file:line with the fix', () => {
    const d = new Diagnostics();
    expect(parseStepsCsv(d, 'time,rate,latncy\n', 'x.csv')).toBeUndefined();
    expect(d.items.map((i) => `${i.loc?.line}: ${i.message} | ${i.hint}`)).toEqual([
      '1: column "latncy" is not an impairment key | did you mean `latency`? Use one of: rate, latency, jitter, jitter_distribution, jitter_correlation, loss, loss_correlation, duplicate, corrupt, reorder, reorder_gap, bw, queue',
    ]);
    const e = new Diagnostics();
    expect(parseStepsCsv(e, 'time,rate\n0s,10mbit\n2s,fast\n1s,1mbit\n3s\n', 'y.csv')).toBeUndefined();
    expect(e.items.map((i) => `${i.loc?.file}:${i.loc?.line}: ${i.code}`)).toEqual(['y.csv:3: bad-unit', 'y.csv:4: bad-trace', 'y.csv:5: bad-trace']);
    expect(e.items[1]?.message).toBe('time 1s is not after the row before (2000 ms)');
  });
});

describe('traces and schedules in a topology', () => {
  it('reads trace = "FILE" on a link (both directions) and on one end, relative to the topology file', () => {
    writeFileSync(join(dir, 'steps.csv'), 'time,rate\n0s,10mbit\n4s,2mbit\n8s,10mbit\n');
    writeFileSync(join(dir, 'cell.up'), '1\n1\n2\n');
    const t = readTopology(topo('a.toml', `
[[topology.links]]
endpoints = ["a:eth0", "b:eth0"]
trace = "steps.csv"
"b:eth0" = { trace = { file = "cell.up", loop = true } }
`));
    const [link] = t.links;
    expect(link?.a.trace).toMatchObject({ file: join(dir, 'steps.csv'), format: 'steps', loop: false, periodMs: 8000 });
    expect(link?.b.trace).toMatchObject({ file: join(dir, 'cell.up'), format: 'mahimahi', loop: true, periodMs: 2 });
  });

  it('reports a missing trace file where the topology names it, and errors inside the file at its line', () => {
    writeFileSync(join(dir, 'bad.csv'), 'time,rate\n0s,10mbit\nsoon,2mbit\n');
    expect(errors(() => readTopology(topo('b.toml', `
[[topology.links]]
endpoints = ["a:eth0", "b:eth0"]
trace = "nope.csv"
"b:eth0" = { trace = "bad.csv" }
`)))).toEqual([
      `DIR/b.toml:4: cannot read trace ${join(dir, 'nope.csv')}: ENOENT | trace paths are relative to the topology file; check the name`,
      'DIR/bad.csv:3: "soon" is not a time | write a time from the start such as 0s, 4s or 1500ms',
    ]);
  });

  it('reads [[topology.schedule]] and checks its keys and targets', () => {
    const t = readTopology(topo('c.toml', `
[[topology.links]]
endpoints = ["a:eth0", "b:eth0"]

[[topology.schedule]]
at = "2s"
link = ["a:eth0", "b:eth0"]
settings = { bw = "2mbit", latency = "none" }
`));
    expect(t.schedule?.map(({ loc: _l, ...c }) => c)).toEqual([
      { atMs: 2000, node: 'a', iface: 'eth0', set: { rateBitsPerSec: 2_000_000 }, removed: ['delayUs'] },
      { atMs: 2000, node: 'b', iface: 'eth0', set: { rateBitsPerSec: 2_000_000 }, removed: ['delayUs'] },
    ]);
    expect(errors(() => readTopology(topo('d.toml', `
[[topology.links]]
endpoints = ["a:eth0", "b:eth0"]

[[topology.schedule]]
at = "2s"
link = "c:eth0"
settings = { bandwidth = "2mbit" }
`)))).toEqual([
      'DIR/d.toml:7: topology.schedule[0].link: no node "c" in the topology | did you mean `a`?',
      'DIR/d.toml:8: topology.schedule[0].settings.bandwidth is not an impairment key | use one of: latency, jitter, jitter_distribution, jitter_correlation, loss, loss_correlation, duplicate, corrupt, reorder, reorder_gap, bw, queue',
    ]);
  });
});

describe('the impairment key table', () => {
  it('gives TOML, dune set and status the same keys', () => {
    expect(LIVE_KEYS).toEqual(Object.keys(IMPAIRMENT_TABLE));
    const { set } = parseImpairmentAssignments(['latency=20ms', 'bw=10mbit', 'loss=1%']);
    expect(set).toEqual({ delayUs: 20_000, rateBitsPerSec: 10_000_000, lossPct: 1 });
    expect(describeImpairment(set)).toBe('delay 20ms, loss 1%, rate 10mbit');
    for (const spec of Object.values(IMPAIRMENT_TABLE)) {
      expect(spec.netem).not.toBe('');
      expect(spec.engine).not.toBe('');
    }
  });
});
