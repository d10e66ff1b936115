#!/usr/bin/env node
// What the userspace engine's setup adds to `dune up` of Kdl (issue 15, "setup cost": at most
// 20 % on top): Kdl.graphml as it is (every link delayed; without netem the engine carries the
// 1,798 delayed directions) against the same graph as TOML with the latencies as routing
// metrics (same nodes, links and routes, no delays). Each up is followed by a down; the
// engine's own step is the `impair engine` phase of the up's event stream.
//
//   npm run build && flock /tmp/dune-kernel.lock node scripts/bench/impair-kdl.mjs [ROUNDS]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { CLI, ROOT, requireBuilt } from './lib/dune.mjs';
import { zooAsToml } from './lib/topologies.mjs';

requireBuilt();
const ROUNDS = Number(process.argv[2] ?? 1);
const tmp = mkdtempSync(join(tmpdir(), 'dune-impair-kdl-'));
const graphml = `${ROOT}topologies/zoo/Kdl.graphml`;
const plain = join(tmp, 'kdl.toml');
writeFileSync(plain, (await zooAsToml(graphml)).toml);
const lab = 'bimpkdl';

function up(file) {
  const t0 = Date.now();
  const out = execFileSync(process.execPath, [CLI, 'up', file, '--lab', lab, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const wall = Date.now() - t0;
  const ev = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const phases = ev.filter((e) => e.type === 'phase');
  const i = phases.findIndex((e) => e.phase === 'impair engine');
  const engineMs = i < 0 ? 0 : Date.parse(phases[i + 1]?.t ?? ev.at(-1).t) - Date.parse(phases[i].t);
  execFileSync(process.execPath, [CLI, 'down', '--lab', lab, '--json'], { stdio: 'ignore' });
  return { wall, engineMs };
}

console.log(`dune up of Kdl (754 nodes), ${ROUNDS} round(s) each, load ${(await import('node:os')).loadavg()[0].toFixed(2)}`);
try {
  const with_ = [];
  const without = [];
  for (let r = 0; r < ROUNDS; r++) {
    without.push(up(plain));
    with_.push(up(graphml));
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const w = med(with_.map((x) => x.wall));
  const wo = med(without.map((x) => x.wall));
  console.log(`  without delays (latencies as metrics)   ${(wo / 1000).toFixed(1)} s`);
  console.log(`  with its delays (userspace engine)      ${(w / 1000).toFixed(1)} s, of which the engine's step ${(med(with_.map((x) => x.engineMs)) / 1000).toFixed(1)} s`);
  console.log(`  ratio ${(w / wo).toFixed(2)} (goal ≤ 1.20)`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
