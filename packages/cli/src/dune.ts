#!/usr/bin/env node
/**
 * `dune`: the command line. It wires commander to the pipeline and prints; nothing else.
 *
 *   parse → resolve → compile → plan          (validate, plan)
 *   … → transport → apply (agent)             (up, down, status, exec, shell, capture, set)
 */
import { Command } from 'commander';
import { TopologyError } from '@dune/topology';
import { serializePlanChunks, summarizePlan } from '@dune/compiler';
import { compileLoaded, loadTopology } from '@dune/lab';
import { printDiagnostics, reportError, stdio, type Output } from './output.js';
import { registerLabCommands } from './lab-commands.js';
import { registerTorCommands } from './tor-commands.js';
import { registerK8sCommands } from './k8s-commands.js';
import { registerFaultCommands } from './fault-commands.js';
import { registerExperimentCommands } from './experiment-commands.js';
import { registerCalibrateCommands } from './calibrate-commands.js';
import { registerPictureCommands } from './picture-commands.js';
import { registerTraceCommands } from './trace-commands.js';
import { registerBrickCommands } from './brick-commands.js';
import { addReaderOptions, readerOptions, type ReaderFlags } from './reader-options.js';

export function buildProgram(o: Output = stdio): Command {
  const program = new Command('dune')
    .description('Distributed network emulation on Linux: topologies in TOML (DUNE) or GraphML (NetMirage, Topology Zoo)\nbuilt from network namespaces, veth, VXLAN, routes and link impairments.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => o.out(s.replace(/\n$/, '')), writeErr: (s) => o.err(s.replace(/\n$/, '')) })
    .addHelpText(
      'after',
      `
Examples:
  dune up                          build the embedded default lab on this machine
  dune validate topo.toml          check a topology, listing every error
  dune plan topo.toml              what would be built, per host
  dune plan Kdl.graphml --json     the full plan as JSON
  dune up topo.toml && dune status
  dune exec r1 -- ping -c3 h2      run a command inside node r1
  dune down                        remove the lab, leaving nothing behind`,
    );

  addReaderOptions(
    program
      .command('validate')
      .description('parse and compile a topology; print every error, warning and note')
      .argument('<file>', 'topology file (.toml or .graphml)')
      .addHelpText('after', '\nExit status: 0 when valid, 1 with every error listed.\n\nExample:\n  dune validate topologies/dune-example.toml'),
  ).action((file: string, flags: ReaderFlags) => {
    const loaded = loadTopology(file, readerOptions(flags));
    const { plan, diagnostics } = compileLoaded(loaded, flags.lab);
    printDiagnostics(o, diagnostics);
    const s = plan.stats;
    o.out(`${file}: valid — ${s['nodes'] ?? 0} nodes, ${s['links'] ?? 0} links on ${plan.hosts.length} host${plan.hosts.length === 1 ? '' : 's'}`);
  });

  addReaderOptions(
    program
      .command('plan')
      .description('print the operations that `dune up` would apply, per host')
      .argument('[file]', 'topology file (default: the embedded default lab)')
      .option('--json', 'the full plan as canonical JSON')
      .option('--host <phynode>', 'only this phynode')
      .addHelpText('after', '\nExamples:\n  dune plan topo.toml\n  dune plan topo.toml --json --host ph1 > ph1.json'),
  ).action((file: string | undefined, flags: ReaderFlags & { json?: boolean; host?: string }) => {
    const loaded = loadTopology(file, { ...readerOptions(flags), allowDefault: true });
    const { plan, diagnostics } = compileLoaded(loaded, flags.lab);
    if (flags.host !== undefined) {
      const names = plan.hosts.map((h) => h.phynode);
      if (!names.includes(flags.host)) {
        throw new TopologyError([
          { severity: 'error', code: 'unknown-host', message: `no phynode named "${flags.host}" in ${loaded.file}`, hint: `use one of: ${names.join(', ')}` },
        ]);
      }
      plan.hosts = plan.hosts.filter((h) => h.phynode === flags.host);
    }
    if (flags.json) {
      // A 5,000-node plan is hundreds of MB of JSON: stream it in chunks.
      for (const chunk of serializePlanChunks(plan, 2)) o.write(chunk);
    } else {
      printDiagnostics(o, diagnostics);
      o.out(summarizePlan(plan));
    }
  });

  registerLabCommands(program, o);
  registerTorCommands(program, o);
  registerK8sCommands(program, o);
  registerFaultCommands(program, o);
  registerExperimentCommands(program, o);
  registerCalibrateCommands(program, o);
  registerPictureCommands(program, o);
  registerTraceCommands(program, o);
  registerBrickCommands(program, o);
  return program;
}

export async function main(argv: string[], o: Output = stdio): Promise<number> {
  const program = buildProgram(o);
  program.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      return ce.exitCode ?? 1;
    }
    return reportError(o, e);
  }
}
