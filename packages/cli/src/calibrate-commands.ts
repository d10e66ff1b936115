/**
 * `dune calibrate`: the fidelity self-check of @dune/experiment, printed as a table
 * (requested, delivered, error) or as JSON.
 */
import type { Command } from 'commander';
import { DuneError, choicesHint } from '@dune/topology';
import { calibrate, CALIBRATE_BACKENDS, type CalibrateBackend } from '@dune/experiment';
import { requireRoot } from '@dune/lab';
import { formatValue, table } from './experiment-commands.js';
import type { Output } from './output.js';

export function registerCalibrateCommands(program: Command, o: Output): void {
  program
    .command('calibrate')
    .description('measure how accurately this machine delivers delay, jitter, loss and rate, per backend (a two-node lab, real traffic; root)')
    .option('--json', 'the measurements as JSON')
    .option('--backend <name>', `only this backend (${CALIBRATE_BACKENDS.join(', ')})`)
    .addHelpText('after', '\nExamples:\n  dune calibrate\n  dune calibrate --backend userspace --json')
    .action(async (flags: { json?: boolean; backend?: string }) => {
      if (flags.backend !== undefined && !(CALIBRATE_BACKENDS as readonly string[]).includes(flags.backend)) {
        throw new DuneError('bad-backend', `no backend "${flags.backend}"`, { hint: choicesHint(flags.backend, CALIBRATE_BACKENDS) });
      }
      requireRoot('calibrate');
      const c = await calibrate({
        ...(flags.backend !== undefined ? { backends: [flags.backend as CalibrateBackend] } : {}),
        ...(flags.json ? {} : { onProgress: (m: string) => o.err(m) }),
      });
      if (flags.json) {
        o.out(JSON.stringify(c, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2));
        return;
      }
      o.out(`kernel ${c.kernel}`);
      o.out(table(
        ['impairment', 'delivered by', 'requested', 'delivered', 'error', 'samples'],
        c.rows.map((r) => [r.impairment, r.mechanism, formatValue(r.requested, r.unit), formatValue(r.delivered, r.unit), Number.isFinite(r.errorPct) ? `${r.errorPct >= 0 ? '+' : ''}${r.errorPct.toFixed(1)} %` : '-', String(r.samples)]),
      ));
      for (const u of c.unavailable) o.out(`${u.backend}: not available here (${u.reason.replace(/\s+/g, ' ').slice(0, 300)})`);
    });
}
