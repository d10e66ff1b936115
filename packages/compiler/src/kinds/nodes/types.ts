/**
 * What a node kind is: the contract every file of this folder implements (see index.ts for
 * the table and how to add one).
 *
 * A kind is a rule for turning one node of the topology into plan operations. The compiler
 * calls it at two points:
 *
 *   check (after addressing)  options(c): read and check the kind's own keys (free keys of the
 *                             node's TOML table, `ctx`), with locations; the result is `options`
 *   assemble (per host)       one hook per phase of the host's op list, in this order:
 *                               devices → addrs → enslave → up → sysctls → filters
 *                             (ops.ts puts netns, links, lo, impairments, routes, files and
 *                             processes around them; these are the same for every kind)
 *
 * Kernel operations are the plan's ops (plan.ts), applied by the agent's op table
 * (packages/agent/src/ops); a kind needs no agent code unless it needs a new op. Teardown is
 * the node's namespace: everything a kind makes lives inside it and goes with it. Status: an
 * `nft` op's named counters show in `dune status` under the node (label each one).
 */
import type { Diagnostics, Node, SourceLoc } from '@dune/topology';
import type { Addressing } from '../../addressing.js';
import type { NetworkGraph } from '../../graph.js';
import type { Interfaces, NodeIface } from '../../interfaces.js';
import type { Op } from '../../plan.js';
import type { Segments } from '../../segments.js';

/** What `options` sees: the node, where its keys were written, and the compiled network so far. */
export interface KindCheck {
  v: number;
  node: Node;
  /** The node's free keys (the kind's own keys among them). */
  ctx: Record<string, unknown>;
  /** Where a key (dotted path: `rules.0.dport`) was written; the node's location otherwise. */
  loc(path: string): SourceLoc | undefined;
  diags: Diagnostics;
  topo: import('@dune/topology').Topology;
  ifs: Interfaces;
  net: NetworkGraph;
  segs: Segments;
  addr: Addressing;
  /** Neighbours through the node's interfaces, in interface order. */
  ports: KindPort[];
  /** Gives a link end a MAC address (when the topology gives none): `mac` of the veth/vxlan op. */
  setMac(link: number, end: 'a' | 'b', mac: string): void;
  /** The MAC a link end has: the topology's, else one set by a kind, else undefined (the kernel's). */
  macOf(link: number, end: 'a' | 'b'): string | undefined;
}

/** One interface of a node, and what is at its other end. */
export interface KindPort extends NodeIface {
  /** The peer node's id and position. */
  peer: string;
  peerV: number;
  /** The peer's end of the link. */
  peerEnd: 'a' | 'b';
  /** The peer's interface name. */
  peerDev: string;
}

/** What each phase hook gets: one node of the kind, on its host. */
export interface KindNode<O = unknown> {
  v: number;
  node: Node;
  ns: string;
  /** The node's part of kernel names and aliases. */
  key: string;
  lab: string;
  ports: readonly KindPort[];
  /** The bridge of a layer-2 kind (`br0`, or the first `br<N>` no link of it is named). */
  bridge: string;
  /** What the kind's `options` returned. */
  options: O;
  /** `dune:<lab>:<key>:<dev>`: the alias every interface op carries. */
  alias(dev: string): string;
  addr: Addressing;
  /** The node's user sysctl keys (a kind's default never overrides the user's). */
  userSysctls: ReadonlySet<string>;
}

/** Counts a kind may add to the plan's stats (the ones ops.ts already keeps). */
export interface KindStats {
  addrsV4: number;
  addrsV6: number;
  sysctls: number;
}

export type PhaseHook<O> = (n: KindNode<O>, out: Op[], stats: KindStats) => void;

export const NODE_PHASES = ['devices', 'addrs', 'enslave', 'up', 'sysctls', 'filters'] as const;
export type NodePhase = (typeof NODE_PHASES)[number];

export interface NodeKindDef<O = unknown> {
  /** One line, for docs and messages. */
  description: string;
  /**
   * 3: routes packets (addresses on every link end, forwarding, routes to every other router).
   * 2: carries frames: no addresses, no routes; the routers reached through a connected group
   * of layer-2 nodes share one segment and one subnet (segments.ts).
   */
  layer: 2 | 3;
  /** Its own keys in `[topology.nodes.X]` (read by `options`), for docs and typo checks. */
  keys?: readonly string[];
  /** Reads and checks the kind's keys; report problems to `c.diags` with `c.loc(key)`. */
  options?(c: KindCheck): O;
  /** Ports a kind needs, checked before `options`: `exactly` 2 for a two-port brick. */
  ports?: { exactly?: number; min?: number };
  /** Its ops in each phase of the host's op list. */
  phases: { [P in NodePhase]?: PhaseHook<O> };
}

/** Declares a kind with its options' type checked against its hooks. */
export function nodeKind<O>(def: NodeKindDef<O>): NodeKindDef<O> {
  return def;
}
