/**
 * Lab commands: up, down, status, exec, shell, capture, set. Parsing and printing only;
 * the work is the lab engine's (@dune/lab), which reaches every host, this one included,
 * through the same door.
 */
import { Command } from 'commander';
import { DuneError, describeImpairment, formatDurationUs, joinCommand, parseImpairmentAssignments, quoteWord } from '@dune/topology';
import { serializePlan, summarizePlan } from '@dune/compiler';
import * as lab from '@dune/lab';
import { compileLoaded, loadTopology } from '@dune/lab';
import { endQuicklyWhenDone } from './exit.js';
import { describeSteps, impairmentForJson, printDiagnostics, type Output } from './output.js';
import { addReaderOptions, readerOptions, type ReaderFlags } from './reader-options.js';
import * as remote from './remote-commands.js';
import { onionOfProcesses } from './tor-commands.js';

interface LabFlags {
  lab?: string;
  json?: boolean;
}

function progressPrinter(o: Output, json: boolean): { onEvent: (e: lab.HostEvent) => void; done: () => void } {
  let line = '';
  const tty = o.isTTY && !json;
  return {
    onEvent: (he) => {
      // One host (this machine): its agent's events as they are, without the host's.
      if (he.type === 'step' || he.type === 'host-done' || he.type === 'host-failed') return;
      const { phynode: _host, ...e } = he;
      if (json) {
        o.out(JSON.stringify({ ...e, t: new Date().toISOString() }));
        return;
      }
      if (e.type === 'progress') {
        if (!tty) return;
        line = `  ${e.kind.padEnd(8)} ${e.done}/${e.total}`;
        process.stdout.write(`\r\x1b[K${line}`);
        return;
      }
      if (tty && line) {
        process.stdout.write('\r\x1b[K');
        line = '';
      }
      if (e.type === 'phase') o.out(`• ${e.phase}${e.total !== undefined ? ` (${e.total})` : ''}`);
      else if (e.type === 'note') o.err(`note: ${e.message}`);
      else o.err(`warning: ${e.message}`);
    },
    done: () => {
      if (tty && line) process.stdout.write('\r\x1b[K');
    },
  };
}

/** A table cell: long ids are cut with an ellipsis so columns stay aligned (--json has them whole). */
function cell(text: string, width: number): string {
  return [...text].length <= width ? text : `${[...text].slice(0, width - 1).join('')}…`;
}

function parseTarget(spec: string): { node: string; iface: string } {
  const i = spec.lastIndexOf(':');
  if (i <= 0 || i === spec.length - 1) {
    throw new DuneError('bad-target', `"${spec}" is not NODE:IFACE`, { hint: 'for example `dune set r1:eth0 latency=20ms`' });
  }
  return { node: spec.slice(0, i), iface: spec.slice(i + 1) };
}

/** Which backend carries what, and the userspace engine with its counters per link direction. */
function printEngine(o: Output, s: lab.LabStatus): void {
  const byBackend = new Map<string, string[]>();
  for (const [k, b] of Object.entries(s.backend)) byBackend.set(b, [...(byBackend.get(b) ?? []), k]);
  if (byBackend.size > 0) o.out(`\nimpairment backends: ${[...byBackend].map(([b, ks]) => `${b} (${ks.join(', ')})`).join('; ')}`);
  const e = s.impairEngine;
  if (e === undefined) return;
  const mib = e.rssBytes !== undefined ? `, ${(e.rssBytes / 2 ** 20).toFixed(0)} MiB` : '';
  const cpu = e.cpuSeconds !== undefined ? `, ${e.cpuSeconds.toFixed(2)} s CPU` : '';
  const fail = e.failOpen === true ? ', fails open' : '';
  o.out(`userspace engine: pid ${e.pid} ${e.running ? 'running' : 'NOT RUNNING'}${e.pipes !== undefined ? `, ${e.pipes} link directions in ${e.namespaces} namespaces` : ''}${cpu}${mib}${fail}; log ${e.log}`);
  if (e.threads !== undefined) {
    o.out(`  ${e.threads.length} engine threads: ${e.threads.map((t) => `#${t.thread} ${t.pipes} directions, ${t.held.packets} held, ${Math.round(t.utilization * 100)} % busy`).join('; ')}`);
  }
  if (e.error) o.err(`warning: ${e.error}`);
  const rows = s.links.filter((l) => l.engine !== undefined);
  if (rows.length === 0) return;
  o.out('\nENGINE'.padEnd(8) + 'END'.padEnd(22) + 'QUEUE'.padStart(6) + 'received'.padStart(10) + 'delivered'.padStart(10) + 'loss'.padStart(7) + 'qdrop'.padStart(7) + 'overfl'.padStart(7) + 'held'.padStart(6) + '  p50/p99 in engine' + (e.threads !== undefined ? '  thread' : ''));
  for (const l of rows) {
    const c = l.engine as NonNullable<typeof l.engine>;
    o.out(
      `${l.link.padEnd(7)}${cell(`${l.node}:${l.dev}`, 21).padEnd(22)}${String(c.nfqueue).padStart(6)}${String(c.received.packets).padStart(10)}${String(c.delivered.packets).padStart(10)}${String(c.dropped.loss.packets).padStart(7)}${String(c.dropped.queue.packets).padStart(7)}${String(c.dropped.overflow.packets).padStart(7)}${String(c.held.packets).padStart(6)}  ${formatDurationUs(c.latencyUs.p50)}/${formatDurationUs(c.latencyUs.p99)}${c.thread !== undefined ? `  #${c.thread}` : ''}`,
    );
  }
}

/** What names the lab a command means: --lab, the topology file (-f or the argument). */
function labRef(flags: { lab?: string; file?: string }, file?: string): lab.LabRef {
  const f = file ?? flags.file;
  return { ...(flags.lab !== undefined ? { lab: flags.lab } : {}), ...(f !== undefined ? { file: f } : {}) };
}

export function registerLabCommands(program: Command, o: Output): void {
  remote.addSshOptions(addReaderOptions(
    program
      .command('up')
      .description('build the lab on this machine (converges when it already exists)')
      .argument('[file]', 'topology file (default: an embedded lab that works on any kernel)')
      .option('--dry-run', 'print the plan that would be applied, change nothing')
      .option('--json', 'JSON events, one per line, and a JSON summary')
      .addHelpText('after', '\nExamples:\n  dune up                   the default lab\n  dune up topo.toml --lab t1\n  dune up topo.toml --dry-run'),
  )).action(async (file: string | undefined, flags: LabFlags & ReaderFlags & remote.SshFlags & { dryRun?: boolean }) => {
    const loaded = loadTopology(file, { ...readerOptions(flags), allowDefault: true });
    const { plan, diagnostics } = compileLoaded(loaded, flags.lab);
    // Before printing: a user without root gets one message, not the topology's notes first.
    // A lab wholly on other hosts (phynodes with `host`) needs no root here.
    const multiHost = lab.hasRemoteHosts(plan);
    if (!flags.dryRun && !multiHost) lab.requireRoot('up');
    // The default phynode is what `up` on one machine means; saying so every time is noise.
    if (!flags.json) printDiagnostics(o, diagnostics.filter((d) => d.code !== 'default-phynode'));
    if (flags.dryRun) {
      o.out(flags.json ? serializePlan(plan, 2) : summarizePlan(plan));
      return;
    }
    if (multiHost) return remote.upRemote(plan, loaded.file, flags, o);
    // A local up leaves nothing running in this process (the engine and the lab's processes are detached).
    endQuicklyWhenDone();
    const p = progressPrinter(o, Boolean(flags.json));
    const r = (await lab.upLab(plan, { file: loaded.file, onEvent: p.onEvent }).finally(p.done)).hosts[0]?.result as lab.UpResult;
    if (flags.json) {
      o.out(JSON.stringify({ type: 'done', ...r }));
      return;
    }
    const secs = (r.elapsedMs / 1000).toFixed(2);
    if (!r.changed) {
      o.out(`lab ${r.lab} is already up as planned (${r.unchanged} operations checked, ${secs}s): nothing to do`);
      return;
    }
    const c = Object.entries(r.created).map(([k, v]) => `${v} ${k}`).join(', ');
    const rm = Object.entries(r.removed).map(([k, v]) => `${v} ${k}`).join(', ');
    o.out(`lab ${r.lab} is up in ${secs}s`);
    const steps = describeSteps(r.stepsMs);
    if (steps) o.out(`  time: ${steps}`);
    if (c) o.out(`  applied: ${c}`);
    if (rm) o.out(`  removed: ${rm}`);
    if (r.changedImpairments) o.out(`  impairments changed live: ${r.changedImpairments}`);
    if (r.unchanged) o.out(`  unchanged: ${r.unchanged} operations`);
    // Suggest a ping between nodes that have addresses (a switch has none).
    const addressed = plan.nodes.filter((n) => Boolean(n.v4));
    const first = addressed[0] ?? plan.nodes[0];
    const last = addressed[addressed.length - 1];
    const labFlag = `--lab ${quoteWord(plan.lab)}`;
    o.out(`  ${plan.nodes.length} nodes, ${plan.links.length} links. Reach them with:`);
    if (first) o.out(`    dune exec ${labFlag} ${quoteWord(first.node)} -- ip addr`);
    if (first && last && last !== first && last.v4) o.out(`    dune exec ${labFlag} ${quoteWord(first.node)} -- ping -c3 ${last.v4}`);
    o.out(`    dune status ${labFlag}    dune shell ${labFlag} ${quoteWord(first?.node ?? 'NODE')}    dune down ${labFlag}`);
  });

  remote.addSshOptions(program
    .command('down')
    .description('remove a lab: processes, namespaces, interfaces, files; nothing else is touched')
    .argument('[file]', 'the topology file the lab was built from (names the lab)')
    .option('--lab <name>', 'lab name')
    .option('--all', 'remove every lab on this machine')
    .option('--json', 'JSON summary')
    .addHelpText('after', '\nWorks from the journal in /run/dune/<lab>/, or from the kernel marks alone when it is gone.\n\nExamples:\n  dune down\n  dune down topo.toml\n  dune down --all'))
    .action(async (file: string | undefined, flags: LabFlags & remote.SshFlags & { all?: boolean }) => {
      const loc = flags.all ? undefined : lab.locateRemote({ ...(flags.lab !== undefined ? { lab: flags.lab } : {}), ...(file !== undefined ? { file } : {}) });
      if (loc) return remote.downRemote(loc, flags, o);
      lab.requireRoot('down');
      endQuicklyWhenDone();
      let labs: string[];
      if (flags.all) {
        lab.reclaimTransients(); // probe namespaces of killed dune processes, lab or none
        labs = await lab.localLabs();
      }
      else if (flags.lab !== undefined) labs = [flags.lab];
      else labs = [lab.localLabName(file !== undefined ? { file } : {})];
      if (labs.length === 0) {
        o.out(flags.json ? JSON.stringify({ labs: [] }) : 'no labs on this machine');
        return;
      }
      const results = [];
      for (const name of labs) {
        const r = (await lab.downLocal(name)).hosts[0]?.result as lab.DownResult;
        results.push(r);
        if (!flags.json) {
          // Only a namespace that looks like the lab's (or nothing at all): no lab was removed.
          if (!r.journal && r.namespaces === 0 && r.processes === 0) o.out(`lab ${name}: nothing of it here`);
          else o.out(`lab ${name} removed in ${(r.elapsedMs / 1000).toFixed(2)}s: ${r.namespaces} namespaces, ${r.processes} processes, ${r.files} files${r.journal ? '' : ' (no journal: found by its marks)'}`);
          for (const f of r.foreign) o.err(`note: namespace ${f}`);
        }
      }
      if (flags.json) o.out(JSON.stringify({ labs: results }));
    });

  remote.addSshOptions(program
    .command('status')
    .description('nodes, addresses, links with impairments and counters, processes')
    .argument('[file]', 'the topology file the lab was built from (finds a lab on other hosts)')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('--json', 'as JSON'))
    .action(async (file: string | undefined, flags: LabFlags & remote.SshFlags) => {
      const loc = await lab.locateLab(labRef(flags, file), 'status');
      const s = await lab.labStatus(loc, remote.sshOptions(flags, o));
      if (flags.json) {
        o.out(JSON.stringify({ ...s, links: s.links.map((l) => (l.impairment ? { ...l, impairment: impairmentForJson(l.impairment) } : l)) }, null, 2));
        return;
      }
      const missing = s.nodes.filter((n) => !n.present).length;
      o.out(`lab ${s.lab}: ${s.phase}, ${s.nodes.length} nodes${missing ? ` (${missing} missing!)` : ''}, ${s.links.length / 2} links`);
      o.out('\nNODE'.padEnd(22) + 'IPv4'.padEnd(16) + 'IPv6'.padEnd(26) + 'CPUS');
      for (const n of s.nodes) o.out(`${cell(n.node, 20).padEnd(21)}${(n.v4 ?? '-').padEnd(16)}${(n.v6 ?? '-').padEnd(26)}${n.cpus.join(',') || '-'}${n.present ? '' : '  MISSING'}${n.stopped ? '  STOPPED' : ''}`);
      o.out('\nLINK'.padEnd(8) + 'END'.padEnd(22) + 'PEER'.padEnd(22) + 'STATE'.padEnd(6) + 'TX pkts'.padStart(10) + 'RX pkts'.padStart(10) + 'drops'.padStart(7) + '  IMPAIRMENT');
      for (const l of s.links) {
        o.out(
          `${l.link.padEnd(7)}${cell(`${l.node}:${l.dev}`, 21).padEnd(22)}${cell(l.peer, 21).padEnd(22)}${(l.up === null ? '?' : l.up ? 'up' : 'down').padEnd(6)}${String(l.txPackets ?? '-').padStart(10)}${String(l.rxPackets ?? '-').padStart(10)}${String(l.txDropped ?? '-').padStart(7)}  ${describeImpairment(l.impairment)}`,
        );
      }
      printEngine(o, s);
      if (s.processes.length) {
        o.out('\nPROCESS'.padEnd(22) + 'PID'.padEnd(8) + 'STATE'.padEnd(9) + 'CPUS'.padEnd(8) + 'COMMAND');
        for (const p of s.processes) o.out(`${cell(p.name, 20).padEnd(21)}${String(p.pid).padEnd(8)}${(p.alive ? 'running' : 'exited').padEnd(9)}${(p.cpus.join(',') || '-').padEnd(8)}${joinCommand(p.argv)}`);
      }
      if (s.routing?.length) {
        o.out('\nROUTING'.padEnd(22) + 'DAEMON'.padEnd(12) + 'PROTOCOLS'.padEnd(28) + 'NEIGHBOURS');
        for (const d of s.routing) {
          const protos = d.protocols.filter((p) => /ospf|bgp/i.test(p.proto)).map((p) => `${p.name} ${p.state}`).join(', ');
          const full = d.neighbours.filter((n) => /^full/i.test(n.state)).length;
          o.out(`${cell(d.node, 20).padEnd(21)}${(d.running ? 'bird' : 'DOWN').padEnd(12)}${cell(protos || '-', 27).padEnd(28)}${d.neighbours.length ? `${full}/${d.neighbours.length} full` : '-'}${d.error ? `  ${d.error}` : ''}`);
        }
      }
      if (s.counters?.length) {
        o.out('\nCOUNTER'.padEnd(22) + 'PACKETS'.padStart(10) + 'BYTES'.padStart(12) + '  WHAT');
        for (const c of s.counters) o.out(`${cell(c.node, 20).padEnd(21)}${String(c.packets ?? '-').padStart(10)}${String(c.bytes ?? '-').padStart(12)}  ${c.label}`);
      }
      const onion = onionOfProcesses(s.processes);
      if (onion !== undefined) o.out(`\nonion service: http://${onion}/`);
      if (lab.isMultiStatus(s)) remote.printHosts(o, s);
    });

  remote.addSshOptions(program
    .command('exec')
    .description('run a command inside a node; its exit status is passed through')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('-f, --file <file>', 'the topology file the lab was built from (finds a lab on other hosts)')
    .argument('<node>', 'node id')
    .argument('<cmd...>', 'the command and its arguments (after --)')
    .addHelpText('after', '\nExample:\n  dune exec r1 -- ping -c3 10.0.0.6'))
    .action(async (node: string, cmd: string[], flags: LabFlags & remote.SshFlags & { file?: string }) => {
      const loc = await lab.locateLab(labRef(flags), 'exec');
      process.exitCode = await remote.execAttached(loc, node, cmd, flags, o);
    });

  remote.addSshOptions(program
    .command('shell')
    .description('an interactive shell inside a node')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('-f, --file <file>', 'the topology file the lab was built from (finds a lab on other hosts)')
    .argument('<node>', 'node id'))
    .action(async (node: string, flags: LabFlags & remote.SshFlags & { file?: string }) => {
      const loc = await lab.locateLab(labRef(flags), 'shell');
      const at = loc.nodes[node];
      if (at !== undefined && lab.isLocal(loc)) o.err(`entering node ${node} of lab ${loc.lab} (namespace ${at[1]}); exit to leave`);
      // The shell gets the lab and node in its environment and its prompt, wherever it runs;
      // on this machine it is the user's own $SHELL, elsewhere the remote user's.
      const script = 'export DUNE_LAB="$1" DUNE_NODE="$2" PS1="[$2] "\'\\w\\$ \'; exec "${3:-${SHELL:-/bin/sh}}" -i';
      const shell = lab.isLocal(loc) ? (process.env['SHELL'] ?? '/bin/bash') : '';
      process.exitCode = await remote.execAttached(loc, node, ['sh', '-c', script, 'sh', loc.lab, node, shell], flags, o, true);
    });

  remote.addSshOptions(program
    .command('capture')
    .description('capture packets on a node interface (tcpdump)')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('-f, --file <file>', 'the topology file the lab was built from (finds a lab on other hosts)')
    .option('-w, --write <file>', 'write a pcap file instead of printing')
    .option('-c, --count <n>', 'stop after n packets')
    .argument('<target>', 'NODE:IFACE')
    .argument('[filter...]', 'a pcap filter, e.g. icmp or "tcp port 80"'))
    .action(async (target: string, filter: string[], flags: LabFlags & remote.SshFlags & { file?: string; write?: string; count?: string }) => {
      const t = parseTarget(target);
      const loc = await lab.locateLab(labRef(flags), 'capture');
      process.exitCode = await remote.capture(loc, t, filter, flags, o);
    });

  remote.addSshOptions(program
    .command('set')
    .description('change a link direction\'s impairments live; keys not given keep their values')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('-f, --file <file>', 'the topology file the lab was built from (finds a lab on other hosts)')
    .option('--json', 'print the resulting impairment as JSON')
    .argument('<target>', 'NODE:IFACE (the impairment applies to traffic leaving that interface)')
    .argument('<settings...>', 'key=value: latency, jitter, loss, duplicate, corrupt, reorder, bw, queue, ...; key=none removes one')
    .addHelpText('after', '\nExamples:\n  dune set r1:eth1 bw=10mbit loss=2%\n  dune set r1:eth1 loss=none'))
    .action(async (target: string, settings: string[], flags: LabFlags & remote.SshFlags & { file?: string }) => {
      const loc = await lab.locateLab(labRef(flags), 'set');
      const { node, iface } = parseTarget(target);
      const { set, removed } = parseImpairmentAssignments(settings);
      const result = await lab.setImpairment(loc, node, iface, set, removed, remote.sshOptions(flags, o));
      o.out(flags.json ? JSON.stringify(result) : `${node}:${iface} → ${describeImpairment(result)}`);
    });
  remote.addSshOptions(program
    .command('routes')
    .description("a node's routing table, each route with the protocol that put it there (dune's static plan, a routing daemon, the kernel)")
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('-f, --file <file>', 'the topology file the lab was built from (finds a lab on other hosts)')
    .option('--json', 'as JSON')
    .argument('<node>', 'node id')
    .addHelpText('after', '\nExample:\n  dune routes r1'))
    .action(async (node: string, flags: LabFlags & remote.SshFlags & { file?: string }) => {
      const loc = await lab.locateLab(labRef(flags), 'routes');
      const rs = await lab.nodeRoutes(loc, node, remote.sshOptions(flags, o));
      if (flags.json) {
        o.out(JSON.stringify(rs, null, 2));
        return;
      }
      o.out('DESTINATION'.padEnd(34) + 'VIA'.padEnd(28) + 'DEV'.padEnd(10) + 'METRIC'.padStart(7) + '  PROTOCOL');
      for (const r of rs) {
        o.out(`${cell(r.dst, 33).padEnd(34)}${cell(r.via ?? '-', 27).padEnd(28)}${(r.dev ?? '-').padEnd(10)}${String(r.metric ?? '-').padStart(7)}  ${r.protocol}${r.source ? ` (${r.source})` : ''}`);
      }
    });
  remote.registerRemoteCommands(program, o);
}
