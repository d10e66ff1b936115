#!/usr/bin/env node
// Multi-host benchmark, on the test bed of test/multihost (phynodes = namespaces with their
// own mount namespace and a real sshd, reached over SSH as real hosts would be). Figures,
// never timed assertions; every comparison runs in the same process tree, as a ratio.
//
//   (a) `dune up` / `dune down` of a 30×30 grid (900 nodes, 1,740 links, static routes to
//       every node, both families) on 3 phynodes, beside the same lab on 1 phynode (also over
//       SSH) and on this machine (no SSH, the agent in the CLI's process).
//   (b) iperf3 over a cross-host VXLAN link beside a same-host veth link, no rate limit.
//
//   npm run build && npm run bench:multihost      (or: node scripts/bench/multihost.mjs)
//   options: --side N (grid side, default 30)   --routing none (no routes)   --only a,b
//
// Needs root. The bed's three "hosts" share this machine's CPUs, so (a) measures what
// spreading a lab costs and saves on one box (SSH, the agent copy, plan transfer, parallel
// agents on shared cores), not what three real machines would give.
import { build } from 'esbuild';
import { spawnSync, spawn } from 'node:child_process';
import { cpus, tmpdir } from 'node:os';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { settle } from './lib/proc.mjs';
import { goal } from './lib/report.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(root, 'packages/cli/dist/bin/dune.js');
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const SIDE = Number(opt('--side', '30'));
const ROUTING = opt('--routing', 'static');
const PARTS = opt('--only', 'a,b').split(',');

if (process.getuid?.() !== 0) {
  console.error('bench:multihost needs root (namespaces, sshd)');
  process.exit(1);
}
for (const f of [CLI, join(root, 'packages/transport/dist/agent/dune-agent.mjs')]) {
  if (!existsSync(f)) {
    console.error(`${f} is missing: run \`npm run build\` first`);
    process.exit(1);
  }
}

// The test bed is TypeScript (test/multihost/testbed.ts): transpile it for this script.
const tmp = mkdtempSync(join(tmpdir(), 'dune-bench-mh-'));
await build({ entryPoints: [join(root, 'test/multihost/testbed.ts')], outfile: join(tmp, 'testbed.mjs'), format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' });
const { Testbed, testbedLeftovers } = await import(join(tmp, 'testbed.mjs'));

const loadavg = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
const s2 = (ms) => `${(ms / 1000).toFixed(2)} s`;

function gridToml(lab, side, phynodes) {
  const lines = ['[topology]', `lab = "${lab}"`, `routing = "${ROUTING === 'none' ? 'none' : 'static'}"`, 'routing_weight = "hops"', ''];
  for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) lines.push(`[topology.nodes.n${r}_${c}]`);
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      if (c + 1 < side) lines.push('[[topology.links]]', `endpoints = ["n${r}_${c}:e", "n${r}_${c + 1}:w"]`);
      if (r + 1 < side) lines.push('[[topology.links]]', `endpoints = ["n${r}_${c}:s", "n${r + 1}_${c}:n"]`);
    }
  }
  return `${lines.join('\n')}\n\n${phynodes}`;
}

function dune(env, args) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--max-old-space-size=8192', CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 28 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`dune ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).slice(-1500)}`);
  return { ms, out: r.stdout, err: r.stderr };
}

function lastJson(out) {
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

function table(rows) {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('   '));
}

let tb;
const cleanups = [];
try {
  console.log(`multi-host benchmark: ${cpus().length} CPUs, load average ${loadavg().toFixed(2)}, kernel ${spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim()}`);
  tb = await Testbed.create({ count: 3 });
  const env = tb.env();
  const ph = (n) => tb.phynodes[n - 1];

  if (PARTS.includes('a')) {
    const n = SIDE * SIDE;
    console.log(`\n(a) ${SIDE}×${SIDE} grid: ${n} nodes, ${2 * SIDE * (SIDE - 1)} links, routing ${ROUTING}`);
    const cases = [
      { name: 'this machine (no SSH)', lab: 'bmh0', infra: '' },
      { name: '1 phynode over SSH', lab: 'bmh1', infra: tb.infrastructureToml().split('\n\n')[0] + '\n' },
      { name: '3 phynodes over SSH', lab: 'bmh3', infra: tb.infrastructureToml() },
    ];
    const rows = [['where', 'up', 'down', 'up ratio', 'down ratio', 'per host (agent time)']];
    const res = [];
    for (const c of cases) {
      const file = join(tmp, `${c.lab}.toml`);
      writeFileSync(file, gridToml(c.lab, SIDE, c.infra));
      cleanups.push(() => spawnSync(process.execPath, [CLI, 'down', file], { env: { ...process.env, ...env } }));
      const plan = dune(env, ['plan', file]);
      const vx = /links: \d+ \(\d+ veth, (\d+) vxlan/.exec(plan.out)?.[1] ?? '0';
      // The agent is copied on first contact: do that outside the timing (dune check).
      if (c.infra) dune(env, ['check', file]);
      // The kernel tears the previous case's namespaces down after its down returns, holding
      // RTNL now and then: each case starts once that is over, as in bench:up.
      await settle();
      const up = dune(env, ['up', file, '--json']);
      const done = lastJson(up.out);
      const hosts = done.hosts ? done.hosts.map((h) => `${h.phynode} ${s2(h.result.elapsedMs)}`).join(', ') : `local ${s2(done.elapsedMs)}`;
      await settle();
      const down = dune(env, ['down', file, '--json']);
      res.push({ c, up: up.ms, down: down.ms, hosts: `${hosts}; ${vx} VXLAN links` });
      console.log(`  ${c.name}: up ${s2(up.ms)}, down ${s2(down.ms)} (load ${loadavg().toFixed(2)})`);
      // Where each host's time went (the agent's steps), and what no host's own work accounts for.
      const steps = (m) => Object.entries(m ?? {}).filter(([, v]) => v >= 10).map(([k, v]) => `${k} ${s2(v)}`).join(', ');
      for (const h of done.hosts ?? [{ phynode: 'local', result: done }]) console.log(`    ${h.phynode}: ${steps(h.result.stepsMs)}`);
      const slowest = Math.max(...(done.hosts ?? [{ result: done }]).map((h) => h.result.elapsedMs));
      console.log(`    outside the agents: ${s2(up.ms - slowest)} (CLI start, compile, SSH, agent and plan transfer)`);
    }
    const three = res[2];
    for (const r of res) rows.push([r.c.name, s2(r.up), s2(r.down), `${(r.up / three.up).toFixed(2)}x`, `${(r.down / three.down).toFixed(2)}x`, r.hosts]);
    console.log('');
    table(rows);
    console.log('  (CLI wall time: compile, SSH and agent start, plan transfer, apply; ratio > 1: slower than on 3 phynodes)');
    goal('1 phynode over SSH within 1.2× of this machine (up)', res[1].up <= 1.2 * res[0].up, `${(res[1].up / res[0].up).toFixed(2)}×`);
    goal('3 phynodes no slower than 1 (up)', res[2].up <= res[1].up, `${(res[2].up / res[1].up).toFixed(2)}×`);
  }

  if (PARTS.includes('b')) {
    console.log('\n(b) iperf3, one TCP stream, 5 s, no rate limit: same-host veth beside cross-host VXLAN');
    const file = join(tmp, 'bperf.toml');
    writeFileSync(file, [
      '[topology]', 'lab = "bperf"', 'routing_weight = "hops"',
      '[topology.nodes.a]', 'phynode = "ph1"', '[topology.nodes.b]', 'phynode = "ph1"', '[topology.nodes.c]', 'phynode = "ph2"',
      '[[topology.links]]', 'endpoints = ["a:eth0", "b:eth0"]',
      '[[topology.links]]', 'endpoints = ["b:eth1", "c:eth0"]', '', tb.infrastructureToml(),
    ].join('\n'));
    cleanups.push(() => spawnSync(process.execPath, [CLI, 'down', file], { env: { ...process.env, ...env } }));
    dune(env, ['up', file]);
    const plan = JSON.parse(dune(env, ['plan', file, '--json']).out);
    const nsOf = (node) => plan.nodes.find((x) => x.node === node).ns;
    const addrOn = (li, side) => plan.links[li][side].v4.split('/')[0];
    const inPh = (p, args) => ['nsenter', '-t', String(p.sshdPid), '-m', '-n', '--', ...args];
    const perf = async (server, client, serverNs, clientNs, addr) => {
      const [sc, ...sa] = inPh(server, ['ip', 'netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-B', addr]);
      const srv = spawn(sc, sa, { stdio: 'ignore' });
      try {
        for (let i = 0; i < 30; i++) {
          await new Promise((r) => setTimeout(r, 150));
          const [cc, ...ca] = inPh(client, ['ip', 'netns', 'exec', clientNs, 'iperf3', '-c', addr, '-t', '5', '-O', '1', '-J']);
          const r = spawnSync(cc, ca, { encoding: 'utf8' });
          if (r.status === 0) return JSON.parse(r.stdout).end.sum_received.bits_per_second;
        }
        throw new Error(`iperf3 to ${addr} did not run`);
      } finally {
        srv.kill();
      }
    };
    const veth = await perf(ph(1), ph(1), nsOf('a'), nsOf('b'), addrOn(0, 'a'));
    const vxlan = await perf(ph(2), ph(1), nsOf('c'), nsOf('b'), addrOn(1, 'b'));
    const mtu = plan.links[1].kind === 'vxlan' ? 1450 : 1500;
    table([
      ['link', 'goodput', 'ratio'],
      ['same-host veth (MTU 1500)', `${(veth / 1e9).toFixed(2)} Gbit/s`, '1.00'],
      [`cross-host VXLAN (MTU ${mtu})`, `${(vxlan / 1e9).toFixed(2)} Gbit/s`, (vxlan / veth).toFixed(2)],
    ]);
    console.log('  (both ends on one machine: the VXLAN path adds encapsulation, the underlay veth and bridge, and decapsulation on shared CPUs)');
    dune(env, ['down', file]);
  }
} finally {
  for (const c of cleanups.reverse()) c();
  if (tb) await tb.teardown();
  rmSync(tmp, { recursive: true, force: true });
  const left = testbedLeftovers();
  if (left.length > 0) console.error(`left behind: ${left.join(', ')}`);
}
