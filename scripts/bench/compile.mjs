#!/usr/bin/env node
// Compile benchmark: time and peak memory to compile (a) Kdl from the Topology Zoo (754
// nodes, static routes to every node's prefix, both families) and (b) a synthetic 5,000-node
// Internet-like graph routed to its 500 client nodes (NetMirage mode). Each case runs in its
// own child process so its peak RSS is its own. The baseline, run in the same process tree,
// is NetMirage's method: all-pairs Floyd-Warshall over the same graph (typed arrays), which
// is what our per-destination Dijkstra replaces.
//
//   npm run build && npm run bench            (or: node scripts/bench/compile.mjs)
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const run = (c) => JSON.parse(execFileSync(process.execPath, ['--max-old-space-size=4096', `${here}compile-one.mjs`, c], { encoding: 'utf8' }));

const rows = [];
for (const c of ['kdl', 'kdl-floyd-warshall', 'synthetic-5000', 'synthetic-5000-floyd-warshall-sampled']) rows.push(run(c));
const fmt = (ms) => `${(ms / 1000).toFixed(3)} s`;
console.log('case'.padEnd(40) + 'time'.padStart(12) + 'peak RSS'.padStart(12) + '  details');
for (const r of rows) {
  console.log(r.case.padEnd(40) + fmt(r.ms).padStart(12) + `${Math.round(r.maxRssMiB)} MiB`.padStart(12) + `  ${r.details}`);
  const ph = Object.entries(r.phases ?? {});
  if (ph.length) console.log(' '.repeat(64) + ph.map(([k, v]) => `${k} ${fmt(v)}`).join(', '));
}
const byCase = Object.fromEntries(rows.map((r) => [r.case, r]));
const kdl = byCase['kdl'];
const syn = byCase['synthetic-5000'];
const fwK = byCase['kdl-floyd-warshall'].ms;
const fwS = byCase['synthetic-5000-floyd-warshall-sampled'].ms;
console.log(`\nKdl: compile (addresses, names, routes to all 754 prefixes as 1.1M route ops) ${fmt(kdl.phases.compile)}, ` +
  `${(kdl.phases.compile / fwK).toFixed(2)}x the time of bare Floyd-Warshall distances (no next hops, no ops); whole pipeline ${fmt(kdl.ms)}.`);
console.log(`5,000 nodes: compile ${fmt(syn.phases.compile)}, ${(fwS / syn.phases.compile).toFixed(1)}x faster than Floyd-Warshall distances alone (extrapolated, see details).`);
console.log('Goals: Kdl < 2 s, 5,000 nodes < 10 s, memory < 1 GiB, on one core.');
