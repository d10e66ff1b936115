/**
 * Stage 3: static routes (NetMirage 4.7 semantics, per destination rather than per pair).
 *
 *   network multigraph ─► routing graph (one edge per node pair: its best parallel link)
 *                     ─► for each destination d: ONE single-source shortest-path tree from d
 *                     ─► in every node n reached: route d's prefixes via n's parent in the tree
 *
 * The graph is undirected, so the tree rooted at d holds every node's next hop toward d, and
 * following parents can never loop: routes are consistent by construction. Cost is one
 * Dijkstra (or BFS) per destination, O(D · E log V), instead of all pairs per source.
 *
 * Why parallel links are collapsed before the search: graphology-indices' unweighted
 * NeighborhoodIndex de-duplicates neighbours but sizes its arrays by edge count, so on a
 * multigraph it reads past its data; and a route only ever uses the best of parallel links
 * anyway (lowest weight, then lowest link index).
 *
 * An L2 segment (segments.ts) is a multi-access link: every pair of its routers is adjacent,
 * as if joined by a link whose weight is 1 hop, or, for any other weight, the sum of that
 * weight along the (unique: switch loops are refused) switch path between them, access links
 * included. The next hop is the neighbour's address on the segment, the route's dev the
 * router's own interface into it. Switches and hubs neither get nor are routes.
 *
 * Ties between equal-cost paths are broken by the search order, which is fixed by node and
 * link order: same input, same routes.
 */
import { UndirectedGraph } from 'graphology';
import { createDijkstraIndexedBrandes, createUnweightedIndexedBrandes } from 'graphology-shortest-path/indexed-brandes.js';
import type { Diagnostics, Link, Topology } from '@dune/topology';
import type { Addressing } from './addressing.js';
import { components, type NetworkGraph } from './graph.js';
import type { Interfaces } from './interfaces.js';
import { describeLink } from './interfaces.js';
import { blockSize, formatNetwork, networkOf, parsePrefix } from './cidr.js';
import { packPrefixRuns, type RoutesOp } from './plan.js';
import type { Segments } from './segments.js';

/** Shortest paths by hop count, or by a numeric link weight (one value per link). */
export type Weights = { kind: 'hops' } | { kind: 'weight'; name: string; perLink: Float64Array };

/** The weight of a link under `name`; `metric` falls back to the endpoints' DUNE metric. */
function linkWeight(link: Link, name: string): number | undefined {
  const w = link.weights[name];
  if (w !== undefined) return w;
  if (name === 'metric') {
    const ms = [link.a.metric, link.b.metric].filter((m): m is number => m !== undefined);
    if (ms.length > 0) return Math.max(...ms);
  }
  return undefined;
}

const LIST_MAX = 5;

function listLinks(links: Link[]): string {
  const head = links.slice(0, LIST_MAX).map(describeLink).join('; ');
  return links.length > LIST_MAX ? `${head}; … ${links.length} in all` : head;
}

/** Resolves `lab.routingWeight` into per-link weights, with the diagnostics it implies. */
export function chooseWeights(topo: Topology, diags: Diagnostics): Weights {
  const name = topo.lab.routingWeight;
  if (name === 'hops' || topo.links.length === 0) return { kind: 'hops' };
  const perLink = new Float64Array(topo.links.length);
  const missing: Link[] = [];
  const negative: Link[] = [];
  topo.links.forEach((link, i) => {
    const w = linkWeight(link, name);
    if (w === undefined || Number.isNaN(w)) missing.push(link);
    else if (w < 0 || !Number.isFinite(w)) negative.push(link);
    else perLink[i] = w;
  });
  for (const link of negative) {
    diags.error('negative-weight', `${describeLink(link)} has routing weight ${name} = ${linkWeight(link, name)}; weights must be finite and ≥ 0`, link.loc, 'fix the value, or choose another routing weight');
  }
  if (missing.length > 0) {
    if (name === 'latency') {
      diags.note(
        'weight-fallback',
        `routing by latency needs a latency on every link, and ${missing.length} of ${topo.links.length} have none (${listLinks(missing)}); routing by hop count instead`,
        missing[0]?.loc,
        'give every link a latency, or set the routing weight to "hops" to silence this',
      );
      return { kind: 'hops' };
    }
    const everywhere = commonWeightNames(topo);
    diags.error(
      'missing-weight',
      `routing weight "${name}" is missing on ${missing.length} of ${topo.links.length} links: ${listLinks(missing)}`,
      missing[0]?.loc,
      `give those links a ${name}, or pick a weight every link has: ${['hops', ...everywhere].join(', ')}`,
    );
  }
  return { kind: 'weight', name, perLink };
}

function commonWeightNames(topo: Topology): string[] {
  const first = topo.links[0];
  if (!first) return [];
  return Object.keys(first.weights)
    .filter((k) => topo.links.every((l) => linkWeight(l, k) !== undefined))
    .sort();
}

export interface RouteInputs {
  topo: Topology;
  net: NetworkGraph;
  ifs: Interfaces;
  addr: Addressing;
  /** Per node: its namespace name. */
  ns: string[];
  segs: Segments;
}

export interface Routes {
  /** Destination nodes, in node order. */
  dests: number[];
  /**
   * Per destination (same order): per node, the link its route leaves by; -1 for none. A
   * value ≥ the link count is a segment adjacency: `segmentHop` says which.
   */
  nextLink: Int32Array[];
  /** `nextLink` value → [the router's link into the segment, the neighbour's link into it]. */
  segmentHop(node: number, value: number): [number, number];
  v4: number;
  v6: number;
  /** (node, destination) pairs with no path: different components. */
  unroutedPairs: number;
  components: number;
  /**
   * Appends node `v`'s routes to `out`: one `routes` op per next hop and family (IPv4 before
   * IPv6), next hops in the order of their first destination, destinations in node order.
   * Ops are made here, node by node, so the plan is the only place they are held.
   */
  emit(v: number, out: RoutesOp[]): void;
}

export function computeRoutes(input: RouteInputs, weights: Weights, diags: Diagnostics): Routes {
  const { topo, net, ifs, addr, ns, segs } = input;
  const n = topo.nodes.length;
  const L = topo.links.length;
  const comps = components(n, net);
  const dests: number[] = [];
  topo.nodes.forEach((node, i) => {
    if (segs.isL2[i]) return;
    if (topo.lab.routeTo === 'all-nodes' || node.client) dests.push(i);
  });
  // Segment adjacencies, after the links in the adjacency numbering: pairs of member links.
  const segPairs: number[] = [];
  const segmentHop = (v: number, value: number): [number, number] => {
    const x = segPairs[2 * (value - L)] as number;
    const y = segPairs[2 * (value - L) + 1] as number;
    const routerOf = (li: number) => (segs.isL2[net.aNode[li] as number] ? net.bNode[li] : net.aNode[li]);
    return routerOf(x) === v ? [x, y] : [y, x];
  };
  const isDest = new Uint8Array(n);
  for (const d of dests) isDest[d] = 1;
  const nextLink: Int32Array[] = [];
  // Destination prefixes, formatted once and shared by every route op that uses them.
  const dstV4: string[][] = [];
  const dstV6: string[][] = [];
  for (let i = 0; i < n; i++) {
    dstV4.push([`${addr.nodeV4[i]}/32`, ...(addr.loNetsV4[i] ?? [])]);
    dstV6.push([`${addr.nodeV6[i]}/128`, ...(addr.loNetsV6[i] ?? [])]);
  }
  // Each destination prefix's successor (the next prefix of its length), for packing a
  // table's destinations into runs (plan.ts, RoutesOp).
  const nextPrefix = new Map<string, string>();
  for (const list of [dstV4, dstV6]) {
    for (const ps of list) {
      for (const p of ps) {
        const pre = parsePrefix(p);
        if (typeof pre === 'string' || nextPrefix.has(p)) continue;
        const after = networkOf(pre) + blockSize(pre.family, pre.len);
        if (after >> BigInt(pre.family === 4 ? 32 : 128) === 0n) nextPrefix.set(p, formatNetwork({ ...pre, addr: after }));
      }
    }
  }
  const nextOf = (p: string): string | undefined => nextPrefix.get(p);
  const { aNode } = net;
  const { aName, bName } = ifs;
  const { v4a, v4b, v6a, v6b } = addr;
  const result: Routes = {
    dests,
    nextLink,
    v4: 0,
    v6: 0,
    unroutedPairs: 0,
    components: comps.length,
    segmentHop,
    emit(v, out) {
      const nsv = ns[v] as string;
      // Only a node others can route to gets its loopback as source (NetMirage mode routes
      // to clients only: a core router's loopback would be unanswerable).
      const routed = isDest[v] === 1;
      const src4 = addr.nodeV4[v] as string;
      const src6 = addr.nodeV6[v] as string;
      // One table per next hop: its destinations, in destination order.
      const byHop = new Map<number, { dev: string; via4: string; via6: string; dst4: string[]; dst6: string[] }>();
      for (let k = 0; k < dests.length; k++) {
        const li = (nextLink[k] as Int32Array)[v] as number;
        if (li < 0) continue;
        const d = dests[k] as number;
        let dev: string;
        let via4: string;
        let via6: string;
        if (li < L) {
          const isA = aNode[li] === v;
          dev = (isA ? aName[li] : bName[li]) as string;
          via4 = (isA ? v4b[li] : v4a[li]) as string;
          via6 = (isA ? v6b[li] : v6a[li]) as string;
        } else {
          const [own, peer] = segmentHop(v, li);
          dev = (segs.isL2[aNode[own] as number] ? bName[own] : aName[own]) as string;
          const peerA = !segs.isL2[aNode[peer] as number];
          via4 = (peerA ? v4a[peer] : v4b[peer]) as string;
          via6 = (peerA ? v6a[peer] : v6b[peer]) as string;
        }
        let hop = byHop.get(li);
        if (hop === undefined) byHop.set(li, (hop = { dev, via4, via6, dst4: [], dst6: [] }));
        for (const dst of dstV4[d] as string[]) hop.dst4.push(dst);
        for (const dst of dstV6[d] as string[]) hop.dst6.push(dst);
      }
      for (const h of byHop.values()) {
        for (const [dst, via, src] of [[h.dst4, h.via4, src4], [h.dst6, h.via6, src6]] as const) {
          if (dst.length === 0) continue;
          const runs = packPrefixRuns(dst, nextOf);
          out.push(routed ? { dev: h.dev, dst: runs, ns: nsv, op: 'routes', src, via } : { dev: h.dev, dst: runs, ns: nsv, op: 'routes', via });
        }
      }
    },
  };

  if (topo.lab.routeTo === 'clients' && dests.length === 0 && n > 0) {
    diags.warning('no-clients', 'routes go to client nodes only, and no node is a client: no routes are computed', undefined, 'mark client nodes (GraphML: --client-node TYPE), or route to all nodes');
  }
  if (comps.length > 1) warnComponents(topo, comps, diags);
  if (dests.length === 0) return result;

  // One edge per node pair, carrying its best parallel link.
  const bestLink = new Map<number, number>();
  const bestWeight = new Map<number, number>();
  const pairOrder: number[] = [];
  const weightOf = (li: number) => (weights.kind === 'hops' ? 1 : (weights.perLink[li] as number));
  const offer = (a: number, b: number, w: number, adj: number) => {
    const key = a < b ? a * n + b : b * n + a;
    const prev = bestWeight.get(key);
    if (prev === undefined) pairOrder.push(key);
    if (prev === undefined || w < prev) {
      bestWeight.set(key, w);
      bestLink.set(key, adj);
    }
  };
  net.graph.forEachEdge((_e, attrs) => {
    const li = attrs.link;
    const a = net.aNode[li] as number;
    const b = net.bNode[li] as number;
    if (a === b || segs.isL2[a] || segs.isL2[b]) return;
    offer(a, b, weightOf(li), li);
  });
  segs.list.forEach((sg) => {
    if (sg.members.length < 2) return;
    // Per switch a member hangs off: distances to every switch of the segment along its tree.
    const l2Of = (li: number) => (segs.isL2[aNode[li] as number] ? aNode[li] : net.bNode[li]) as number;
    const dist = new Map<number, Map<number, number>>();
    const from = (root: number): Map<number, number> => {
      let m = dist.get(root);
      if (m) return m;
      m = new Map([[root, 0]]);
      const queue = [root];
      for (let i = 0; i < queue.length; i++) {
        const u = queue[i] as number;
        const du = m.get(u) as number;
        net.graph.forEachEdge(String(u), (_e, attrs) => {
          const li = attrs.link;
          const w = (aNode[li] === u ? net.bNode[li] : aNode[li]) as number;
          if (!segs.isL2[w] || (m as Map<number, number>).has(w)) return;
          (m as Map<number, number>).set(w, du + weightOf(li));
          queue.push(w);
        });
      }
      dist.set(root, m);
      return m;
    };
    for (let i = 0; i < sg.members.length; i++) {
      const mi = sg.members[i] as { node: number; link: number };
      const di = from(l2Of(mi.link));
      for (let j = i + 1; j < sg.members.length; j++) {
        const mj = sg.members[j] as { node: number; link: number };
        const w = weights.kind === 'hops' ? 1 : weightOf(mi.link) + (di.get(l2Of(mj.link)) ?? 0) + weightOf(mj.link);
        segPairs.push(mi.link, mj.link);
        offer(mi.node, mj.node, w, L + segPairs.length / 2 - 1);
      }
    }
  });
  const simple = new UndirectedGraph<Record<string, never>, { w: number }>();
  for (let i = 0; i < n; i++) simple.addNode(String(i));
  for (const key of pairOrder) {
    simple.addEdge(String(Math.floor(key / n)), String(key % n), { w: bestWeight.get(key) as number });
  }
  const search = weights.kind === 'hops' ? createUnweightedIndexedBrandes(simple) : createDijkstraIndexedBrandes(simple, 'w');

  for (const d of dests) {
    const [stack, parents] = search(d);
    // The search pushes every node it settles onto a stack it reuses and never empties
    // (betweenness pops it); empty it or the next search overflows it.
    stack.clear();
    const hop = new Int32Array(n).fill(-1);
    const per4 = (dstV4[d] as string[]).length;
    const per6 = (dstV6[d] as string[]).length;
    for (let v = 0; v < n; v++) {
      if (v === d || segs.isL2[v]) continue;
      const pv = parents[v] as number[];
      if (pv.length === 0) {
        result.unroutedPairs++;
        continue;
      }
      // The first predecessor found is the tree parent: settled before v, so no loops.
      const p = pv[0] as number;
      hop[v] = bestLink.get(v < p ? v * n + p : p * n + v) as number;
      result.v4 += per4;
      result.v6 += per6;
    }
    nextLink.push(hop);
  }
  return result;
}

function warnComponents(topo: Topology, comps: number[][], diags: Diagnostics): void {
  const shown = comps.slice(0, 10).map((c) => {
    const ids = c.slice(0, LIST_MAX).map((i) => JSON.stringify(topo.nodes[i]?.id ?? '?'));
    const more = c.length > LIST_MAX ? ', …' : '';
    return `[${c.length} node${c.length === 1 ? '' : 's'}: ${ids.join(', ')}${more}]`;
  });
  const rest = comps.length > 10 ? `, and ${comps.length - 10} more` : '';
  diags.warning(
    'disconnected',
    `the network falls into ${comps.length} disconnected parts; nodes in different parts get no routes to each other: ${shown.join(', ')}${rest}`,
    undefined,
    'add links between the parts if they should reach each other',
  );
}
