#!/usr/bin/env node
// The lab engine over several threads (issue 15, "spread queues over cores"): a lab of P
// separate links (pairs a_i–b_i), each delayed 1 ms in the userspace engine, and P iperf3
// TCP streams a_i → b_i at once for T seconds; the same lab with `impairment_engine_threads`
// 1 (the baseline, first) and then each N given. Prints the streams' sum, the ratio to the
// baseline, and each engine thread's pipes and busy share (from the engine's status).
//
// On a machine with C cores, N engine threads and P streams (2 processes each) share them:
// the gain is bounded by what the streams themselves leave free.
//
//   npm run build && flock /tmp/dune-kernel.lock node scripts/bench/impair-threads.mjs [--pairs P] [--seconds T] [N...]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, plan, requireBuilt } from './lib/dune.mjs';

requireBuilt();
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args.splice(i, 2)[1]) : dflt;
};
const P = opt('--pairs', 2);
const T = opt('--seconds', 5);
const counts = [1, ...(args.length > 0 ? args.map(Number) : [2]).filter((n) => n !== 1)];
const dir = mkdtempSync(join(tmpdir(), 'dune-impair-threads-'));
const lab = `bithr${process.pid % 100000}`;

const dune = (argv) => execFileSync(process.execPath, [CLI, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inNs = (ns, argv) => execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function topo(threads) {
  const links = Array.from({ length: P }, (_, i) => `  { endpoints = ["a${i}:eth0", "b${i}:eth0"], latency = "1ms" },`);
  const nodes = Array.from({ length: P }, (_, i) => `[topology.nodes.a${i}]\n[topology.nodes.b${i}]`);
  return ['[topology]', 'impairment_backend = "userspace"', `impairment_engine_threads = ${threads}`, 'links = [', ...links, ']', ...nodes, ''].join('\n');
}

function iperf(ns, argv) {
  return new Promise((resolve, reject) => {
    let out = '';
    const c = spawn('ip', ['netns', 'exec', ns, 'iperf3', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout.on('data', (d) => { out += d; });
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`iperf3 in ${ns}: status ${code}\n${out.slice(0, 400)}`))));
  });
}

async function measure(threads) {
  const file = join(dir, `t${threads}.toml`);
  writeFileSync(file, topo(threads));
  const p = plan(file, lab);
  const nsOf = (name) => p.hosts.flatMap((h) => h.nodes).find((n) => n.node === name).ns;
  dune(['up', file, '--lab', lab, '--json']);
  const servers = [];
  try {
    const pairs = Array.from({ length: P }, (_, i) => {
      const a = nsOf(`a${i}`);
      const b = nsOf(`b${i}`);
      const addr = inNs(b, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']).match(/inet (\S+)\//)[1];
      return { a, b, addr };
    });
    for (const { b, addr } of pairs) servers.push(spawn('ip', ['netns', 'exec', b, 'iperf3', '-s', '-1', '-B', addr], { stdio: 'ignore' }));
    execFileSync('sleep', ['0.5']);
    const outs = await Promise.all(pairs.map(({ a, addr }) => iperf(a, ['-c', addr, '-t', String(T), '-O', '1', '-J'])));
    const gbits = outs.map((o) => JSON.parse(o).end.sum_received.bits_per_second / 1e9);
    const status = JSON.parse(dune(['status', '--lab', lab, '--json']));
    const eng = status.impairEngine ?? {};
    return { threads, sum: gbits.reduce((x, y) => x + y, 0), each: gbits, eng };
  } finally {
    for (const s of servers) s.kill();
    dune(['down', '--lab', lab, '--json']);
  }
}

console.log(`${P} TCP streams at once, each across its own link delayed 1 ms (both directions) by the userspace engine, ${T} s; ${availableParallelism()} cores, load ${loadavg()[0].toFixed(2)}`);
console.log('  engine threads   sum of streams   ratio to 1 thread   per stream            engine threads: pipes, busy share');
let base;
try {
  for (const n of counts) {
    const r = await measure(n);
    base ??= r.sum;
    const per = (r.eng.threads ?? []).map((t) => `${t.pipes} pipes ${Math.round(t.utilization * 100)} %`).join(', ') || 'one (the process\'s own)';
    console.log(`  ${String(n).padEnd(15)}  ${r.sum.toFixed(2).padStart(6)} Gbit/s    ${(r.sum / base).toFixed(2).padStart(6)}              ${r.each.map((g) => g.toFixed(2)).join(' + ').padEnd(20)}  ${per}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
