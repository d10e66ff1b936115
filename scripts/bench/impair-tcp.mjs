#!/usr/bin/env node
// TCP through a link delayed by the userspace engine (issue 15, "a delayed lab link carries at
// least 1 Gbit/s of TCP with the delay still within 1 ms"): a 2-node lab a–b, the link's
// delay forced into the engine (impairment_backend = "userspace"), one iperf3 TCP stream a → b
// for T seconds, and ping's RTT idle and beside the stream against the configured 2 × delay.
// The same lab with no delay is the baseline (the engine not involved at all).
//
// By default TCP is queued where it arrives, the rest (ping) where it leaves (see
// LabPipeSpec.ingress); DUNE_IMPAIR_QUEUE_AT=egress queues all where it leaves (the old way),
// =ingress all where it arrives (then plain ping misses the last link's delay: the kernel
// stamps a packet on arrival, before the engine holds it).
//
//   npm run build && flock /tmp/dune-kernel.lock node scripts/bench/impair-tcp.mjs [--rate 1G] [SECONDS] [DELAYS_MS...]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, plan, requireBuilt } from './lib/dune.mjs';

requireBuilt();
const args = process.argv.slice(2);
// --rate R: iperf3 paced at R (e.g. 1G): the link carries R and the engine is not the
// bottleneck, so the delay under the stream is the engine's accuracy, not its backlog.
const ri = args.indexOf('--rate');
const rate = ri >= 0 ? args.splice(ri, 2)[1] : undefined;
const T = Number(args[0] ?? 5);
const delays = args.length > 1 ? args.slice(1).map(Number) : [0, 1, 5];
const dir = mkdtempSync(join(tmpdir(), 'dune-impair-tcp-'));
const lab = `bitcp${process.pid % 100000}`;

const dune = (args) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inNs = (ns, argv) => execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function topo(delayMs) {
  const latency = delayMs > 0 ? `, latency = "${delayMs}ms"` : '';
  return `[topology]\nimpairment_backend = "userspace"\nlinks = [ { endpoints = ["a:eth0", "b:eth0"]${latency} } ]\n[topology.nodes.a]\n[topology.nodes.b]\n`;
}

async function measure(delayMs) {
  const file = join(dir, `d${delayMs}.toml`);
  writeFileSync(file, topo(delayMs));
  const p = plan(file, lab);
  const nsOf = (name) => p.hosts.flatMap((h) => h.nodes).find((n) => n.node === name).ns;
  const [a, b] = [nsOf('a'), nsOf('b')];
  dune(['up', file, '--lab', lab, '--json']);
  try {
    const addr = inNs(b, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']).match(/inet (\S+)\//)[1];
    const rtt = (out) => out.match(/= ([\d.]+)\/([\d.]+)\//).slice(1, 3).map(Number);
    const [min, avg] = rtt(inNs(a, ['ping', '-q', '-c', '50', '-i', '0.02', addr]));
    const server = spawn('ip', ['netns', 'exec', b, 'iperf3', '-s', '-1', '-B', addr], { stdio: 'ignore' });
    execFileSync('sleep', ['0.5']);
    // ping beside the TCP stream: the delay the link gives while it is loaded.
    let pingOut = '';
    const loadedPing = spawn('ip', ['netns', 'exec', a, 'ping', '-q', '-c', String(Math.max(10, (T - 1) * 20)), '-i', '0.05', addr], { stdio: ['ignore', 'pipe', 'ignore'] });
    loadedPing.stdout.on('data', (d) => { pingOut += d; });
    const pinged = new Promise((r) => loadedPing.on('close', r));
    const j = JSON.parse(inNs(a, ['iperf3', '-c', addr, '-t', String(T), '-O', '1', '-J', ...(rate ? ['-b', rate] : [])]));
    await pinged;
    server.kill();
    const gbit = j.end.sum_received.bits_per_second / 1e9;
    const retr = j.end.sum_sent.retransmits;
    const [, loaded] = rtt(pingOut);
    return { delayMs, gbit, retr, min, avg, loaded };
  } finally {
    dune(['down', '--lab', lab, '--json']);
  }
}

console.log(`iperf3, one TCP stream a → b${rate ? ` paced at ${rate}bit/s` : ''}, ${T} s, across a veth link delayed by the userspace engine (both directions); load ${(await import('node:os')).loadavg()[0].toFixed(2)}`);
console.log('  delay per direction   throughput    retransmits   ping RTT min / avg idle, avg under the stream (configured)');
let base;
try {
  for (const d of delays) {
    const r = await measure(d);
    if (d === 0) base = r;
    const over = d > 0 && base ? ` = +${(r.avg - base.avg - 2 * d).toFixed(3)} / +${(r.loaded - base.loaded - 2 * d).toFixed(3)} ms over 2×delay+base` : '';
    console.log(`  ${d === 0 ? 'none (no engine)' : `${d} ms`.padEnd(16)}      ${r.gbit.toFixed(2).padStart(6)} Gbit/s   ${String(r.retr).padStart(8)}      ${r.min.toFixed(3)} / ${r.avg.toFixed(3)}, ${r.loaded.toFixed(3)} ms (${2 * d} ms)${over}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
