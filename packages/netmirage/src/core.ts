/**
 * netmirage-core at run time (reference 4.4), on dune's compiler and the lab engine:
 *
 *   destroy the previous network (unless --keep) ─► read the edge-facing NICs (addresses,
 *   routes, MTU) ─► compile: one plan, the NICs' `adopt` ops carrying what they had, the
 *   root switch (rules and routes in tables, or one `ovs` op: a private Open vSwitch, its
 *   ports and flows), the self links ─► the agent's lab up (journal, probe, backends: netem
 *   or the userspace engine for delay, rollback) ─► edges over SSH ─► edge commands
 *
 * The network is a lab like any other (`netmirage-<prefix>`, see `dune status`): the agent
 * journals it and its down removes it, the NICs moved back with what they had, the Open
 * vSwitch stopped. The one thing a plan of this host cannot hold, the edges configured on
 * other machines over SSH, is recorded in /run/netmirage/<prefix>.json (written only when
 * there are such edges) and undone first.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listNamespaces, readLinks, savedInterface, teardownLab } from '@dune/agent';
import {
  compileNetmirage,
  formatEdgeCommand,
  netmirageLab,
  netmirageRootNs,
  cidr,
  type NetmiragePlan,
  type NetmirageSettings,
  type SavedRoute,
} from '@dune/compiler';
import { downLab, upLab, type HostEvent } from '@dune/transport';
import { DuneError, type Topology } from '@dune/topology';
import { configureSshEdge, removeSshEdge, type SshEdge, type SshEdgeOptions } from './ssh-edges.js';
import { removeIfEmpty, type Log } from './util.js';

export const CORE_STATE_DIR = '/run/netmirage';

/** An edge-facing interface as it was before the core took it. */
export interface SavedIface {
  name: string;
  mtu: number;
  up: boolean;
  mac?: string;
  /** IPv4 and global IPv6 addresses, CIDR. */
  addrs: string[];
  /** Routes through it other than the kernel's own (which come back with the addresses). */
  routes: SavedRoute[];
}

/** The private Open vSwitch's directory and schema (--ovs-dir, --ovs-schema). */
export interface OvsOptions {
  dir: string;
  schema: string;
}

/**
 * What the lab's plan cannot hold: the edges configured on other machines over SSH (the
 * agent here has no SSH client; the core is their controller). Written only when there are some.
 */
export interface CoreState {
  version: 3;
  prefix: string;
  lab: string;
  /** Edges configured over SSH, undone by destroy; with the remote netmirage-edge to use. */
  sshEdges: SshEdge[];
  edgeBin?: string;
  knownHostsFile?: string;
}

export function coreStatePath(prefix: string, dir = CORE_STATE_DIR): string {
  return join(dir, `${prefix}.json`);
}

function writeState(s: CoreState, dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const p = coreStatePath(s.prefix, dir);
  writeFileSync(`${p}.tmp`, JSON.stringify(s, null, 2) + '\n');
  renameSync(`${p}.tmp`, p);
}

function readState(prefix: string, dir: string): CoreState | undefined {
  const p = coreStatePath(prefix, dir);
  if (!existsSync(p)) return undefined;
  const s = JSON.parse(readFileSync(p, 'utf8')) as Partial<CoreState>;
  // Earlier versions have the same SSH fields (and OVS ones: their switch is the lab's now).
  return { prefix, lab: s.lab ?? netmirageLab(prefix), ...s, version: 3, sshEdges: s.sshEdges ?? [] } as CoreState;
}

/** An interface in `ns` (null: ours) with its addresses and non-kernel routes. */
export function readIface(ns: string | null, name: string): SavedIface | undefined {
  const saved = savedInterface(ns, name);
  if (saved === undefined) return undefined;
  const mac = readLinks(ns).find((l) => l.name === name)?.mac;
  return { name, ...saved, ...(mac !== undefined ? { mac } : {}) };
}

export interface BuildOptions {
  topology: Topology;
  settings: Omit<NetmirageSettings, 'mtu' | 'avoid' | 'nics'>;
  keep: boolean;
  ovs: OvsOptions;
  log: Log;
  stateDir?: string;
  /** Compile and print only. */
  dryRun?: boolean;
  /** How to reach edges that have `ssh=`. */
  ssh?: SshEdgeOptions;
}

export interface BuildResult {
  nm: NetmiragePlan;
  /** One `netmirage-edge ...` line per edge. */
  edgeLines: string[];
  elapsedMs: number;
  /** Which backend carries each impairment parameter (delayUs → netem or userspace, ...). */
  backend: Record<string, string>;
}

/** The core's address facing `edgeIp`: the NIC address whose subnet holds it. */
function coreIpFor(edgeIp: string, nic: SavedIface | undefined): string | undefined {
  const e = cidr.parseAddr(edgeIp);
  if (e === undefined || nic === undefined) return undefined;
  for (const a of nic.addrs) {
    const p = cidr.parsePrefix(a);
    if (typeof p === 'string' || p.family !== e.family) continue;
    const [lo, hi] = cidr.rangeOf(p);
    if (e.addr >= lo && e.addr <= hi) return cidr.formatAddr(p.family, p.addr);
  }
  return undefined;
}

/** Compiles with the NICs' real MTU, subnets and configuration; fills each edge command's core IP when -I is absent. */
export function planCore(o: Pick<BuildOptions, 'topology' | 'settings' | 'ovs'>, nics: Map<string, SavedIface>): { nm: NetmiragePlan; edgeLines: string[] } {
  const mtus = new Set([...nics.values()].map((n) => n.mtu));
  if (mtus.size > 1) {
    throw new DuneError('mtu-mismatch', `the edge-facing interfaces have different MTUs (${[...nics.values()].map((n) => `${n.name} ${n.mtu}`).join(', ')})`, { hint: 'give them one MTU' });
  }
  const settings: NetmirageSettings = {
    ...o.settings,
    avoid: [...nics.values()].flatMap((n) => n.addrs.filter((a) => !a.includes(':'))),
    nics: [...nics.values()].map((n) => ({ name: n.name, saved: { mtu: n.mtu, up: n.up, addrs: n.addrs, routes: n.routes } })),
  };
  if (o.settings.switch === 'ovs') settings.ovs = o.ovs;
  const mtu = [...mtus][0];
  if (mtu !== undefined) settings.mtu = mtu;
  const nm = compileNetmirage(o.topology, settings);
  const edgeLines = nm.edges.map((e) => {
    const argv = [...e.command];
    if (o.settings.routingIp === undefined) {
      const ip = coreIpFor(e.ip, nics.get(e.iface));
      const at = argv.indexOf('<core-ip>');
      if (ip !== undefined && at >= 0) argv[at] = ip;
    }
    e.command = argv;
    return formatEdgeCommand(argv);
  });
  return { nm, edgeLines };
}

/** The lab's events as NetMirage's log lines. */
function logEvent(log: Log): (e: HostEvent) => void {
  return (e) => {
    if (e.type === 'warning') log('warning', e.message);
    else if (e.type === 'note') log('info', e.message);
    else if (e.type === 'phase') log('debug', `${e.phase}${e.total !== undefined ? ` (${e.total})` : ''}`);
  };
}

export async function buildCore(o: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  const dir = o.stateDir ?? CORE_STATE_DIR;
  const log = o.log;
  const prefix = o.settings.prefix;
  const nicNames = [...new Set(o.settings.edges.map((e) => e.iface ?? o.settings.iface).filter((x): x is string => x !== undefined))];
  const rootNs = o.settings.rootNs === 'custom' ? netmirageRootNs(prefix) : null;

  if (o.dryRun) {
    const nics = new Map<string, SavedIface>();
    for (const n of nicNames) {
      const i = safeReadIface(null, n);
      if (i !== undefined) nics.set(n, i);
    }
    const { nm, edgeLines } = planCore(o, nics);
    return { nm, edgeLines, elapsedMs: performance.now() - t0, backend: {} };
  }

  warnPrivateMounts(log);
  if (!o.keep) {
    const d = await destroyCore(prefix, { log, stateDir: dir, ...(o.ssh ? { ssh: o.ssh } : {}) });
    if (d.namespaces > 0) log('info', `destroyed the previous network: ${d.namespaces} namespaces`);
  }
  const nics = new Map<string, SavedIface>();
  for (const n of nicNames) {
    const i = readIface(null, n);
    if (i === undefined) {
      const here = readLinks(null).map((l) => l.name).filter((x) => x !== 'lo');
      throw new DuneError('no-such-iface', `the edge-facing interface ${n} is not in this namespace`, { hint: `interfaces here: ${here.join(', ') || 'none'}; give the right one with -i or iface=` });
    }
    nics.set(n, i);
  }
  const { nm, edgeLines } = planCore(o, nics);
  for (const d of nm.diagnostics) log(d.severity === 'note' ? 'info' : 'warning', d.message);
  const host = nm.plan.hosts[0];
  if (host === undefined) throw new Error('internal: no host plan');
  warnNeighbours(nm, log);
  // A kernel without IPv6 (a module not loaded) has no IPv6 to disable.
  if (!existsSync('/proc/sys/net/ipv6')) host.ops = host.ops.filter((op) => !(op.op === 'sysctl' && op.key.startsWith('net.ipv6.')));
  if (rootNs !== null && listNamespaces().includes(rootNs)) {
    throw new DuneError('network-exists', `the namespace ${rootNs} already exists`, { hint: `destroy the old network first: netmirage-core -d -p ${prefix}` });
  }

  let backend: Record<string, string> = {};
  try {
    log('info', `building ${nm.plan.stats['nodes']} nodes (${nm.clients.length} clients), ${nm.plan.stats['links']} links: ${host.ops.length} operations`);
    // The lab engine's up: it checks every impairment against this kernel (netem, or the
    // userspace engine for delay and jitter where netem is missing) before building, and
    // rolls back on failure (the NICs moved back, the Open vSwitch stopped).
    const up = await upLab(nm.plan, { onEvent: logEvent(log) });
    backend = up.hosts[0]?.result.backend ?? {};
    const sw = host.ops.find((op) => op.op === 'ovs');
    if (sw?.op === 'ovs') log('info', `private Open vSwitch in ${sw.dir}: ${sw.bridge} (datapath ${sw.datapath}), ${sw.ports.length} ports, ${sw.flows.length} flows`);
    const viaSsh = o.settings.edges.map((spec, i) => [spec, nm.edges[i]] as const).filter(([spec]) => spec.ssh !== undefined);
    if (viaSsh.length > 0) {
      const ssh = o.ssh ?? { edgeBin: 'netmirage-edge' };
      const state: CoreState = { version: 3, prefix, lab: nm.lab, sshEdges: [], edgeBin: ssh.edgeBin };
      if (ssh.knownHostsFile !== undefined) state.knownHostsFile = ssh.knownHostsFile;
      for (const [spec, edge] of viaSsh) {
        const argv = edge?.command ?? [];
        const e: SshEdge = { ip: spec.ip, ssh: spec.ssh as string, iface: argv[argv.length - 4] ?? '' };
        if (spec.sshKey !== undefined) e.identity = spec.sshKey;
        state.sshEdges.push(e);
        writeState(state, dir);
        await configureSshEdge(e, argv, ssh, log);
      }
    }
  } catch (e) {
    log('error', `building failed (${(e as Error).message}); destroying what was built`);
    try {
      await destroyCore(prefix, { log, stateDir: dir, ...(o.ssh ? { ssh: o.ssh } : {}) });
    } catch (d) {
      log('error', `destroying failed too: ${(d as Error).message}; run netmirage-core -d -p ${prefix}`);
    }
    throw e;
  }
  return { nm, edgeLines, elapsedMs: performance.now() - t0, backend };
}

/**
 * The kernel's ARP table is one for all namespaces, capped by gc_thresh3 (1024 by default).
 * NetMirage raises the thresholds when 2·links + 3·clients + 100 exceeds gc_thresh2; they
 * are global settings of the host, so here they are named rather than changed.
 */
function warnNeighbours(nm: NetmiragePlan, log: Log): void {
  const need = 2 * (nm.plan.stats['links'] ?? 0) + 3 * nm.clients.length + 100;
  let thresh2: number | undefined;
  try {
    thresh2 = Number(readFileSync('/proc/sys/net/ipv4/neigh/default/gc_thresh2', 'utf8'));
  } catch {
    return; // not visible from this namespace
  }
  if (thresh2 === undefined || need <= thresh2) return;
  log('warning', `this network may need ${need} ARP entries, more than net.ipv4.neigh.default.gc_thresh2 = ${thresh2}: under load the kernel may drop neighbours ("neighbour table overflow"); raise them on the host, e.g. sysctl -w net.ipv4.neigh.default.gc_thresh1=${need} net.ipv4.neigh.default.gc_thresh2=${2 * need} net.ipv4.neigh.default.gc_thresh3=${4 * need}`);
}

/**
 * `ip netns exec` runs its command in a mount namespace of its own, with /run/netns a slave
 * mount: namespaces created there are bind-mounted where nobody else sees them.
 */
function warnPrivateMounts(log: Log): void {
  try {
    if (statSync('/proc/self/ns/mnt').ino !== statSync('/proc/1/ns/mnt').ino) {
      log('warning', 'this process has a mount namespace of its own (run by `ip netns exec`?): the namespaces it creates may be invisible outside it; enter the core\'s namespace with `nsenter --net=/run/netns/NAME` instead');
    }
  } catch {
    // no /proc/1 to compare with: nothing to say
  }
}

function safeReadIface(ns: string | null, name: string): SavedIface | undefined {
  try {
    return readIface(ns, name);
  } catch {
    return undefined;
  }
}

export interface DestroyResult {
  /** Namespaces deleted. */
  namespaces: number;
  /** Namespaces with the prefix that are not this network's: left alone. */
  foreign: string[];
}

/**
 * Removes the network with this prefix: the edges configured over SSH, then the lab (the
 * agent's down: processes, the private Open vSwitch, the userspace engine, the NICs moved
 * back with what they had, the namespaces). Without a journal (never built, or removed
 * already), namespaces `<prefix>*` carrying the lab's mark are still found and deleted.
 * Idempotent.
 */
export async function destroyCore(prefix: string, o: { log: Log; stateDir?: string; ssh?: Omit<SshEdgeOptions, 'edgeBin'> }): Promise<DestroyResult> {
  const dir = o.stateDir ?? CORE_STATE_DIR;
  const state = readState(prefix, dir);
  const lab = state?.lab ?? netmirageLab(prefix);
  const errors: string[] = [];
  for (const e of state?.sshEdges ?? []) {
    try {
      const known = o.ssh?.knownHostsFile ?? state?.knownHostsFile;
      await removeSshEdge(e, { ...o.ssh, ...(known !== undefined ? { knownHostsFile: known } : {}), edgeBin: state?.edgeBin ?? 'netmirage-edge' }, o.log);
    } catch (err) {
      // An edge that was never configured (the build failed before it) has nothing to remove.
      if (!/edge-not-configured|no netmirage-edge state/.test((err as Error).message)) errors.push(`edge ${e.ip} over SSH: ${(err as Error).message}`);
    }
  }
  const d = await downLab({ lab, hosts: [{ phynode: 'local', target: {} }], nodes: {} }, { onEvent: logEvent(o.log) });
  const r = d.hosts[0]?.result;
  let namespaces = r?.namespaces ?? 0;
  const foreign = [...(r?.foreign ?? [])];
  if (r?.journal !== true) {
    const t = await teardownLab(lab, { nsPrefix: prefix });
    namespaces += t.deletedNamespaces.length;
    foreign.push(...t.foreign.map((f) => `${f.ns} (${f.reason})`));
    errors.push(...t.errors);
  }
  for (const f of foreign) o.log('warning', `namespace ${f}`);
  if (errors.length > 0) {
    throw new DuneError('destroy-incomplete', `could not remove everything of ${prefix}:\n  ${errors.join('\n  ')}`, { hint: `fix the cause and run netmirage-core -d -p ${prefix} again` });
  }
  rmSync(coreStatePath(prefix, dir), { force: true });
  removeIfEmpty(dir);
  return { namespaces, foreign };
}
