/**
 * Links that change over time: a trace file per link direction (`trace = "FILE"`) and the
 * topology's `[[topology.schedule]]` of step changes. Both become one thing, a list of
 * timed settings per link direction (TraceStep), which a follower applies to the running lab.
 *
 * Two trace formats, told apart by content:
 *
 *   Mahimahi   one integer per line: a millisecond at which one 1500-byte packet may leave
 *              (a delivery opportunity); non-decreasing, last > 0; it repeats with period
 *              = the last timestamp. The userspace engine follows it packet by packet; the
 *              kernel backends follow its rate, averaged over windows of `granularityMs`.
 *   steps      a CSV whose header names its columns: `time` and impairment keys, values in
 *              the TOML keys' units (`time,bw,latency` then `4s,2mbit,20ms`; `rate` is `bw`);
 *              an empty cell keeps the value. Each row holds until the next; the last holds
 *              for ever, unless `loop = true`: then the last row's time is the period and the
 *              trace starts over there (its values are never applied, it only marks the end).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { choicesHint, type Diagnostics, type SourceLoc } from './errors.js';
import type { Impairment } from './model.js';
import { IMPAIRMENT_TABLE, impairmentFieldsOf, LIVE_KEYS, type ImpairmentKeySpec } from './impairment-keys.js';
import { parseDurationUs } from './units.js';

/** One step: from `atMs` on, these settings (the others are left as they are). */
export interface TraceStep {
  atMs: number;
  set: Partial<Impairment>;
  /** Settings removed at this step (a schedule's `key = "none"`). */
  removed?: (keyof Impairment)[];
}

export type TraceFormat = 'mahimahi' | 'steps';

/** A link direction's trace, as the plan carries it (the file is read again to follow a Mahimahi trace). */
export interface LinkTrace {
  /** Absolute path. */
  file: string;
  format: TraceFormat;
  loop: boolean;
  /** steps: the rows; mahimahi: absent (see mahimahiSteps). */
  steps?: TraceStep[];
  /** When the trace starts over (loop), or ends: the last row's time, Mahimahi's last timestamp. */
  periodMs: number;
}

/** Mahimahi's budget per opportunity, as its docs say (the code uses 1504). */
export const MAHIMAHI_BYTES = 1500;

/** Reads a trace file; problems go to `d`, located at file:line. `at` is where the topology names it. */
export function readTrace(d: Diagnostics, path: string, loop: boolean, at: SourceLoc): LinkTrace | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    d.error('bad-trace', `cannot read trace ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, at,
      'trace paths are relative to the topology file; check the name');
    return undefined;
  }
  const first = text.split('\n').find((l) => l.trim() !== '') ?? '';
  if (/^\s*\d+\s*$/.test(first)) {
    const ms = parseMahimahi(d, text, path);
    if (!ms) return undefined;
    return { file: path, format: 'mahimahi', loop, periodMs: ms[ms.length - 1] as number };
  }
  const steps = parseStepsCsv(d, text, path);
  if (!steps) return undefined;
  return { file: path, format: 'steps', loop, steps, periodMs: (steps[steps.length - 1] as TraceStep).atMs };
}

/** Mahimahi's rules: one non-negative integer a line, no empty line, non-decreasing, at least one, last > 0. */
export function parseMahimahi(d: Diagnostics, text: string, file: string): number[] | undefined {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const out: number[] = [];
  let prev = 0;
  const before = d.items.length;
  for (let i = 0; i < lines.length && d.items.length - before < 5; i++) {
    const t = (lines[i] as string).trim();
    const loc = { file, line: i + 1, col: 1 };
    if (!/^\d+$/.test(t)) {
      d.error('bad-trace', t === '' ? 'an empty line in a Mahimahi trace' : `"${t}" is not a millisecond timestamp`, loc,
        'a Mahimahi trace has one whole number of milliseconds per line (one 1500-byte delivery opportunity), nothing else');
      continue;
    }
    const v = Number(t);
    if (v < prev) {
      d.error('bad-trace', `timestamp ${v} comes after ${prev}: a Mahimahi trace never goes back in time`, loc, 'sort the lines (sort -n)');
    }
    out.push(v);
    prev = Math.max(prev, v);
  }
  if (d.items.length > before) return undefined;
  if (out.length === 0 || (out[out.length - 1] as number) <= 0) {
    d.error('bad-trace', out.length === 0 ? 'the trace is empty' : 'the last timestamp is 0: the trace has no length', { file, line: Math.max(1, out.length), col: 1 },
      'a Mahimahi trace needs at least one line and a last timestamp above 0 (a file holding just "1" is 12 Mbit/s)');
    return undefined;
  }
  return out;
}

/** CSV column names: impairment keys, and `rate` for `bw` (the word traces use). */
const COLUMN_ALIASES: Record<string, string> = { rate: 'bw', delay: 'latency' };

/** A CSV of steps: header `time,KEY,...`, rows in the TOML units; times strictly increasing. */
export function parseStepsCsv(d: Diagnostics, text: string, file: string): TraceStep[] | undefined {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const before = d.items.length;
  let header: string[] | undefined;
  const steps: TraceStep[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const cells = line.split(',').map((c) => c.trim());
    const loc = (col: number): SourceLoc => ({ file, line: i + 1, col });
    if (!header) {
      header = cells.map((c) => COLUMN_ALIASES[c] ?? c);
      if (header[0] !== 'time') {
        d.error('bad-trace', `the first column is "${cells[0]}", not time`, loc(1),
          'a trace CSV starts with a header such as time,rate,latency,loss (or is a Mahimahi trace: one millisecond per line)');
        return undefined;
      }
      header.slice(1).forEach((k, j) => {
        if (!LIVE_KEYS.includes(k)) {
          d.error('bad-trace', `column "${cells[j + 1]}" is not an impairment key`, loc(1), choicesHint(k, ['rate', ...LIVE_KEYS]));
        }
      });
      if (d.items.length > before) return undefined;
      continue;
    }
    if (cells.length !== header.length) {
      d.error('bad-trace', `this row has ${cells.length} values and the header ${header.length} columns`, loc(1), `write ${header.length} comma-separated values (an empty one keeps the value)`);
      continue;
    }
    let us: number | undefined;
    try {
      us = parseDurationUs(cells[0] as string);
    } catch {
      us = undefined;
    }
    if (us === undefined) {
      d.error('bad-trace', `"${cells[0]}" is not a time`, loc(1), 'write a time from the start such as 0s, 4s or 1500ms');
      continue;
    }
    const atMs = us / 1000;
    const last = steps[steps.length - 1];
    if (last && atMs <= last.atMs) {
      d.error('bad-trace', `time ${cells[0]} is not after the row before (${last.atMs} ms)`, loc(1), 'rows go forward in time, one per step');
      continue;
    }
    const set: Partial<Impairment> = {};
    header.slice(1).forEach((k, j) => {
      const v = cells[j + 1] as string;
      if (v === '') return;
      // Columns are TOML keys: the same converter, so the same units and messages.
      const part = (IMPAIRMENT_TABLE[k as keyof typeof IMPAIRMENT_TABLE] as ImpairmentKeySpec).parse(d, { value: v, path: [k], loc: loc(1), keyLoc: loc(1) });
      if (part) {
        for (const f of impairmentFieldsOf(k)) delete set[f];
        Object.assign(set, part);
      }
    });
    steps.push({ atMs, set });
  }
  if (d.items.length > before) return undefined;
  if (!header || steps.length === 0) {
    d.error('bad-trace', header ? 'the trace has a header and no rows' : 'the trace is empty', { file, line: 1, col: 1 },
      'write a header such as time,rate then one row per step: 0s,10mbit');
    return undefined;
  }
  return steps;
}

/**
 * A Mahimahi trace as rate steps for the kernel backends: the opportunities of each window of
 * `granularityMs` (the last window shorter), each × 1500 bytes over the window. One period.
 */
export function mahimahiSteps(opportunitiesMs: readonly number[], granularityMs: number): TraceStep[] {
  const period = opportunitiesMs[opportunitiesMs.length - 1] as number;
  const steps: TraceStep[] = [];
  let i = 0;
  for (let start = 0; start < period; start += granularityMs) {
    const end = Math.min(start + granularityMs, period);
    let n = 0;
    // The opportunities at the last timestamp end this round (the next starts after them).
    while (i < opportunitiesMs.length && (opportunitiesMs[i] as number) < end) {
      n++;
      i++;
    }
    if (end === period) n += opportunitiesMs.length - i;
    const bits = (n * MAHIMAHI_BYTES * 8 * 1000) / (end - start);
    // htb cannot rate 0: a silence is the smallest rate it takes (a packet a second at most).
    steps.push({ atMs: start, set: { rateBitsPerSec: Math.max(Math.round(bits), 8000) } });
  }
  return steps;
}

/** Resolves a `trace` value: "FILE" or { file = "FILE", loop = true }, relative to the topology file. */
export function traceFromValue(d: Diagnostics, value: unknown, at: SourceLoc, path: string): LinkTrace | undefined {
  let file: unknown = value;
  let loop: unknown = false;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const t = value as Record<string, unknown>;
    for (const k of Object.keys(t)) {
      if (k !== 'file' && k !== 'loop') d.error('unknown-key', `${path}.${k} is not a trace setting`, at, choicesHint(k, ['file', 'loop']));
    }
    file = t.file;
    loop = t.loop ?? false;
  }
  if (typeof file !== 'string' || file === '') {
    d.error('bad-value', `${path} must name a file`, at, 'write trace = "uplink.csv" or trace = { file = "cell.up", loop = true }');
    return undefined;
  }
  if (typeof loop !== 'boolean') {
    d.error('bad-value', `${path}.loop must be true or false`, at, 'write loop = true to start the trace over at its end');
    return undefined;
  }
  const base = at.file.startsWith('<') ? process.cwd() : resolve(at.file, '..');
  return readTrace(d, isAbsolute(file) ? file : resolve(base, file), loop, at);
}
