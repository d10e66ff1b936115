/**
 * netmirage-core at run time (reference 4.4), on dune's compiler and agent:
 *
 *   destroy the previous network (unless --keep) ─► read the edge-facing NICs (addresses,
 *   routes, MTU: saved to /run/netmirage/<prefix>.json before anything changes) ─► compile
 *   ─► refuse impairments this kernel cannot apply ─► applyOps (namespaces, links, shaping,
 *   routes) ─► NICs moved into <prefix>root and their addresses put back ─► the root switch
 *   (Linux policy routing, or Open vSwitch) ─► client self-link rules ─► edge commands
 *
 * Any failure destroys what was built. `destroy` works from the state file and from the
 * kernel's marks: namespaces `<prefix>*` whose lo carries `dune:<lab>:`, foreign interfaces
 * in the root namespace moved back with their saved configuration, the private OVS stopped.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  addrMsg,
  applyOps,
  delLink,
  deleteNamespaces,
  dumpLinks,
  getAddrDump,
  getRouteDump,
  getRuleDump,
  linkByName,
  listNamespaces,
  moveLinkMsg,
  NetlinkError,
  NlSocket,
  nsPath,
  openNsFd,
  ourRoute,
  parseAddrMsg,
  parseRule,
  parseTableRoute,
  planImpairment,
  probeCapabilities,
  readLinks,
  RTPROT_KERNEL,
  ruleMsg,
  setLink,
  tableRouteMsg,
  type Caps,
  type Rule,
  type TableRoute,
} from '@dune/agent';
import {
  CLIENT_SELF_RULE_PREF,
  CLIENT_SELF_TABLE,
  compileNetmirage,
  formatEdgeCommand,
  netmirageLab,
  netmirageRootNs,
  ROOT_RULE_PREF,
  cidr,
  type NetmiragePlan,
  type NetmirageSettings,
  type Op,
} from '@dune/compiler';
import { DuneError, type Topology } from '@dune/topology';
import { ovsDestroy, ovsStart, ovsConfigure, type OvsOptions } from './ovs.js';
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
  routes: TableRoute[];
}

export interface CoreState {
  version: 1;
  prefix: string;
  lab: string;
  rootNs: string | null;
  switch: NetmirageSettings['switch'];
  ovsDir?: string;
  ifaces: SavedIface[];
  /** In the root namespace when it is the core's own (`-r init`): what to delete. */
  rootRules: Rule[];
  rootTables: number[];
  rootAddrs: string[];
  /** Main-table routes toward the edges (`-r init`). */
  rootRoutes?: TableRoute[];
  /** Edges configured over SSH, undone by destroy; with the remote netmirage-edge to use. */
  sshEdges?: SshEdge[];
  edgeBin?: string;
  knownHostsFile?: string;
  phase: 'building' | 'up';
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
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as CoreState) : undefined;
}

/** An interface in `ns` (null: ours) with its addresses and non-kernel routes. */
export function readIface(ns: string | null, name: string): SavedIface | undefined {
  const s = NlSocket.open(ns === null ? null : nsPath(ns), ns ?? 'core');
  try {
    const links = dumpLinks(s);
    const l = links.find((x) => x.name === name);
    if (l === undefined) return undefined;
    const addrs = s
      .dump((w, seq, f) => getAddrDump(w, seq, f), 'addresses')
      .map(parseAddrMsg)
      .filter((a) => a.ifindex === l.index && (a.family === 'inet' || !a.cidr.startsWith('fe80:')))
      .map((a) => a.cidr);
    const routes = s
      .dump((w, seq, f) => getRouteDump(w, seq, f), 'routes')
      .map(parseTableRoute)
      .filter((r) => r.oif === l.index && r.protocol !== RTPROT_KERNEL && r.type === 1 && !(r.family === 'inet6' && r.dst.startsWith('fe80:')))
      .map((r) => {
        const { oif: _oif, ...rest } = r;
        return rest;
      });
    const out: SavedIface = { name, mtu: l.mtu ?? 1500, up: l.up, addrs, routes };
    if (l.mac !== undefined) out.mac = l.mac;
    return out;
  } finally {
    s.close();
  }
}

export interface BuildOptions {
  topology: Topology;
  settings: Omit<NetmirageSettings, 'mtu' | 'avoid'>;
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

/** Compiles with the NICs' real MTU and subnets; fills each edge command's core IP when -I is absent. */
export function planCore(o: Pick<BuildOptions, 'topology' | 'settings'>, nics: Map<string, SavedIface>): { nm: NetmiragePlan; edgeLines: string[] } {
  const mtus = new Set([...nics.values()].map((n) => n.mtu));
  if (mtus.size > 1) {
    throw new DuneError('mtu-mismatch', `the edge-facing interfaces have different MTUs (${[...nics.values()].map((n) => `${n.name} ${n.mtu}`).join(', ')})`, { hint: 'give them one MTU' });
  }
  const settings: NetmirageSettings = { ...o.settings, avoid: [...nics.values()].flatMap((n) => n.addrs.filter((a) => !a.includes(':'))) };
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

/** Every impairment planned against this kernel before anything is built. */
function checkImpairments(ops: readonly Op[], caps: Caps): void {
  const refused: string[] = [];
  let hint: string | undefined;
  for (const op of ops) {
    if (op.op !== 'impair') continue;
    try {
      planImpairment(op.impairment, caps, { mtu: op.mtu, where: `${op.ns || 'core'}/${op.dev}` });
    } catch (e) {
      if (!(e instanceof DuneError)) throw e;
      refused.push(`${op.link}: ${e.message}`);
      hint ??= e.hint;
    }
  }
  if (refused.length > 0) {
    throw new DuneError('impairment-unsupported', `this kernel cannot apply ${refused.length} impairment${refused.length === 1 ? '' : 's'}; nothing was built:\n  ${refused.slice(0, 8).join('\n  ')}${refused.length > 8 ? `\n  and ${refused.length - 8} more` : ''}`, {
      hint: `${hint ?? ''}; or build without delay and jitter with --without-delay (explicitly: the emulation then has none)`.replace(/^; /, ''),
    });
  }
}

function openSock(ns: string | null): NlSocket {
  return NlSocket.open(ns === null ? null : nsPath(ns), ns ?? 'core');
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
      const i = safeReadIface(null, n) ?? (rootNs !== null ? safeReadIface(rootNs, n) : undefined);
      if (i !== undefined) nics.set(n, i);
    }
    const { nm, edgeLines } = planCore(o, nics);
    return { nm, edgeLines, elapsedMs: performance.now() - t0 };
  }

  warnPrivateMounts(log);
  if (!o.keep) {
    const d = await destroyCore(prefix, { ovs: o.ovs, log, stateDir: dir, ...(o.ssh ? { ssh: o.ssh } : {}) });
    if (d.namespaces.length > 0 || d.movedBack.length > 0) log('info', `destroyed the previous network: ${d.namespaces.length} namespaces, ${d.movedBack.length} interfaces moved back`);
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
  const caps = await probeCapabilities();
  checkImpairments(host.ops, caps);
  if (rootNs !== null && listNamespaces().includes(rootNs)) {
    throw new DuneError('network-exists', `the namespace ${rootNs} already exists`, { hint: `destroy the old network first: netmirage-core -d -p ${prefix}` });
  }

  const state: CoreState = {
    version: 1,
    prefix,
    lab: nm.lab,
    rootNs,
    switch: o.settings.switch,
    ifaces: [...nics.values()],
    rootRules: [],
    rootTables: [],
    rootAddrs: rootNs === null && o.settings.switch === 'linux' ? [`${nm.rootIp}/32`] : [],
    phase: 'building',
  };
  if (o.settings.switch === 'ovs') state.ovsDir = o.ovs.dir;
  writeState(state, dir);
  try {
    log('info', `building ${nm.plan.stats['nodes']} nodes (${nm.clients.length} clients), ${nm.plan.stats['links']} links: ${host.ops.length} operations`);
    // The root namespace and its NICs first (NetMirage's order): a NIC keeps its ifindex
    // when it arrives in a namespace that has only lo, and so when it goes back.
    const first = host.ops.filter((op) => op.op === 'netns' && op.ns === rootNs);
    await applyOps(first, { caps, lab: nm.lab });
    if (rootNs !== null) moveIn(rootNs, [...nics.values()], log);
    const r = await applyOps(host.ops.filter((op) => !first.includes(op)), { caps, lab: nm.lab });
    log('debug', `applied in ${Object.entries(r.timingsMs).map(([k, v]) => `${k} ${Math.round(v)} ms`).join(', ')}`);
    if (o.settings.switch === 'linux') linuxSwitch(nm, state, dir);
    else {
      await ovsStart(o.ovs, nm, log);
      await ovsConfigure(o.ovs, nm, [...nics.values()], log);
    }
    await applyOps(
      nicNames.map((n): Op => ({ op: 'sysctl', ns: rootNs ?? '', key: `net.ipv4.conf.${n}.rp_filter`, value: '0' })),
      { caps, lab: nm.lab },
    );
    selfLinks(nm);
    const viaSsh = o.settings.edges.map((spec, i) => [spec, nm.edges[i]] as const).filter(([spec]) => spec.ssh !== undefined);
    if (viaSsh.length > 0) {
      const ssh = o.ssh ?? { edgeBin: 'netmirage-edge' };
      state.sshEdges = [];
      state.edgeBin = ssh.edgeBin;
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
    state.phase = 'up';
    writeState(state, dir);
  } catch (e) {
    log('error', `building failed (${(e as Error).message}); destroying what was built`);
    try {
      await destroyCore(prefix, { ovs: o.ovs, log, stateDir: dir, ...(o.ssh ? { ssh: o.ssh } : {}) });
    } catch (d) {
      log('error', `destroying failed too: ${(d as Error).message}; run netmirage-core -d -p ${prefix}`);
    }
    throw e;
  }
  return { nm, edgeLines, elapsedMs: performance.now() - t0 };
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

/** Moves each NIC into the root namespace and gives it back its addresses and routes there. */
function moveIn(rootNs: string, nics: SavedIface[], log: Log): void {
  const here = openSock(null);
  const fd = openNsFd(rootNs);
  try {
    for (const n of nics) {
      const l = linkByName(here, n.name);
      here.call((w, seq) => moveLinkMsg(w, seq, l.index, fd), `move ${n.name} into ${rootNs}`);
      log('info', `moved ${n.name} into ${rootNs}`);
    }
  } finally {
    closeSync(fd);
    here.close();
  }
  configureIface(rootNs, nics);
}

/** Addresses (v4), up, and the saved routes of interfaces that just arrived in `ns`. */
function configureIface(ns: string | null, nics: SavedIface[]): void {
  const s = openSock(ns);
  try {
    for (const n of nics) {
      const l = linkByName(s, n.name);
      for (const a of n.addrs) {
        if (ns !== null && a.includes(':')) continue; // IPv6 is off in the root namespace
        try {
          s.call((w, seq) => addrMsg(w, seq, { ifindex: l.index, cidr: a }), `address ${a} on ${n.name}`);
        } catch (e) {
          if (!(e instanceof NetlinkError && e.errno === 17)) throw e;
        }
      }
      if (n.up) s.call((w, seq) => setLink(w, seq, { index: l.index, up: true }), `up ${n.name}`);
      for (const r of n.routes) {
        if (ns !== null && r.family === 'inet6') continue;
        try {
          s.call((w, seq) => tableRouteMsg(w, seq, { ...r, oif: l.index }), `route ${r.dst} dev ${n.name}`);
        } catch (e) {
          if (!(e instanceof NetlinkError && e.errno === 17)) throw e;
        }
      }
    }
  } finally {
    s.close();
  }
}

/**
 * The Linux-native root switch: policy routing in the root namespace.
 *   from an edge (iif NIC, from S_c) → table T_c: S_c via the client's self link, anything
 *   else via its root link; to an edge (main): the edge's vsubnet via the edge's address.
 */
function linuxSwitch(nm: NetmiragePlan, state: CoreState, dir: string): void {
  const s = openSock(nm.rootNs);
  try {
    for (const e of nm.edges) {
      const nic = linkByName(s, e.iface);
      const r = ourRoute(254, e.vsubnet, nic.index, e.ip);
      if (nm.rootNs === null) {
        state.rootRoutes = [...(state.rootRoutes ?? []), r];
        writeState(state, dir);
      }
      s.call((w, seq) => tableRouteMsg(w, seq, r), `route ${e.vsubnet} via ${e.ip}`);
    }
    const idx = new Map(dumpLinks(s).map((l) => [l.name, l.index]));
    for (const c of nm.clients) {
      const iface = nm.edges[c.edge]?.iface as string;
      const rule: Rule = { family: 'inet', priority: ROOT_RULE_PREF, table: c.table, action: 'table', src: c.subnet, iif: iface, protocol: 0x44 };
      if (nm.rootNs === null) {
        state.rootTables.push(c.table);
        state.rootRules.push(rule);
        writeState(state, dir);
      }
      const self = idx.get(c.selfDev) as number;
      const root = idx.get(c.rootDev) as number;
      s.queue(c.node, (w, seq) => tableRouteMsg(w, seq, ourRoute(c.table, c.subnet, self, c.ip, true)));
      s.queue(c.node, (w, seq) => tableRouteMsg(w, seq, ourRoute(c.table, 'default', root, c.ip, true)));
      s.queue(c.node, (w, seq) => ruleMsg(w, seq, rule));
    }
    s.drain();
    const f = s.takeFailures()[0];
    if (f !== undefined) throw new NetlinkError(`root switch for client ${f.ref}: errno ${f.ack.errno}${f.ack.extack ? `: ${f.ack.extack}` : ''}`, f.ack);
  } finally {
    s.close();
  }
}

/** In each client: traffic for its own subnet that arrives on `self` goes back out by `self`. */
function selfLinks(nm: NetmiragePlan): void {
  for (const c of nm.clients) {
    const s = openSock(c.ns);
    try {
      const self = linkByName(s, 'self').index;
      s.queue('r', (w, seq) => tableRouteMsg(w, seq, ourRoute(CLIENT_SELF_TABLE, `${nm.rootIp}/32`, self)));
      s.queue('r', (w, seq) => tableRouteMsg(w, seq, ourRoute(CLIENT_SELF_TABLE, c.subnet, self, nm.rootIp)));
      s.queue('r', (w, seq) => ruleMsg(w, seq, { family: 'inet', priority: CLIENT_SELF_RULE_PREF, table: CLIENT_SELF_TABLE, action: 'table', dst: c.subnet, iif: 'self' }));
      s.drain();
      const f = s.takeFailures()[0];
      if (f !== undefined) throw new NetlinkError(`self link of ${c.node}: errno ${f.ack.errno}${f.ack.extack ? `: ${f.ack.extack}` : ''}`, f.ack);
    } finally {
      s.close();
    }
  }
}

export interface DestroyResult {
  namespaces: string[];
  foreign: string[];
  movedBack: string[];
  ovsStopped: boolean;
  errors: string[];
}

/**
 * Removes the network with this prefix: the OVS instance, foreign interfaces moved back out of
 * the root namespace (with their saved configuration), then every `<prefix>*` namespace
 * carrying our mark. Idempotent.
 */
export async function destroyCore(prefix: string, o: { ovs: OvsOptions; log: Log; stateDir?: string; ssh?: Omit<SshEdgeOptions, 'edgeBin'> }): Promise<DestroyResult> {
  const dir = o.stateDir ?? CORE_STATE_DIR;
  const state = readState(prefix, dir);
  const lab = state?.lab ?? netmirageLab(prefix);
  const rootNs = netmirageRootNs(prefix);
  const res: DestroyResult = { namespaces: [], foreign: [], movedBack: [], ovsStopped: false, errors: [] };
  for (const e of state?.sshEdges ?? []) {
    try {
      const known = o.ssh?.knownHostsFile ?? state?.knownHostsFile;
      await removeSshEdge(e, { ...o.ssh, ...(known !== undefined ? { knownHostsFile: known } : {}), edgeBin: state?.edgeBin ?? 'netmirage-edge' }, o.log);
    } catch (err) {
      // An edge that was never configured (the build failed before it) has nothing to remove.
      if (!/edge-not-configured|no netmirage-edge state/.test((err as Error).message)) res.errors.push(`edge ${e.ip} over SSH: ${(err as Error).message}`);
    }
  }
  res.ovsStopped = await ovsDestroy(state?.ovsDir ?? o.ovs.dir, o.log);

  const present = listNamespaces().filter((n) => n.startsWith(prefix));
  if (present.includes(rootNs)) {
    try {
      res.movedBack = moveOut(rootNs, state?.ifaces ?? [], o.log);
    } catch (e) {
      res.errors.push(`move interfaces out of ${rootNs}: ${(e as Error).message}`);
    }
  }
  if (state !== undefined && state.rootNs === null) cleanInitRoot(state, lab, res);

  const mark = `dune:${lab}:`;
  const ours: string[] = [];
  for (const ns of present) {
    let alias: string | undefined;
    try {
      alias = readLinks(ns).find((l) => l.name === 'lo')?.alias;
    } catch (e) {
      res.foreign.push(`${ns} (cannot be read: ${(e as Error).message})`);
      continue;
    }
    if (alias?.startsWith(mark)) ours.push(ns);
    else res.foreign.push(`${ns} (${alias === undefined ? 'no mark on lo' : `lo's alias ${JSON.stringify(alias)}`}: not ours, left alone)`);
  }
  for (const f of deleteNamespaces(ours)) res.errors.push(`delete ${f.name}: ${f.message}`);
  res.namespaces = ours;
  for (const f of res.foreign) o.log('warning', `namespace ${f}`);
  if (res.errors.length > 0) {
    throw new DuneError('destroy-incomplete', `could not remove everything of ${prefix}:\n  ${res.errors.join('\n  ')}`, { hint: `the state is kept in ${coreStatePath(prefix, dir)}; fix the cause and run netmirage-core -d -p ${prefix} again` });
  }
  rmSync(coreStatePath(prefix, dir), { force: true });
  removeIfEmpty(dir);
  return res;
}

/** Interfaces in the root namespace that are not ours go back where the core runs, configured as before. */
function moveOut(rootNs: string, saved: SavedIface[], log: Log): string[] {
  const s = openSock(rootNs);
  const fd = openNsFd(null);
  const moved: string[] = [];
  try {
    const foreign = dumpLinks(s).filter((l) => l.name !== 'lo' && !(l.alias ?? '').startsWith('dune:') && l.kind !== 'openvswitch' && !/^(ovs-system|netmirage-br0)$/.test(l.name));
    for (const l of foreign) {
      s.call((w, seq) => setLink(w, seq, { index: l.index, up: false }), `down ${l.name}`);
      s.call((w, seq) => moveLinkMsg(w, seq, l.index, fd), `move ${l.name} back`);
      moved.push(l.name);
      log('info', `moved ${l.name} back out of ${rootNs}`);
    }
  } finally {
    closeSync(fd);
    s.close();
  }
  const back = saved.filter((n) => moved.includes(n.name));
  configureIface(null, back);
  for (const name of moved) if (!back.some((b) => b.name === name)) log('warning', `${name} came back without saved configuration (no state file): its addresses are gone`);
  return moved;
}

/** `-r init`: our rules, tables and the root address in the core's own namespace. */
function cleanInitRoot(state: CoreState, lab: string, res: DestroyResult): void {
  const s = openSock(null);
  try {
    // Only what the state says this network made: the namespace is the core's own.
    const tables = new Set(state.rootTables);
    for (const r of s.dump((w, seq, f) => getRuleDump(w, seq, f), 'rules').map(parseRule)) {
      if (tables.has(r.table) && state.rootRules.some((x) => x.priority === r.priority && x.src === r.src && x.iif === r.iif)) s.queue('rule', (w, seq) => ruleMsg(w, seq, r, true));
    }
    const mainRoutes = new Set((state.rootRoutes ?? []).map((r) => `${r.dst} ${r.via}`));
    for (const r of s.dump((w, seq, f) => getRouteDump(w, seq, f, 2), 'routes').map(parseTableRoute)) {
      if (tables.has(r.table) || (r.table === 254 && r.protocol === 0x44 && mainRoutes.has(`${r.dst} ${r.via}`))) s.queue('route', (w, seq) => tableRouteMsg(w, seq, r, true));
    }
    const lo = linkByName(s, 'lo').index;
    for (const a of state.rootAddrs) s.queue('addr', (w, seq) => addrMsg(w, seq, { ifindex: lo, cidr: a }, true));
    for (const l of dumpLinks(s).filter((x) => (x.alias ?? '').startsWith(`dune:${lab}:`))) s.queue('link', (w, seq) => setLink(w, seq, { index: l.index, up: false }));
    s.drain();
    s.takeFailures();
    for (const l of dumpLinks(s).filter((x) => (x.alias ?? '').startsWith(`dune:${lab}:`))) {
      try {
        s.call((w, seq) => delLink(w, seq, { index: l.index }), `delete ${l.name}`);
      } catch (e) {
        if (!(e instanceof NetlinkError && e.errno === 19)) res.errors.push(`delete ${l.name}: ${(e as Error).message}`);
      }
    }
    // Client loss rules on node-<i> live in the core's own nftables here.
    spawnSync('nft', ['delete', 'table', 'inet', `dune_${lab}`], { stdio: 'ignore' });
  } finally {
    s.close();
  }
}
