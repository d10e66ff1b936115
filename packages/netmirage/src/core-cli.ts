/**
 * `netmirage-core`: NetMirage's flags (reference 4.1) and setup file, wired to buildCore /
 * destroyCore. Precedence: command line > setup file ([emulator], [edge*]/[node*]) > defaults.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { GRAPHML_UNITS, DuneError, choicesHint, parseGraphml, type GraphmlUnits } from '@dune/topology';
import { NETMIRAGE_ROOT_NS, NETMIRAGE_SWITCHES, NETNS_PREFIX_RE, OVS_DEFAULTS, serializePlan, summarizePlan, type NetmirageEdgeSpec, type NetmirageRootNs, type NetmirageSwitch } from '@dune/compiler';
import { requireRoot } from '@dune/agent';
import { buildCore, destroyCore } from './core.js';

import { iniBool, readSetupFile, type IniFile } from './setup-file.js';
import { LOG_LEVELS, makeLog, type LogLevel } from './util.js';
import { type Io, stdio, runProgram } from './io.js';

/** Every long option (the names [emulator] accepts), with its default. */
const CORE_OPTIONS = {
  destroy: { kind: 'bool', def: false },
  keep: { kind: 'bool', def: false },
  file: { kind: 'string', def: undefined },
  'setup-file': { kind: 'string', def: undefined },
  iface: { kind: 'string', def: undefined },
  vsubnet: { kind: 'string', def: '10.0.0.0/8' },
  'edge-node': { kind: 'list', def: undefined },
  'routing-ip': { kind: 'string', def: undefined },
  'edge-output': { kind: 'string', def: undefined },
  quiet: { kind: 'bool', def: false },
  verbosity: { kind: 'string', def: 'warning' },
  'log-file': { kind: 'string', def: undefined },
  'netns-prefix': { kind: 'string', def: 'nm-' },
  'root-ns': { kind: 'string', def: 'custom' },
  'ovs-dir': { kind: 'string', def: OVS_DEFAULTS.dir },
  'ovs-schema': { kind: 'string', def: OVS_DEFAULTS.schema },
  mem: { kind: 'string', def: '2048' },
  units: { kind: 'string', def: 'shadow' },
  weight: { kind: 'string', def: 'latency' },
  'client-node': { kind: 'string', def: undefined },
  'two-pass': { kind: 'bool', def: false },
  switch: { kind: 'string', def: 'linux' },
  'without-delay': { kind: 'bool', def: false },
  'dry-run': { kind: 'bool', def: false },
  'edge-bin': { kind: 'string', def: 'netmirage-edge' },
  'known-hosts': { kind: 'string', def: undefined },
  'accept-new-host-keys': { kind: 'bool', def: false },
} as const satisfies Record<string, { kind: 'bool' | 'string' | 'list'; def: string | boolean | undefined }>;

type CoreKey = keyof typeof CORE_OPTIONS;
const camel = (k: string) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

const EDGE_KEYS = ['iface', 'mac', 'vsubnet', 'rdev', 'rapps', 'ssh', 'ssh-key'] as const;
type EdgeKey = (typeof EDGE_KEYS)[number];

function setEdgeKey(e: NetmirageEdgeSpec, k: EdgeKey, v: string): void {
  if (k === 'ssh-key') e.sshKey = v;
  else e[k] = v;
}

/** `IP[,iface=DEV][,mac=MAC][,vsubnet=CIDR][,rdev=DEV][,rapps=N]`. */
export function parseEdgeNode(text: string): NetmirageEdgeSpec {
  const [ip, ...rest] = text.split(',');
  if (ip === undefined || ip.trim() === '') throw new DuneError('bad-edge', `-e "${text}" has no IP address`, { hint: 'write -e IP[,iface=DEV][,mac=MAC][,vsubnet=CIDR][,rdev=DEV][,rapps=N]' });
  const e: NetmirageEdgeSpec = { ip: ip.trim() };
  for (const kv of rest) {
    const eq = kv.indexOf('=');
    const k = kv.slice(0, eq).trim();
    if (eq < 0 || !(EDGE_KEYS as readonly string[]).includes(k)) {
      throw new DuneError('bad-edge', `-e "${text}": "${kv}" is not a known edge setting`, { hint: choicesHint(k || kv, EDGE_KEYS) });
    }
    setEdgeKey(e, k as EdgeKey, kv.slice(eq + 1).trim());
  }
  return e;
}

function edgesFromSetup(ini: IniFile): NetmirageEdgeSpec[] {
  const out: NetmirageEdgeSpec[] = [];
  for (const g of ini.groups) {
    if (!g.name.startsWith('edge') && !g.name.startsWith('node')) continue;
    const ip = g.values.get('ip');
    if (ip === undefined) throw new DuneError('setup-value', `${ini.file}:${g.line}: [${g.name}] has no ip`, { hint: 'each edge group needs ip=ADDRESS' });
    const e: NetmirageEdgeSpec = { ip: ip.value };
    for (const [k, v] of g.values) {
      if (k === 'ip') continue;
      if (!(EDGE_KEYS as readonly string[]).includes(k)) throw new DuneError('setup-value', `${ini.file}:${v.line}: [${g.name}] has an unknown key "${k}"`, { hint: choicesHint(k, ['ip', ...EDGE_KEYS]) });
      setEdgeKey(e, k as EdgeKey, v.value);
    }
    out.push(e);
  }
  return out;
}

function emulatorValues(ini: IniFile | undefined): Map<CoreKey, string> {
  const out = new Map<CoreKey, string>();
  const g = ini?.groups.find((x) => x.name === 'emulator');
  if (ini === undefined || g === undefined) return out;
  for (const [k, v] of g.values) {
    if (!Object.hasOwn(CORE_OPTIONS, k) || k === 'setup-file') {
      throw new DuneError('setup-value', `${ini.file}:${v.line}: [emulator] has an unknown option "${k}"`, { hint: choicesHint(k, Object.keys(CORE_OPTIONS).filter((x) => x !== 'setup-file')) });
    }
    out.set(k as CoreKey, v.value);
  }
  return out;
}

export function buildCoreProgram(io: Io = stdio): Command {
  const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];
  const p = new Command('netmirage-core')
    .description('Emulate a GraphML (Shadow) topology on this core machine for applications on edge machines (NetMirage\'s core).')
    .version('0.9.2-dune')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) })
    .option('-d, --destroy', 'destroy the previous network (namespaces with the prefix, the OVS instance) and exit')
    .option('-k, --keep', 'do not destroy old networks before building (--destroy wins)')
    .option('-f, --file <file>', 'GraphML topology (default: standard input)')
    .option('-s, --setup-file <file>', 'INI setup file: [emulator] takes any long option, [edge*] groups define edges (default: setup.cfg, if present)')
    .option('-i, --iface <dev>', 'default core interface facing the edge nodes')
    .option('-n, --vsubnet <cidr>', 'global client space, split evenly among edges without a vsubnet (default: 10.0.0.0/8)')
    .option('-e, --edge-node <spec>', 'an edge: IP[,iface=DEV][,mac=MAC][,vsubnet=CIDR][,rdev=DEV][,rapps=N][,ssh=[user@]host[:port][,ssh-key=FILE]]; repeatable; replaces the setup file\'s edges', collect)
    .option('-I, --routing-ip <ip>', 'core IP written into the edge commands (default: the core\'s address on each edge\'s subnet)')
    .option('-E, --edge-output <file>', 'write the netmirage-edge commands here (default: standard output)')
    .option('-q, --quiet', 'do not print the edge commands')
    .addOption(new Option('-v, --verbosity <level>', 'log level (default: warning)').choices([...LOG_LEVELS]))
    .option('-l, --log-file <file>', 'log here (default: standard error)')
    .option('-p, --netns-prefix <prefix>', 'namespace name prefix, [0-9A-Za-z_-] (default: nm-)')
    .addOption(new Option('-r, --root-ns <where>', 'where the root namespace lives (default: custom)').choices([...NETMIRAGE_ROOT_NS]))
    .option('--ovs-dir <dir>', `private Open vSwitch db, sockets, logs and pids (default: ${OVS_DEFAULTS.dir})`)
    .option('--ovs-schema <file>', `Open vSwitch schema (default: ${OVS_DEFAULTS.schema})`)
    .option('-m, --mem <MiB>', 'not needed here, accepted and ignored: NetMirage caps its cache of namespace handles with it; this core keeps none (default: 2048)')
    .addOption(new Option('-u, --units <units>', 'node bandwidth units: shadow/KiB = KiB/s, modelnet/Kb = Kbit/s; applied (default: shadow)').choices([...GRAPHML_UNITS]))
    .option('-w, --weight <key>', 'edge attribute for shortest paths (default: latency)')
    .option('--client-node <type>', 'a node is a client iff its `type` equals this (default: every node)')
    .option('-2, --two-pass', 'not needed here, accepted and ignored: the GraphML is read whole, so edges may come before nodes, from a file or standard input')
    .addOption(new Option('--switch <kind>', 'root switch: linux (policy routing, no daemon) or ovs (private Open vSwitch, as NetMirage) (default: linux)').choices([...NETMIRAGE_SWITCHES]))
    .option('--without-delay', 'build without link delay and jitter, for kernels without netem (explicit: the emulation then has none)')
    .option('--dry-run', 'compile and print what would be built and the edge commands; change nothing')
    .option('--edge-bin <path>', 'netmirage-edge on the edges configured over SSH (edge setting ssh=[user@]host[:port], ssh-key=FILE) (default: netmirage-edge)')
    .option('--known-hosts <file>', 'known_hosts for the SSH edges (default: ~/.ssh/known_hosts)')
    .option('--accept-new-host-keys', 'record the host key of an SSH edge that known_hosts does not know yet (never a changed one)')
    .addHelpText(
      'after',
      `
Examples:
  netmirage-core -i eth1 -e 192.0.2.10 -e 192.0.2.11 -f shadow.graphml
  netmirage-core -s setup.cfg < shadow.graphml
  netmirage-core -d                       remove the network`,
    );
  p.action(async (flags: Record<string, unknown>) => {
    const ini = readSetupFile(flags['setupFile'] as string | undefined);
    const fromIni = emulatorValues(ini);
    const value = (k: CoreKey): string | boolean | string[] | undefined => {
      const cli = flags[camel(k)];
      if (cli !== undefined) return cli as string | boolean | string[];
      const v = fromIni.get(k);
      const spec = CORE_OPTIONS[k];
      if (v !== undefined) {
        if (spec.kind === 'bool') return iniBool(v, `${ini?.file} [emulator] ${k}`);
        if (spec.kind === 'list') return v.split(';').map((x) => x.trim()).filter((x) => x !== '');
        return v;
      }
      return spec.def;
    };
    const str = (k: CoreKey) => value(k) as string | undefined;
    const bool = (k: CoreKey) => value(k) === true;
    const choice = <T extends string>(k: CoreKey, allowed: readonly T[]): T => {
      const v = str(k) as string;
      if (!(allowed as readonly string[]).includes(v)) throw new DuneError('bad-option', `--${k} "${v}" is not valid`, { hint: choicesHint(v, allowed) });
      return v as T;
    };
    const verbosity = choice<LogLevel>('verbosity', LOG_LEVELS);
    const log = makeLog(verbosity, str('log-file'), io.err);
    const prefix = str('netns-prefix') as string;
    if (!NETNS_PREFIX_RE.test(prefix)) throw new DuneError('bad-option', `the namespace prefix "${prefix}" may only contain 0-9 A-Z a-z _ -`, { hint: 'e.g. -p nm-' });
    const ovs = { dir: str('ovs-dir') as string, schema: str('ovs-schema') as string };
    const knownHosts = str('known-hosts');
    const ssh = { edgeBin: str('edge-bin') as string, acceptNewHostKeys: bool('accept-new-host-keys'), ...(knownHosts !== undefined ? { knownHostsFile: knownHosts } : {}) };
    const mem = str('mem') as string;
    if (!/^[1-9]\d*$/.test(mem)) throw new DuneError('bad-option', `--mem "${mem}" is not a number of MiB`, { hint: 'e.g. -m 2048' });
    if (flags['mem'] !== undefined || fromIni.has('mem')) log('info', '--mem is not needed here (no namespace-handle cache): ignored');
    if (bool('two-pass')) log('info', '--two-pass is not needed here (the GraphML is read whole): ignored');

    if (bool('destroy')) {
      requireRoot('netmirage-core --destroy');
      const r = await destroyCore(prefix, { log, ssh });
      log('info', `destroyed ${r.namespaces} namespaces`);
      return;
    }

    const cliEdges = flags['edgeNode'] as string[] | undefined;
    const edges = cliEdges !== undefined ? cliEdges.map(parseEdgeNode) : fromIni.has('edge-node') ? (value('edge-node') as string[]).map(parseEdgeNode) : ini ? edgesFromSetup(ini) : [];
    const file = str('file');
    let text: string;
    try {
      text = readFileSync(file ?? 0, 'utf8');
    } catch (e) {
      throw new DuneError('file-unreadable', `cannot read the topology ${file ?? 'from standard input'}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { hint: 'give a GraphML file with -f' });
    }
    const units = choice<GraphmlUnits>('units', GRAPHML_UNITS);
    const clientType = str('client-node');
    const topology = parseGraphml(text, file ?? '<stdin>', { units, weight: str('weight') as string, ...(clientType !== undefined ? { clientType } : {}), lab: 'netmirage' });
    for (const d of topology.notes) log(d.severity === 'note' ? 'info' : 'warning', d.message);
    const routingIp = str('routing-ip');
    const iface = str('iface');
    const settings = {
      prefix,
      vsubnet: str('vsubnet') as string,
      edges,
      rootNs: choice<NetmirageRootNs>('root-ns', NETMIRAGE_ROOT_NS),
      switch: choice<NetmirageSwitch>('switch', NETMIRAGE_SWITCHES),
      withoutDelay: bool('without-delay'),
      ...(routingIp !== undefined ? { routingIp } : {}),
      ...(iface !== undefined ? { iface } : {}),
    };
    const dryRun = bool('dry-run');
    if (!dryRun) requireRoot('netmirage-core');
    const r = await buildCore({ topology, settings, keep: bool('keep'), ovs, log, dryRun, ssh });
    const edgeText = r.edgeLines.join('\n') + '\n';
    if (dryRun) {
      // The plan the agent would apply, exactly, on standard output; what it means on standard error.
      for (const d of r.nm.diagnostics) log(d.severity === 'note' ? 'info' : 'warning', d.message);
      io.write(serializePlan(r.nm.plan, 2));
      io.err(summarizePlan(r.nm.plan).trimEnd());
      io.err(`clients: ${r.nm.clients.length}; root namespace ${r.nm.rootNs ?? '(this one)'}; switch ${settings.switch}`);
      for (const e of r.nm.edges) io.err(`edge ${e.ip} on ${e.iface}: vsubnet ${e.vsubnet}, ${e.clients} clients`);
      if (!bool('quiet')) {
        const out = str('edge-output');
        if (out !== undefined) writeFileSync(out, edgeText);
        else io.err(edgeText.trimEnd());
      }
      return;
    }
    log('info', `network built in ${Math.round(r.elapsedMs)} ms (lab ${r.nm.lab})`);
    // Which backend carries delay and jitter (netem, or the userspace engine where the kernel has no netem) is said plainly.
    const carried = Object.entries(r.backend).filter(([k]) => k === 'delayUs' || k === 'jitterUs');
    if (carried.length > 0) io.err(`impairments: ${carried.map(([k, b]) => `${k === 'delayUs' ? 'delay' : 'jitter'} by ${b}`).join(', ')}`);
    if (!bool('quiet')) {
      const out = str('edge-output');
      if (out !== undefined) writeFileSync(out, edgeText);
      else io.write(edgeText);
    }
  });
  return p;
}

export function coreMain(argv: string[], io: Io = stdio): Promise<number> {
  return runProgram(buildCoreProgram(io), argv, io);
}
