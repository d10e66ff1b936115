/**
 * The plan: per phynode, an ordered list of plain-JSON kernel operations. It is the
 * contract between the controller and the agents, so it carries a format version and
 * contains nothing but JSON values. The same input gives byte-identical output
 * (see `serializePlan`).
 *
 * Naming rules the agent relies on:
 * - `ns` is a namespace name as it appears in `ip netns` (`/run/netns/<ns>`); `null` means
 *   the host's own namespace (used for underlay-side objects only).
 * - Every interface op carries `alias`, written to IFLA_IFALIAS: `dune:<lab>:<node-key>:<iface>`.
 *   It is how teardown recognises the lab's objects without the journal.
 */
import type { Impairment } from '@dune/topology';
import { blockSize, FAMILY_BITS, formatV6, parseAddr } from './cidr.js';

export const PLAN_FORMAT = 'dune-plan/1' as const;

export interface NetnsOp {
  op: 'netns';
  ns: string;
  node: string;
  /** Written as the alias of the namespace's `lo`: marks the namespace as the lab's. */
  alias: string;
}

export interface VethOp {
  op: 'veth';
  ns: string;
  name: string;
  peerNs: string;
  peerName: string;
  mtu?: number;
  mac?: string;
  peerMac?: string;
  alias: string;
  peerAlias: string;
}

export interface VxlanOp {
  op: 'vxlan';
  /** Namespace the device ends up in (the node's). Its UDP socket stays in the host namespace. */
  ns: string;
  name: string;
  vni: number;
  /** The compiled VNI, when `up` allocated another (vni.ts: another lab holds it on a host). */
  vniRequest?: number;
  local: string;
  remote: string;
  port: number;
  /** Underlay device in the host namespace, if named. */
  underlayDev?: string;
  mtu: number;
  mac?: string;
  alias: string;
}

/** A Linux bridge, always with STP off and forward delay 0 (nemu's Switch): ports forward at once. */
export interface BridgeOp {
  op: 'bridge';
  ns: string;
  name: string;
  alias: string;
  mtu?: number;
  /** IFLA_BR_AGEING_TIME in centiseconds; 0 forgets every MAC at once, so the bridge floods (a hub). Absent: the kernel's 300 s. */
  ageingTimeCs?: number;
}

/** Attach `dev` (in `ns`) to bridge `master` (same namespace). */
export interface EnslaveOp {
  op: 'enslave';
  ns: string;
  dev: string;
  master: string;
}

export interface AddrOp {
  op: 'addr';
  ns: string;
  dev: string;
  /** Address with prefix length: `10.0.0.1/31`, `fd00::1/127`. */
  cidr: string;
  /** No prefix route for it (IFA_F_NOPREFIXROUTE: NetMirage's edge addresses). */
  noPrefixRoute?: true;
}

export interface LinkUpOp {
  op: 'up';
  ns: string;
  dev: string;
}

export interface RouteOp {
  op: 'route';
  ns: string;
  /** Destination prefix; `default` for the default route. */
  dst: string;
  via?: string;
  dev: string;
  metric?: number;
  /** Routing table (absent: main). */
  table?: number;
  /** The gateway is on the link whatever its address (RTNH_F_ONLINK). */
  onlink?: boolean;
  /**
   * Preferred source address (RTA_PREFSRC) for traffic the node itself sends this way: its
   * loopback. Link subnets are not routed beyond their link, so without it a reply to the
   * interface address the kernel would pick could not find its way back.
   */
  src?: string;
}

/**
 * Static routes of a node through one next hop: `dst` is every destination prefix routed out
 * of `dev` via `via` (with `src`, as RouteOp's). The compiler's shortest-path routes are one
 * of these per node, next hop and family, not an op per route (Kdl routed to every node:
 * 1.1 M routes in 3,700 ops). The agent treats each destination as a RouteOp (`expandRoutes`).
 *
 * An entry of `dst` is one prefix (`10.0.0.7/32`) or a run of consecutive prefixes of one
 * length, first and last address (`10.0.0.2-10.0.0.29/32`: 28 host routes): nodes' addresses
 * are allocated in order, so a next hop's destinations come in long runs (a 30×30 grid: 40 per
 * run, its route tables 28 MB as one string per prefix, under 1 MB as runs).
 */
export interface RoutesOp {
  op: 'routes';
  ns: string;
  dev: string;
  via: string;
  src?: string;
  dst: string[];
}

/** The routes of a `routes` op, one RouteOp each, in its order (runs expanded in address order). */
export function expandRoutes(op: RoutesOp): RouteOp[] {
  const out: RouteOp[] = [];
  for (const entry of op.dst) {
    for (const dst of entry.includes('-') ? expandPrefixRun(entry) : [entry]) {
      out.push(op.src !== undefined ? { op: 'route', ns: op.ns, dst, via: op.via, dev: op.dev, src: op.src } : { op: 'route', ns: op.ns, dst, via: op.via, dev: op.dev });
    }
  }
  return out;
}

/** How many routes a `routes` op holds (its runs counted by their length). */
export function countRoutes(op: RoutesOp): number {
  let n = 0;
  for (const entry of op.dst) n += entry.includes('-') ? prefixRun(entry).count : 1;
  return n;
}

/** A run `FIRST-LAST/LEN` of `dst`: first and last network address, length, family, how many prefixes. */
function prefixRun(entry: string): { first: bigint; len: number; family: 4 | 6; count: number } {
  const m = /^([^-/]+)-([^-/]+)\/(\d{1,3})$/.exec(entry);
  const a = m ? parseAddr(m[1] as string) : undefined;
  const b = m ? parseAddr(m[2] as string) : undefined;
  const len = Number(m?.[3]);
  if (!m || a === undefined || b === undefined || a.family !== b.family || len > FAMILY_BITS[a.family]) {
    throw new Error(`a route table entry "${entry}" is neither a prefix nor a run FIRST-LAST/LEN`);
  }
  const step = blockSize(a.family, len);
  if (b.addr < a.addr || (b.addr - a.addr) % step !== 0n) {
    throw new Error(`the route run "${entry}" does not go up in steps of one /${len}`);
  }
  return { first: a.addr, len, family: a.family, count: Number((b.addr - a.addr) / step) + 1 };
}

/**
 * The prefixes of a run, formatted as the compiler formats a destination (so that a route
 * from a run and the same route written alone are one op to convergence). Host routes, the
 * bulk of any table, are formatted without big-integer work per route.
 */
export function expandPrefixRun(entry: string): string[] {
  const { first, len, family, count } = prefixRun(entry);
  const out = new Array<string>(count);
  if (family === 4) {
    const step = 2 ** (32 - len);
    let v = Number(first);
    for (let i = 0; i < count; i++, v += step) out[i] = `${Math.floor(v / 16777216)}.${Math.floor(v / 65536) % 256}.${Math.floor(v / 256) % 256}.${v % 256}/${len}`;
    return out;
  }
  const step = blockSize(6, len);
  if (len !== 128) {
    for (let i = 0; i < count; i++) out[i] = `${formatV6(first + BigInt(i) * step)}/${len}`;
    return out;
  }
  // /128: only the last group changes between two 65,536-aligned blocks; with it non-zero,
  // the text is the block's text for a last group of 1 with that group's hex in place of "1".
  let head = '';
  let block = -1n;
  let v = first;
  for (let i = 0; i < count; i++, v += 1n) {
    const low = Number(v & 0xffffn);
    if (low === 0) {
      out[i] = `${formatV6(v)}/128`;
      continue;
    }
    const b = v >> 16n;
    if (b !== block) {
      block = b;
      head = formatV6((b << 16n) | 1n).slice(0, -1);
    }
    out[i] = `${head}${low.toString(16)}/128`;
  }
  return out;
}

/**
 * A route table's `dst` from its prefixes in order: each run of consecutive prefixes of one
 * length as `FIRST-LAST/LEN`. `next(p)` is the prefix right after p (same length), or
 * undefined; the compiler passes one computed once per destination.
 */
export function packPrefixRuns(prefixes: readonly string[], next: (p: string) => string | undefined): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < prefixes.length) {
    const start = prefixes[i] as string;
    let j = i;
    while (j + 1 < prefixes.length && next(prefixes[j] as string) === prefixes[j + 1]) j++;
    if (j === i) out.push(start);
    else {
      const last = prefixes[j] as string;
      out.push(`${start.slice(0, start.indexOf('/'))}-${last}`);
    }
    i = j + 1;
  }
  return out;
}

/** `ops` with every `routes` op replaced by its RouteOps, in place of it (the same array when there is none). */
export function expandRouteTables(ops: Op[]): Op[] {
  if (!ops.some((o) => o.op === 'routes')) return ops;
  const out: Op[] = [];
  for (const o of ops) {
    if (o.op === 'routes') for (const r of expandRoutes(o)) out.push(r);
    else out.push(o);
  }
  return out;
}

/** A policy rule: `ip rule add priority P [from SRC] [to DST] [iif DEV] lookup TABLE`. */
export interface RuleOp {
  op: 'rule';
  ns: string;
  priority: number;
  table: number;
  src?: string;
  dst?: string;
  iif?: string;
}

/** A route of an adopted interface, as it was before (any table, type, scope, protocol). */
export interface SavedRoute {
  family: 'inet' | 'inet6';
  table: number;
  dst: string;
  via?: string;
  type: number;
  scope: number;
  protocol: number;
  src?: string;
  metric?: number;
  onlink?: boolean;
  tos?: number;
}

/**
 * An interface of the host's namespace (NetMirage's edge-facing NIC) moved into `ns`, right
 * after the namespaces exist (so it keeps its ifindex), with its IPv4 addresses, state and
 * routes put back there. `saved` is what it had: the agent's down moves it back and restores
 * exactly that before the namespace goes (a namespace deleted with a veth inside destroys it).
 */
export interface AdoptOp {
  op: 'adopt';
  ns: string;
  dev: string;
  /** Its name inside `ns` (a `nic` brick's `name`); absent: `dev`. Down gives it back `dev`. */
  name?: string;
  /** Moved in bare: none of its addresses and routes put back inside (a bridge's port: a `nic` brick). */
  bare?: boolean;
  /** The node it is a port of (a `nic` brick): its frames counted under it in `dune status`. */
  node?: string;
  /**
   * What it had. Absent in a compiled plan (a `nic` brick: the compiler cannot see the host):
   * the agent's `up` reads it from the host before anything is built and journals the plan
   * with it, so a down after a kill -9 still puts it back.
   */
  saved?: { mtu: number; up: boolean; addrs: string[]; routes: SavedRoute[] };
}

/**
 * A VXLAN device joining a lab segment to a VXLAN network outside the lab (a `vtep` brick):
 * created from the host namespace (its UDP socket and underlay stay there), moved into the
 * brick's, with MAC learning on (the fabric's MACs are learnt, not known) and the VNI as
 * given (never reallocated: the fabric fixes it). `remote` is a unicast peer or a multicast
 * group (which needs `underlayDev`).
 */
export interface VtepOp {
  op: 'vtep';
  ns: string;
  /** The brick (for status and pictures). */
  node: string;
  name: string;
  vni: number;
  remote: string;
  local?: string;
  port: number;
  underlayDev?: string;
  ttl?: number;
  mtu?: number;
  alias: string;
}

/**
 * A persistent TAP device in `ns` (a `tap` or `vhost` brick), for a VM or any program that
 * opens /dev/net/tun: made with IFF_TAP|IFF_NO_PI (and IFF_VNET_HDR for vhost-net), owned by
 * `owner`/`group` when given, enslaved to `master` and brought up.
 */
export interface TapOp {
  op: 'tap';
  ns: string;
  /** The brick (for status and pictures). */
  node: string;
  name: string;
  alias: string;
  vnetHdr: boolean;
  multiQueue: boolean;
  owner?: string;
  group?: string;
  mtu?: number;
  master?: string;
}

/**
 * A private Open vSwitch (NetMirage's OVS root switch): its own ovsdb-server and
 * ovs-vswitchd, both run inside `ns` with their database, sockets, pids and logs under
 * `dir` (never the system's instance), one bridge on the userspace datapath with fixed port
 * numbers and a flow table that starts empty (fail-mode secure). In `flows`, `{mac:DEV}` is
 * the MAC of device DEV of `ns` and `{mac:IP}` the MAC of neighbour IP, learnt by ARP through
 * the device `learn` names for it (`{machex:…}`: the same as 0x and 12 hex digits): both
 * known only on the host, when the op is applied.
 */
export interface OvsOp {
  op: 'ovs';
  ns: string;
  dir: string;
  /** The ovsdb schema the database is created from. */
  schema: string;
  bridge: string;
  datapath: 'netdev';
  ports: { dev: string; ofport: number }[];
  /** Neighbours whose MAC the flows use, and the device each answers on. */
  learn: { ip: string; dev: string }[];
  flows: string[];
}

/**
 * A rule or a route that was there before the lab, taken away while the lab runs and put
 * back exactly (as read) when it goes: NetMirage's edge moves `lookup local` from priority 0
 * and drops the main table's route to its vsubnet.
 */
export interface WithdrawOp {
  op: 'withdraw';
  ns: string;
  rule?: { family: 'inet' | 'inet6'; priority: number; table: number; src?: string; dst?: string; iif?: string; oif?: string; protocol?: number };
  route?: SavedRoute & { dev: string };
}

export interface SysctlOp {
  op: 'sysctl';
  ns: string;
  /** Dotted key: `net.ipv4.ip_forward`. */
  key: string;
  value: string;
}

/** Impairment on the egress of `dev`. The agent picks the backend (netem, htb, nftables, userspace). */
export interface ImpairOp {
  op: 'impair';
  ns: string;
  dev: string;
  /** The link and direction, for status and `dune set`: `<linkIndex>:a` or `<linkIndex>:b`. */
  link: string;
  impairment: Impairment;
  /** Interface MTU, to size buffers and bursts. */
  mtu: number;
}

export interface FileOp {
  op: 'file';
  /** The node the file is for; "" for a phynode's own binds (`[infrastructure.nodes.X] binds`). */
  node: string;
  /** Absolute path on the phynode. */
  path: string;
  /**
   * File content, base64 (templates are rendered by the compiler; binds are read by the CLI).
   * Absent when `blob` names it instead.
   */
  contentBase64?: string;
  /**
   * The content is `plan.blobs[blob]` (base64): a text many nodes share (the hosts file, which
   * itself lists every node) is in the plan once, not once per node. The key is a digest of
   * the content, so a changed text is a changed op.
   */
  blob?: string;
  mode: number;
}

/** A file op's content, wherever the plan keeps it. */
export function fileContentBase64(plan: Pick<Plan, 'blobs'>, op: FileOp): string {
  if (op.blob === undefined) return op.contentBase64 ?? '';
  const b = plan.blobs?.[op.blob];
  if (b === undefined) throw new Error(`plan has no blob ${op.blob} for ${op.path}`);
  return b;
}

export interface ExecOp {
  op: 'exec';
  ns: string;
  node: string;
  argv: string[];
  env?: Record<string, string>;
}

export interface ProcessOp {
  op: 'process';
  ns: string;
  node: string;
  /** Unique within the lab: `<node-key>.<index>`. */
  name: string;
  argv: string[];
  env: Record<string, string>;
  /** CPU affinity; empty = no pinning. */
  cpus: number[];
  postUp: string[][];
  preDown: string[][];
  down?: string[];
  /** A routing daemon the agent can ask for its state (and waits on at `up` to converge). */
  control?: { kind: 'bird'; socket: string };
}

/**
 * One nftables transaction in a node's namespace (a brick's filters, kinds/nodes): the tables
 * it names are created, or replaced whole, atomically by one `nft -f`. A later nft op of the
 * same node (a live change) replaces them the same way.
 */
export interface NftOp {
  op: 'nft';
  ns: string;
  node: string;
  /** The node kind whose filters these are (`diode`, `firewall`, ...): for status and pictures. */
  kind: string;
  /** `family name` of every table the script defines: `bridge dune_brick`. */
  tables: string[];
  /** The tables' definitions, in nft's syntax. */
  script: string;
  /** Named counters shown by `dune status`, in order: which table, which counter, what it counts. */
  counters: NftCounter[];
}

export interface NftCounter {
  /** `family name` of its table. */
  table: string;
  name: string;
  label: string;
}

export type Op =
  | NetnsOp
  | VethOp
  | VxlanOp
  | BridgeOp
  | EnslaveOp
  | AddrOp
  | LinkUpOp
  | RouteOp
  | RoutesOp
  | SysctlOp
  | RuleOp
  | AdoptOp
  | OvsOp
  | WithdrawOp
  | VtepOp
  | TapOp
  | ImpairOp
  | NftOp
  | FileOp
  | ExecOp
  | ProcessOp;

export type OpKind = Op['op'];

export interface HostTarget {
  /** Absent: this machine. */
  host?: string;
  port?: number;
  user?: string;
  identity?: string;
  underlay?: string;
}

export interface HostPlan {
  phynode: string;
  target: HostTarget;
  /** Nodes placed here, with the cores each was given. */
  nodes: { node: string; ns: string; cpus: number[] }[];
  ops: Op[];
}

/** Per link, where it ended up: for status and `dune set`. */
export interface LinkInfo {
  index: number;
  a: { node: string; ns: string; dev: string; phynode: string; v4?: string; v6?: string };
  b: { node: string; ns: string; dev: string; phynode: string; v4?: string; v6?: string };
  /** Its link kind (kinds/links). */
  kind: import('./kinds/links/index.js').LinkKind;
  vni?: number;
}

export interface NodeInfo {
  node: string;
  /** Other names the node answers to (a Zoo node named by its label: its id). */
  aliases?: string[];
  ns: string;
  phynode: string;
  /** The node's own addresses (loopback), without prefix length. */
  v4?: string;
  v6?: string;
  cpus: number[];
}

export interface Plan {
  format: typeof PLAN_FORMAT;
  lab: string;
  /** The namespace-name prefix of this lab: `dune.<lab>.`; teardown matches on it (and on aliases). */
  nsPrefix: string;
  source: { file: string; format: string; sha256: string };
  nodes: NodeInfo[];
  links: LinkInfo[];
  hosts: HostPlan[];
  /** Counts, for summaries: routes per family, etc. */
  stats: Record<string, number>;
  /**
   * The topology's `impairment_backend` when it is not `auto`: which backends the agents
   * may use for the impair ops (the ops themselves do not change). Absent: `auto`.
   */
  impairmentBackend?: 'netem' | 'userspace';
  /**
   * The userspace engine's settings (`impairment_engine_threads`, `impairment_engine_fail`)
   * where they are not the default: `threads` (a count above one, or `auto`: one per core of
   * each host), `failOpen` (true: a full kernel queue lets packets through unimpaired). Absent:
   * one thread, fail closed.
   */
  impairmentEngine?: ImpairmentEngineSettings;
  /** Contents shared by many file ops (FileOp.blob), base64 by key. Absent: none. */
  blobs?: Record<string, string>;
  /** The topology's failure schedule (`[[topology.events]]`), run by `dune events run`. Absent: none. */
  events?: import('./events.js').PlanEvent[];
  /** Link directions that change over time (traces, `[[topology.schedule]]`), followed by `dune trace run`. Absent: none. */
  traces?: import('./traces.js').PlanTrace[];
}

/** The plan's `impairmentEngine`: only the settings that are not the default. */
export interface ImpairmentEngineSettings {
  /** Worker threads: more than one, or `auto` (one per core of the host). Absent: one. */
  threads?: number | 'auto';
  /** True: fail open (the compiler writes only that). Absent or false: fail closed. */
  failOpen?: boolean;
}

/** Canonical JSON: object keys sorted, so equal plans serialise to identical bytes. */
export function serializePlan(plan: Plan, indent = 0): string {
  return JSON.stringify(canonicalJson(plan), null, indent) + '\n';
}

/**
 * A copy with object keys sorted. Flat objects whose keys are already in order (most ops:
 * routes, addresses) are returned as they are: copying a million of them dominated the
 * time to serialise a large plan.
 */
export function canonicalJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonicalJson);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    let flatSorted = true;
    for (let i = 0; i < keys.length; i++) {
      const x = o[keys[i] as string];
      if ((i > 0 && (keys[i - 1] as string) >= (keys[i] as string)) || x === undefined || (x !== null && typeof x === 'object')) {
        flatSorted = false;
        break;
      }
    }
    if (flatSorted) return o;
    const out: Record<string, unknown> = {};
    for (const k of keys.sort()) {
      const x = o[k];
      if (x !== undefined) out[k] = canonicalJson(x);
    }
    return out;
  }
  return v;
}

/**
 * The node a name means: its id, or one of its aliases (a Zoo node named by its label is
 * still found by its id). Ids win over aliases.
 */
export function findNode(plan: Pick<Plan, 'nodes'>, name: string): NodeInfo | undefined {
  return plan.nodes.find((n) => n.node === name) ?? plan.nodes.find((n) => n.aliases?.includes(name) === true);
}

/**
 * `$0` of a capture brick's `sh -c`: how a plan's reader (pictures, the agent's preflight)
 * knows the process for one. Here, not in kinds/nodes/capture.ts, so the agent's bundle
 * takes it without the compiler's kinds (and graphology and nunjucks behind them).
 */
export const CAPTURE_TAG = 'dune-capture';
