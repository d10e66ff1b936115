#!/usr/bin/env node
/**
 * Bench: N namespaces + M veth links, every veth end up, applied by
 *   1. applyOps (this package: rtnetlink batches from one process),
 *   2. `ip -batch` (one ip process for the namespaces and links, then one `ip -n NS -batch`
 *      per namespace for the peer ends, which cannot be created up),
 *   3. one `ip` command per operation, on a tenth of the work, scaled up (said so).
 * Then teardown: teardownLab vs `ip -batch` netns del. Root only; leaves nothing behind.
 * The topology, the ip baselines and the settling are shared with scripts/bench/up.mjs
 * (scripts/bench/lib/); the whole CLI (`dune up`) is measured there.
 *
 *   npx tsc -b packages/agent && node packages/agent/bench/apply.mjs [namespaces=1000] [links=1500]
 *
 * Namespace deletion is finished by the kernel asynchronously and eats CPU meanwhile, so
 * each run waits for the previous one's cleanup to settle before it starts.
 */
import { execFileSync } from 'node:child_process';
import { applyOps, teardownLab, listNamespaces } from '../dist/index.js';
import { ms, now, settle } from '../../../scripts/bench/lib/proc.mjs';
import { deleteBatch, runBatched, runPerOp } from '../../../scripts/bench/lib/ip-baseline.mjs';
import { ringWithChords } from '../../../scripts/bench/lib/topologies.mjs';

const NS = Number(process.argv[2] ?? 1000);
const LINKS = Number(process.argv[3] ?? 1500);
const PER_OP_LINKS = LINKS / 10;
const LAB = 'dunetestbench';

if (process.getuid?.() !== 0) {
  console.log('bench needs root (network namespaces); skipped');
  process.exit(0);
}

const ns = (i) => `dune.${LAB}.n${i}`;

function plan(nNs, links) {
  const ops = [];
  for (let i = 0; i < nNs; i++) ops.push({ op: 'netns', ns: ns(i), node: `n${i}`, alias: `dune:${LAB}:n${i}:lo` });
  for (const l of links) {
    ops.push({
      op: 'veth', ns: ns(l.a), name: l.ia, peerNs: ns(l.b), peerName: l.ib,
      alias: `dune:${LAB}:n${l.a}:${l.ia}`, peerAlias: `dune:${LAB}:n${l.b}:${l.ib}`,
    });
  }
  for (const l of links) ops.push({ op: 'up', ns: ns(l.a), dev: l.ia }, { op: 'up', ns: ns(l.b), dev: l.ib });
  return ops;
}

function leftovers() {
  return listNamespaces().filter((n) => n.startsWith(`dune.${LAB}.`));
}

async function main() {
  const links = ringWithChords(NS, LINKS);
  const ops = plan(NS, links);
  await teardownLab(LAB);
  // Warm-up: the first namespace ever created sets up /run/netns (shared mount, tmpfs).
  await applyOps([{ op: 'netns', ns: ns(0), node: 'n0', alias: `dune:${LAB}:n0:lo` }]);
  await teardownLab(LAB);
  await settle();

  // 1. applyOps
  const t0 = now();
  const r = await applyOps(ops);
  const ours = ms(t0);
  const phases = Object.entries(r.timingsMs).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ');
  const upCount = Number(execFileSync('ip', ['-n', ns(1), '-o', 'link', 'show', 'up'], { encoding: 'utf8' }).split('\n').filter(Boolean).length);
  await settle(); // teardown timed on a quiet machine, like the baseline's
  const t1 = now();
  const td = await teardownLab(LAB);
  const oursDown = ms(t1);
  if (td.errors.length) throw new Error(td.errors.join('; '));
  await settle();

  // 2. ip -batch, as fast as ip goes, without the aliases (the figures below say so).
  const batch = runBatched(ops, { aliases: false });
  const [created, peerUps] = Object.values(batch.steps);
  await settle();
  const batchDown = deleteBatch(ops.filter((o) => o.op === 'netns').map((o) => o.ns)).wallMs;
  await settle();

  // 3. one ip process per operation, on PER_OP_LINKS links over proportionally many namespaces
  const scale = LINKS / PER_OP_LINKS;
  const nsSmall = Math.round(NS / scale);
  const small = plan(nsSmall, ringWithChords(nsSmall, PER_OP_LINKS));
  const perOpSmall = runPerOp(small, { aliases: false }).wallMs;
  const perOp = perOpSmall * scale;
  deleteBatch(small.filter((o) => o.op === 'netns').map((o) => o.ns));

  const left = leftovers();
  console.log(`apply ${NS} namespaces + ${LINKS} veth links, all ends up (kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()})`);
  console.log(`  applyOps (rtnetlink)    ${ours.toFixed(0).padStart(6)} ms   [${phases}]  (n1 has ${upCount} links up)`);
  console.log(`  ip -batch               ${batch.wallMs.toFixed(0).padStart(6)} ms   [netns + links ${created.wallMs.toFixed(0)}, peer ends up ${peerUps.wallMs.toFixed(0)} in ${batch.processes - 1} ip -n NS -batch]   ratio ${(batch.wallMs / ours).toFixed(2)}x`);
  console.log(`    ip -batch without the peer-end ups: ${created.wallMs.toFixed(0)} ms   ratio ${(created.wallMs / ours).toFixed(2)}x`);
  console.log(`  ip per operation        ${perOp.toFixed(0).padStart(6)} ms   (measured ${perOpSmall.toFixed(0)} ms on ${nsSmall} ns + ${PER_OP_LINKS} links, scaled x${scale})   ratio ${(perOp / ours).toFixed(1)}x`);
  console.log(`teardown of ${NS} namespaces`);
  console.log(`  teardownLab             ${oursDown.toFixed(0).padStart(6)} ms   [verify marks ${td.timingsMs.verify}, delete ${td.timingsMs.delete}, host ${td.timingsMs.host}]`);
  console.log(`  ip -batch netns del     ${batchDown.toFixed(0).padStart(6)} ms   ratio ${(batchDown / oursDown).toFixed(2)}x`);
  console.log(`  note: applyOps also writes ${NS} lo marks and ${2 * LINKS} aliases that the ip baselines skip`);
  if (left.length) {
    console.log(`LEFTOVERS: ${left.length}`);
    process.exitCode = 1;
  }
}

main().catch(async (e) => {
  console.error(e);
  await teardownLab(LAB);
  // The baselines' namespaces carry no marks: teardownLab leaves them alone.
  const left = leftovers();
  if (left.length) deleteBatch(left);
  process.exitCode = 1;
});
