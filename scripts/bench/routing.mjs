#!/usr/bin/env node
// Routing benchmark: `dune up` of Topology Zoo networks with OSPF daemons (BIRD 2 in every
// router; up returns once every node routes to every loopback) beside the same lab with the
// compiler's static routes, in the same run, as a ratio. Figures, never timed assertions.
//
//   npm run build && npm run bench:routing        (or: node scripts/bench/routing.mjs)
//   options: --only Abilene,Geant2012,Kdl
//
// Needs root and bird2. Runs the built CLI as a user would; every lab is removed after.
import { spawnSync } from 'node:child_process';
import { ROOT, CLI } from './lib/dune.mjs';
import { table, s2, ratio } from './lib/report.mjs';

const argv = process.argv.slice(2);
const only = argv.includes('--only') ? (argv[argv.indexOf('--only') + 1] ?? '').split(',') : ['Abilene', 'Geant2012', 'Kdl'];

function dune(args, timeoutMs = 1_800_000) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  return { ms: performance.now() - t0, code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

const rows = [];
for (const net of only) {
  const file = `${ROOT}topologies/zoo/${net}.graphml`;
  const lab = `benchrt${net.toLowerCase()}`.slice(0, 24);
  const res = {};
  for (const mode of ['static', 'ospf']) {
    dune(['down', '--lab', lab]);
    const r = dune(['up', file, '--routing', mode, '--lab', lab]);
    if (r.code !== 0) {
      console.log(`${net} ${mode}: up failed (exit ${r.code}):\n${r.out.slice(-3000)}`);
      res[mode] = undefined;
    } else res[mode] = r.ms;
    const d = dune(['down', '--lab', lab]);
    if (d.code !== 0) console.log(`${net} ${mode}: down failed: ${d.out.slice(-500)}`);
    console.log(`${net} ${mode}: up ${s2(res[mode])}`);
  }
  rows.push([net, s2(res.static), s2(res.ospf), res.static && res.ospf ? ratio(res.static, res.ospf) : '-']);
}
console.log();
table(['network', 'up, static routes', 'up, OSPF converged', 'OSPF / static'], rows);
