/**
 * `dune run EXPERIMENT.toml`: the experiment runner (@dune/experiment) with progress, an
 * ETA and the summary table printed. Everything else (reading, the lab, results) is the
 * package's; this file only wires commander and prints.
 */
import type { Command } from 'commander';
import { DuneError } from '@dune/topology';
import { runExperiment, type ExperimentResult, type PlotSpec, type Progress } from '@dune/experiment';
import type { Output } from './output.js';

function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** A number with 4 significant digits, rates with an SI prefix. */
export function formatValue(v: number, unit: string): string {
  if (!Number.isFinite(v)) return '-';
  if (unit === 'bit/s' || unit === 'B/s') {
    for (const [f, p] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) if (Math.abs(v) >= f) return `${Number((v / f).toPrecision(4))} ${p}${unit}`;
  }
  return `${Number(v.toPrecision(4))}${unit ? ` ${unit}` : ''}`;
}

export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function summaryTable(r: ExperimentResult): string {
  const exp = r.experiment;
  const head = [...exp.variables.map((v) => v.name), 'runs', ...exp.metrics.map((m) => `${m.name} (mean ± 95% CI)`)];
  const rows = r.summary.map((s) => [
    ...exp.variables.map((v) => String(s.variables[v.name])),
    s.failed > 0 ? `${s.runs} (${s.failed} failed)` : String(s.runs),
    ...exp.metrics.map((m) => {
      const x = s.metrics[m.name];
      if (!x || x.n === 0) return '-';
      return Number.isFinite(x.ci95) ? `${formatValue(x.mean, m.unit)} ± ${formatValue(x.ci95, m.unit)}` : formatValue(x.mean, m.unit);
    }),
  ]);
  return table(head, rows);
}

function parsePlot(text: string): PlotSpec {
  const i = text.indexOf(':');
  if (i <= 0 || i === text.length - 1) throw new DuneError('bad-plot', `--plot ${text}: not METRIC:VARIABLE`, { hint: 'e.g. --plot goodput:bw' });
  return { metric: text.slice(0, i), x: text.slice(i + 1) };
}

export function registerExperimentCommands(program: Command, o: Output): void {
  program
    .command('run')
    .description('run an experiment: every combination of its variables × repetitions on a lab; results as CSV/JSON, a summary with 95 % CIs, SVG plots')
    .argument('<experiment>', 'experiment file (.toml)')
    .option('-o, --out <dir>', 'output directory (default: <experiment>-results)')
    .option('--resume', 'continue the results in the output directory: runs already there are skipped')
    .option('--plot <metric:variable>', 'also plot METRIC against VARIABLE (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--keep', 'leave the lab up at the end')
    .addHelpText('after', '\nExamples:\n  dune run bw-latency.toml\n  dune run bw-latency.toml -o out --resume --plot rtt:latency\n\nThe format is in the README ("Experiments").')
    .action(async (file: string, flags: { out?: string; resume?: boolean; plot: string[]; keep?: boolean }) => {
      const plots = flags.plot.map(parsePlot);
      const onProgress = (p: Progress) => {
        switch (p.type) {
          case 'start':
            o.out(`${p.total} runs${p.skipped ? `, ${p.skipped} already in the results (skipped)` : ''}; lab ${p.lab}; results in ${p.dir}`);
            break;
          case 'lab':
            o.err(p.message);
            break;
          case 'run': {
            const r = p.row;
            const vars = Object.entries(r.variables).map(([k, v]) => `${k}=${String(v)}`).join(' ');
            const ms = Object.entries(r.metrics).map(([k, v]) => `${k}=${v === null ? '-' : Number(v.toPrecision(4))}`).join(' ');
            o.out(`[${p.done}/${p.total}] ${vars} #${r.repetition}: ${r.ok ? ms : `FAILED ${r.error ?? ''}${ms ? ` (${ms})` : ''}`}  (${r.runSeconds.toFixed(1)}s, eta ${duration(p.etaMs)})`);
            break;
          }
          case 'done':
            break;
        }
      };
      const r = await runExperiment(file, { ...(flags.out !== undefined ? { outDir: flags.out } : {}), resume: Boolean(flags.resume), plots, keep: Boolean(flags.keep), onProgress });
      o.out('');
      o.out(summaryTable(r));
      o.out('');
      o.out(`rows: ${r.files.csv} (${r.rows.length}), ${r.files.jsonl}`);
      o.out(`summary: ${r.files.summaryCsv}, ${r.files.summaryJson}`);
      if (r.files.plots.length) o.out(`plots: ${r.files.plots.join(', ')}`);
      const failed = r.rows.filter((x) => !x.ok).length;
      if (failed > 0) {
        o.err(`${failed} of ${r.rows.length} runs failed (their error is in the rows)`);
        process.exitCode = 1;
      }
    });
}
