/**
 * `dune trace run`: follow the topology's links that change over time (`trace = "FILE"`,
 * `[[topology.schedule]]`) on the running lab, printing each change as it is applied.
 * Parsing and printing only; the work is @dune/lab's (traces.ts).
 */
import type { Command } from 'commander';
import { DuneError, describeImpairment, parseDurationUs } from '@dune/topology';
import * as lab from '@dune/lab';
import { impairmentForJson, type Output } from './output.js';
import * as remote from './remote-commands.js';

interface Flags extends remote.SshFlags {
  lab?: string;
  file?: string;
  json?: boolean;
  granularity?: string;
  duration?: string;
  mahimahi?: string;
}

function ms(text: string, what: string): number {
  try {
    return parseDurationUs(text) / 1000;
  } catch {
    throw new DuneError('bad-value', `--${what} "${text}" is not a duration`, { hint: `for example --${what} 100ms or 30s` });
  }
}

export function registerTraceCommands(program: Command, o: Output): void {
  const trace = program.command('trace').description('links that change over time (trace = "FILE", [[topology.schedule]])');
  remote.addSshOptions(trace
    .command('run')
    .description('follow the traces and the schedule on the running lab, printing each change')
    .argument('[file]', 'the topology file (default: the traces the lab was built with)')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('--granularity <time>', 'window of a Mahimahi trace on the kernel backends', '100ms')
    .option('--mahimahi <how>', 'follow a Mahimahi trace per `packets` (the userspace engine) or as its `rate` per window (default: packets on a lab whose impairment_backend is userspace)')
    .option('--duration <time>', 'stop after this long (default: the end of the longest trace; needed for loop = true)')
    .option('--json', 'one JSON line per change')
    .addHelpText('after', '\nExamples:\n  dune up cell.toml && dune trace run\n  dune trace run --lab cell --duration 5m --granularity 50ms'))
    .action(async (file: string | undefined, flags: Flags) => {
      const ref: lab.LabRef = { ...(flags.lab !== undefined ? { lab: flags.lab } : {}), ...(file !== undefined ? { file } : {}) };
      const loc = await lab.locateLab(ref, 'trace run');
      const opts = remote.sshOptions(flags, o);
      const plan = file !== undefined ? lab.compileLoaded(lab.loadTopology(file), flags.lab).plan : await lab.labPlan(loc, opts);
      const traces = plan.traces ?? [];
      if (traces.length === 0) {
        throw new DuneError('no-traces', `lab ${loc.lab} has no traces`, { hint: 'give a link trace = "FILE" or add [[topology.schedule]] entries, and run `dune up` again' });
      }
      const granularityMs = ms(flags.granularity ?? '100ms', 'granularity');
      if (flags.mahimahi !== undefined && flags.mahimahi !== 'packets' && flags.mahimahi !== 'rate') {
        throw new DuneError('bad-value', `--mahimahi "${flags.mahimahi}" is neither packets nor rate`, { hint: '--mahimahi packets (the userspace engine, per packet) or --mahimahi rate (any backend, per window)' });
      }
      const mahimahi: lab.MahimahiMode = (flags.mahimahi as lab.MahimahiMode | undefined) ?? (plan.impairmentBackend === 'userspace' ? 'packets' : 'rate');
      const durationMs = flags.duration !== undefined ? ms(flags.duration, 'duration') : lab.tracesLengthMs(traces, granularityMs, mahimahi);
      if (!flags.json) o.out(`lab ${loc.lab}: ${traces.length} link direction${traces.length === 1 ? '' : 's'} over ${(durationMs / 1000).toFixed(1)}s`);
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      let late = 0;
      let count = 0;
      try {
        await lab.followTraces(loc, traces, {
          granularityMs, durationMs, mahimahi, signal: stop.signal, orchestrate: opts,
          onChange: (r) => {
            count++;
            late = Math.max(late, r.elapsedMs + r.tookMs - r.atMs);
            if (flags.json) o.out(JSON.stringify({ atMs: r.atMs, elapsedMs: Math.round(r.elapsedMs), tookMs: Math.round(r.tookMs), target: `${r.node}:${r.dev}`, set: impairmentForJson(r.set), removed: r.removed, skipped: r.skipped }));
            else o.out(`${(r.elapsedMs / 1000).toFixed(2).padStart(8)}s  ${r.node}:${r.dev}  ${describeImpairment(r.set as never)}${r.skipped ? `  (${r.skipped} skipped: behind)` : ''}`);
          },
        });
      } finally {
        process.off('SIGINT', onSignal);
      }
      if (!flags.json) o.out(`${stop.signal.aborted ? 'stopped (interrupted)' : 'done'}: ${count} changes, at most ${late.toFixed(0)} ms after their time`);
    });
}
