// Topologies for the kernel benchmarks, as link lists and as DUNE TOML.
import { readFileSync } from 'node:fs';

/**
 * `nLinks` links over `nNodes` nodes, as node indexes with interface names: a ring, then
 * chords of growing stride, so most nodes get 3 interfaces (1,000 nodes, 1,500 links:
 * 500 nodes with 4, 500 with 2).
 */
export function ringWithChords(nNodes, nLinks) {
  const links = [];
  for (let i = 0; i < nLinks; i++) {
    const a = i % nNodes;
    const step = 1 + Math.floor(i / nNodes) * 6;
    links.push([a, (a + step) % nNodes]);
  }
  const ifCount = new Array(nNodes).fill(0);
  return links.map(([a, b]) => ({ a, b, ia: `eth${ifCount[a]++}`, ib: `eth${ifCount[b]++}` }));
}

const q = (s) => JSON.stringify(s);

/**
 * DUNE TOML from links `{ a, b, attrs? }` between node ids; interfaces are named eth0, eth1…
 * per node in link order. `settings` go under [topology] (routing, routing_weight, …).
 */
export function toToml(links, settings) {
  const ifCount = new Map();
  const end = (n) => {
    const k = ifCount.get(n) ?? 0;
    ifCount.set(n, k + 1);
    return `${n}:eth${k}`;
  };
  let s = '[topology]\n';
  for (const [k, v] of Object.entries(settings)) s += `${k} = ${q(v)}\n`;
  s += 'links = [\n';
  for (const l of links) {
    const extra = Object.entries(l.attrs ?? {}).map(([k, v]) => `, ${k} = ${q(v)}`).join('');
    s += `  { endpoints = [${q(end(l.a))}, ${q(end(l.b))}]${extra} },\n`;
  }
  return `${s}]\n`;
}

/** Part (a): the ring with chords, nodes n0…, no routing. */
export function ringToml(nNodes, nLinks) {
  const links = ringWithChords(nNodes, nLinks).map(({ a, b }) => ({ a: `n${a}`, b: `n${b}` }));
  return toToml(links, { routing: 'none' });
}

/**
 * Mininet's `--topo linear,K`: switches s1…sK in a line, host hi on switch si, links in
 * Mininet's order ((h1,s1), (h2,s2), (s2,s1), …). Here every switch is a node (a routing
 * namespace), statically routed unless `routing` says otherwise.
 */
export function linearToml(k, routing = 'static') {
  return toToml(linearLinks(k), { routing });
}

function linearLinks(k) {
  const links = [];
  for (let i = 1; i <= k; i++) {
    links.push({ a: `h${i}`, b: `s${i}` });
    if (i > 1) links.push({ a: `s${i}`, b: `s${i - 1}` });
  }
  return links;
}

/**
 * A Topology Zoo GraphML file as TOML with the same nodes, links and shortest paths, but no
 * link delays: each link's latency (µs, integer; derived from the great-circle distance as
 * the GraphML reader does) becomes its `metric`, and routes follow the metric. The kernel
 * here has no netem, so the delays themselves could not be built.
 */
export async function zooAsToml(file) {
  const { parseTopology } = await import('@dune/topology');
  const topo = parseTopology(readFileSync(file, 'utf8'), file);
  const links = topo.links.map((l) => ({ a: l.a.node, b: l.b.node, attrs: { metric: Math.max(1, Math.round((l.weights.latency ?? 1) * 1000)) } }));
  const linked = new Set(links.flatMap((l) => [l.a, l.b]));
  const isolated = topo.nodes.filter((n) => !linked.has(n.id)).length;
  return { toml: toToml(links, { routing: 'static', routing_weight: 'metric' }), nodes: topo.nodes.length, links: links.length, isolated };
}

/**
 * Mininet's `--topo linear,K` like for like: the same links, s1…sK are `switch` nodes (a
 * bridge each, STP off), h1…hK routers on the one L2 segment they form, and no routes: like
 * Mininet's hosts, each reaches the others on its segment subnet only.
 */
export function linearSwitchToml(k) {
  let s = toToml(linearLinks(k), { routing: 'none' });
  for (let i = 1; i <= k; i++) s += `\n[topology.nodes.h${i}]\n[topology.nodes.s${i}]\nkind = "switch"\n`;
  return s;
}
