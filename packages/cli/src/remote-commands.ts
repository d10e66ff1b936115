/**
 * The lab commands for a lab spread over phynodes (any with `host`): `dune check`, and the
 * multi-host branch of up, down, status, exec, shell, set. Parsing and printing only; the
 * work is the transport's (orchestrate.ts).
 *
 * Which lab a command means: the topology file (its plan names the hosts), else
 * `--lab NAME` with the controller's record of it (~/.local/state/dune/labs), else the only
 * lab there is (on this machine or recorded).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { Command, Option } from 'commander';
import { DuneError, formatDiagnostic, quoteWord } from '@dune/topology';
import type { Plan } from '@dune/compiler';
import * as lab from '@dune/lab';
import { compileLoaded, loadTopology } from '@dune/lab';
import { describeSteps, printDiagnostics, type Output } from './output.js';
import { addReaderOptions, readerOptions, type ReaderFlags } from './reader-options.js';

export interface SshFlags {
  acceptNewHostKeys?: boolean;
  knownHosts?: string;
  connectTimeout?: string;
}

/** Options every command that may reach hosts takes. */
export function addSshOptions(cmd: Command): Command {
  return cmd
    .option('--accept-new-host-keys', 'record the host key of a phynode contacted for the first time (a changed key is always refused)')
    .option('--known-hosts <file>', 'known_hosts file to verify host keys against (default: $DUNE_KNOWN_HOSTS or ~/.ssh/known_hosts)')
    .addOption(new Option('--connect-timeout <seconds>', 'give up on a host that does not answer within this').default('10'));
}

export function sshOptions(flags: SshFlags, o: Output): lab.OrchestrateOptions {
  const secs = Number(flags.connectTimeout ?? '10');
  if (!(secs > 0 && secs <= 600)) {
    throw new DuneError('bad-timeout', `--connect-timeout ${flags.connectTimeout} is not a number of seconds within 0..600`, { hint: 'for example --connect-timeout 5' });
  }
  return {
    connectTimeoutMs: secs * 1000,
    ...(flags.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}),
    ...(flags.knownHosts !== undefined ? { knownHostsFile: flags.knownHosts } : {}),
    onHostKeyAdded: (phynode, name, fp) => o.err(`note: recorded the host key of phynode ${phynode} (${name}): ${fp}`),
  };
}

/** One display for every host: a line per host, redrawn in place on a terminal. */
function hostProgress(o: Output, json: boolean, phynodes: string[]): { onEvent: (e: lab.HostEvent) => void; done: () => void } {
  const tty = o.isTTY && !json;
  const width = Math.max(...phynodes.map((p) => p.length), 4);
  const rows = new Map(phynodes.map((p) => [p, 'waiting']));
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  const draw = (): void => {
    timer = undefined;
    let s = drawn > 0 ? `\x1b[${drawn}A` : '';
    for (const [p, r] of rows) s += `\r\x1b[K  ${p.padEnd(width)}  ${r}\n`;
    process.stdout.write(s);
    drawn = rows.size;
  };
  const clear = (): void => {
    if (drawn > 0) process.stdout.write(`\x1b[${drawn}A\x1b[J`);
    drawn = 0;
  };
  return {
    onEvent: (e) => {
      if (json) {
        o.out(JSON.stringify({ ...e, t: new Date().toISOString() }));
        return;
      }
      let row: string | undefined;
      if (e.type === 'step') row = e.step;
      else if (e.type === 'phase') row = `${e.phase}${e.total !== undefined ? ` (${e.total})` : ''}`;
      else if (e.type === 'progress') row = `${e.kind} ${e.done}/${e.total}`;
      else if (e.type === 'host-done') row = `done in ${(e.ms / 1000).toFixed(2)}s`;
      else if (e.type === 'host-failed') row = 'FAILED';
      if (row !== undefined) {
        if (!rows.has(e.phynode)) rows.set(e.phynode, '');
        rows.set(e.phynode, row);
        if (tty) timer ??= setTimeout(draw, 80);
        else if (e.type !== 'progress') o.out(`  ${e.phynode.padEnd(width)}  ${row}`);
        return;
      }
      if (e.type === 'note' || e.type === 'warning') {
        if (tty) clear();
        o.err(`${e.type}: ${e.phynode}: ${e.message}`);
        if (tty) draw();
      }
    },
    done: () => {
      if (timer) clearTimeout(timer);
      if (tty) draw();
    },
  };
}

export async function upRemote(plan: Plan, file: string, flags: SshFlags & { json?: boolean }, o: Output): Promise<void> {
  const p = hostProgress(o, Boolean(flags.json), plan.hosts.map((h) => h.phynode));
  if (!flags.json) o.out(`lab ${plan.lab}: ${plan.nodes.length} nodes on ${plan.hosts.length} hosts`);
  const r = await lab.upLab(plan, { ...sshOptions(flags, o), file, onEvent: p.onEvent }).finally(p.done);
  if (flags.json) {
    o.out(JSON.stringify({ type: 'done', ...r }));
    return;
  }
  const secs = (r.elapsedMs / 1000).toFixed(2);
  const changed = r.hosts.some((h) => h.result.changed);
  o.out(changed ? `lab ${r.lab} is up on ${r.hosts.length} hosts in ${secs}s` : `lab ${r.lab} is already up as planned on ${r.hosts.length} hosts (${secs}s): nothing to do`);
  for (const h of r.hosts) {
    const c = Object.entries(h.result.created).map(([k, v]) => `${v} ${k}`).join(', ');
    const rm = Object.entries(h.result.removed).map(([k, v]) => `${v} ${k}`).join(', ');
    const what = [c && `applied ${c}`, rm && `removed ${rm}`, h.result.changedImpairments ? `${h.result.changedImpairments} impairments changed` : ''].filter(Boolean).join('; ');
    o.out(`  ${h.phynode} (${h.label}): ${what || 'unchanged'} in ${(h.result.elapsedMs / 1000).toFixed(2)}s`);
    const steps = describeSteps(h.result.stepsMs);
    if (steps) o.out(`    time: ${steps}`);
  }
  // What the hosts' own work does not account for: SSH, copying the agent and plan, VXLAN allocation.
  const slowest = Math.max(0, ...r.hosts.map((h) => h.result.elapsedMs));
  if (changed) o.out(`  beyond the slowest host's own ${(slowest / 1000).toFixed(2)}s: ${(Math.max(0, r.elapsedMs - slowest) / 1000).toFixed(2)}s (connections, agent and plan transfer, VXLAN allocation)`);
  const cross = plan.links.filter((l) => l.kind === 'vxlan').length;
  const first = plan.nodes[0];
  const last = plan.nodes[plan.nodes.length - 1];
  const labFlag = `--lab ${quoteWord(plan.lab)}`;
  o.out(`  ${plan.nodes.length} nodes, ${plan.links.length} links (${cross} between hosts over VXLAN). Reach them with:`);
  if (first) o.out(`    dune exec ${labFlag} ${quoteWord(first.node)} -- ip addr`);
  if (first && last && last !== first && last.v4) o.out(`    dune exec ${labFlag} ${quoteWord(first.node)} -- ping -c3 ${last.v4}`);
  o.out(`    dune status ${labFlag}    dune down ${labFlag}`);
}

export async function downRemote(loc: lab.LabLocation, flags: SshFlags & { json?: boolean }, o: Output): Promise<void> {
  const r = await lab.downLab(loc, sshOptions(flags, o));
  if (flags.json) {
    o.out(JSON.stringify({ labs: [{ lab: r.lab, hosts: r.hosts, elapsedMs: r.elapsedMs }] }));
    return;
  }
  const sum = (k: 'namespaces' | 'processes' | 'files'): number => r.hosts.reduce((a, h) => a + h.result[k], 0);
  o.out(`lab ${r.lab} removed from ${r.hosts.length} hosts in ${(r.elapsedMs / 1000).toFixed(2)}s: ${sum('namespaces')} namespaces, ${sum('processes')} processes, ${sum('files')} files`);
  for (const h of r.hosts) for (const f of h.result.foreign) o.err(`note: ${h.phynode}: ${f} looks like the lab's by name but carries no mark: left alone`);
}

/** The per-host lines after the status tables. */
export function printHosts(o: Output, s: lab.MultiStatus): void {
  o.out('\nHOST'.padEnd(14) + 'ADDRESS'.padEnd(28) + 'NODES'.padEnd(7) + 'STATE');
  for (const h of s.hosts) {
    const e = h.impairEngine;
    const engine = e ? `; userspace engine pid ${e.pid} ${e.running ? 'running' : 'NOT RUNNING'}${e.pipes !== undefined ? ` (${e.pipes} link directions)` : ''}` : '';
    o.out(`${h.phynode.padEnd(13)}${h.label.padEnd(28)}${String(h.nodes).padEnd(7)}${h.phase}${h.error ? `: ${h.error}` : ''}${engine}`);
  }
}

/** Runs argv in a node with this terminal; on another host a pty when asked for (a shell). */
export async function execAttached(loc: lab.LabLocation, node: string, argv: string[], flags: SshFlags, o: Output, pty = false): Promise<number> {
  const io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  // On this machine the command gets this terminal as it is (lab.execInNode hands it over).
  if (lab.isLocal(loc)) return lab.execInNode(loc, node, argv, io, sshOptions(flags, o));
  const stdin = process.stdin;
  const raw = pty && stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  try {
    return await lab.execInNode(loc, node, argv, { ...io, pty }, sshOptions(flags, o));
  } finally {
    if (raw) stdin.setRawMode(false);
    stdin.pause();
    stdin.unref?.();
  }
}

/** tcpdump on a node, wherever it is; with --write the pcap streams back into a local file. */
export async function capture(loc: lab.LabLocation, t: { node: string; iface: string }, filter: string[], flags: SshFlags & { write?: string; count?: string }, o: Output): Promise<number> {
  const argv = ['tcpdump', '-i', t.iface, '-n', ...(flags.write ? ['-U', '-w', '-'] : ['-l'])];
  if (flags.count) argv.push('-c', String(Number(flags.count)));
  argv.push(...filter);
  if (!flags.write) return execAttached(loc, t.node, argv, flags, o);
  const out = createWriteStream(flags.write);
  try {
    return await lab.execInNode(loc, t.node, argv, { stdout: out, stderr: process.stderr }, sshOptions(flags, o));
  } finally {
    await new Promise<void>((r) => (out as WriteStream).end(() => r()));
  }
}

function printCheck(o: Output, checks: lab.HostCheck[]): boolean {
  let ok = true;
  for (const c of checks) {
    const problems = c.preflight?.problems ?? [];
    const pass = c.error === undefined && problems.length === 0;
    ok &&= pass;
    o.out(`${pass ? 'ok  ' : 'FAIL'} ${c.phynode} (${c.label})`);
    if (c.facts) o.out(`       node ${c.facts.node}, ${c.facts.iproute2.replace(/^ip utility, /, '')}, kernel ${c.facts.kernel} (${c.facts.arch})`);
    if (c.copied !== undefined) o.out(`       agent ${c.copied ? 'copied to' : 'found in'} the host's cache`);
    if (c.preflight) {
      const caps = c.preflight.caps;
      const have = (['veth', 'vxlan', 'bridge', 'netem', 'htb', 'tbf', 'nft', 'nfqueue'] as const).map((k) => `${k} ${caps[k].ok ? 'yes' : 'no'}`).join(', ');
      o.out(`       kernel: ${have}`);
      for (const line of c.preflight.checked) o.out(`       ✓ ${line}`);
      for (const p of problems) o.out(`       ✗ ${formatDiagnostic({ severity: 'error', code: p.code, message: p.message, ...(p.hint !== undefined ? { hint: p.hint } : {}) }).replace(/\n/g, '\n         ')}`);
    }
    if (c.error !== undefined) o.out(`       ✗ ${c.error.replace(/\n/g, '\n         ')}${c.hint ? `\n         hint: ${c.hint}` : ''}`);
  }
  return ok;
}

export function registerRemoteCommands(program: Command, o: Output): void {
  addSshOptions(
    addReaderOptions(
      program
        .command('check')
        .description('pre-flight every phynode of a topology: SSH, node, iproute2, the agent, kernel features, underlay and MTU; builds nothing')
        .argument('[file]', 'topology file (default: the embedded default lab)')
        .option('--json', 'the report as JSON')
        .addHelpText('after', '\nExit status: 0 when every host passes, 1 otherwise.\n\nExample:\n  dune check topo.toml --accept-new-host-keys'),
    ),
  ).action(async (file: string | undefined, flags: ReaderFlags & SshFlags & { json?: boolean }) => {
    const loaded = loadTopology(file, { ...readerOptions(flags), allowDefault: true });
    const { plan, diagnostics } = compileLoaded(loaded, flags.lab);
    if (!flags.json) printDiagnostics(o, diagnostics.filter((d) => d.code !== 'default-phynode'));
    if (!lab.hasRemoteHosts(plan)) lab.requireRoot('check');
    const checks = await lab.checkLab(plan, { ...sshOptions(flags, o), file: loaded.file });
    if (flags.json) {
      o.out(JSON.stringify({ lab: plan.lab, hosts: checks }, null, 2));
      if (checks.some((c) => c.error !== undefined || (c.preflight?.problems.length ?? 0) > 0)) process.exitCode = 1;
      return;
    }
    const ok = printCheck(o, checks);
    o.out(ok ? `all ${checks.length} host${checks.length === 1 ? '' : 's'} can build lab ${plan.lab}` : `lab ${plan.lab} cannot be built as it is; nothing was changed`);
    if (!ok) process.exitCode = 1;
  });
}
