import { mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { csvLine, niceTicks, numericAxis, parseExperiment, plotSeries, renderPlot, ResultsDir, scaleUnit, summarizeRows, type ResultRow } from '@dune/experiment';

const EXP = parseExperiment(`
[variables]
bw = { values = ["5mbit", "10mbit"], set = "a--b.bw" }
lat = { values = ["1ms", "10ms"], set = "a--b.latency" }
[[roles]]
name = "c"
node = "a"
run = "true"
[metrics]
rate = { role = "c", parse = "iperf3", field = "bps" }
[topology]
links = [{ endpoints = ["a", "b"] }]
`, '/x/e.toml');

function row(bw: string, lat: string, rep: number, rate: number | null, ok = true): ResultRow {
  return { run: rep, combination: 0, repetition: rep, variables: { bw, lat }, metrics: { rate }, ok, ...(ok ? {} : { error: 'x failed' }), startedAt: '2026-01-01T00:00:00.000Z', setupSeconds: 0.1, runSeconds: 2, roleSeconds: { c: 2 }, labChange: 'live' };
}

const ROWS = [
  row('5mbit', '1ms', 1, 4.7e6), row('5mbit', '1ms', 2, 4.8e6), row('5mbit', '1ms', 3, 4.9e6),
  row('10mbit', '1ms', 1, 9.5e6), row('10mbit', '1ms', 2, 9.6e6),
  row('5mbit', '10ms', 1, 4.5e6), row('10mbit', '10ms', 1, 9.0e6), row('10mbit', '10ms', 2, null, false),
];

describe('summary', () => {
  it('per combination in declaration order: runs, failures, mean and CI of each metric', () => {
    const s = summarizeRows(EXP, ROWS);
    expect(s.map((x) => [x.variables, x.runs, x.failed, x.metrics['rate']?.n, x.metrics['rate']?.mean])).toEqual([
      [{ bw: '5mbit', lat: '1ms' }, 3, 0, 3, 4.8e6],
      [{ bw: '5mbit', lat: '10ms' }, 1, 0, 1, 4.5e6],
      [{ bw: '10mbit', lat: '1ms' }, 2, 0, 2, 9.55e6],
      [{ bw: '10mbit', lat: '10ms' }, 2, 1, 1, 9.0e6],
    ]);
    expect(s[0]?.metrics['rate']?.ci95).toBeCloseTo(4.3027 * 1e5 / Math.sqrt(3), -2);
  });
});

describe('SVG plots', () => {
  it('axes: nice ticks, numeric values with their unit, SI prefixes for rates', () => {
    expect(niceTicks(0, 19.3)).toEqual([0, 5, 10, 15, 20]);
    expect(niceTicks(0, 0.9)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(numericAxis(['5mbit', '10mbit', '20mbit'])).toEqual({ numbers: [5, 10, 20], unit: 'mbit' });
    expect(numericAxis([1, 4, 16])).toEqual({ numbers: [1, 4, 16], unit: '' });
    expect(numericAxis(['1ms', '1s'])).toBeUndefined();
    expect(numericAxis(['cubic', 'bbr'])).toBeUndefined();
    expect(scaleUnit('bit/s', 19e6)).toEqual({ factor: 1e6, unit: 'Mbit/s' });
    expect(scaleUnit('ms', 19e6)).toEqual({ factor: 1, unit: 'ms' });
  });

  it('one line per value of the other variable, points at the means, CI bars, legend, labels with units', () => {
    const summary = summarizeRows(EXP, ROWS);
    const input = { title: 'e: rate vs bw', metric: EXP.metrics[0] as (typeof EXP.metrics)[number], x: EXP.variables[0] as (typeof EXP.variables)[number], others: [EXP.variables[1] as (typeof EXP.variables)[number]], summary };
    const { series } = plotSeries(input);
    expect(series.map((s) => [s.label, s.points.map((p) => [p.x, p.mean])])).toEqual([
      ['lat=1ms', [[5, 4.8e6], [10, 9.55e6]]],
      ['lat=10ms', [[5, 4.5e6], [10, 9.0e6]]],
    ]);
    const svg = renderPlot(input);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    // Balanced elements: every opened <g> closed.
    expect(svg.match(/<g[ >]/g)?.length).toBe(svg.match(/<\/g>/g)?.length);
    expect(svg).toContain('>bw (mbit)</text>');
    expect(svg).toContain('>rate (Mbit/s)</text>');
    expect(svg.match(/<g class="series"/g)).toHaveLength(2);
    expect(svg).toContain('data-label="lat=1ms"');
    expect(svg).toContain('>lat=10ms</text>');
    expect(svg.match(/<circle cx="[\d.]+" cy="[\d.]+" r="3.5" data-x/g)).toHaveLength(4);
    // One CI bar (the 3-run and 2-run points with spread; single runs have none).
    expect(svg.match(/stroke-width="1"\/>/g)?.length).toBe(2);
  });
});

describe('results directory', () => {
  it('appends rows durably, refuses to overwrite, resumes, drops a partial last line, refuses another experiment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'exp-res-'));
    const a = new ResultsDir(dir, EXP);
    a.open('fp1', false);
    a.append(ROWS[0] as ResultRow);
    a.append(ROWS[1] as ResultRow);
    const csv = readFileSync(join(dir, 'runs.csv'), 'utf8').split('\n');
    expect(csv[0]).toBe('run,combination,repetition,bw,lat,rate,ok,error,started_at,setup_s,run_s,c_s,lab_change');
    expect(csv[1]).toBe('1,0,1,5mbit,1ms,4700000,true,,2026-01-01T00:00:00.000Z,0.1,2,2,live');
    expect(csv).toHaveLength(4);
    expect(() => new ResultsDir(dir, EXP).open('fp1', false)).toThrow(/already holds results/);
    expect(() => new ResultsDir(dir, EXP).open('fp2', true)).toThrow(/another experiment/);
    appendFileSync(join(dir, 'runs.jsonl'), '{"run": 3, "varia');
    const b = new ResultsDir(dir, EXP);
    b.open('fp1', true);
    expect(b.rows).toHaveLength(2);
    expect([...b.doneKeys()]).toEqual(['bw="5mbit",lat="1ms"#1', 'bw="5mbit",lat="1ms"#2']);
    expect(readFileSync(join(dir, 'runs.jsonl'), 'utf8').split('\n').filter(Boolean)).toHaveLength(2);
    b.append(ROWS[2] as ResultRow);
    expect(readFileSync(join(dir, 'runs.csv'), 'utf8').trim().split('\n')).toHaveLength(4);
    const { csv: sc } = b.writeSummary(b.summary());
    expect(readFileSync(sc, 'utf8').split('\n')[0]).toBe('bw,lat,runs,failed,rate_mean,rate_ci95,rate_sd,rate_n');
    writeFileSync(join(dir, 'x'), '');
  });

  it('CSV quoting', () => {
    expect(csvLine(['a,b', 'say "hi"', null, 1.5, NaN, ' x'])).toBe('"a,b","say ""hi""",,1.5,," x"\n');
  });
});
