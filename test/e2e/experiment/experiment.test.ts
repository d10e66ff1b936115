/**
 * Issue 12, experiments: `dune run` (the built CLI) on a real lab (line3.toml beside this
 * file, cli ── r ── srv), as a user runs it.
 *
 * bw-latency.toml: bw ∈ {5, 10, 20} Mbit/s on cli--r (htb, both directions) × latency ∈ {1, 5,
 * 10} ms on r's two egresses × 3 repetitions = 27 runs of iperf3 (-t 2 after 1 s omitted)
 * and ping. Checked from the files it writes:
 *   - runs.csv: every (bw, latency, repetition) exactly once, every run ok;
 *   - goodput: the mean of each combination within 5 % of bw × 1448/1514 (htb meters whole
 *     1514-byte frames, iperf3 counts the 1448-byte TCP payload; see test/e2e/impair);
 *   - RTT: the mean of each combination ≥ 2 × latency (the latency is met once each way)
 *     and ≤ 2 × latency × 1.1 + 2 ms (the veths, and the userspace engine's NFQUEUE round
 *     trip and wake-up on a kernel without netem: ~0.3-1 ms per pass);
 *   - the plots: one line per value of the other variable, a point per value, axis labels
 *     with units; summary.csv: the 9 combinations.
 * resume.toml: killed (SIGKILL) after its third run, then `--resume`: the rows written before
 * the kill are kept as they were, the others added, none twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dune, downAndCheck, duneSpawn, isRoot, REPO, removeTemp, requireBuilt, ROOT_REASON, tempDir, waitFor } from '../helpers.js';

const DIR = join(REPO, 'test/e2e/experiment');
const goodput = (bps: number) => (bps * 1448) / 1514;

function csv(path: string): Record<string, string>[] {
  const [head, ...lines] = readFileSync(path, 'utf8').trim().split('\n');
  const cols = (head as string).split(',');
  // No field of these experiments needs quoting (no commas in values or errors when ok).
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i] as string, v])));
}

const mbit = (v: string) => Number(v.replace('mbit', '')) * 1e6;
const ms = (v: string) => Number(v.replace('ms', ''));

describe.skipIf(!isRoot)(`e2e: dune run${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let out = '';
  beforeAll(async () => {
    requireBuilt();
    out = tempDir('exp');
    for (const lab of ['e2eexp', 'e2eexpres']) await dune(['down', '--lab', lab]);
  });
  afterAll(async () => {
    removeTemp(out);
    expect(await downAndCheck('e2eexp')).toEqual([]);
    expect(await downAndCheck('e2eexpres')).toEqual([]);
  });

  it('2 variables × 3 values × 3 repetitions: iperf3 rates within 5 %, ping RTT ≈ 2 × latency, rows, summary and plots', async () => {
    const dir = join(out, 'bwl');
    const r = await dune(['run', join(DIR, 'bw-latency.toml'), '-o', dir], { timeoutMs: 600_000 });
    expect(r.stderr).not.toMatch(/error|FAILED/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^27 runs; lab e2eexp; results in /);
    expect(r.stdout).toContain('[27/27] ');

    const rows = csv(join(dir, 'runs.csv'));
    expect(rows).toHaveLength(27);
    const keys = rows.map((x) => `${x['bw']}/${x['latency']}/${x['repetition']}`);
    expect(new Set(keys).size).toBe(27);
    expect(rows.every((x) => x['ok'] === 'true')).toBe(true);
    expect(rows.map((x) => x['lab_change']).filter((c) => c === 'built')).toHaveLength(1);
    expect(rows.filter((x) => x['lab_change'] === 'converged')).toHaveLength(0);

    for (const bw of ['5mbit', '10mbit', '20mbit']) {
      for (const lat of ['1ms', '5ms', '10ms']) {
        const rs = rows.filter((x) => x['bw'] === bw && x['latency'] === lat);
        expect(rs).toHaveLength(3);
        const mean = (k: string) => rs.reduce((a, x) => a + Number(x[k]), 0) / rs.length;
        const want = goodput(mbit(bw));
        const got = mean('goodput');
        const rtt = mean('rtt');
        console.log(`${bw} ${lat}: goodput ${(got / 1e6).toFixed(2)} Mbit/s for ${(want / 1e6).toFixed(2)} (${(((got - want) / want) * 100).toFixed(1)} %), rtt ${rtt.toFixed(2)} ms for ${2 * ms(lat)}`);
        expect(Math.abs(got - want) / want).toBeLessThan(0.05);
        expect(rtt).toBeGreaterThanOrEqual(2 * ms(lat));
        expect(rtt).toBeLessThanOrEqual(2 * ms(lat) * 1.1 + 2);
      }
    }

    const jsonl = readFileSync(join(dir, 'runs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { variables: Record<string, string>; metrics: Record<string, number> });
    expect(jsonl).toHaveLength(27);
    expect(jsonl.map((j) => j.metrics['goodput'])).toEqual(rows.map((x) => Number(x['goodput'])));

    const summary = csv(join(dir, 'summary.csv'));
    expect(summary.map((s) => `${s['bw']}/${s['latency']}/${s['runs']}`)).toEqual(['5mbit/1ms/3', '5mbit/5ms/3', '5mbit/10ms/3', '10mbit/1ms/3', '10mbit/5ms/3', '10mbit/10ms/3', '20mbit/1ms/3', '20mbit/5ms/3', '20mbit/10ms/3']);
    expect(summary.every((s) => Number(s['goodput_ci95']) > 0 && Number(s['goodput_n']) === 3)).toBe(true);
    expect(r.stdout).toMatch(/20mbit\s+10ms\s+3\s+1\d\.\d+ Mbit\/s ± /);

    const g = readFileSync(join(dir, 'goodput-vs-bw.svg'), 'utf8');
    expect(g).toContain('>bw (mbit)</text>');
    expect(g).toContain('>goodput (Mbit/s)</text>');
    expect([...g.matchAll(/data-label="([^"]+)"/g)].map((m) => m[1])).toEqual(['latency=1ms', 'latency=5ms', 'latency=10ms']);
    // Each point sits at its combination's mean.
    const points = [...g.matchAll(/data-x="([\d.]+)" data-mean="([\d.e+]+)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(points).toHaveLength(9);
    for (const [x, mean] of points) expect(Math.abs((mean as number) - goodput((x as number) * 1e6)) / goodput((x as number) * 1e6)).toBeLessThan(0.05);
    const t = readFileSync(join(dir, 'rtt-vs-latency.svg'), 'utf8');
    expect(t).toContain('>latency (ms)</text>');
    expect(t).toContain('>rtt (ms)</text>');
    expect([...t.matchAll(/data-label="([^"]+)"/g)].map((m) => m[1])).toEqual(['bw=5mbit', 'bw=10mbit', 'bw=20mbit']);
  }, 660_000);

  it('a run killed mid-way resumes where it stopped: the same final rows, none twice', async () => {
    const dir = join(out, 'res');
    const file = join(DIR, 'resume.toml');
    const child = duneSpawn(['run', file, '-o', dir]);
    let stdout = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.resume();
    await waitFor('the third run', () => stdout.includes('[3/6]'), 120_000, 50);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const before = readFileSync(join(dir, 'runs.jsonl'), 'utf8').trim().split('\n');
    expect(before.length).toBeGreaterThanOrEqual(3);
    expect(before.length).toBeLessThan(6);

    // Without --resume the results are not overwritten.
    const refused = await dune(['run', file, '-o', dir], { timeoutMs: 60_000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/error\[results-exist\].*already holds results/);

    const r = await dune(['run', file, '-o', dir, '--resume'], { timeoutMs: 180_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`6 runs, ${before.length} already in the results (skipped)`);
    expect(r.stderr).toContain('removing lab e2eexpres left by an interrupted run');
    const after = readFileSync(join(dir, 'runs.jsonl'), 'utf8').trim().split('\n');
    expect(after).toHaveLength(6);
    expect(after.slice(0, before.length)).toEqual(before);
    const rows = after.map((l) => JSON.parse(l) as { variables: { latency: string }; repetition: number; ok: boolean; run: number });
    expect(new Set(rows.map((x) => `${x.variables.latency}#${x.repetition}`)).size).toBe(6);
    expect(rows.map((x) => x.run).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rows.every((x) => x.ok)).toBe(true);
    expect(csv(join(dir, 'runs.csv'))).toHaveLength(6);
    expect(existsSync(join(dir, 'rtt-vs-latency.svg'))).toBe(true);
  }, 300_000);
});
