/**
 * Stage 1b: L2 segments. Layer-2 kinds (switches, hubs, bricks: kinds/nodes) carry frames, not packets: the
 * routers reached through one connected group of them share one Ethernet segment, so they
 * get one subnet (addressing.ts) and are all adjacent to one another (routing.ts).
 *
 *   L2 nodes ─► groups connected by L2–L2 links (union-find; a link that closes a loop is an
 *   error: with STP off a loop is a broadcast storm) ─► each router–L2 link: a member
 *
 * A direct router–router link is not part of any segment and keeps its /31 and /127.
 */
import type { Diagnostics, Link, Topology } from '@dune/topology';
import { isL2Kind } from './kinds/nodes/index.js';
import { unionFind, type NetworkGraph } from './graph.js';
import { describeLink } from './interfaces.js';

export interface SegmentMember {
  /** The router (node position) attached to the segment. */
  node: number;
  /** The link joining it to a switch, and which end of that link is the router. */
  link: number;
  end: 'a' | 'b';
}

export interface Segment {
  /** Its L2 nodes (switches, hubs), in node order. */
  switches: number[];
  /** Routers attached, in link order: member i gets the subnet's address i + 1. */
  members: SegmentMember[];
}

export interface Segments {
  /** Per node: 1 for an L2 node. */
  isL2: Uint8Array;
  /** Per node: its segment (L2 nodes only), else -1. */
  ofNode: Int32Array;
  /** Per link: the segment it belongs to when either end is an L2 node, else -1. */
  ofLink: Int32Array;
  list: Segment[];
}

const LIST_MAX = 6;

export function findSegments(topo: Topology, net: NetworkGraph, diags: Diagnostics): Segments {
  const n = topo.nodes.length;
  const isL2 = new Uint8Array(n);
  topo.nodes.forEach((node, v) => {
    if (!isL2Kind(node.kind)) return;
    isL2[v] = 1;
    const ifaces = Object.entries(node.addrs).filter(([, l]) => l.length > 0).map(([i]) => i);
    if (ifaces.length > 0) {
      diags.error('l2-addrs', `node "${node.id}" is a ${node.kind} and cannot have addresses (it has addrs on ${ifaces.join(', ')})`, node.loc,
        `a ${node.kind} only carries frames: remove its addrs, or make it kind = "router"`);
    }
  });

  // Union-find over L2–L2 links; the forest kept as adjacency to name a loop's members.
  const { parent, find } = unionFind(n);
  const forest = new Map<number, number[]>();
  topo.links.forEach((link, li) => {
    const a = net.aNode[li] as number;
    const b = net.bNode[li] as number;
    if (a < 0 || b < 0) return;
    if (a === b && isL2[a]) {
      diags.error('l2-self-link', `${describeLink(link)} joins ${topo.nodes[a]?.kind} "${link.a.node}" to itself: a loop that floods every broadcast forever`,
        link.loc, 'remove the link');
      return;
    }
    if (!isL2[a] || !isL2[b]) return;
    const ra = find(a);
    const rb = find(b);
    if (ra === rb) {
      const path = treePath(forest, a, b).map((v) => JSON.stringify(topo.nodes[v]?.id));
      const shown = path.length > LIST_MAX ? [...path.slice(0, LIST_MAX), `… ${path.length} in all`] : path;
      diags.error('l2-loop', `${describeLink(link)} closes a loop of switches (${shown.join(' – ')}): with STP off, a loop makes a broadcast storm`,
        link.loc, 'break the loop: remove one link of it, or make one of those nodes a router (kind = "router")');
      return;
    }
    parent[Math.max(ra, rb)] = Math.min(ra, rb);
    forest.set(a, [...(forest.get(a) ?? []), b]);
    forest.set(b, [...(forest.get(b) ?? []), a]);
  });

  const ofNode = new Int32Array(n).fill(-1);
  const list: Segment[] = [];
  const byRoot = new Map<number, number>();
  for (let v = 0; v < n; v++) {
    if (!isL2[v]) continue;
    const r = find(v);
    let s = byRoot.get(r);
    if (s === undefined) {
      s = list.length;
      byRoot.set(r, s);
      list.push({ switches: [], members: [] });
    }
    ofNode[v] = s;
    list[s]?.switches.push(v);
  }

  const ofLink = new Int32Array(topo.links.length).fill(-1);
  const joined = new Map<string, Link>();
  topo.links.forEach((link, li) => {
    const a = net.aNode[li] as number;
    const b = net.bNode[li] as number;
    if (a < 0 || b < 0 || (!isL2[a] && !isL2[b])) return;
    const s = ofNode[isL2[a] ? a : b] as number;
    ofLink[li] = s;
    if (isL2[a] && isL2[b]) return;
    const [router, end] = isL2[a] ? [b, 'b' as const] : [a, 'a' as const];
    const key = `${s}:${router}`;
    const first = joined.get(key);
    if (first !== undefined) {
      diags.error('segment-twice', `node "${topo.nodes[router]?.id}" has two interfaces on one L2 segment: ${describeLink(first)} and ${describeLink(link)}`,
        link.loc, 'keep one of the links; a router needs one interface per segment');
      return;
    }
    joined.set(key, link);
    list[s]?.members.push({ node: router, link: li, end });
  });
  return { isL2, ofNode, ofLink, list };
}

/** The path from a to b in a forest (adjacency lists), both included; [a, b] when none. */
function treePath(forest: Map<number, number[]>, a: number, b: number): number[] {
  const from = new Map<number, number>([[a, a]]);
  const queue = [a];
  for (let i = 0; i < queue.length && !from.has(b); i++) {
    const v = queue[i] as number;
    for (const w of forest.get(v) ?? []) {
      if (from.has(w)) continue;
      from.set(w, v);
      queue.push(w);
    }
  }
  if (!from.has(b)) return [a, b];
  const path = [b];
  for (let v = b; v !== a; ) {
    v = from.get(v) as number;
    path.push(v);
  }
  return path.reverse();
}
