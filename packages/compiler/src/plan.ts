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
 */
export interface RoutesOp {
  op: 'routes';
  ns: string;
  dev: string;
  via: string;
  src?: string;
  dst: string[];
}

/** The routes of a `routes` op, one RouteOp each, in its order. */
export function expandRoutes(op: RoutesOp): RouteOp[] {
  return op.dst.map((dst) => (op.src !== undefined ? { op: 'route', ns: op.ns, dst, via: op.via, dev: op.dev, src: op.src } : { op: 'route', ns: op.ns, dst, via: op.via, dev: op.dev }));
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
  saved: { mtu: number; up: boolean; addrs: string[]; routes: SavedRoute[] };
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
  /** Contents shared by many file ops (FileOp.blob), base64 by key. Absent: none. */
  blobs?: Record<string, string>;
  /** The topology's failure schedule (`[[topology.events]]`), run by `dune events run`. Absent: none. */
  events?: import('./events.js').PlanEvent[];
  /** Link directions that change over time (traces, `[[topology.schedule]]`), followed by `dune trace run`. Absent: none. */
  traces?: import('./traces.js').PlanTrace[];
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
