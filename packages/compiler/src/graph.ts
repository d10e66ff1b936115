/**
 * The network as a graph: one graphology node per topology node (key = its position in
 * topo.nodes), one edge per link (key = the link's position), parallel links and all.
 * Routing and placement read it; components are computed here once for both.
 */
import { MultiUndirectedGraph } from 'graphology';
import type { Topology } from '@dune/topology';

export interface LinkEdgeAttrs {
  link: number;
}

export interface NetworkGraph {
  graph: MultiUndirectedGraph<Record<string, never>, LinkEdgeAttrs>;
  /** Per link: node positions of its ends (-1 when the node does not exist). */
  aNode: Int32Array;
  bNode: Int32Array;
}

export function buildNetworkGraph(topo: Topology, nodeIndex: Map<string, number>): NetworkGraph {
  const graph = new MultiUndirectedGraph<Record<string, never>, LinkEdgeAttrs>({ allowSelfLoops: true });
  topo.nodes.forEach((_, i) => graph.addNode(String(i)));
  const aNode = new Int32Array(topo.links.length).fill(-1);
  const bNode = new Int32Array(topo.links.length).fill(-1);
  topo.links.forEach((link, li) => {
    const a = nodeIndex.get(link.a.node);
    const b = nodeIndex.get(link.b.node);
    if (a === undefined || b === undefined) return;
    aNode[li] = a;
    bNode[li] = b;
    graph.addEdgeWithKey(String(li), String(a), String(b), { link: li });
  });
  return { graph, aNode, bNode };
}

/** Union-find over `n` elements (path halving); `parent` is exposed for callers that join roots. */
export function unionFind(n: number): { parent: Int32Array; find: (x: number) => number } {
  const parent = new Int32Array(n);
  for (let i = 0; i < n; i++) parent[i] = i;
  const find = (x: number): number => {
    while (parent[x] !== x) {
      const p = parent[x] as number;
      parent[x] = parent[p] as number;
      x = p;
    }
    return x;
  };
  return { parent, find };
}

/** Connected components, each a sorted list of node positions, ordered by their first node. */
export function components(nodeCount: number, net: NetworkGraph): number[][] {
  const { parent, find } = unionFind(nodeCount);
  for (let li = 0; li < net.aNode.length; li++) {
    const a = net.aNode[li] as number;
    const b = net.bNode[li] as number;
    if (a < 0 || b < 0) continue;
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  }
  const byRoot = new Map<number, number[]>();
  for (let i = 0; i < nodeCount; i++) {
    const r = find(i);
    const list = byRoot.get(r);
    if (list) list.push(i);
    else byRoot.set(r, [i]);
  }
  return [...byRoot.values()];
}
