#!/usr/bin/env node
// Lab benchmark: `dune up` / `dune down`, run as a user runs them (the CLI, a child process),
// beside baselines run in the same process tree, as ratios. Figures, never timed assertions.
//
//   (a) 1,000 nodes, 1,500 links, no routing: beside the same kernel objects made by `ip`
//       one command per operation (a 10 % topology, scaled per op kind) and by `ip -batch`.
//   (b) Kdl (Topology Zoo, 754 nodes) with static routes to every node: up, routes, down.
//   (c) Mininet's linear,200 (LinuxBridge switches, no controller) beside ours.
//
//   npm run build && npm run bench:up            (or: node scripts/bench/up.mjs)
//   options: --only a,b,c   --profile (part b's up under node --cpu-prof, summarised)
//   BENCH_RUNS=N: part (a)'s dune up and down N times in all (default 5), each goal on them
//   all ("every run"), the table from the first.
//
// Needs root. Every part checks that its labs really exist before trusting a time, and
// removes everything it made, also on failure. The machine may be shared: the load average
// is printed with every part, and CPU time (user + sys of the timed processes and their
// children) beside wall time.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { expandRoutes } from '@dune/compiler';
import * as dune from './lib/dune.mjs';
import { deleteBatch, deletePerNs, describeOps, renameNs, runBatched, runPerOp } from './lib/ip-baseline.mjs';
import { cleanMininet, mininetLinks, mininetMissing, mininetVersion, runMininetLinear } from './lib/mininet.mjs';
import { loadavg, namespaces, settle } from './lib/proc.mjs';
import { goal, ratio, s2, table } from './lib/report.mjs';
import { linearSwitchToml, linearToml, ringToml, zooAsToml } from './lib/topologies.mjs';
import { summarizeProfile } from './lib/cpuprofile.mjs';
import { verifyLab } from './lib/verify.mjs';

const argv = process.argv.slice(2);
const only = (argv[argv.indexOf('--only') + 1] ?? '').split(',').filter(Boolean);
const parts = argv.includes('--only') ? only : ['a', 'b', 'c', 'd'];
const PROFILE = argv.includes('--profile');
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));

const IP_PREFIX = 'bench-ip.'; // the baselines' namespaces: not dune.*, so no `dune down --all` takes them
const LABS = { a: 'benchup1k', b: 'benchkdl', c: 'benchlinear200', d: 'benchgrow' };
const nsOf = (lab) => `dune.${lab}.`;

const tmp = mkdtempSync(join(tmpdir(), 'dune-bench-up-'));
const kernel = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();

const CPUS = readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length;

function header(title) {
  const load = loadavg();
  const busy = load > CPUS ? ': the machine is busy with other work, so wall times include waiting for a CPU; the CPU columns are less affected' : '';
  console.log(`\n${'='.repeat(100)}\n${title}\n(load average ${load.toFixed(2)} on ${CPUS} CPUs${busy})\n`);
}

function mustVerify(what, v) {
  console.log(`  check ${what}: ${v.summary}`);
  if (!v.ok) throw new Error(`${what} is not what the plan says (${v.problems.slice(0, 3).join('; ')}): if a dune lab vanished, another \`dune down --all\` may have run; rerun`);
}

function mustBeGone(what, prefix) {
  const left = namespaces(prefix);
  if (left.length) throw new Error(`${what}: ${left.length} namespaces ${prefix}* still there`);
}

function cleanIpBaseline() {
  const left = namespaces(IP_PREFIX);
  if (left.length) deleteBatch(left);
}

/** The one phynode's ops, route tables (`routes` ops) as one `route` op per route, as the agent applies them. */
const opsOf = (plan) => {
  if (plan.hosts.length !== 1) throw new Error(`expected one phynode, the plan has ${plan.hosts.length}`);
  return plan.hosts[0].ops.flatMap((o) => (o.op === 'routes' ? expandRoutes(o) : [o]));
};

const count = (ops) => ops.reduce((c, o) => ((c[o.op] = (c[o.op] ?? 0) + 1), c), {});

/** A per-op measurement on a sample plan, scaled per op kind to the full plan's counts. */
function scalePerOp(sample, sampleOps, fullOps) {
  const full = count(fullOps);
  const part = count(sampleOps);
  let wallMs = 0;
  let cpuMs = 0;
  for (const [k, v] of Object.entries(sample.byKind)) {
    const f = (full[k] ?? 0) / part[k];
    wallMs += v.wallMs * f;
    cpuMs += v.cpuMs * f;
  }
  return { wallMs, cpuMs };
}

// ---------------------------------------------------------------------------------------------
async function partA() {
  const N = 1000;
  const L = 1500;
  const lab = LABS.a;
  header(`(a) ${N.toLocaleString('en')} nodes, ${L.toLocaleString('en')} links, [topology] routing = "none" — dune up/down beside ip and ip -batch`);
  const file = join(tmp, 'ring-1000.toml');
  writeFileSync(file, ringToml(N, L));
  const sampleFile = join(tmp, 'ring-100.toml');
  writeFileSync(sampleFile, ringToml(N / 10, L / 10));
  const allOps = opsOf(dune.plan(file, lab));
  // The baselines build the kernel's objects; the files dune also writes (each node's hosts
  // file, hard links of one) are dune's extra work, left out of theirs.
  const kernelOp = (o) => o.op !== 'file';
  const ops = allOps.filter(kernelOp);
  const sampleOps = opsOf(dune.plan(sampleFile, lab)).filter(kernelOp);
  const files = allOps.length - ops.length;
  const minimal = (o) => o.op === 'netns' || o.op === 'veth' || o.op === 'up';
  console.log('Topology: a ring of 1,000 nodes plus 500 chords (500 nodes with 4 interfaces, 500 with 2).');
  console.log('Addressing cannot be turned off: the TOML reader has no such option (only [topology.addressing] pools)');
  console.log('and the compiler always gives every node a loopback /32 + /128 and every link end a /31 + /127, and');
  console.log('every node its router sysctls. So with routing "none" a dune up of this file creates exactly:');
  console.log(`  ${describeOps(ops)}; no routes, no qdiscs, no processes;`);
  console.log(`  plus, per namespace, net.ipv6.conf.default.accept_dad=0 before any interface, ${files} files (/etc/hosts per node), and the journal in /run/dune/<lab>/.`);
  console.log('Baselines make the same objects from the same plan (namespaces renamed bench-ip.*): ip per op on a 10 % topology');
  console.log(`(${N / 10} nodes, ${L / 10} links: ${sampleOps.length} ops) timed per op kind and scaled by the full plan's count of that kind;`);
  console.log('ip -batch on the full plan. Neither writes a journal or checks anything. "minimal" rows do only namespaces,');
  console.log('veth pairs, aliases and links up (what a lab without addressing would be), i.e. less than dune does.');
  console.log('  ip per op: netns = `ip netns add` + `ip -n NS link set lo alias …` + `ip netns exec NS sysctl -w …accept_dad=0`;');
  console.log('    veth = `ip link add A netns NS1 type veth peer name B netns NS2` + one `ip -n NS link set X alias …` per end');
  console.log('    (`ip link add … alias` is accepted and ignored: the kernel sets aliases on existing links only); addr =');
  console.log('    `ip -n NS addr add CIDR dev X` (IPv6 with nodad, as dune); up = `ip -n NS link set X up`; sysctl = `ip netns exec NS sysctl -w`.');
  console.log('  ip -batch: one host batch (every `netns add`, then every `link add` straight into its namespaces, first end `up`),');
  console.log('    one `ip -n NS -batch` per namespace (alias + up on one line, addresses), one host batch of');
  console.log('    `netns exec NS sysctl -qw k=v …` lines (a batch line cannot enter a namespace nor write a sysctl without a process).\n');

  const rows = [];
  const down = [];
  try {
    await settle();
    const up = dune.up(file, lab);
    mustVerify('dune lab', verifyLab(ops, nsOf(lab)));
    await settle();
    const dn = dune.down(lab);
    mustBeGone('dune down', nsOf(lab));
    await settle();

    const ren = (list) => renameNs(list, (ns) => ns.replace(nsOf(lab), IP_PREFIX));
    const bOps = ren(ops);
    const names = bOps.filter((o) => o.op === 'netns').map((o) => o.ns);
    const batch = runBatched(bOps);
    mustVerify('ip -batch lab', verifyLab(bOps, IP_PREFIX));
    await settle();
    const batchDel = deleteBatch(names);
    mustBeGone('ip -batch netns del', IP_PREFIX);
    await settle();

    const sOps = ren(sampleOps);
    const sNames = sOps.filter((o) => o.op === 'netns').map((o) => o.ns);
    const perOpSample = runPerOp(sOps);
    mustVerify('ip per-op lab (10 %)', verifyLab(sOps, IP_PREFIX));
    const perOp = scalePerOp(perOpSample, sampleOps, ops);
    await settle();
    const perNsDelSample = deletePerNs(sNames);
    mustBeGone('ip netns del', IP_PREFIX);
    const perNsDel = { wallMs: (perNsDelSample.wallMs * names.length) / sNames.length, cpuMs: (perNsDelSample.cpuMs * names.length) / sNames.length };
    await settle();

    const mOps = bOps.filter(minimal);
    const mBatch = runBatched(mOps);
    mustVerify('ip -batch minimal lab', verifyLab(mOps, IP_PREFIX));
    deleteBatch(names);
    await settle();
    const msOps = sOps.filter(minimal);
    const mPerOpSample = runPerOp(msOps);
    mustVerify('ip per-op minimal lab (10 %)', verifyLab(msOps, IP_PREFIX));
    const mPerOp = scalePerOp(mPerOpSample, sampleOps.filter(minimal), ops.filter(minimal));
    deleteBatch(sNames);
    await settle();

    const vs = (r) => [ratio(r.wallMs, up.wallMs), ratio(r.cpuMs, up.cpuMs)];
    rows.push(['dune up (the CLI, child process)', `${ops.length} ops`, s2(up.wallMs), s2(up.cpuMs), '1.0×', '1.0×']);
    rows.push(['ip -batch, same objects', `${batch.processes} ip processes`, s2(batch.wallMs), s2(batch.cpuMs), ...vs(batch)]);
    rows.push(['ip per op, same objects (10 % × scale)', `${Math.round((perOpSample.commands * ops.length) / sampleOps.length)} ip commands`, s2(perOp.wallMs), s2(perOp.cpuMs), ...vs(perOp)]);
    rows.push(['ip -batch, minimal (ns, veth, alias, up)', `${mBatch.processes} ip processes`, s2(mBatch.wallMs), s2(mBatch.cpuMs), ...vs(mBatch)]);
    rows.push(['ip per op, minimal (10 % × scale)', `${Math.round((mPerOpSample.commands * ops.filter(minimal).length) / msOps.length)} ip commands`, s2(mPerOp.wallMs), s2(mPerOp.cpuMs), ...vs(mPerOp)]);
    // The same up and down again: on a shared 2-core machine one sample says little about
    // "every run". Each lab is checked as the first was.
    const ups = [up];
    const downs = [dn];
    for (let i = 1; i < RUNS; i++) {
      await settle();
      ups.push(dune.up(file, lab));
      mustVerify(`dune lab, run ${i + 1}`, verifyLab(ops, nsOf(lab)));
      await settle();
      downs.push(dune.down(lab));
      mustBeGone(`dune down, run ${i + 1}`, nsOf(lab));
    }
    await settle();

    const dvs = (r) => [ratio(r.wallMs, dn.wallMs), ratio(r.cpuMs, dn.cpuMs)];
    down.push(['dune down (the CLI, child process)', `${dn.namespaces} namespaces`, s2(dn.wallMs), s2(dn.cpuMs), '1.0×', '1.0×']);
    down.push(['ip -batch netns del', '1 ip process', s2(batchDel.wallMs), s2(batchDel.cpuMs), ...dvs(batchDel)]);
    down.push(['ip netns del per namespace (10 % × 10)', `${names.length} ip commands`, s2(perNsDel.wallMs), s2(perNsDel.cpuMs), ...dvs(perNsDel)]);

    console.log('\nbuild');
    table(['', 'work', 'wall', 'CPU', 'dune faster (wall)', '(CPU)'], rows);
    console.log(`  dune up steps: ${up.steps.map((s) => `${s.name} ${s2(s.ms)}`).join(' · ')}`);
    console.log(`  ip -batch steps: ${Object.entries(batch.steps).map(([k, v]) => `${k} ${s2(v.wallMs)}`).join(' · ')}`);
    console.log(`  ip per op, measured: ${s2(perOpSample.wallMs)} for ${perOpSample.commands} commands (${Object.entries(perOpSample.byKind).map(([k, v]) => `${k} ${v.commands}`).join(', ')})`);
    console.log('\nteardown');
    table(['', 'work', 'wall', 'CPU', 'dune faster (wall)', '(CPU)'], down);
    console.log(`  ip netns del per namespace, measured: ${s2(perNsDelSample.wallMs)} for ${sNames.length} namespaces`);
    console.log('  dune down also: starts Node, reads the journal, looks for processes in the lab\'s namespaces, checks the mark');
    console.log('  (lo\'s alias) of every namespace before deleting it, removes the journal; ip netns del only unmounts and unlinks.');
    console.log('  Both leave the namespaces\' final teardown to the kernel, asynchronously (waited for between measurements).');
    const every = (label, runs, limitMs) => {
      const met = runs.filter((r) => r.wallMs < limitMs).length;
      const shown = runs.length === 1 ? s2(runs[0].wallMs) : `${runs.map((r) => s2(r.wallMs)).join(', ')}: in ${met} of ${runs.length} runs`;
      goal(label, met === runs.length, shown);
    };
    console.log('');
    if (RUNS > 1) {
      const med = (runs) => [...runs].map((r) => r.wallMs).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
      console.log(`  ${RUNS} runs: dune up median ${s2(med(ups))}, dune down median ${s2(med(downs))} (the table above: the first run)`);
      for (const [i, u] of ups.entries()) console.log(`    up run ${i + 1}: ${u.steps.map((x) => `${x.name} ${s2(x.ms)}`).join(' · ')}`);
    }
    every('up < 3 s', ups, 3000);
    every('down < 1 s', downs, 1000);
    every('up < 2 s (#14)', ups, 2000);
    every('down < 0.5 s (#14)', downs, 500);
    goal('up ≥ 3× faster than ip -batch (same objects)', batch.wallMs / up.wallMs >= 3, ratio(batch.wallMs, up.wallMs));
  } finally {
    await dune.downQuietly(lab);
    cleanIpBaseline();
  }
}

// ---------------------------------------------------------------------------------------------
async function partB() {
  const lab = LABS.b;
  header('(b) Kdl (Topology Zoo, topologies/zoo/Kdl.graphml) with static routes to every node');
  const zoo = await zooAsToml(`${dune.ROOT}topologies/zoo/Kdl.graphml`);
  const file = join(tmp, 'kdl.toml');
  writeFileSync(file, zoo.toml);
  console.log(`Kdl has ${zoo.nodes} nodes and ${zoo.links} links (${zoo.isolated} isolated). Its GraphML gives every link a delay (from the`);
  console.log('great-circle distance), and this kernel has no netem, so `dune up Kdl.graphml` refuses it before touching');
  console.log('anything. Measured instead: the same graph as TOML, each link\'s latency (µs) as its `metric` and');
  console.log('routing_weight = "metric", so the same shortest paths and routes, without the delay qdiscs.');
  const plan = dune.plan(file, lab);
  const ops = opsOf(plan);
  const st = plan.stats;
  console.log(`Plan: ${describeOps(ops)}.`);
  console.log(`Plan stats: ${st.routesV4.toLocaleString('en')} IPv4 + ${st.routesV6.toLocaleString('en')} IPv6 routes to ${st.routeDestinations} destinations.\n`);
  const profileDir = PROFILE ? join(tmp, 'prof') : undefined;
  try {
    await settle();
    const up = dune.up(file, lab, { profileDir });
    const installed = up.created.route ?? 0;
    mustVerify('dune lab', verifyLab(ops, nsOf(lab)));
    const first = ops.find((o) => o.op === 'netns').ns;
    const v4 = spawnSync('sh', ['-c', `ip -n ${first} route | wc -l`], { encoding: 'utf8' }).stdout.trim();
    const v6 = spawnSync('sh', ['-c', `ip -n ${first} -6 route | wc -l`], { encoding: 'utf8' }).stdout.trim();
    const mine = ops.filter((o) => o.op === 'route' && o.ns === first);
    const ifaces = ops.filter((o) => o.op === 'veth').reduce((s, o) => s + Number(o.ns === first) + Number(o.peerNs === first), 0);
    console.log(`  ip -n ${first} route | wc -l → ${v4}; -6 → ${v6} (plan: ${mine.filter((o) => !o.dst.includes(':')).length} + ${mine.filter((o) => o.dst.includes(':')).length} routes; the kernel adds a connected route per interface (${ifaces}) and, in IPv6, an fe80::/64 per interface)`);
    await settle();
    const dn = dune.down(lab);
    mustBeGone('dune down', nsOf(lab));
    console.log('');
    table(['', 'wall', 'CPU', 'detail'], [
      ['dune up (the CLI, child process)', s2(up.wallMs), s2(up.cpuMs), `${installed.toLocaleString('en')} routes installed (plan: ${(st.routesV4 + st.routesV6).toLocaleString('en')})${PROFILE ? ', under --cpu-prof' : ''}`],
      ['dune down', s2(dn.wallMs), s2(dn.cpuMs), `${dn.namespaces} namespaces`],
    ]);
    console.log(`  dune up steps: ${up.steps.map((s) => `${s.name} ${s2(s.ms)}`).join(' · ')}`);
    console.log('');
    goal('up < 15 s', up.wallMs < 15000, s2(up.wallMs));
    goal('up < 6 s (#14)', up.wallMs < 6000, s2(up.wallMs));
    if (installed !== st.routesV4 + st.routesV6) throw new Error(`dune reported ${installed} routes, the plan has ${st.routesV4 + st.routesV6}`);
    if (profileDir) {
      const f = readdirSync(profileDir).find((n) => n.endsWith('.cpuprofile'));
      const p = summarizeProfile(join(profileDir, f), 15);
      console.log(`\n  profile of that dune up: ${s2(p.totalMs)} sampled. Self time (kernel time spent in a syscall counts for its caller):`);
      for (const x of p.self) console.log(`    ${s2(x.ms).padStart(9)} ${x.pct.toFixed(1).padStart(5)} %  ${x.fn}`);
      console.log('  inclusive:');
      for (const x of p.inclusive) console.log(`    ${s2(x.ms).padStart(9)} ${x.pct.toFixed(1).padStart(5)} %  ${x.fn}`);
    }
  } finally {
    await dune.downQuietly(lab);
  }
}

// ---------------------------------------------------------------------------------------------
async function partD() {
  const sizes = [1000, 2000, 4000];
  const lab = LABS.d;
  header(`(d) growth: a ring with chords (1.5 links per node, routing "none") at ${sizes.map((n) => n.toLocaleString('en')).join(', ')} nodes`);
  console.log('What grows faster than the lab shows as a ratio above 2 between consecutive sizes.\n');
  const rows = [];
  const stepRows = new Map();
  const ups = [];
  for (const n of sizes) {
    const file = join(tmp, `grow-${n}.toml`);
    writeFileSync(file, ringToml(n, Math.round(n * 1.5)));
    await settle();
    try {
      const up = dune.up(file, lab);
      if (namespaces(nsOf(lab)).length !== n) throw new Error(`dune up of ${n} nodes: ${namespaces(nsOf(lab)).length} namespaces`);
      await settle();
      const dn = dune.down(lab);
      mustBeGone(`dune down of ${n} nodes`, nsOf(lab));
      const prev = ups.at(-1);
      ups.push({ n, up, dn });
      rows.push([n.toLocaleString('en'), s2(up.wallMs), s2(dn.wallMs), prev ? `${(up.wallMs / prev.up.wallMs).toFixed(2)}` : '-', prev ? `${(dn.wallMs / prev.dn.wallMs).toFixed(2)}` : '-', loadavg().toFixed(2)]);
      for (const st of up.steps) {
        if (!stepRows.has(st.name)) stepRows.set(st.name, []);
        stepRows.get(st.name).push(s2(st.ms));
      }
    } finally {
      await dune.downQuietly(lab);
    }
  }
  table(['nodes', 'up s', 'down s', 'up / previous', 'down / previous', 'load'], rows);
  console.log('');
  table(['step of up (s)', ...sizes.map((n) => n.toLocaleString('en'))], [...stepRows].map(([k, v]) => [k, ...v]));
  const [, two, four] = ups;
  if (two && four) goal('4,000 nodes up within 2.2x of 2,000', four.up.wallMs / two.up.wallMs <= 2.2, `${(four.up.wallMs / two.up.wallMs).toFixed(2)}x`);
}

async function partC() {
  const K = 200;
  const lab = LABS.c;
  header(`(c) Mininet's linear,${K} (--switch lxbr --controller none) beside dune on the same shape`);
  const missing = mininetMissing();
  if (missing) {
    console.log(`SKIPPED: Mininet cannot run here: ${missing}`);
    return;
  }
  const file = join(tmp, `linear-${K}.toml`);
  writeFileSync(file, linearToml(K));
  const plainFile = join(tmp, `linear-${K}-none.toml`);
  writeFileSync(plainFile, linearToml(K, 'none'));
  const swFile = join(tmp, `linear-${K}-switch.toml`);
  writeFileSync(swFile, linearSwitchToml(K));
  const plan = dune.plan(file, lab);
  const ops = opsOf(plan);
  console.log(`Mininet ${mininetVersion()}: ${K} LinuxBridge switches (bridges in the host namespace, no STP), ${K} hosts (a shell in its`);
  console.log(`own namespace each, not ip netns), ${2 * K - 1} veth links, host addresses 10.0.0.x/8 set with ifconfig through the host shells.`);
  const swPlan = dune.plan(swFile, lab);
  const swOps = opsOf(swPlan);
  console.log(`Like for like, dune with \`kind = "switch"\` nodes: ${K} switches (a bridge each, STP off, in its own namespace), ${K} hosts`);
  console.log(`on the one L2 segment they form (one /24 and one /64), no routes: ${describeOps(swOps)}.`);
  console.log('Beside it, as before, each switch as a router node with its host attached:');
  console.log(`${K * 2} namespaces, ${2 * K - 1} links, static routes to every node: ${describeOps(ops)}`);
  console.log(`(twice the namespaces that get addresses, ${(ops.filter((o) => o.op === 'route').length).toLocaleString('en')} routes); and that file with routing = "none".`);
  console.log('Mininet runs through its Python API (what `mn --topo linear,200 --switch lxbr --controller none --test none`');
  console.log('does) so build and stop are timed apart; its up includes Python\'s start and imports, as ours includes Node\'s.');
  console.log(`Every lab is pinged end to end after the timing (the router one with TTL 255 both ways: ${K} routers in the path).\n`);
  const before = mininetLinks();
  if (before.length) console.log(`  note: ${before.length} Mininet-like links were already in the host namespace: removed first (${cleanMininet().links})`);
  let mn;
  try {
    await settle();
    mn = runMininetLinear(K, tmp);
    console.log(`  check Mininet: ${mn.started.hosts} hosts (${mn.verified.alive} shells alive), ${mn.started.switches} switches (${mn.verified.bridges} bridges in the kernel), ${mn.started.links} links; ping h1 → h${K} (${mn.verified.to}): ${mn.verified.ping ? 'ok' : 'FAILED'}`);
    const left = cleanMininet(mn.pids);
    if (left.links || left.shells) console.log(`  Mininet left ${left.links} links and ${left.shells} shells behind: removed`);
    if (!mn.verified.ping || mn.verified.bridges !== K || mn.verified.alive !== K) throw new Error('the Mininet lab was not complete');
    await settle();

    const up = dune.up(file, lab);
    mustVerify('dune lab', verifyLab(ops, nsOf(lab)));
    const h1 = plan.nodes.find((n) => n.node === 'h1');
    const hk = plan.nodes.find((n) => n.node === `h${K}`);
    // 200 routers each way: the request goes with TTL 255, and the reply too (h${K}'s default TTL, 64, would not make it back).
    spawnSync('ip', ['netns', 'exec', hk.ns, 'sysctl', '-qw', 'net.ipv4.ip_default_ttl=255']);
    const ping = spawnSync('ip', ['netns', 'exec', h1.ns, 'ping', '-c1', '-W10', '-t', '255', hk.v4], { encoding: 'utf8' });
    console.log(`  ping h1 → h${K} (${hk.v4}) in the dune lab: ${ping.status === 0 ? 'ok' : `FAILED (${ping.stdout.trim().split('\n').pop()})`}`);
    await settle();
    const dn = dune.down(lab);
    mustBeGone('dune down', nsOf(lab));
    if (ping.status !== 0) throw new Error('the dune lab does not route end to end');
    await settle();

    // Like for like: switches as bridges, the hosts on one segment, no routes.
    const upSw = dune.up(swFile, lab);
    mustVerify('dune lab, switches', verifyLab(swOps, nsOf(lab)));
    const segAddr = (n) => swPlan.links.find((l) => l.a.node === n)?.a.v4;
    const swPing = spawnSync('ip', ['netns', 'exec', swPlan.nodes.find((n) => n.node === 'h1').ns, 'ping', '-c1', '-W10', segAddr(`h${K}`)], { encoding: 'utf8' });
    console.log(`  ping h1 → h${K} (${segAddr(`h${K}`)}, across ${K} bridges) in the dune switch lab: ${swPing.status === 0 ? 'ok' : `FAILED (${swPing.stdout.trim().split('\n').pop()})`}`);
    await settle();
    const dnSw = dune.down(lab);
    mustBeGone('dune down', nsOf(lab));
    if (swPing.status !== 0) throw new Error('the dune switch lab does not reach end to end');
    await settle();

    // The same without routes: closer to what Mininet builds (no L3 state at all).
    const plainOps = opsOf(dune.plan(plainFile, lab));
    const upPlain = dune.up(plainFile, lab);
    mustVerify('dune lab, routing none', verifyLab(plainOps, nsOf(lab)));
    await settle();
    const dnPlain = dune.down(lab);
    mustBeGone('dune down', nsOf(lab));
    console.log('');
    const row = (name, m, w, a, b) => [name, s2(m), s2(w), ratio(m, w), s2(a), ratio(m, a), s2(b), ratio(m, b)];
    table(['', 'Mininet', 'dune, switches', 'dune faster', 'dune, routers static', 'dune faster', 'dune, routers none', 'dune faster'], [
      row('up (build + start)', mn.upMs, upSw.wallMs, up.wallMs, upPlain.wallMs),
      row('down (stop)', mn.downMs, dnSw.wallMs, dn.wallMs, dnPlain.wallMs),
      row('up + down', mn.upMs + mn.downMs, upSw.wallMs + dnSw.wallMs, up.wallMs + dn.wallMs, upPlain.wallMs + dnPlain.wallMs),
      row('CPU, whole run (Mininet: with its check)', mn.cpuMs, upSw.cpuMs + dnSw.cpuMs, up.cpuMs + dn.cpuMs, upPlain.cpuMs + dnPlain.cpuMs),
    ]);
    console.log(`  dune up steps, switches: ${upSw.steps.map((s) => `${s.name} ${s2(s.ms)}`).join(' · ')}`);
    console.log(`  Mininet: Python start + imports ${s2(mn.importMs)}; dune up steps: ${up.steps.map((s) => `${s.name} ${s2(s.ms)}`).join(' · ')}`);
    console.log('');
    goal('like for like (switches): up ≥ 10× faster than Mininet', mn.upMs / upSw.wallMs >= 10, ratio(mn.upMs, upSw.wallMs));
    goal('like for like (switches): down ≥ 10× faster than Mininet', mn.downMs / dnSw.wallMs >= 10, ratio(mn.downMs, dnSw.wallMs));
    goal('≥ 10× faster than Mininet (up + down, static routes)', (mn.upMs + mn.downMs) / (up.wallMs + dn.wallMs) >= 10, ratio(mn.upMs + mn.downMs, up.wallMs + dn.wallMs));
  } finally {
    await dune.downQuietly(lab);
    cleanMininet(mn?.pids ?? []);
  }
}

// ---------------------------------------------------------------------------------------------
async function main() {
  if (process.getuid?.() !== 0) {
    console.log('bench:up needs root (network namespaces); skipped');
    return;
  }
  dune.requireBuilt();
  console.log(`dune lab benchmark — kernel ${kernel}, node ${process.version}; figures, not assertions`);
  const fns = { a: partA, b: partB, c: partC, d: partD };
  let failed = 0;
  for (const p of parts) {
    if (!fns[p]) throw new Error(`unknown part ${p} (parts: a, b, c, d)`);
    // The machine is shared (other suites build the checkout and remove every lab with
    // `dune down --all`): a part that fails is run once more, saying so.
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        await fns[p]();
        break;
      } catch (e) {
        console.log(`\nPART (${p}) FAILED: ${e instanceof Error ? e.message : e}`);
        if (attempt === 2) failed++;
        else console.log(`part (${p}) once more:`);
      }
    }
  }
  const left = [...namespaces(IP_PREFIX), ...Object.values(LABS).flatMap((l) => namespaces(nsOf(l)))];
  const mnLeft = mininetLinks();
  console.log(`\nleft behind: ${left.length} namespaces, ${mnLeft.length} Mininet links${left.length + mnLeft.length ? ' — see above' : ''}`);
  if (failed || left.length || mnLeft.length) process.exitCode = 1;
}

try {
  await main();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
