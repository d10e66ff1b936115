/**
 * Stage 4: nodes onto phynodes, pinned processes onto cores.
 *
 * Cost: each pinned process needs one core per distinct `core_N` it uses (core_0 always),
 * all from ONE NUMA group; a node's processes may use different groups. A phynode without
 * `cores` has unlimited room but pins nothing (its processes get no cpus).
 *
 *   fixed nodes (node.phynode) ─► greedy fill in BFS order from the best-connected node,
 *   phynodes filled in proportion to their cores (equally when none has cores)
 *   ─► (if the greedy order fragments the NUMA groups: first-fit decreasing instead)
 *   ─► two refinement passes moving boundary nodes to cut less bandwidth, within capacity
 *   ─► core ids: per group, lowest free ids first, in node order
 *
 * Unlike DUNE (reference 3.3): phynodes are tried in file order, never in hash order; the
 * over-commitment check multiplies by node count; nodes without processes are placed too.
 */
import type { Diagnostics, Phynode, Pinned, Topology } from '@dune/topology';
import { choicesHint } from '@dune/topology';
import type { NetworkGraph } from './graph.js';

/** A link without a rate limit weighs as 10 Gbit/s in the cut. */
export const UNLIMITED_LINK_BITS_PER_SEC = 10e9;
/** How far above its share a phynode may grow while refining, in nodes (at least one). */
const BALANCE_SLACK = 0.05;
const REFINE_PASSES = 2;

export const LOCAL_PHYNODE: Phynode = { name: 'local', binds: [], extra: {} };

export interface Placement {
  /** The phynodes in use: the topology's, or a single `local` one when it declares none. */
  phynodes: Phynode[];
  /** Per node: index into `phynodes`. */
  hostOf: Int32Array;
  /** Per node, per pinned process: its cores, slot k → cpus[k]; empty when not pinned. */
  cpus: number[][][];
  /** Per node, per pinned process: its `core_N` slot names, sorted by N. */
  slots: string[][][];
}

const CORE_REF = /\bcore_(\d+)\b/g;

/** `core_N` names used inside `{{ }}` / `{% %}` of a template text. */
export function coreRefs(text: string): string[] {
  if (!text.includes('{')) return [];
  const out = new Set<string>();
  for (const m of text.matchAll(/\{\{([\s\S]*?)\}\}|\{%([\s\S]*?)%\}/g)) {
    for (const r of (m[1] ?? m[2] ?? '').matchAll(CORE_REF)) out.add(`core_${Number(r[1])}`);
  }
  return sortSlots([...out]);
}

function sortSlots(slots: string[]): string[] {
  return slots.sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
}

/** The slots a process reserves: core_0, what the reader found, and any core_N its texts use. */
export function coreSlots(p: Pinned): string[] {
  const s = new Set<string>(['core_0', ...p.coreSlots]);
  const texts = [...p.cmd.argv, ...Object.values(p.environ), ...p.postUp.flatMap((c) => c.argv), ...p.preDown.flatMap((c) => c.argv), ...(p.down?.argv ?? [])];
  for (const t of texts) for (const r of coreRefs(t)) s.add(r);
  return sortSlots([...s]);
}

interface Host {
  name: string;
  /** Free cores per NUMA group; undefined = no cores declared (unlimited, unpinned). */
  free: number[] | undefined;
  groups: number[][] | undefined;
}

export interface PlaceOptions {
  /**
   * More pinned processes than cores is allowed: each NUMA group is handed out as many times
   * over as it takes, so processes share cores (a warning says how many per core).
   */
  overcommit?: boolean;
}

export function place(topo: Topology, net: NetworkGraph, diags: Diagnostics, opts: PlaceOptions = {}): Placement {
  const phynodes = topo.phynodes.length > 0 ? topo.phynodes : [LOCAL_PHYNODE];
  const n = topo.nodes.length;
  const H = phynodes.length;
  const slots = topo.nodes.map((node) => node.pinned.map(coreSlots));
  const costs = slots.map((ps) => ps.map((s) => s.length));
  const nodeCost = costs.map((cs) => cs.reduce((a, b) => a + b, 0));
  const share = opts.overcommit ? sharing(phynodes, costs, nodeCost, diags) : 1;
  const hosts: Host[] = phynodes.map((p) => {
    const groups = p.cores?.map((g) => [...g].sort((x, y) => x - y));
    // Shared cores: the group's ids cycled `share` times, so one process's cores stay distinct.
    const handed = groups?.map((g) => Array.from({ length: g.length * share }, (_, i) => g[i % g.length] as number));
    return { name: p.name, groups: handed, free: handed?.map((g) => g.length) };
  });
  const hostOf = new Int32Array(n).fill(-1);
  /** Per node, per process: the NUMA group it draws from (-1: unpinned). */
  const groupOf: number[][] = costs.map((cs) => cs.map(() => -1));
  const result = (): Placement => ({ phynodes, hostOf: hostOf.map((h) => Math.max(h, 0)), cpus: assignCores(), slots });

  const tryPlace = (v: number, h: number): boolean => {
    const host = hosts[h] as Host;
    const cs = costs[v] as number[];
    if (host.free === undefined || cs.length === 0) {
      hostOf[v] = h;
      groupOf[v] = cs.map(() => -1);
      return true;
    }
    const free = host.free;
    const order = cs.map((_, k) => k).sort((x, y) => (cs[y] as number) - (cs[x] as number) || x - y);
    const taken: number[] = cs.map(() => -1);
    for (const k of order) {
      const c = cs[k] as number;
      const g = free.findIndex((f) => f >= c);
      if (g < 0) {
        taken.forEach((tg, kk) => tg >= 0 && (free[tg] = (free[tg] as number) + (cs[kk] as number)));
        return false;
      }
      free[g] = (free[g] as number) - c;
      taken[k] = g;
    }
    hostOf[v] = h;
    groupOf[v] = taken;
    return true;
  };
  const release = (v: number): void => {
    const h = hostOf[v] as number;
    const free = hosts[h]?.free;
    if (free) (groupOf[v] as number[]).forEach((g, k) => g >= 0 && (free[g] = (free[g] as number) + (costs[v]?.[k] as number)));
    hostOf[v] = -1;
  };
  /** Puts a released node back exactly where it was. */
  const restore = (v: number, h: number, groups: number[]): void => {
    const free = hosts[h]?.free;
    if (free) groups.forEach((g, k) => g >= 0 && (free[g] = (free[g] as number) - (costs[v]?.[k] as number)));
    hostOf[v] = h;
    groupOf[v] = groups;
  };

  function assignCores(): number[][][] {
    const next = hosts.map((h) => (h.groups ?? []).map(() => 0));
    return topo.nodes.map((_, v) =>
      (costs[v] as number[]).map((c, k) => {
        const h = hostOf[v] as number;
        const g = groupOf[v]?.[k] ?? -1;
        const ids = h >= 0 && g >= 0 ? hosts[h]?.groups?.[g] : undefined;
        if (ids === undefined) return [];
        const at = next[h]?.[g] as number;
        (next[h] as number[])[g] = at + c;
        return ids.slice(at, at + c);
      }),
    );
  }

  // Fixed nodes.
  const names = phynodes.map((p) => p.name);
  const fixed = new Uint8Array(n);
  const fixedShort = new Map<number, number[]>();
  topo.nodes.forEach((node, v) => {
    if (node.phynode === undefined) return;
    const h = names.indexOf(node.phynode);
    if (h < 0) {
      diags.error('unknown-phynode', `node "${node.id}" is placed on phynode "${node.phynode}", which is not declared`, node.loc, choicesHint(node.phynode, names));
      return;
    }
    fixed[v] = 1;
    if (!tryPlace(v, h)) fixedShort.set(h, [...(fixedShort.get(h) ?? []), v]);
  });
  for (const [h, vs] of fixedShort) {
    const on = topo.nodes.map((_, v) => v).filter((v) => topo.nodes[v]?.phynode === names[h]);
    const need = on.reduce((a, v) => a + (nodeCost[v] as number), 0);
    const offer = (hosts[h]?.groups ?? []).reduce((a, g) => a + g.length, 0);
    const what = need > offer ? `need ${need} cores, it offers ${offer} (${describeHost(hosts[h] as Host)}); ${need - offer} short` : `do not fit its NUMA groups (each process takes its cores from one group): ${fragmentation(hosts, [h])}`;
    diags.error(
      'cores-overcommitted',
      `phynode "${names[h]}": the nodes placed on it (${listCosts(topo, on, nodeCost)}) ${what}; not placed: ${vs.map((v) => JSON.stringify(topo.nodes[v]?.id)).join(', ')}`,
      phynodes[h]?.loc,
      'declare more cores for that phynode, or move nodes elsewhere',
    );
  }

  // Whole-lab capacity, when every phynode pins (an unpinned phynode has room for anything).
  const allPinned = hosts.every((h) => h.groups !== undefined);
  if (allPinned) {
    const need = nodeCost.reduce((a, b) => a + b, 0);
    const offer = hosts.reduce((a, h) => a + (h.groups ?? []).reduce((x, g) => x + g.length, 0), 0);
    if (need > offer) {
      const users = topo.nodes.map((_, v) => v).filter((v) => (nodeCost[v] as number) > 0);
      diags.error(
        'cores-overcommitted',
        `the nodes' pinned processes need ${need} cores, phynodes offer ${offer} (${hosts.map(describeHost).join('; ')}); ${need - offer} short. Needs: ${listCosts(topo, users, nodeCost)}`,
        phynodes[0]?.loc,
        'declare more cores (cores = [[1,2,3],[4,5,6,7]] under [infrastructure.nodes.<phynode>]), add a phynode, or use fewer {{core_N}} per process (each process takes core_0 plus one core per core_N it uses)',
      );
      return result();
    }
    const biggest = Math.max(0, ...hosts.flatMap((h) => (h.groups ?? []).map((g) => g.length)));
    const tooBig: string[] = [];
    topo.nodes.forEach((node, v) =>
      (costs[v] as number[]).forEach((c, k) => {
        if (c > biggest) tooBig.push(`"${node.id}" process ${k} (${node.pinned[k]?.cmd.text ?? ''}) needs ${c}`);
      }),
    );
    if (tooBig.length > 0) {
      diags.error(
        'cores-numa',
        `a pinned process takes all its cores from one NUMA group, and the largest group has ${biggest} cores: ${tooBig.slice(0, 5).join('; ')}${tooBig.length > 5 ? `; … ${tooBig.length} in all` : ''}`,
        topo.nodes.find((_, v) => (costs[v] ?? []).some((c) => c > biggest))?.loc,
        'use fewer {{core_N}} in those processes, or declare a larger NUMA group',
      );
      return result();
    }
  }
  if (fixedShort.size > 0) return result();

  // Greedy fill.
  const adj = adjacency(topo, net);
  const order = H === 1 ? topo.nodes.map((_, v) => v) : bfsOrder(n, adj);
  const quota = quotas(hosts, n);
  const count = new Array<number>(H).fill(0);
  for (let v = 0; v < n; v++) if (fixed[v]) bump(count, hostOf[v] as number, 1);
  let unplaced: number[] = [];
  let cursor = 0;
  for (const v of order) {
    if (fixed[v]) continue;
    while (cursor < H && (count[cursor] as number) >= (quota[cursor] as number)) cursor++;
    const candidates = cursor < H ? [cursor, ...range(H).filter((h) => h !== cursor && (count[h] as number) < (quota[h] as number))] : [];
    let h = candidates.find((c) => tryPlace(v, c));
    if (h === undefined) h = range(H).find((c) => !candidates.includes(c) && tryPlace(v, c));
    if (h === undefined) unplaced.push(v);
    else bump(count, h, 1);
  }

  if (unplaced.length > 0) {
    // The greedy order fragmented the NUMA groups: pack biggest first instead.
    for (let v = 0; v < n; v++) if (!fixed[v] && (hostOf[v] as number) >= 0) release(v);
    count.fill(0);
    for (let v = 0; v < n; v++) if (fixed[v]) bump(count, hostOf[v] as number, 1);
    const byCost = order.filter((v) => !fixed[v]).sort((x, y) => (nodeCost[y] as number) - (nodeCost[x] as number) || x - y);
    unplaced = [];
    for (const v of byCost) {
      const h = range(H).find((c) => tryPlace(v, c));
      if (h === undefined) unplaced.push(v);
      else bump(count, h, 1);
    }
    if (unplaced.length > 0) {
      const need = nodeCost.reduce((a, b) => a + b, 0);
      const offer = hosts.reduce((a, h) => a + (h.groups ?? []).reduce((x, g) => x + g.length, 0), 0);
      diags.error(
        'cores-fragmented',
        `the pinned processes need ${need} cores and the phynodes offer ${offer}, but they do not fit the NUMA groups (each process takes all its cores from one group). Not placed: ${listCosts(topo, unplaced, nodeCost, costs)}. Free cores left: ${fragmentation(hosts, range(H))}`,
        topo.nodes[unplaced[0] as number]?.loc,
        'declare larger NUMA groups, or use fewer {{core_N}} per process',
      );
      return result();
    }
  }

  if (H > 1) refine(n, H, adj, fixed, hostOf, count, quota, { release, tryPlace, restore }, groupOf);
  return result();
}

function refine(
  n: number,
  H: number,
  adj: [number, number][][],
  fixed: Uint8Array,
  hostOf: Int32Array,
  count: number[],
  quota: number[],
  moves: { release: (v: number) => void; tryPlace: (v: number, h: number) => boolean; restore: (v: number, h: number, groups: number[]) => void },
  groupOf: number[][],
): void {
  const max = quota.map((q) => q + Math.max(1, Math.ceil(q * BALANCE_SLACK)));
  const conn = new Float64Array(H);
  for (let pass = 0; pass < REFINE_PASSES; pass++) {
    let moved = 0;
    for (let v = 0; v < n; v++) {
      if (fixed[v]) continue;
      const p = hostOf[v] as number;
      conn.fill(0);
      let boundary = false;
      for (const [u, w] of adj[v] as [number, number][]) {
        const hu = hostOf[u] as number;
        conn[hu] = (conn[hu] as number) + w;
        if (hu !== p) boundary = true;
      }
      if (!boundary) continue;
      let best = -1;
      let bestGain = 0;
      for (let q = 0; q < H; q++) {
        const gain = (conn[q] as number) - (conn[p] as number);
        if (q !== p && gain > bestGain && (count[q] as number) < (max[q] as number)) {
          best = q;
          bestGain = gain;
        }
      }
      if (best < 0) continue;
      const groups = [...(groupOf[v] as number[])];
      moves.release(v);
      if (moves.tryPlace(v, best)) {
        bump(count, p, -1);
        bump(count, best, 1);
        moved++;
      } else {
        moves.restore(v, p, groups);
      }
    }
    if (moved === 0) break;
  }
}

/**
 * How many processes share a core under --overcommit: enough for the whole lab's need and
 * for the largest process in the largest group. 1 when the cores suffice (no warning).
 */
function sharing(phynodes: readonly Phynode[], costs: number[][], nodeCost: number[], diags: Diagnostics): number {
  if (phynodes.some((p) => p.cores === undefined)) return 1;
  const offer = phynodes.reduce((a, p) => a + (p.cores ?? []).reduce((x, g) => x + g.length, 0), 0);
  const biggest = Math.max(0, ...phynodes.flatMap((p) => (p.cores ?? []).map((g) => g.length)));
  const need = nodeCost.reduce((a, b) => a + b, 0);
  const largest = Math.max(0, ...costs.flat());
  if (offer === 0 || biggest === 0) return 1;
  const k = Math.max(1, Math.ceil(need / offer), Math.ceil(largest / biggest));
  if (k > 1) {
    diags.warning(
      'cores-shared',
      `--overcommit: the pinned processes need ${need} cores and the phynodes offer ${offer}: processes share cores, up to ${k} on each, and run slower than their pinning promises`,
      phynodes[0]?.loc,
      'declare more cores or phynodes to give every process its own',
    );
  }
  return k;
}

function bump(a: number[], i: number, d: number): void {
  a[i] = (a[i] ?? 0) + d;
}

function range(k: number): number[] {
  return Array.from({ length: k }, (_, i) => i);
}

/** Per node: [neighbour, bandwidth weight] for every link (both directions), self-loops left out. */
function adjacency(topo: Topology, net: NetworkGraph): [number, number][][] {
  const adj: [number, number][][] = topo.nodes.map(() => []);
  topo.links.forEach((link, li) => {
    const a = net.aNode[li] as number;
    const b = net.bNode[li] as number;
    if (a < 0 || b < 0 || a === b) return;
    const w = Math.max(link.a.impairment.rateBitsPerSec ?? UNLIMITED_LINK_BITS_PER_SEC, link.b.impairment.rateBitsPerSec ?? UNLIMITED_LINK_BITS_PER_SEC);
    adj[a]?.push([b, w]);
    adj[b]?.push([a, w]);
  });
  return adj;
}

/** BFS from the highest-degree node (ties: lowest position), then from the next unvisited one. */
function bfsOrder(n: number, adj: [number, number][][]): number[] {
  const starts = range(n).sort((x, y) => (adj[y]?.length ?? 0) - (adj[x]?.length ?? 0) || x - y);
  const seen = new Uint8Array(n);
  const order: number[] = [];
  for (const s of starts) {
    if (seen[s]) continue;
    seen[s] = 1;
    let head = order.length;
    order.push(s);
    while (head < order.length) {
      const v = order[head++] as number;
      for (const [u] of adj[v] as [number, number][]) {
        if (!seen[u]) {
          seen[u] = 1;
          order.push(u);
        }
      }
    }
  }
  return order;
}

/** Node counts per phynode in proportion to cores (hosts without cores count as an average one). */
function quotas(hosts: Host[], n: number): number[] {
  const cores = hosts.map((h) => (h.groups === undefined ? undefined : h.groups.reduce((a, g) => a + g.length, 0)));
  const known = cores.filter((c): c is number => c !== undefined && c > 0);
  const avg = known.length > 0 ? known.reduce((a, b) => a + b, 0) / known.length : 1;
  const weight = cores.map((c) => (c === undefined ? avg : c));
  const total = weight.reduce((a, b) => a + b, 0);
  if (total <= 0) return hosts.map((_, i) => (i === 0 ? n : 0));
  // Largest remainder: the shares add up to exactly n, leftovers go to the first phynodes.
  const exact = weight.map((w) => (n * w) / total);
  const share = exact.map(Math.floor);
  let left = n - share.reduce((a, b) => a + b, 0);
  const byRemainder = range(hosts.length).sort((x, y) => (exact[y] as number) - (share[y] as number) - ((exact[x] as number) - (share[x] as number)) || x - y);
  for (const i of byRemainder) {
    if (left <= 0) break;
    bump(share, i, 1);
    left--;
  }
  return share;
}

function describeHost(h: Host): string {
  if (h.groups === undefined) return `${h.name}: no cores declared`;
  const total = h.groups.reduce((a, g) => a + g.length, 0);
  return `${h.name}: ${total} in ${h.groups.length} group${h.groups.length === 1 ? '' : 's'}`;
}

function fragmentation(hosts: Host[], which: number[]): string {
  return which
    .map((i) => hosts[i] as Host)
    .filter((h) => h.groups !== undefined)
    .map((h) => `${h.name}: ${(h.free ?? []).map((f, g) => `group ${g} ${f} of ${h.groups?.[g]?.length ?? 0}`).join(', ')}`)
    .join('; ');
}

function listCosts(topo: Topology, vs: number[], nodeCost: number[], perProcess?: number[][]): string {
  const shown = vs.slice(0, 8).map((v) => {
    const detail = perProcess && (perProcess[v]?.length ?? 0) > 1 ? ` (${perProcess[v]?.join('+')})` : '';
    return `"${topo.nodes[v]?.id}": ${nodeCost[v]}${detail}`;
  });
  return vs.length > 8 ? `${shown.join(', ')}, … ${vs.length} nodes` : shown.join(', ');
}

/** For summaries: how much bandwidth crosses phynodes. */
export function cutBitsPerSec(topo: Topology, net: NetworkGraph, hostOf: Int32Array): number {
  let cut = 0;
  topo.links.forEach((link, li) => {
    const a = net.aNode[li] as number;
    const b = net.bNode[li] as number;
    if (a >= 0 && b >= 0 && hostOf[a] !== hostOf[b]) {
      cut += Math.max(link.a.impairment.rateBitsPerSec ?? UNLIMITED_LINK_BITS_PER_SEC, link.b.impairment.rateBitsPerSec ?? UNLIMITED_LINK_BITS_PER_SEC);
    }
  });
  return cut;
}
