/**
 * The resolved topology: what every reader (DUNE TOML, NetMirage/Shadow GraphML, Topology
 * Zoo GraphML) produces after its own parse → resolve, and what the compiler consumes.
 * Defaults are merged, units normalised (µs, bit/s, bytes, percent), names validated.
 * Nothing after resolution sees a raw type.
 */
import type { SourceLoc } from './errors.js';

export type TopologyFormat = 'dune-toml' | 'netmirage-graphml' | 'zoo-graphml';

export const JITTER_DISTRIBUTIONS = ['uniform', 'normal', 'pareto', 'paretonormal'] as const;
export type JitterDistribution = (typeof JITTER_DISTRIBUTIONS)[number];

/** Gilbert-Elliott loss, as netem's `loss gemodel p r 1-h 1-k` (all in percent). */
export interface GilbertElliott {
  pPct: number;
  rPct: number;
  /** 1-h: loss probability in the bad state (netem default 100) */
  oneMinusHPct: number;
  /** 1-k: loss probability in the good state (netem default 0) */
  oneMinusKPct: number;
}

/**
 * Impairments on one direction of a link: what the egress of one interface does.
 * Absent = not impaired. All values already in the unit the name carries.
 */
export interface Impairment {
  delayUs?: number;
  jitterUs?: number;
  jitterDistribution?: JitterDistribution;
  jitterCorrelationPct?: number;
  lossPct?: number;
  lossCorrelationPct?: number;
  /** Replaces lossPct when present. */
  lossGilbertElliott?: GilbertElliott;
  duplicatePct?: number;
  corruptPct?: number;
  reorderPct?: number;
  /** netem's `gap`: every gap-th packet is sent at once (needs delay). */
  reorderGap?: number;
  rateBitsPerSec?: number;
  queuePackets?: number;
  queueBytes?: number;
  /**
   * A Mahimahi trace followed packet by packet (the userspace engine only): set by a trace
   * follower, never written in a topology (that says `trace = "FILE"`).
   */
  deliveryTrace?: DeliveryTrace;
}

/**
 * Mahimahi's delivery opportunities: at each millisecond listed (from when the trace was set),
 * 1500 bytes may leave; the trace repeats with period = its last timestamp when `loop`, else
 * its last second repeats (its last rate holds).
 */
export interface DeliveryTrace {
  /** Non-decreasing whole milliseconds, the last above 0. */
  opportunitiesMs: number[];
  loop: boolean;
  /** Tells one following of a trace from the next (the trace starts over when it changes). */
  epoch: number;
}

export const IMPAIRMENT_KEYS = [
  'delayUs', 'jitterUs', 'jitterDistribution', 'jitterCorrelationPct', 'lossPct', 'lossCorrelationPct',
  'lossGilbertElliott', 'duplicatePct', 'corruptPct', 'reorderPct', 'reorderGap', 'rateBitsPerSec',
  'queuePackets', 'queueBytes', 'deliveryTrace',
] as const satisfies readonly (keyof Impairment)[];

/** One end of a link. Its impairment applies to traffic leaving through it. */
export interface Endpoint {
  node: string;
  /** The interface name the user gave (`r0:eth0` → `eth0`), if any. */
  iface?: string;
  impairment: Impairment;
  /** `trace = "FILE"`: this direction's impairment changes over time (traces.ts). */
  trace?: import('./traces.js').LinkTrace;
  mac?: string;
  /** DUNE's `metric`: exposed to templates; also a routing weight when chosen. */
  metric?: number;
  loc?: SourceLoc;
}

export interface Link {
  /** Stable index in the file order. */
  index: number;
  a: Endpoint;
  b: Endpoint;
  mtu?: number;
  /** Numeric attributes usable as routing weights (`latency` in ms is always present when known). */
  weights: Record<string, number>;
  loc?: SourceLoc;
}

export interface Bind {
  src: string;
  dst: string;
  exec: boolean;
  loc?: SourceLoc;
}

export interface Template {
  /** Path of the template file, as written (relative to `baseDir`). */
  src: string;
  /** Destination path template (rendered with the node context). */
  dst: string;
  loc?: SourceLoc;
}

/**
 * A command line. A string in a DUNE file runs through a shell as in DUNE: argv is
 * `["sh", "-c", script]` and `shell` is set, so the compiler quotes the template values it
 * renders into the script. An argv array in the file is used as is, with no shell.
 */
export interface Command {
  /** As written, for messages. */
  text: string;
  argv: string[];
  /** argv is `sh -c SCRIPT`, made from a command line: template values are shell-quoted. */
  shell?: boolean;
  loc?: SourceLoc;
}

export interface Pinned {
  cmd: Command;
  /** Values are templates; `{{core_N}}` placeholders reserve extra cores. */
  environ: Record<string, string>;
  down?: Command;
  preDown: Command[];
  postUp: Command[];
  /** `core_N` names this process reserves, always including `core_0`, sorted by N. */
  coreSlots: string[];
  loc?: SourceLoc;
}

/** NetMirage client-node shaping (the client↔root link). */
export interface ClientShaping {
  /** Rate on traffic *from* the node's applications (root → client egress in NetMirage). */
  upBitsPerSec?: number;
  /** Rate on traffic *to* the node's applications. */
  downBitsPerSec?: number;
  lossPct?: number;
  /** The self-loop's shaping for traffic between apps of the same client. */
  selfLink?: Impairment;
}

export interface Node {
  id: string;
  /** Other names the node answers to (a Zoo node named by its label keeps its id here). */
  aliases?: string[];
  /**
   * The node kind as written (`router`, `switch`, `firewall`, ...); absent: `router`. The
   * compiler's kind table (packages/compiler/src/kinds/nodes) checks it and reads the kind's
   * own keys from `ctx`.
   */
  kind?: string;
  /** Where `kind` was written, when it was. */
  kindLoc?: SourceLoc;
  /**
   * For a node whose kind is written and is not `router`: where each of its free keys (and
   * every value inside them, by dotted path: `rules.0.dport`) was written, so the kind's
   * own keys are checked with locations.
   */
  optionLocs?: Record<string, SourceLoc>;
  /** The phynode the user pinned this node to, if any. */
  phynode?: string;
  sysctls: Record<string, string>;
  templates: Template[];
  binds: Bind[];
  exec: Command[];
  pinned: Pinned[];
  /** User addresses per interface name (`lo` included), CIDR strings as written. */
  addrs: Record<string, string[]>;
  /** Free user keys (DUNE `rid`, `quic`, Zoo `label`, `Latitude`, ...): template context. */
  ctx: Record<string, unknown>;
  /** NetMirage: whether this node hosts applications (a "client"). */
  client: boolean;
  shaping?: ClientShaping;
  /** Zoo coordinates, when known. */
  geo?: { lat: number; lon: number };
  loc?: SourceLoc;
}

export interface Phynode {
  name: string;
  /** Absent or `localhost`: this machine, no SSH. */
  host?: string;
  port?: number;
  user?: string;
  /** Private key file for SSH. */
  identity?: string;
  /** Address VXLAN uses on this host. */
  underlay?: string;
  /** Underlay interface. */
  iface?: string;
  /** NUMA groups of core ids. Absent: no pinning constraints and no `core_N` to hand out. */
  cores?: number[][];
  binds: Bind[];
  extra: Record<string, unknown>;
  loc?: SourceLoc;
}

/**
 * `static`: routes computed by the compiler; `ospf`, `bgp`: a BIRD 2 daemon in every router,
 * configured by the compiler; `none`: the user's own (daemons from templates).
 */
export const ROUTING_MODES = ['static', 'ospf', 'bgp', 'none'] as const;
export type RoutingMode = (typeof ROUTING_MODES)[number];

export interface LabSettings {
  /** Default: the file's base name without extension. */
  name: string;
  routing: RoutingMode;
  /**
   * Which weight the shortest paths use: `latency` (default when links carry latency),
   * `hops`, or the name of any numeric link attribute.
   */
  routingWeight: string;
  /** Destinations that get routes: every node's prefix, or client nodes only (NetMirage). */
  routeTo: 'all-nodes' | 'clients';
  /** Address pools (CIDR). */
  pools: AddressPools;
  /** Impairment backend: `auto` picks netem when the kernel has it. */
  impairmentBackend: 'auto' | 'netem' | 'userspace';
  vxlanPort: number;
  /**
   * `impairment_engine_threads`: the userspace engine's worker threads, a count or `auto`
   * (one per core of each host). Absent: one (the engine's own thread).
   */
  impairmentEngineThreads?: number | 'auto';
  /**
   * `impairment_engine_fail`: true (`open`) when a full kernel queue of the userspace engine
   * lets packets through unimpaired rather than dropping them. Absent: closed.
   */
  impairmentEngineFailOpen?: boolean;
}

export interface AddressPools {
  /** Point-to-point link subnets, IPv4. */
  linkV4: string;
  linkV6: string;
  /** Node (loopback) addresses. */
  nodeV4: string;
  nodeV6: string;
  /** Prefix lengths carved from the pools. */
  linkV4Len: number;
  linkV6Len: number;
  /** L2 segments (routers joined by switches): one subnet each, sized by its member count. Absent: DEFAULT_SEGMENT_POOLS. */
  segmentV4?: string;
  segmentV6?: string;
}

export const DEFAULT_POOLS: AddressPools = {
  linkV4: '10.128.0.0/9',
  linkV6: 'fd7a:de00::/32',
  nodeV4: '10.0.0.0/10',
  nodeV6: 'fd7a:d0::/32',
  linkV4Len: 31,
  linkV6Len: 127,
};

/** Disjoint from DEFAULT_POOLS (nodes 10.0/10, links 10.128/9). */
export const DEFAULT_SEGMENT_POOLS = { segmentV4: '10.64.0.0/10', segmentV6: 'fd7a:5e00::/32' } as const;

/**
 * Failure actions a schedule (`[[topology.events]]`) or `dune link`/`dune node` can take:
 * one table, the target each applies to.
 */
export const EVENT_ACTIONS = {
  down: 'interface',
  up: 'interface',
  stop: 'node',
  start: 'node',
  restart: 'node',
} as const satisfies Record<string, 'interface' | 'node'>;
export type EventAction = keyof typeof EVENT_ACTIONS;

/** One `[[topology.events]]` entry: `action` on `node` (or `node:iface`) at `atMs`, `count` times every `periodMs`. */
export interface ScheduledEvent {
  atMs: number;
  node: string;
  /** The interface, for `down`/`up`. */
  iface?: string;
  action: EventAction;
  /** How many times it happens (1: once). */
  count: number;
  /** Between two of its occurrences (0 when count is 1). */
  periodMs: number;
  loc?: SourceLoc;
}

export interface Topology {
  format: TopologyFormat;
  /** The file it came from (as given), for messages. */
  file: string;
  /** Directory relative paths (templates, binds) are resolved from. */
  baseDir: string;
  lab: LabSettings;
  phynodes: Phynode[];
  nodes: Node[];
  links: Link[];
  /** Things the user should know that are not errors (e.g. derived latencies). */
  notes: import('./errors.js').Diagnostic[];
  /** The failure schedule (`[[topology.events]]`), in file order. Absent: none. */
  events?: ScheduledEvent[];
  /** Step changes of link directions (`[[topology.schedule]]`), in file order. Absent: none. */
  schedule?: import('./toml-schedule.js').ScheduledChange[];
}
