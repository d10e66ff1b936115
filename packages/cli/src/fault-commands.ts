/**
 * Failures on demand: `dune link down|up NODE:IFACE`, `dune node stop|start|restart NODE`,
 * and `dune events run` (the topology's `[[topology.events]]` against the running lab).
 * Parsing and printing only; the work is @dune/lab's (faults.ts).
 */
import { Command } from 'commander';
import { DuneError } from '@dune/topology';
import * as lab from '@dune/lab';
import type { Output } from './output.js';
import * as remote from './remote-commands.js';

interface Flags extends remote.SshFlags {
  lab?: string;
  file?: string;
  json?: boolean;
}

function ref(flags: Flags, file?: string): lab.LabRef {
  const f = file ?? flags.file;
  return { ...(flags.lab !== undefined ? { lab: flags.lab } : {}), ...(f !== undefined ? { file: f } : {}) };
}

function target(spec: string): { node: string; iface: string } {
  const i = spec.lastIndexOf(':');
  if (i <= 0 || i === spec.length - 1) {
    throw new DuneError('bad-target', `"${spec}" is not NODE:IFACE`, { hint: 'for example `dune link down r1:eth0`' });
  }
  return { node: spec.slice(0, i), iface: spec.slice(i + 1) };
}

function choice<T extends string>(what: string, value: string, valid: readonly T[]): T {
  if ((valid as readonly string[]).includes(value)) return value as T;
  throw new DuneError('bad-action', `"${value}" is not a ${what} action`, { hint: `use one of: ${valid.join(', ')}` });
}

function labOption(cmd: Command): Command {
  return remote.addSshOptions(cmd
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('-f, --file <file>', 'the topology file the lab was built from (finds a lab on other hosts)'));
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1).padStart(6)}s`;
}

export function registerFaultCommands(program: Command, o: Output): void {
  labOption(program
    .command('link')
    .description('cut one end of a link (down: it carries nothing) or repair it (up: addresses and routes back)')
    .argument('<action>', 'down or up')
    .argument('<target>', 'NODE:IFACE')
    .addHelpText('after', '\nExamples:\n  dune link down r1:eth0\n  dune link up r1:eth0'))
    .action(async (action: string, spec: string, flags: Flags) => {
      const a = choice('link', action, ['down', 'up'] as const);
      const { node, iface } = target(spec);
      const loc = await lab.locateLab(ref(flags), 'link');
      await lab.setLinkState(loc, node, iface, a === 'up', remote.sshOptions(flags, o));
      o.out(`${node}:${iface} ${a}`);
    });

  labOption(program
    .command('node')
    .description('stop a node (its pinned processes stopped, its links down), start it again, or restart it')
    .argument('<action>', 'stop, start or restart')
    .argument('<node>', 'node id')
    .addHelpText('after', '\nExamples:\n  dune node stop r2\n  dune node start r2\n  dune node restart r2'))
    .action(async (action: string, node: string, flags: Flags) => {
      const a = choice('node', action, ['stop', 'start', 'restart'] as const);
      const loc = await lab.locateLab(ref(flags), 'node');
      await lab.setNodeState(loc, node, a, remote.sshOptions(flags, o));
      o.out(`${node} ${a === 'stop' ? 'stopped' : a === 'start' ? 'started' : 'restarted'}`);
    });

  const events = program.command('events').description('the failure schedule of the topology ([[topology.events]])');
  labOption(events
    .command('run')
    .description('run the schedule against the running lab, printing each event as it happens')
    .argument('[file]', 'the topology file (default: the schedule the lab was built with)')
    .option('--json', 'one JSON line per event')
    .addHelpText('after', '\nExamples:\n  dune up flaps.toml && dune events run\n  dune events run --lab flaps'))
    .action(async (file: string | undefined, flags: Flags) => {
      const loc = await lab.locateLab(ref(flags, file), 'events run');
      const opts = remote.sshOptions(flags, o);
      const plan = file !== undefined ? lab.compileLoaded(lab.loadTopology(file), flags.lab).plan : await lab.labPlan(loc, opts);
      const schedule = plan.events ?? [];
      if (schedule.length === 0) {
        throw new DuneError('no-events', `lab ${loc.lab} has no events`, { hint: 'add [[topology.events]] entries (at, target, action, repeat) to the topology and run `dune up` again' });
      }
      const timeline = lab.expandSchedule(schedule);
      if (!flags.json) o.out(`lab ${loc.lab}: ${timeline.length} event${timeline.length === 1 ? '' : 's'} over ${((timeline[timeline.length - 1]?.atMs ?? 0) / 1000).toFixed(1)}s`);
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      try {
        await lab.runSchedule(schedule, lab.engineActions(loc, opts), {
          signal: stop.signal,
          onEvent: (r) => {
            const n = r.event.count > 1 ? ` (${r.occurrence}/${r.event.count})` : '';
            if (flags.json) o.out(JSON.stringify({ atMs: r.atMs, elapsedMs: Math.round(r.elapsedMs), target: r.event.target, action: r.event.action, occurrence: r.occurrence, count: r.event.count }));
            else o.out(`${seconds(r.elapsedMs)}  ${r.event.action.padEnd(7)} ${r.event.target}${n}`);
          },
        });
      } finally {
        process.off('SIGINT', onSignal);
      }
      if (stop.signal.aborted && !flags.json) o.out('stopped (interrupted)');
    });
}
