/**
 * netmirage-edge: an edge host's share of the virtual network (reference 4.2).
 *
 *   addresses (APPLICATIONS of VSUBNET, /len, no prefix route) ─► the vsubnet's main-table
 *   route removed if one is there ─► table T: VSUBNET and the other edges via COREIP ─►
 *   `lookup local` moved from pref 0 to OTHER (the new rule first: connectivity is never
 *   lost) ─► IN `to VSUBNET iif IFACE lookup local`, OUT `lookup T`
 *
 * Every change is an op of a small lab's plan (edgeOps), applied and journaled by the agent
 * in the host's namespace, so `--remove` (the lab's down, or the agent's rollback of a failed
 * add) restores exactly what was there, without the original arguments.
 */
import { statSync } from 'node:fs';
import {
  dumpLinks,
  getAddrDump,
  getRouteDump,
  getRuleDump,
  linkByName,
  listLabs,
  NetlinkError,
  NlSocket,
  parseAddrMsg,
  parseRule,
  parseTableRoute,
  labPlan,
  releaseOps,
  RT_TABLE_LOCAL,
  RT_TABLE_MAIN,
  ruleMsg,
  undoHostOps,
  type Rule,
} from '@dune/agent';
import { cidr, PLAN_FORMAT, type Op, type Plan, type SavedRoute, type WithdrawOp } from '@dune/compiler';
import { downLab, upLab, type HostEvent } from '@dune/transport';
import { DuneError } from '@dune/topology';
import { bitsFor } from './util.js';
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

/**
 * The edge's configuration is a small lab of the agent's, `netmirage-edge-<iface>` (with the
 * namespace's inode when the edge is not the host's own namespace: an edge played by a
 * namespace, as in tests, shares /run/dune with the others), journaled in /run/dune/ like
 * any lab: `--remove` is its down.
 */
export function edgeLab(iface: string): string {
  const ino = (p: string) => {
    try {
      return statSync(p).ino;
    } catch {
      return undefined;
    }
  };
  const own = ino('/proc/thread-self/ns/net');
  const init = ino('/proc/1/ns/net');
  const name = `netmirage-edge-${iface.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  return own === init || own === undefined ? name : `${name}-${own}`;
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

const sameRule = (a: Rule, b: Rule): boolean =>
  a.family === b.family && a.priority === b.priority && a.table === b.table && a.action === b.action && a.src === b.src && a.dst === b.dst && a.iif === b.iif && a.oif === b.oif;

/** What the edge finds on this host before it changes anything: read only. */
export interface EdgeHost {
  /** Main-table routes to the vsubnet through IFACE (removed while the edge is configured). */
  vsubnetRoutes: SavedRoute[];
  /** The `lookup local` rule at priority 0, when there is one (moved to OTHER). */
  local0?: Rule;
  /** A `lookup local` rule at OTHER already. */
  localOther: boolean;
}

function withdrawnRule(r: Rule): NonNullable<WithdrawOp['rule']> {
  const out: NonNullable<WithdrawOp['rule']> = { family: r.family, priority: r.priority, table: r.table };
  for (const k of ['src', 'dst', 'iif', 'oif'] as const) if (r[k] !== undefined) out[k] = r[k];
  if (r.protocol !== undefined) out.protocol = r.protocol;
  return out;
}

/**
 * The edge's ops, in the host's namespace (ns ""), in the order they are applied: the
 * addresses (/len, no prefix route), the vsubnet's main-table routes withdrawn, table T's
 * routes via COREIP, `lookup local` at OTHER then withdrawn from 0 (local delivery never
 * stops), the IN and OUT rules. The agent's down undoes them in reverse of what matters:
 * withdrawn rules and routes back first, then the edge's own rules, routes and addresses.
 */
export function edgeOps(a: EdgeArgs, ips: readonly string[], host: EdgeHost): Op[] {
  const vs = v4Prefix(a.vsubnet, 'VSUBNET');
  const vsNet = cidr.formatNetwork(vs);
  const ops: Op[] = ips.map((ip) => ({ op: 'addr', ns: '', dev: a.iface, cidr: `${ip}/${vs.len}`, noPrefixRoute: true }));
  // The kernel's connected route for the vsubnet (when some address made one) would deliver
  // app-to-app traffic locally instead of through the core.
  for (const r of host.vsubnetRoutes) ops.push({ op: 'withdraw', ns: '', route: { ...r, dev: a.iface } });
  const dsts = [vsNet, ...a.otherEdges.map((e) => cidr.formatNetwork(v4Prefix(e, '-e subnet')))].filter((d, i, all) => all.indexOf(d) === i);
  for (const dst of dsts) ops.push({ op: 'route', ns: '', table: a.tableId, dst, via: a.coreIp, dev: a.iface });
  if (host.local0 !== undefined) {
    if (!host.localOther) ops.push({ op: 'rule', ns: '', priority: a.ruleOther, table: RT_TABLE_LOCAL });
    ops.push({ op: 'withdraw', ns: '', rule: withdrawnRule(host.local0) });
  }
  ops.push({ op: 'rule', ns: '', priority: a.ruleIn, table: RT_TABLE_LOCAL, dst: vsNet, iif: a.iface }, { op: 'rule', ns: '', priority: a.ruleOut, table: a.tableId });
  return ops;
}

/** The edge's plan: one host (this one), no namespace, its ops. */
export function edgePlan(lab: string, ops: Op[]): Plan {
  return {
    format: PLAN_FORMAT,
    lab,
    nsPrefix: `dune.${lab}.`,
    source: { file: 'netmirage-edge', format: 'netmirage-edge', sha256: '' },
    nodes: [],
    links: [],
    hosts: [{ phynode: 'local', target: {}, nodes: [], ops }],
    stats: { addrsV4: ops.filter((o) => o.op === 'addr').length, routesV4: ops.filter((o) => o.op === 'route').length, rules: ops.filter((o) => o.op === 'rule').length },
  };
}

export interface EdgeResult {
  ips: string[];
  lab: string;
  ops: Op[];
}

/** Reads the host and refuses what would clash (an interface missing, an address or a rule priority taken). */
function readHost(a: EdgeArgs, ips: readonly string[]): EdgeHost {
  const s = NlSocket.open(null, 'edge');
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
    const vsNet = cidr.formatNetwork(v4Prefix(a.vsubnet, 'VSUBNET'));
    const vsubnetRoutes = s
      .dump((w, seq, f) => getRouteDump(w, seq, f, 2), 'routes')
      .map(parseTableRoute)
      .filter((r) => r.table === RT_TABLE_MAIN && r.dst === vsNet && r.oif === link.index)
      .map((r) => {
        const { oif: _oif, ...rest } = r;
        return rest;
      });
    const local0 = rules.find((r) => r.priority === 0 && r.action === 'table' && r.table === RT_TABLE_LOCAL && r.src === undefined && r.dst === undefined && r.iif === undefined);
    const localOther = rules.some((r) => r.priority === a.ruleOther && r.action === 'table' && r.table === RT_TABLE_LOCAL);
    return { vsubnetRoutes, localOther, ...(local0 !== undefined ? { local0 } : {}) };
  } catch (e) {
    throw e instanceof NetlinkError ? new DuneError('edge-failed', e.message, { hint: 'nothing was changed', cause: e }) : e;
  } finally {
    s.close();
  }
}

function onEvent(log: (m: string) => void): (e: HostEvent) => void {
  return (e) => {
    if (e.type === 'warning' || e.type === 'note') log(e.message);
  };
}

/** Configures the edge: its ops applied and journaled by the agent as the lab edgeLab(IFACE); a failure is rolled back by it. */
export async function edgeAdd(a: EdgeArgs, opts: { log?: (m: string) => void } = {}): Promise<EdgeResult> {
  validateEdgeArgs(a);
  const log = opts.log ?? (() => undefined);
  const lab = edgeLab(a.iface);
  if (listLabs().includes(lab)) {
    throw new DuneError('edge-configured', `${a.iface} is already configured by netmirage-edge (lab ${lab})`, { hint: `remove it first: netmirage-edge --remove ${a.iface}` });
  }
  const ips = appAddresses(a.vsubnet, a.applications, a.clients);
  const ops = edgeOps(a, ips, readHost(a, ips));
  log(`adding ${ips.length} addresses to ${a.iface} (lab ${lab})`);
  await upLab(edgePlan(lab, ops), { onEvent: onEvent(log) });
  return { ips, lab, ops };
}

/**
 * Restores the edge exactly: the agent's down of its lab (the withdrawn rule and route put
 * back, its own addresses, routes and rules deleted). Without a journal (an edge configured
 * by an older netmirage-edge), `args` gives the ops an add with them would have applied, and
 * the same undo runs over them.
 */
export async function edgeRemove(iface: string, opts: { args?: EdgeArgs; log?: (m: string) => void } = {}): Promise<{ lab: string; ops: Op[] }> {
  const lab = edgeLab(iface);
  const log = opts.log ?? (() => undefined);
  if (listLabs().includes(lab)) {
    const ops = labPlan(lab).hosts.flatMap((h) => h.ops);
    const warnings: string[] = [];
    await downLab({ lab, hosts: [{ phynode: 'local', target: {} }], nodes: {} }, {
      onEvent: (e) => {
        if (e.type === 'warning') warnings.push(e.message);
        onEvent(log)(e);
      },
    });
    if (warnings.length > 0) {
      throw new DuneError('edge-remove-incomplete', `could not undo everything on ${iface}:\n  ${warnings.join('\n  ')}`, { hint: 'fix the cause and put the rest back by hand (ip rule, ip route, ip addr)' });
    }
    return { lab, ops };
  }
  if (opts.args === undefined) {
    throw new DuneError('edge-not-configured', `no netmirage-edge state for ${iface} (no lab ${lab})`, { hint: 'give the original arguments to remove it from them, or it was never configured' });
  }
  const a = opts.args;
  validateEdgeArgs(a);
  const vs = v4Prefix(a.vsubnet, 'VSUBNET');
  const ops = edgeOps(a, appAddresses(a.vsubnet, a.applications, a.clients), { vsubnetRoutes: [], localOther: false, local0: { family: 'inet', priority: 0, table: RT_TABLE_LOCAL, action: 'table' } });
  // The older netmirage-edge made its rules without dune's protocol mark: deleted by what they select.
  const errors = [...(await releaseOps(ops)), ...undoHostOps(ops)];
  const unmarked = ops.filter((o): o is Extract<Op, { op: 'rule' }> => o.op === 'rule');
  errors.push(...deleteRules(unmarked.map((r) => ({ family: 'inet', priority: r.priority, table: r.table, action: 'table', ...(r.dst !== undefined ? { dst: r.dst } : {}), ...(r.iif !== undefined ? { iif: r.iif } : {}) }))));
  if (errors.length > 0) {
    throw new DuneError('edge-remove-incomplete', `could not undo everything on ${iface} (${vs.len}):\n  ${errors.join('\n  ')}`, { hint: 'fix the cause and run --remove again' });
  }
  return { lab, ops };
}

/** Deletes rules that are there (selected by what they match, whoever made them). */
function deleteRules(rules: Rule[]): string[] {
  const s = NlSocket.open(null, 'edge');
  const errors: string[] = [];
  try {
    const there = s.dump((w, seq, f) => getRuleDump(w, seq, f), 'rules').map(parseRule);
    for (const r of rules) {
      const found = there.find((x) => sameRule(x, r));
      if (found === undefined) continue;
      try {
        s.call((w, seq) => ruleMsg(w, seq, found, true), `delete rule pref ${r.priority}`);
      } catch (e) {
        if (!(e instanceof NetlinkError && e.errno === 2)) errors.push(`delete rule pref ${r.priority}: ${(e as Error).message}`);
      }
    }
  } finally {
    s.close();
  }
  return errors;
}
