/**
 * A deterministic, seeded Internet-like topology for scale tests and benches: Barabási–Albert
 * preferential attachment (each new node links to `linksPerNode` distinct existing nodes,
 * chosen in proportion to their degree), a latency on every link, and the lowest-degree
 * nodes as NetMirage-style clients (the "edge" of the network).
 */
import type { Link, Node, Topology } from '@dune/topology';
import { DEFAULT_POOLS, seededRandom } from '@dune/topology';

export interface SyntheticOptions {
  nodes: number;
  /** Links each new node makes (default 2). */
  linksPerNode?: number;
  /** How many lowest-degree nodes are clients (default: a tenth of the nodes). */
  clients?: number;
  seed?: number;
  /** Latency range, ms (default 1–50). */
  minLatencyMs?: number;
  maxLatencyMs?: number;
}

/** The seeded PRNG synthetic topologies are drawn with. */
export const prng = seededRandom;

export function syntheticInternet(opts: SyntheticOptions): Topology {
  const n = opts.nodes;
  const m = opts.linksPerNode ?? 2;
  const clients = opts.clients ?? Math.floor(n / 10);
  const rand = prng(opts.seed ?? 1);
  const minMs = opts.minLatencyMs ?? 1;
  const maxMs = opts.maxLatencyMs ?? 50;

  const pairs: [number, number][] = [];
  // Every link end once: picking uniformly from it picks a node in proportion to its degree.
  const ends: number[] = [];
  const seedSize = Math.min(n, m + 1);
  for (let i = 0; i < seedSize; i++) {
    for (let j = i + 1; j < seedSize; j++) {
      pairs.push([i, j]);
      ends.push(i, j);
    }
  }
  for (let v = seedSize; v < n; v++) {
    const chosen = new Set<number>();
    while (chosen.size < Math.min(m, v)) chosen.add(ends[Math.floor(rand() * ends.length)] as number);
    for (const u of [...chosen].sort((x, y) => x - y)) {
      pairs.push([u, v]);
      ends.push(u, v);
    }
  }

  const degree = new Array<number>(n).fill(0);
  for (const [a, b] of pairs) {
    degree[a] = (degree[a] ?? 0) + 1;
    degree[b] = (degree[b] ?? 0) + 1;
  }
  const byDegree = Array.from({ length: n }, (_, i) => i).sort((x, y) => (degree[x] as number) - (degree[y] as number) || x - y);
  const isClient = new Uint8Array(n);
  for (const v of byDegree.slice(0, clients)) isClient[v] = 1;

  const id = (i: number) => `n${i}`;
  const nodes: Node[] = Array.from({ length: n }, (_, i) => ({
    id: id(i),
    sysctls: {},
    templates: [],
    binds: [],
    exec: [],
    pinned: [],
    addrs: {},
    ctx: {},
    client: isClient[i] === 1,
  }));
  const links: Link[] = pairs.map(([a, b], index) => {
    const latencyMs = Math.round((minMs + rand() * (maxMs - minMs)) * 10) / 10;
    const impairment = { delayUs: latencyMs * 1000 };
    return { index, a: { node: id(a), impairment }, b: { node: id(b), impairment: { ...impairment } }, weights: { latency: latencyMs } };
  });
  return {
    format: 'netmirage-graphml',
    file: `synthetic-${n}.graphml`,
    baseDir: '.',
    lab: {
      name: `synthetic-${n}`,
      routing: 'static',
      routingWeight: 'latency',
      routeTo: 'clients',
      pools: { ...DEFAULT_POOLS },
      impairmentBackend: 'auto',
      vxlanPort: 4789,
    },
    phynodes: [],
    nodes,
    links,
    notes: [],
  };
}
