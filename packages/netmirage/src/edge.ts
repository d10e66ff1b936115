/**
 * netmirage-edge: an edge host's share of the virtual network (reference 4.2).
 *
 *   addresses (APPLICATIONS of VSUBNET, /len, no prefix route) ─► the vsubnet's main-table
 *   route removed if one is there ─► table T: VSUBNET and the other edges via COREIP ─►
 *   `lookup local` moved from pref 0 to OTHER (the new rule first: connectivity is never
 *   lost) ─► IN `to VSUBNET iif IFACE lookup local`, OUT `lookup T`
 *
 * Every change is written to /run/netmirage-edge/<iface>.json before it is made, so
 * `--remove` (or the automatic undo of a failed add) restores exactly what was there,
 * without the original arguments.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addrMsg,
  dumpLinks,
  getAddrDump,
  getRouteDump,
  getRuleDump,
  linkByName,
  NetlinkError,
  NlSocket,
  ourRoute,
  parseAddrMsg,
  parseRule,
  parseTableRoute,
  RT_TABLE_LOCAL,
  RT_TABLE_MAIN,
  ruleMsg,
  tableRouteMsg,
  type Rule,
  type TableRoute,
} from '@dune/agent';
import { cidr } from '@dune/compiler';
import { DuneError } from '@dune/topology';
import { bitsFor, removeIfEmpty } from './util.js';

export const EDGE_STATE_DIR = '/run/netmirage-edge';
/** More addresses than this from `max` is surely a mistake (a /8 would be 16 M addresses). */
export const MAX_APPLICATIONS = 65_536;

export interface EdgeArgs {
  iface: string;
  coreIp: string;
  vsubnet: string;
  applications: number | 'max';
  otherEdges: string[];
  /** Clients at the core for this edge: addresses round-robin over that many sub-subnets. */
  clients?: number;
  ruleIn: number;
  ruleOut: number;
  ruleOther: number;
  tableId: number;
}

export const EDGE_DEFAULTS = { ruleIn: 5, ruleOut: 10, ruleOther: 15, tableId: 128 } as const;

export interface EdgeState {
  version: 1;
  args: EdgeArgs;
  phase: 'applying' | 'up';
  /** Addresses added to IFACE (CIDR). */
  addrs: string[];
  routesAdded: TableRoute[];
  routesDeleted: TableRoute[];
  rulesAdded: Rule[];
  rulesDeleted: Rule[];
}

/**
 * `<dir>/<iface>.json` in the host's own network namespace; in any other (an edge played by
 * a namespace, as in tests) the namespace's inode is added, so edges sharing /run do not
 * share state.
 */
export function statePath(iface: string, dir = EDGE_STATE_DIR): string {
  const ino = (p: string) => {
    try {
      return statSync(p).ino;
    } catch {
      return undefined;
    }
  };
  const own = ino('/proc/thread-self/ns/net');
  const init = ino('/proc/1/ns/net');
  return join(dir, own === init || own === undefined ? `${iface}.json` : `${iface}@netns-${own}.json`);
}

function v4Prefix(text: string, what: string): cidr.Prefix {
  const p = cidr.parsePrefix(text);
  if (typeof p === 'string' || p.family !== 4 || !text.includes('/')) {
    throw new DuneError('bad-argument', `${what} "${text}" is not an IPv4 subnet`, { hint: 'write it as a CIDR, e.g. 10.0.0.0/9' });
  }
  return { ...p, addr: cidr.rangeOf(p)[0] };
}

/**
 * The applications' addresses: without `clients`, sequential from the vsubnet's first host
 * address; with it, round-robin over `clients` equal sub-subnets (the core's client subnets),
 * so consecutive applications land on different client nodes. Each sub-subnet's first and
 * last addresses are skipped.
 */
export function appAddresses(vsubnet: string, applications: number | 'max', clients?: number): string[] {
  const p = v4Prefix(vsubnet, 'VSUBNET');
  const parts = clients === undefined || clients <= 1 ? 1 : clients;
  const len = p.len + bitsFor(parts);
  if (len > 30) throw new DuneError('vsubnet-too-small', `VSUBNET ${vsubnet} is too small to split among ${parts} clients`, { hint: 'use a larger vsubnet or fewer clients' });
  const size = cidr.blockSize(4, len);
  const perPart = Number(size) - 2;
  const capacity = perPart * parts;
  const n = applications === 'max' ? capacity : applications;
  if (n > capacity) {
    throw new DuneError('too-many-applications', `${n} applications do not fit in ${vsubnet}${parts > 1 ? ` split among ${parts} clients` : ''} (room for ${capacity})`, { hint: 'use fewer applications or a larger vsubnet' });
  }
  if (n > MAX_APPLICATIONS) {
    throw new DuneError('too-many-applications', `${n} applications (${applications === 'max' ? 'max of ' + vsubnet : 'as asked'}) is more than ${MAX_APPLICATIONS} addresses on one interface`, { hint: 'give APPLICATIONS as a number' });
  }
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const part = parts === 1 ? 0 : i % parts;
    const k = parts === 1 ? i : Math.floor(i / parts);
    out.push(cidr.formatV4(p.addr + BigInt(part) * size + 1n + BigInt(k)));
  }
  return out;
}

export function validateEdgeArgs(a: EdgeArgs): void {
  v4Prefix(a.vsubnet, 'VSUBNET');
  const core = cidr.parseAddr(a.coreIp);
  if (core === undefined || core.family !== 4) throw new DuneError('bad-argument', `COREIP "${a.coreIp}" is not an IPv4 address`, { hint: 'the core\'s address on the edge-facing network' });
  for (const e of a.otherEdges) v4Prefix(e, '-e/--other-edges subnet');
  if (!(a.ruleIn < a.ruleOut && a.ruleOut < a.ruleOther)) {
    throw new DuneError('bad-argument', `rule priorities must satisfy in < out < other, got ${a.ruleIn}, ${a.ruleOut}, ${a.ruleOther}`, { hint: 'e.g. --rule-in 5 --rule-out 10 --rule-other 15' });
  }
  if (a.ruleIn < 1) throw new DuneError('bad-argument', '--rule-in must be at least 1: priority 0 is where the local rule is now', { hint: 'the default is 5' });
  if (!Number.isInteger(a.tableId) || a.tableId < 1 || a.tableId > 0xffffffff || [RT_TABLE_LOCAL, RT_TABLE_MAIN, 253].includes(a.tableId)) {
    throw new DuneError('bad-argument', `--table-id ${a.tableId} is not a free routing table`, { hint: 'any id from 1 to 4294967295 except 253 (default), 254 (main) and 255 (local); the default is 128' });
  }
  if (a.clients !== undefined && (!Number.isInteger(a.clients) || a.clients < 1)) throw new DuneError('bad-argument', `-c/--clients ${a.clients} is not a positive number`, { hint: 'the number of core client nodes for this edge' });
}

function writeState(s: EdgeState, dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const p = statePath(s.args.iface, dir);
  writeFileSync(`${p}.tmp`, JSON.stringify(s, null, 2) + '\n');
  renameSync(`${p}.tmp`, p);
}

export function readEdgeState(iface: string, dir = EDGE_STATE_DIR): EdgeState | undefined {
  const p = statePath(iface, dir);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as EdgeState;
}

/** One request, waited for. */
function call(s: NlSocket, what: string, build: Parameters<NlSocket['call']>[0]): void {
  s.call(build, what);
}

const sameRule = (a: Rule, b: Rule): boolean =>
  a.family === b.family && a.priority === b.priority && a.table === b.table && a.action === b.action && a.src === b.src && a.dst === b.dst && a.iif === b.iif && a.oif === b.oif;

export interface EdgeResult {
  ips: string[];
  state: EdgeState;
}

export function edgeAdd(a: EdgeArgs, opts: { stateDir?: string; log?: (m: string) => void } = {}): EdgeResult {
  validateEdgeArgs(a);
  const dir = opts.stateDir ?? EDGE_STATE_DIR;
  const log = opts.log ?? (() => undefined);
  if (readEdgeState(a.iface, dir) !== undefined) {
    throw new DuneError('edge-configured', `${a.iface} is already configured by netmirage-edge (${statePath(a.iface, dir)})`, { hint: `remove it first: netmirage-edge --remove ${a.iface}` });
  }
  const ips = appAddresses(a.vsubnet, a.applications, a.clients);
  const vs = v4Prefix(a.vsubnet, 'VSUBNET');
  const len = vs.len;
  const s = NlSocket.open(null, 'edge');
  const state: EdgeState = { version: 1, args: a, phase: 'applying', addrs: [], routesAdded: [], routesDeleted: [], rulesAdded: [], rulesDeleted: [] };
  try {
    const link = linkByName(s, a.iface);
    const links = new Map(dumpLinks(s).map((l) => [l.index, l.name]));
    const present = new Map(s.dump((w, seq, f) => getAddrDump(w, seq, f), 'addresses').map(parseAddrMsg).filter((x) => x.family === 'inet').map((x) => [x.cidr.split('/')[0] as string, x.ifindex]));
    const taken = ips.filter((ip) => present.has(ip));
    if (taken.length > 0) {
      throw new DuneError('address-in-use', `${taken.length} of the application addresses are already on this host (${taken.slice(0, 5).map((ip) => `${ip} on ${links.get(present.get(ip) ?? 0) ?? '?'}`).join(', ')})`, { hint: 'choose another vsubnet, or remove the old configuration first' });
    }
    const rules = s.dump((w, seq, f) => getRuleDump(w, seq, f), 'rules').map(parseRule).filter((r) => r.family === 'inet');
    for (const p of [a.ruleIn, a.ruleOut, a.ruleOther]) {
      const clash = rules.find((r) => r.priority === p && !(p === a.ruleOther && r.action === 'table' && r.table === RT_TABLE_LOCAL));
      if (clash) throw new DuneError('rule-in-use', `a policy rule already has priority ${p} (lookup ${clash.table})`, { hint: 'choose other priorities with --rule-in/--rule-out/--rule-other' });
    }
    writeState(state, dir);

    log(`adding ${ips.length} addresses to ${a.iface}`);
    for (const ip of ips) {
      const c = `${ip}/${len}`;
      state.addrs.push(c);
      writeState(state, dir);
      call(s, `add address ${c} to ${a.iface}`, (w, seq) => addrMsg(w, seq, { ifindex: link.index, cidr: c, noPrefixRoute: true }));
    }

    // The kernel's connected route for the vsubnet (when some address made one) would deliver
    // app-to-app traffic locally instead of through the core.
    const routes = s.dump((w, seq, f) => getRouteDump(w, seq, f, 2), 'routes').map(parseTableRoute);
    const vsNet = cidr.formatNetwork(vs);
    for (const r of routes.filter((r) => r.table === RT_TABLE_MAIN && r.dst === vsNet && r.oif === link.index)) {
      state.routesDeleted.push(r);
      writeState(state, dir);
      call(s, `delete route ${r.dst} dev ${a.iface}`, (w, seq) => tableRouteMsg(w, seq, r, true));
    }

    const dsts = [vsNet, ...a.otherEdges.map((e) => cidr.formatNetwork(v4Prefix(e, '-e subnet')))].filter((d, i, all) => all.indexOf(d) === i);
    for (const dst of dsts) {
      const r = ourRoute(a.tableId, dst, link.index, a.coreIp);
      state.routesAdded.push(r);
      writeState(state, dir);
      call(s, `add route ${dst} via ${a.coreIp} table ${a.tableId}`, (w, seq) => tableRouteMsg(w, seq, r));
    }

    // Move `lookup local` from 0 to OTHER: add the new one before deleting the old, so local
    // delivery never stops.
    const local0 = rules.find((r) => r.priority === 0 && r.action === 'table' && r.table === RT_TABLE_LOCAL && r.src === undefined && r.dst === undefined && r.iif === undefined);
    const localOther = rules.find((r) => r.priority === a.ruleOther && r.action === 'table' && r.table === RT_TABLE_LOCAL);
    if (local0 !== undefined) {
      if (localOther === undefined) {
        const moved: Rule = { family: 'inet', priority: a.ruleOther, table: RT_TABLE_LOCAL, action: 'table' };
        state.rulesAdded.push(moved);
        writeState(state, dir);
        call(s, `add rule pref ${a.ruleOther} lookup local`, (w, seq) => ruleMsg(w, seq, moved));
      }
      state.rulesDeleted.push(local0);
      writeState(state, dir);
      call(s, 'delete rule pref 0 lookup local', (w, seq) => ruleMsg(w, seq, local0, true));
    }
    const rin: Rule = { family: 'inet', priority: a.ruleIn, table: RT_TABLE_LOCAL, action: 'table', dst: vsNet, iif: a.iface };
    const rout: Rule = { family: 'inet', priority: a.ruleOut, table: a.tableId, action: 'table' };
    for (const r of [rin, rout]) {
      state.rulesAdded.push(r);
      writeState(state, dir);
      call(s, `add rule pref ${r.priority}`, (w, seq) => ruleMsg(w, seq, r));
    }
    state.phase = 'up';
    writeState(state, dir);
    return { ips, state };
  } catch (e) {
    s.close();
    if (state.addrs.length + state.routesAdded.length + state.routesDeleted.length + state.rulesAdded.length + state.rulesDeleted.length > 0 || existsSync(statePath(a.iface, dir))) {
      log('add failed; undoing what was done');
      try {
        edgeRemove(a.iface, { stateDir: dir });
      } catch (u) {
        throw new DuneError('edge-undo-failed', `${(e as Error).message}; and undoing it failed too: ${(u as Error).message}`, { hint: `state kept in ${statePath(a.iface, dir)}; retry netmirage-edge --remove ${a.iface}`, cause: e });
      }
    }
    throw e instanceof NetlinkError ? new DuneError('edge-failed', e.message, { hint: 'nothing was left changed', cause: e }) : e;
  } finally {
    s.close();
  }
}

/** Undoes what the state file says was done, in reverse, tolerating what is already gone. */
export function edgeRemove(iface: string, opts: { stateDir?: string; args?: EdgeArgs; log?: (m: string) => void } = {}): EdgeState {
  const dir = opts.stateDir ?? EDGE_STATE_DIR;
  const state = readEdgeState(iface, dir) ?? (opts.args ? reconstruct(opts.args) : undefined);
  if (state === undefined) {
    throw new DuneError('edge-not-configured', `no netmirage-edge state for ${iface} (${statePath(iface, dir)})`, { hint: 'give the original arguments to remove it from them, or it was never configured' });
  }
  const s = NlSocket.open(null, 'edge');
  const errors: string[] = [];
  const tolerate = (what: string, fn: () => void, gone: number[]) => {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof NetlinkError && gone.includes(e.errno))) errors.push(`${what}: ${(e as Error).message}`);
    }
  };
  try {
    // The old local rule first, then the rest: local delivery never stops.
    const rules = s.dump((w, seq, f) => getRuleDump(w, seq, f), 'rules').map(parseRule);
    for (const r of state.rulesDeleted) {
      if (rules.some((x) => sameRule(x, r))) continue;
      tolerate(`restore rule pref ${r.priority}`, () => call(s, 'add rule', (w, seq) => ruleMsg(w, seq, r)), [17]);
    }
    for (const r of [...state.rulesAdded].reverse()) tolerate(`delete rule pref ${r.priority}`, () => call(s, 'delete rule', (w, seq) => ruleMsg(w, seq, r, true)), [2]);
    for (const r of [...state.routesAdded].reverse()) tolerate(`delete route ${r.dst} table ${r.table}`, () => call(s, 'delete route', (w, seq) => tableRouteMsg(w, seq, r, true)), [3, 2]);
    let ifindex: number | undefined;
    try {
      ifindex = linkByName(s, iface).index;
    } catch {
      ifindex = undefined;
    }
    if (ifindex !== undefined) {
      for (const c of [...state.addrs].reverse()) tolerate(`delete address ${c}`, () => call(s, 'delete address', (w, seq) => addrMsg(w, seq, { ifindex: ifindex as number, cidr: c }, true)), [99, 2]);
      for (const r of state.routesDeleted) tolerate(`restore route ${r.dst}`, () => call(s, 'add route', (w, seq) => tableRouteMsg(w, seq, { ...r, oif: ifindex as number })), [17]);
    } else if (state.addrs.length > 0) errors.push(`interface ${iface} is gone: its addresses went with it`);
  } finally {
    s.close();
  }
  if (errors.length > 0) {
    throw new DuneError('edge-remove-incomplete', `could not undo everything on ${iface}:\n  ${errors.join('\n  ')}`, { hint: `the state is kept in ${statePath(iface, dir)}; fix the cause and run --remove again` });
  }
  rmSync(statePath(iface, dir), { force: true });
  removeIfEmpty(dir);
  return state;
}

/** What an add with these arguments would have done, for a --remove without saved state. */
function reconstruct(a: EdgeArgs): EdgeState {
  validateEdgeArgs(a);
  const vs = v4Prefix(a.vsubnet, 'VSUBNET');
  const vsNet = cidr.formatNetwork(vs);
  const dsts = [vsNet, ...a.otherEdges.map((e) => cidr.formatNetwork(v4Prefix(e, '-e subnet')))].filter((d, i, all) => all.indexOf(d) === i);
  return {
    version: 1,
    args: a,
    phase: 'up',
    addrs: appAddresses(a.vsubnet, a.applications, a.clients).map((ip) => `${ip}/${vs.len}`),
    routesAdded: dsts.map((d) => {
      const { oif: _oif, ...r } = ourRoute(a.tableId, d, 0, a.coreIp);
      return r;
    }),
    routesDeleted: [],
    rulesAdded: [
      { family: 'inet', priority: a.ruleOther, table: RT_TABLE_LOCAL, action: 'table' },
      { family: 'inet', priority: a.ruleIn, table: RT_TABLE_LOCAL, action: 'table', dst: vsNet, iif: a.iface },
      { family: 'inet', priority: a.ruleOut, table: a.tableId, action: 'table' },
    ],
    rulesDeleted: [{ family: 'inet', priority: 0, table: RT_TABLE_LOCAL, action: 'table' }],
  };
}
