#!/usr/bin/env node
// Namespaces the kernel has not freed yet, and what they cost the next `up` (issue 14: 4,000
// nodes within 2.2x of 2,000). Rings with chords (routing none) of 1,000, 2,000 and 4,000
// nodes are brought up and down in turn, as `npm run bench:up -- --only d` does; between two
// sizes the kernel's netns workers are waited for. The allocated namespace count (the
// net_namespace slab's objects) is printed before each up: on this kernel, part of a large
// lab's namespaces stays allocated after `down` until another namespace is deleted, and that
// deletion is the next up's probe, whose cleanup then runs beside the build.
//
// With --kick, 3 s after each down a namespace is created and deleted (a cleanup pass) before
// the next size starts.
//
//   npm run build && flock /tmp/dune-kernel.lock node scripts/bench/netns-backlog.mjs [--kick]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, requireBuilt } from './lib/dune.mjs';
import { settle } from './lib/proc.mjs';
import { ringToml } from './lib/topologies.mjs';

requireBuilt();
const kickAfterDown = process.argv.includes('--kick');
const SLAB = '/sys/kernel/slab/net_namespace/objects';
const allocated = () => (existsSync(SLAB) ? Number.parseInt(readFileSync(SLAB, 'utf8'), 10) : NaN);
const kick = () => {
  const ns = `dune-bench-kick-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['netns', 'del', ns]);
};
const dir = mkdtempSync(join(tmpdir(), 'dune-netns-backlog-'));
const lab = `nsback${process.pid % 10000}`;
const dune = (args) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });

console.log(`ring with chords, routing none; ${kickAfterDown ? 'a cleanup pass 3 s after each down' : 'nothing done after each down'}`);
console.log('nodes   allocated before up    up s   netns s  sysctl s   down s');
let prev;
try {
  kick();
  await settle();
  for (const n of [1000, 2000, 4000]) {
    const file = join(dir, `ring-${n}.toml`);
    writeFileSync(file, ringToml(n, Math.round(n * 1.5)));
    const before = allocated();
    let t = performance.now();
    const lines = dune(['up', file, '--lab', lab, '--json']).trim().split('\n');
    const upS = (performance.now() - t) / 1000;
    const res = JSON.parse(lines[lines.length - 1]);
    const steps = res.stepsMs ?? res.result?.stepsMs ?? {};
    t = performance.now();
    dune(['down', '--lab', lab, '--json']);
    const downS = (performance.now() - t) / 1000;
    if (kickAfterDown) {
      await new Promise((r) => setTimeout(r, 3000));
      kick();
    }
    await settle();
    const ratio = prev ? `  (${(upS / prev).toFixed(2)}x the previous size)` : '';
    console.log(`${String(n).padStart(5)}   ${String(before).padStart(17)}   ${upS.toFixed(2).padStart(6)}   ${((steps.netns ?? NaN) / 1000).toFixed(2).padStart(7)}   ${((steps.sysctl ?? NaN) / 1000).toFixed(2).padStart(7)}   ${downS.toFixed(2).padStart(6)}${ratio}`);
    prev = upS;
  }
} finally {
  try {
    dune(['down', '--lab', lab]);
  } catch {
    // not up
  }
  rmSync(dir, { recursive: true, force: true });
}
