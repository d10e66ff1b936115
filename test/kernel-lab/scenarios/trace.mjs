#!/usr/bin/env node
/**
 * Links that change over time on the netem backend, run INSIDE the UML guest by
 * ../trace.test.ts (its kernel has sch_netem):
 *
 *   test/kernel-lab/uml-run 'node test/kernel-lab/scenarios/trace.mjs'
 *
 * Three labs built by the real CLI, each followed by the real `dune trace run`: a CSV rate
 * trace 10 → 2 → 10 Mbit/s and a Mahimahi trace 6 → 3 Mbit/s measured by iperf3 (receiver
 * side, per second), and a `[[topology.schedule]]` of latency steps measured by ping. A
 * latency on every link puts the whole impairment on netem (rate included). Prints ONE line,
 * `KLRESULT {json}`; nothing is asserted here.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DUNE, loopbackV4, main, nsOf, up } from './lib.mjs';

if (process.env.DUNE_IN_UML !== '1') {
  process.stderr.write('trace.mjs runs inside the UML guest: test/kernel-lab/uml-run \'node test/kernel-lab/scenarios/trace.mjs\'\n');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'kl-trace-'));

/** Runs a command to its end; resolves with its stdout. `onFirstLine` is called with its first line of output. */
function runOut(cmd, argv, onFirstLine) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
      if (onFirstLine && out.includes('\n')) {
        onFirstLine();
        onFirstLine = undefined;
      }
    });
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${argv.join(' ')}: ${code}\n${out}${err}`))));
  });
}

async function listening(ns) {
  for (let i = 0; i < 200; i++) {
    if ((await runOut('ip', ['netns', 'exec', ns, 'ss', '-Hltn', 'sport = :5201'])).trim() !== '') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('iperf3 -s did not listen');
}

/** iperf3 a → b for `seconds` while `dune trace run` follows the lab: per-second receiver rates and the follower's changes. */
async function iperfUnderTrace(labName, toml, seconds) {
  const lab = up(labName, toml);
  try {
    const a = lab.ns('a');
    const b = lab.ns('b');
    const server = runOut('ip', ['netns', 'exec', b, 'iperf3', '-s', '-1', '-J']);
    await listening(b);
    // The client starts once the follower has put the state at 0 in place (its first line).
    let started;
    const first = new Promise((r) => (started = r));
    const follower = runOut(process.execPath, [DUNE, 'trace', 'run', '--lab', labName, '--json'], () => started());
    await first;
    await runOut('ip', ['netns', 'exec', a, 'iperf3', '-c', loopbackV4(b), '-t', String(seconds)]);
    const changes = (await follower).trim().split('\n').map((l) => JSON.parse(l));
    const perSecond = JSON.parse(await server).intervals.map((i) => i.sum.bits_per_second);
    return { perSecond, changes: changes.map((c) => ({ atMs: c.atMs, elapsedMs: c.elapsedMs, tookMs: c.tookMs })) };
  } finally {
    lab.down();
  }
}

writeFileSync(join(dir, 'steps.csv'), 'time,rate\n0s,10mbit\n4s,2mbit\n8s,10mbit\n');
const mm = [...Array.from({ length: 1500 }, (_, i) => 2 * (i + 1)), ...Array.from({ length: 750 }, (_, i) => 3000 + 4 * (i + 1))];
writeFileSync(join(dir, 'cell.up'), `${mm.join('\n')}\n`);
const link = (extra) => `[[topology.links]]\nendpoints = ["a:eth0", "b:eth0"]\nlatency = "1ms"\nqueue = "200p"\n${extra}\n`;

await main({
  csv: () => iperfUnderTrace('trcsv', link(`"a:eth0" = { trace = "${join(dir, 'steps.csv')}" }`), 12),
  mahimahi: () => iperfUnderTrace('trmm', link(`"a:eth0" = { trace = "${join(dir, 'cell.up')}" }`), 6),
  latency: async () => {
    const lab = up('trlat', `${link('')}
[[topology.schedule]]
at = "0s"
link = "a:eth0"
settings = { latency = "10ms" }

[[topology.schedule]]
at = "3s"
link = "a:eth0"
settings = { latency = "50ms" }

[[topology.schedule]]
at = "6s"
link = "a:eth0"
settings = { latency = "1ms" }
`);
    try {
      let started;
      const first = new Promise((r) => (started = r));
      const follower = runOut(process.execPath, [DUNE, 'trace', 'run', '--lab', 'trlat', '--json'], () => started());
      await first;
      const t0 = Date.now() / 1000;
      const out = await runOut('ip', ['netns', 'exec', lab.ns('a'), 'ping', '-D', '-n', '-i', '0.1', '-w', '9', loopbackV4(nsOf('trlat', 'b'))]);
      await follower;
      const samples = out.split('\n').map((l) => /^\[(\d+\.\d+)\].*time=([\d.]+) ms/.exec(l)).filter(Boolean).map((m) => [Number(m[1]) - t0, Number(m[2])]);
      return { samples };
    } finally {
      lab.down();
    }
  },
});
