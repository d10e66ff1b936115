#!/usr/bin/env node
/**
 * Bench: N namespaces + M veth links, every veth end up, applied by
 *   1. applyOps (this package: rtnetlink batches from one process),
 *   2. `ip -batch` (one ip process for the namespaces, one for the links),
 *   3. one `ip` command per operation, on a tenth-ish of the work, scaled up (said so).
 * Then teardown: teardownLab vs `ip -batch` netns del. Root only; leaves nothing behind.
 *
 *   npx tsc -b packages/agent && node packages/agent/bench/apply.mjs [namespaces=1000] [links=1500]
 *
 * Namespace deletion is finished by the kernel asynchronously and eats CPU meanwhile, so
 * each run waits for the previous one's cleanup to settle before it starts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync, unlinkSync } from 'node:fs';
import { applyOps, teardownLab, listNamespaces } from '../dist/index.js';

const NS = Number(process.argv[2] ?? 1000);
const LINKS = Number(process.argv[3] ?? 1500);
const PER_OP_LINKS = 100;
const LAB = 'dunetestbench';

if (process.getuid?.() !== 0) {
  console.log('bench needs root (network namespaces); skipped');
  process.exit(0);
}

const ns = (i) => `dune.${LAB}.n${i}`;

/** Links as (a, b) namespace indexes: a ring, then chords, so most nodes get 3 interfaces. */
function topology(nNs, nLinks) {
  const links = [];
  for (let i = 0; i < nLinks; i++) {
    const a = i % nNs;
    const step = 1 + Math.floor(i / nNs) * 6;
    links.push([a, (a + step) % nNs]);
  }
  const ifCount = new Array(nNs).fill(0);
  return links.map(([a, b]) => ({ a, b, ia: `eth${ifCount[a]++}`, ib: `eth${ifCount[b]++}` }));
}

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

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const now = () => process.hrtime.bigint();
const sleep = (m) => new Promise((r) => setTimeout(r, m));

/** Waits until the kernel's namespace cleanup workers are idle (no kworker netns CPU for a while). */
async function settle() {
  await sleep(1500);
  for (let i = 0; i < 30; i++) {
    const stat = execFileSync('cat', ['/proc/stat'], { encoding: 'utf8' }).split('\n')[0].split(/\s+/).slice(1).map(Number);
    await sleep(500);
    const stat2 = execFileSync('cat', ['/proc/stat'], { encoding: 'utf8' }).split('\n')[0].split(/\s+/).slice(1).map(Number);
    const busy = (s) => s[0] + s[1] + s[2] + s[5] + s[6];
    const total = (s) => s.reduce((x, y) => x + y, 0);
    const load = (busy(stat2) - busy(stat)) / Math.max(1, total(stat2) - total(stat));
    if (load < 0.1) return;
  }
}

function ipBatch(lines) {
  const f = `/tmp/dune-bench-${process.pid}.batch`;
  writeFileSync(f, lines.join('\n') + '\n');
  const t0 = now();
  const r = spawnSync('ip', ['-batch', f], { encoding: 'utf8' });
  const t = ms(t0);
  unlinkSync(f);
  if (r.status !== 0) throw new Error(`ip -batch failed: ${r.stderr.slice(0, 500)}`);
  return t;
}

function leftovers() {
  return listNamespaces().filter((n) => n.startsWith(`dune.${LAB}.`));
}

async function main() {
  const links = topology(NS, LINKS);
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

  // 2. ip -batch, as fast as ip goes: one batch creates the namespaces, one creates every
  // veth pair straight into its namespaces with the first end up; the peer end cannot be
  // created up (ENOTCONN) and a batch line cannot enter a namespace, so one `ip -n NS -batch`
  // per namespace brings the peer ends up.
  const tb0 = now();
  const tNs = ipBatch(Array.from({ length: NS }, (_, i) => `netns add ${ns(i)}`));
  const tLinks = ipBatch(links.map((l) => `link add ${l.ia} netns ${ns(l.a)} up type veth peer name ${l.ib} netns ${ns(l.b)}`));
  const peers = new Map();
  for (const l of links) peers.set(l.b, [...(peers.get(l.b) ?? []), l.ib]);
  const tu0 = now();
  for (const [b, devs] of peers) {
    const r = spawnSync('ip', ['-n', ns(b), '-batch', '-'], { input: devs.map((d) => `link set ${d} up`).join('\n') + '\n' });
    if (r.status !== 0) throw new Error(`ip -n ${ns(b)} -batch: ${r.stderr}`);
  }
  const tUp = ms(tu0);
  const batch = ms(tb0);
  await settle();
  const tbd = now();
  ipBatch(Array.from({ length: NS }, (_, i) => `netns del ${ns(i)}`));
  const batchDown = ms(tbd);
  await settle();

  // 3. one ip process per operation, on PER_OP_LINKS links over proportionally many namespaces
  const scale = LINKS / PER_OP_LINKS;
  const nsSmall = Math.round(NS / scale);
  const small = topology(nsSmall, PER_OP_LINKS);
  const tp0 = now();
  for (let i = 0; i < nsSmall; i++) execFileSync('ip', ['netns', 'add', ns(i)]);
  for (const l of small) {
    execFileSync('ip', ['link', 'add', l.ia, 'netns', ns(l.a), 'type', 'veth', 'peer', 'name', l.ib, 'netns', ns(l.b)]);
  }
  for (const l of small) {
    execFileSync('ip', ['-n', ns(l.a), 'link', 'set', l.ia, 'up']);
    execFileSync('ip', ['-n', ns(l.b), 'link', 'set', l.ib, 'up']);
  }
  const perOpSmall = ms(tp0);
  const perOp = perOpSmall * scale;
  for (let i = 0; i < nsSmall; i++) execFileSync('ip', ['netns', 'del', ns(i)]);

  const left = leftovers();
  console.log(`apply ${NS} namespaces + ${LINKS} veth links, all ends up (2 cores, kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()})`);
  console.log(`  applyOps (rtnetlink)    ${ours.toFixed(0).padStart(6)} ms   [${phases}]  (n1 has ${upCount} links up)`);
  console.log(`  ip -batch               ${batch.toFixed(0).padStart(6)} ms   [netns ${tNs.toFixed(0)}, links ${tLinks.toFixed(0)}, peer ends up ${tUp.toFixed(0)} in ${peers.size} ip -n NS -batch]   ratio ${(batch / ours).toFixed(2)}x`);
  console.log(`    ip -batch without the peer-end ups: ${(tNs + tLinks).toFixed(0)} ms   ratio ${((tNs + tLinks) / ours).toFixed(2)}x`);
  console.log(`  ip per operation        ${perOp.toFixed(0).padStart(6)} ms   (measured ${perOpSmall.toFixed(0)} ms on ${nsSmall} ns + ${PER_OP_LINKS} links, scaled x${scale})   ratio ${(perOp / ours).toFixed(1)}x`);
  console.log(`teardown of ${NS} namespaces`);
  console.log(`  teardownLab             ${oursDown.toFixed(0).padStart(6)} ms   [verify marks ${td.timingsMs.verify}, delete ${td.timingsMs.delete}, host ${td.timingsMs.host}]`);
  console.log(`  ip -batch netns del     ${batchDown.toFixed(0).padStart(6)} ms   ratio ${(batchDown / oursDown).toFixed(2)}x`);
  console.log(`  note: applyOps also writes 1000 lo marks and 3000 aliases that the ip baselines skip`);
  if (left.length) {
    console.log(`LEFTOVERS: ${left.length}`);
    process.exitCode = 1;
  }
}

main().catch(async (e) => {
  console.error(e);
  await teardownLab(LAB);
  process.exitCode = 1;
});
