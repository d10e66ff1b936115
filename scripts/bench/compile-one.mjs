// One compile benchmark case; prints a JSON line. Used by compile.mjs.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resourceUsage } from 'node:process';
import { parseTopology } from '@dune/topology';
import { compile, serializePlan, syntheticInternet } from '@dune/compiler';

const root = fileURLToPath(new URL('../../', import.meta.url));
const which = process.argv[2];

/** NetMirage's all-pairs shortest paths: Floyd-Warshall on a dense matrix. */
function floydWarshall(n, edges, maxK = n) {
  const d = new Float64Array(n * n).fill(Infinity);
  for (let i = 0; i < n; i++) d[i * n + i] = 0;
  for (const [a, b, w] of edges) {
    if (w < d[a * n + b]) d[a * n + b] = d[b * n + a] = w;
  }
  for (let k = 0; k < maxK; k++) {
    const kr = k * n;
    for (let i = 0; i < n; i++) {
      const dik = d[i * n + k];
      if (dik === Infinity) continue;
      const ir = i * n;
      for (let j = 0; j < n; j++) {
        const v = dik + d[kr + j];
        if (v < d[ir + j]) d[ir + j] = v;
      }
    }
  }
  return d;
}

function edgesOf(topo) {
  const idx = new Map(topo.nodes.map((n, i) => [n.id, i]));
  return topo.links.map((l) => [idx.get(l.a.node), idx.get(l.b.node), l.weights.latency ?? 1]);
}

const t0 = performance.now();
let details = '';
let phases = {};
if (which === 'kdl' || which === 'kdl-floyd-warshall') {
  const file = `${root}topologies/zoo/Kdl.graphml`;
  const topo = parseTopology(readFileSync(file, 'utf8'), file);
  if (which === 'kdl') {
    const t1 = performance.now();
    const plan = compile(topo);
    const t2 = performance.now();
    const bytes = serializePlan(plan).length;
    const t3 = performance.now();
    phases = { parse: t1 - t0, compile: t2 - t1, serialize: t3 - t2 };
    details = `${plan.stats.nodes} nodes, ${plan.stats.links} links, ${plan.stats.routesV4} v4 + ${plan.stats.routesV6} v6 routes, plan ${(bytes / 2 ** 20).toFixed(1)} MiB JSON`;
  } else {
    floydWarshall(topo.nodes.length, edgesOf(topo));
    details = `${topo.nodes.length}^3 relaxations, no route extraction`;
  }
} else {
  const topo = syntheticInternet({ nodes: 5000, clients: 500, seed: 1 });
  if (which === 'synthetic-5000') {
    const t1 = performance.now();
    const plan = compile(topo);
    phases = { generate: t1 - t0, compile: performance.now() - t1 };
    details = `${plan.stats.nodes} nodes, ${plan.stats.links} links, ${plan.stats.routesV4} v4 + ${plan.stats.routesV6} v6 routes`;
  } else {
    // Full Floyd-Warshall on 5,000 nodes is 1.25e11 relaxations; run 50 of the 5,000 k-steps and scale.
    const k = 50;
    const s = performance.now();
    floydWarshall(topo.nodes.length, edgesOf(topo), k);
    const perK = (performance.now() - s) / k;
    const ms = perK * topo.nodes.length;
    console.log(JSON.stringify({ case: which, ms, maxRssMiB: resourceUsage().maxRSS / 1024, details: `extrapolated: ${k} of ${topo.nodes.length} k-steps took ${(perK * k).toFixed(0)} ms` }));
    process.exit(0);
  }
}
const ms = performance.now() - t0;
console.log(JSON.stringify({ case: which, ms, maxRssMiB: resourceUsage().maxRSS / 1024, details, phases }));
