/**
 * Results on disk, in the output directory:
 *
 *   runs.jsonl       one JSON object per finished run, appended and fsynced before the next
 *                    run starts: the record a resumed experiment trusts
 *   runs.csv         the same rows as CSV (variables, repetition, metrics, timings), appended
 *                    and fsynced alike; rebuilt from runs.jsonl when a resume finds them apart
 *   experiment.json  what the rows belong to (a fingerprint of variables, roles, metrics,
 *                    repetitions, seed, order and topology): a resume of another experiment
 *                    into the same directory is refused
 *   summary.csv/json mean, standard deviation and 95 % CI per combination and metric
 *   *.svg            plots (plot.ts)
 *
 * A run killed mid-write leaves at most a partial last line in runs.jsonl; it is dropped
 * (that run is simply done again).
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DuneError, type TomlValue } from '@dune/topology';
import { combinationKey, combinations, runKey, type Values } from './matrix.js';
import { summarize, type Summary } from './stats.js';
import type { Experiment } from './spec.js';

export interface ResultRow {
  /** Position of the run in the experiment's run list (1-based). */
  run: number;
  combination: number;
  repetition: number;
  variables: Values;
  metrics: Record<string, number | null>;
  ok: boolean;
  error?: string;
  startedAt: string;
  /** Bringing the lab to this run's state (converge or live changes). */
  setupSeconds: number;
  /** The roles, from the first start to the last end. */
  runSeconds: number;
  roleSeconds: Record<string, number>;
  /** What was done to the lab before the run: built, converged, changed live, or nothing. */
  labChange: 'built' | 'converged' | 'live' | 'none';
}

export interface CombinationSummary {
  combination: number;
  variables: Values;
  runs: number;
  failed: number;
  metrics: Record<string, Summary>;
}

export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : String(v);
  return /[",\n\r]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(fields: readonly unknown[]): string {
  return `${fields.map(csvField).join(',')}\n`;
}

export class ResultsDir {
  readonly dir: string;
  private readonly exp: Experiment;
  private readonly columns: string[];
  readonly rows: ResultRow[] = [];

  constructor(dir: string, exp: Experiment) {
    this.dir = dir;
    this.exp = exp;
    this.columns = [
      'run', 'combination', 'repetition', ...exp.variables.map((v) => v.name), ...exp.metrics.map((m) => m.name),
      'ok', 'error', 'started_at', 'setup_s', 'run_s', ...exp.roles.map((r) => `${r.name}_s`), 'lab_change',
    ];
  }

  get csvPath(): string {
    return join(this.dir, 'runs.csv');
  }

  get jsonlPath(): string {
    return join(this.dir, 'runs.jsonl');
  }

  /**
   * Creates the directory, or, with `resume`, loads the rows already there. Without `resume`
   * a directory that holds rows is refused rather than overwritten.
   */
  open(fingerprint: string, resume: boolean): void {
    mkdirSync(this.dir, { recursive: true });
    const metaPath = join(this.dir, 'experiment.json');
    const had = existsSync(this.jsonlPath) && readFileSync(this.jsonlPath, 'utf8').trim() !== '';
    if (had && !resume) {
      throw new DuneError('results-exist', `${this.dir} already holds results of an experiment`, { hint: 'pass --resume to continue it (runs already done are skipped), or -o ANOTHER_DIR' });
    }
    if (had) {
      const meta = existsSync(metaPath) ? (JSON.parse(readFileSync(metaPath, 'utf8')) as { fingerprint?: string; name?: string }) : {};
      if (meta.fingerprint !== fingerprint) {
        throw new DuneError('results-mismatch', `the results in ${this.dir} are of another experiment${meta.name ? ` (${meta.name})` : ''} or of another version of this one`, {
          hint: 'use another -o directory; a resume continues only the experiment (variables, roles, metrics, repetitions, seed, topology) that wrote them',
        });
      }
      this.load();
    } else {
      for (const p of [this.jsonlPath, this.csvPath]) writeFileSync(p, '');
    }
    const meta = { name: this.exp.name, file: this.exp.file, fingerprint, columns: this.columns, variables: this.exp.variables.map((v) => ({ name: v.name, values: v.values, set: v.targets.map((t) => t.text) })), metrics: this.exp.metrics.map((m) => ({ name: m.name, unit: m.unit })) };
    writeAtomically(metaPath, `${JSON.stringify(meta, null, 2)}\n`);
  }

  /** Rows of runs.jsonl (a partial last line dropped); runs.csv rebuilt to match them. */
  private load(): void {
    const text = readFileSync(this.jsonlPath, 'utf8');
    let partial = false;
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        this.rows.push(JSON.parse(line) as ResultRow);
      } catch {
        partial = true;
        break;
      }
    }
    if (partial) writeAtomically(this.jsonlPath, this.rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
    writeAtomically(this.csvPath, this.csvHeader() + this.rows.map((r) => this.csvRow(r)).join(''));
  }

  private csvHeader(): string {
    return csvLine(this.columns);
  }

  private csvRow(r: ResultRow): string {
    return csvLine([
      r.run, r.combination, r.repetition, ...this.exp.variables.map((v) => r.variables[v.name]), ...this.exp.metrics.map((m) => r.metrics[m.name]),
      r.ok, r.error ?? '', r.startedAt, round(r.setupSeconds), round(r.runSeconds), ...this.exp.roles.map((x) => round(r.roleSeconds[x.name])), r.labChange,
    ]);
  }

  /** Keys of the runs already done. */
  doneKeys(): Set<string> {
    return new Set(this.rows.map((r) => runKey(r.variables, r.repetition)));
  }

  /** Appends one finished run to both files and makes it durable before returning. */
  append(row: ResultRow): void {
    if (this.rows.length === 0 && readFileSync(this.csvPath, 'utf8') === '') appendDurably(this.csvPath, this.csvHeader());
    appendDurably(this.jsonlPath, `${JSON.stringify(row)}\n`);
    appendDurably(this.csvPath, this.csvRow(row));
    this.rows.push(row);
  }

  summary(): CombinationSummary[] {
    return summarizeRows(this.exp, this.rows);
  }

  writeSummary(summary: CombinationSummary[]): { csv: string; json: string } {
    const csv = join(this.dir, 'summary.csv');
    const json = join(this.dir, 'summary.json');
    const head = [...this.exp.variables.map((v) => v.name), 'runs', 'failed', ...this.exp.metrics.flatMap((m) => [`${m.name}_mean`, `${m.name}_ci95`, `${m.name}_sd`, `${m.name}_n`])];
    const lines = summary.map((s) => csvLine([
      ...this.exp.variables.map((v) => s.variables[v.name]), s.runs, s.failed,
      ...this.exp.metrics.flatMap((m) => {
        const x = s.metrics[m.name] as Summary;
        return [x.mean, x.ci95, x.sd, x.n];
      }),
    ]));
    writeAtomically(csv, csvLine(head) + lines.join(''));
    const units = Object.fromEntries(this.exp.metrics.map((m) => [m.name, m.unit]));
    writeAtomically(json, `${JSON.stringify({ experiment: this.exp.name, units, combinations: summary }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
    return { csv, json };
  }
}

/** Per combination (in declaration order), per metric: n, mean, sd, 95 % CI. */
export function summarizeRows(exp: Pick<Experiment, 'variables' | 'metrics'>, rows: readonly ResultRow[]): CombinationSummary[] {
  const byKey = new Map<string, ResultRow[]>();
  for (const r of rows) {
    const k = combinationKey(r.variables);
    const list = byKey.get(k) ?? [];
    list.push(r);
    byKey.set(k, list);
  }
  const out: CombinationSummary[] = [];
  combinations(exp.variables).forEach((values, combination) => {
    const rs = byKey.get(combinationKey(values)) ?? [];
    if (rs.length === 0) return;
    out.push({
      combination,
      variables: values,
      runs: rs.length,
      failed: rs.filter((r) => !r.ok).length,
      metrics: Object.fromEntries(exp.metrics.map((m) => [m.name, summarize(rs.map((r) => r.metrics[m.name]).filter((v): v is number => typeof v === 'number'))])),
    });
  });
  return out;
}

function round(v: number | undefined): number | undefined {
  return v === undefined ? undefined : Math.round(v * 1000) / 1000;
}

function appendDurably(path: string, text: string): void {
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export type { TomlValue };
