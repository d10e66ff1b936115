#!/usr/bin/env node
// NetMirage end to end on one machine (as root), with real namespaces standing for hosts:
//
//   nmtest-core (the core host: nic1, nic2)  ──veth──  nmtest-e1 (edge 1: eth1)
//                                            ──veth──  nmtest-e2 (edge 2: eth1)
//
// netmirage-core runs inside the core host's namespace (nsenter --net: `ip netns exec`
// would give it a private mount namespace, where the namespaces it creates are invisible to
// everyone else), each edge runs the command the core printed inside its own namespace.
// Then: pings between applications on different edges, on one edge, within one client (the
// self link); RTT against twice the path's latencies (when built with delay); iperf3 through
// the bandwidth-limited client; --remove and --destroy leave every namespace as it was.
//
//   node test/netmirage/scenario.mjs [--switch linux|ovs] [--without-delay] [--iperf] [--rtt [--rtt-slack MS]] [--setup]
//
// Prints one JSON object (the measurements and every failed check) and exits 1 on a failure.
import { spawnSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('../../', import.meta.url).pathname;
const CORE_BIN = join(root, 'packages/netmirage/dist/bin/netmirage-core.js');
const EDGE_BIN = join(root, 'packages/netmirage/dist/bin/netmirage-edge.js');
const GRAPHML = join(root, 'test/netmirage/twelve.graphml');

const args = process.argv.slice(2);
const opt = (name) => args.includes(name);
const sw = args.includes('--switch') ? args[args.indexOf('--switch') + 1] : 'linux';
const CORE = 'nmtest-core';
const E = ['nmtest-e1', 'nmtest-e2'];
const PREFIX = 'nmtest-x-';
const work = mkdtempSync(join(tmpdir(), 'nm-scenario-'));
const ovsDir = join(work, 'ovs');
const result = { switch: sw, delay: !opt('--without-delay'), checks: [], failures: [], pings: [], iperf: undefined };

function run(argv, { input, allowFail = false, timeout = 120_000 } = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', input, timeout });
  if (r.status !== 0 && !allowFail) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r;
}
const inNs = (ns, argv) => ['nsenter', `--net=/run/netns/${ns}`, '--', ...argv];
const check = (name, ok, detail) => {
  result.checks.push({ name, ok, ...(detail === undefined ? {} : { detail }) });
  if (!ok) result.failures.push(`${name}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
};

function snapshot(ns) {
  // Which namespace a veth's peer is in (link-netns, @ifN) changes while the core runs, and
  // carrier (NO-CARRIER, state UP/DOWN) follows the peer a moment late (linkwatch): neither
  // is configuration.
  const ip = (...a) =>
    run(['ip', '-n', ns, ...a])
      .stdout.replace(/@if\d+/g, '')
      .replace(/ link-netns \S+/g, '')
      .replace(/NO-CARRIER,/g, '')
      .replace(/ state (UP|DOWN|LOWERLAYERDOWN) /g, ' ')
      .replace(/^(\S+)\s+(UP|DOWN|LOWERLAYERDOWN|UNKNOWN)\s+/gm, '$1 ')
      .replace(/[ \t]+/g, ' ');
  return { addr: ip('addr'), rule: ip('rule'), routes: ip('route', 'show', 'table', 'all'), links: ip('-br', 'link') };
}

function ourOvsProcesses() {
  const out = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(ovsDir) && !cmd.includes('scenario.mjs')) out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

/** Shortest one-way latency (ms) between two nodes of the GraphML, and the self-loop of each node. */
function latencies() {
  const text = readFileSync(GRAPHML, 'utf8');
  const adj = new Map();
  const self = new Map();
  for (const m of text.matchAll(/<edge source="([^"]+)" target="([^"]+)"><data key="d7">([\d.]+)<\/data>/g)) {
    const [, a, b, l] = m;
    if (a === b) {
      self.set(a, Number(l));
      continue;
    }
    for (const [x, y] of [[a, b], [b, a]]) adj.set(x, [...(adj.get(x) ?? []), [y, Number(l)]]);
  }
  /** [one-way ms, hops] of the shortest path. */
  const dist = (src, dst) => {
    const d = new Map([[src, 0]]);
    const hops = new Map([[src, 0]]);
    const done = new Set();
    for (;;) {
      let u;
      for (const [k, v] of d) if (!done.has(k) && (u === undefined || v < d.get(u))) u = k;
      if (u === undefined) return [Infinity, 0];
      if (u === dst) return [d.get(u), hops.get(u)];
      done.add(u);
      for (const [v, w] of adj.get(u) ?? []) {
        if (!d.has(v) || d.get(u) + w < d.get(v)) {
          d.set(v, d.get(u) + w);
          hops.set(v, hops.get(u) + 1);
        }
      }
    }
  };
  return { dist, self };
}

function ping(srcNs, src, dst, count = opt('--rtt') ? 10 : 5) {
  const r = run(inNs(srcNs, ['ping', '-n', '-q', '-c', String(count), '-i', '0.2', '-W', '2', '-I', src, dst]), { allowFail: true });
  const loss = /(\d+(?:\.\d+)?)% packet loss/.exec(r.stdout);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(r.stdout);
  return { src, dst, ok: r.status === 0, lossPct: loss ? Number(loss[1]) : 100, minMs: rtt ? Number(rtt[1]) : undefined, avgMs: rtt ? Number(rtt[2]) : undefined };
}

const coreArgs = ['-p', PREFIX, '--client-node', 'client', '--switch', sw, '--ovs-dir', ovsDir, '-v', 'info', '-f', GRAPHML, '-E', join(work, 'edges.txt'),
  '-e', '198.51.100.2,iface=nic1,rdev=eth1,rapps=12', '-e', '198.51.100.6,iface=nic2,rdev=eth1,rapps=12'];
if (opt('--without-delay')) coreArgs.push('--without-delay');
// --setup: the edges and options from a NetMirage setup file ([emulator] and [edge*] groups) instead of -e.
if (opt('--setup')) {
  const cfg = join(work, 'setup.cfg');
  writeFileSync(cfg, `# as NetMirage's users write it
[emulator]
netns-prefix = ${PREFIX}
client-node = client
verbosity = info

[edge1]
ip = 198.51.100.2
iface = nic1
rdev = eth1
rapps = 12

[edge2]
ip = 198.51.100.6
iface = nic2
rdev = eth1
rapps = 12
`);
  const keep = coreArgs.filter((a, i) => !['-p', '--client-node', '-v', '-e'].includes(a) && !['-p', '--client-node', '-v', '-e'].includes(coreArgs[i - 1]));
  coreArgs.splice(0, coreArgs.length, ...keep, '-s', cfg);
}
// --root-ns init: the root switch lives in the core host's own namespace (NICs not moved).
const initRoot = args.includes('--root-ns') && args[args.indexOf('--root-ns') + 1] === 'init';
if (initRoot) coreArgs.push('--root-ns', 'init');
// --ssh: the core configures edge 1 itself over SSH (an sshd inside edge 1's namespace,
// reached over a management link), and removes it again on --destroy.
const viaSsh = opt('--ssh');
if (viaSsh) {
  const e1 = coreArgs.indexOf('198.51.100.2,iface=nic1,rdev=eth1,rapps=12');
  coreArgs[e1] = `198.51.100.2,iface=nic1,rdev=eth1,rapps=12,ssh=root@203.0.113.2:2222,ssh-key=${join(work, 'id')}`;
  coreArgs.push('--edge-bin', EDGE_BIN, '--known-hosts', join(work, 'known_hosts'), '--accept-new-host-keys');
}
let sshd;
let madeSshdDir = false;

let built = false;
const before = {};
try {
  // The three "hosts".
  for (const ns of [CORE, ...E]) {
    run(['ip', 'netns', 'add', ns]);
    // No IPv6 link-local addresses appearing (after DAD) between two snapshots.
    for (const k of ['all', 'default']) run(inNs(ns, ['sysctl', '-q', '-w', `net.ipv6.conf.${k}.disable_ipv6=1`]));
  }
  run(['ip', '-n', CORE, 'link', 'add', 'nic1', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', E[0]]);
  run(['ip', '-n', CORE, 'link', 'add', 'nic2', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', E[1]]);
  const addr = (ns, dev, cidr) => run(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', dev]);
  addr(CORE, 'nic1', '198.51.100.1/30');
  addr(CORE, 'nic2', '198.51.100.5/30');
  addr(E[0], 'eth1', '198.51.100.2/30');
  addr(E[1], 'eth1', '198.51.100.6/30');
  for (const [ns, devs] of [[CORE, ['lo', 'nic1', 'nic2']], [E[0], ['lo', 'eth1']], [E[1], ['lo', 'eth1']]]) for (const d of devs) run(['ip', '-n', ns, 'link', 'set', d, 'up']);
  if (viaSsh) {
    run(['ip', '-n', CORE, 'link', 'add', 'mgmt0', 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', E[0]]);
    addr(CORE, 'mgmt0', '203.0.113.1/30');
    addr(E[0], 'mgmt0', '203.0.113.2/30');
    run(['ip', '-n', CORE, 'link', 'set', 'mgmt0', 'up']);
    run(['ip', '-n', E[0], 'link', 'set', 'mgmt0', 'up']);
    for (const k of ['hostkey', 'id']) run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(work, k)]);
    writeFileSync(join(work, 'authorized_keys'), readFileSync(join(work, 'id.pub')));
    if (!existsSync('/run/sshd')) {
      mkdirSync('/run/sshd', { mode: 0o755 });
      madeSshdDir = true;
    }
    sshd = spawn('nsenter', [`--net=/run/netns/${E[0]}`, '--', '/usr/sbin/sshd', '-D', '-e', '-f', '/dev/null', '-o', 'ListenAddress=203.0.113.2', '-o', 'Port=2222', '-o', `HostKey=${join(work, 'hostkey')}`,
      '-o', `PidFile=${join(work, 'sshd.pid')}`, '-o', `AuthorizedKeysFile=${join(work, 'authorized_keys')}`, '-o', 'StrictModes=no', '-o', 'PermitRootLogin=prohibit-password', '-o', 'UsePAM=no'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
  }
  // A route through nic1 that must survive the trip into the root namespace and back.
  run(['ip', '-n', CORE, 'route', 'add', '203.0.113.0/24', 'via', '198.51.100.2', 'dev', 'nic1']);
  await new Promise((r) => setTimeout(r, 300)); // carrier up on both ends of each veth
  for (const ns of [CORE, ...E]) before[ns] = snapshot(ns);

  const t0 = performance.now();
  const core = run(inNs(CORE, ['node', CORE_BIN, ...coreArgs]), { allowFail: true, timeout: 300_000 });
  built = true;
  result.buildMs = Math.round(performance.now() - t0);
  check('netmirage-core builds', core.status === 0, core.status === 0 ? undefined : core.stderr.slice(-3000));
  result.backend = /^impairments: .*$/m.exec(core.stderr)?.[0];
  if (core.status !== 0) throw new Error('build failed');
  const lines = readFileSync(join(work, 'edges.txt'), 'utf8').trim().split('\n');
  result.edgeCommands = lines;
  check('one edge command per edge', lines.length === 2, lines);
  const ips = [];
  lines.forEach((line, i) => {
    if (viaSsh && i === 0) {
      // Configured by the core: read the addresses it got, in the order they were added.
      const out = run(['ip', '-n', E[0], '-4', '-o', 'addr', 'show', 'dev', 'eth1']).stdout;
      const got = [...out.matchAll(/inet (10\.[\d.]+)\//g)].map((m) => m[1]);
      check('edge 1 configured over SSH', got.length === 12, out);
      ips.push(got);
      return;
    }
    // The printed line is this program's own output of safe tokens (no quoting needed).
    const argv = line.split(' ').slice(1);
    const ipFile = join(work, `ips${i}.txt`);
    const r = run(inNs(E[i], ['node', EDGE_BIN, ...argv, '-I', ipFile]), { allowFail: true });
    check(`edge ${i + 1} configured`, r.status === 0, r.status === 0 ? undefined : r.stderr);
    ips.push(existsSync(ipFile) ? readFileSync(ipFile, 'utf8').trim().split('\n') : []);
  });
  result.apps = ips.map((l) => l.length);

  // Application i of an edge sits on client (edge*6 + i%6): c0..c5 behind edge 1, c6..c11 behind edge 2.
  const clientOf = (e, i) => `c${e * 6 + (i % 6)}`;
  const { dist, self } = latencies();
  const pairs = [
    [0, 0, 1, 0], // c0 → c6, across edges
    [0, 2, 1, 4], // c2 → c10
    [1, 3, 0, 4], // c9 → c4
    [0, 1, 0, 3], // c1 → c3, one edge, two clients
    [0, 0, 0, 6], // c0 → c0: the self link
    [1, 1, 1, 7], // c7 → c7: a client without a self-loop
  ];
  for (const [se, si, de, di] of pairs) {
    let p = ping(E[se], ips[se][si], ips[de][di]);
    if (p.ok && p.lossPct > 0) {
      // A new flow's first packets take the OVS userspace datapath's slow path (an upcall),
      // which a loaded machine occasionally drops: a second round must be clean.
      const first = p.lossPct;
      p = ping(E[se], ips[se][si], ips[de][di], 10);
      p.firstRoundLossPct = first;
    }
    const a = clientOf(se, si);
    const b = clientOf(de, di);
    p.path = `${a}→${b}`;
    const [oneWay, hops] = a === b ? [self.get(a) ?? 0, self.has(a) ? 1 : 0] : dist(a, b);
    p.expectedRttMs = result.delay ? 2 * oneWay : 0;
    result.pings.push(p);
    check(`ping ${p.path} (${p.src} → ${p.dst})`, p.ok && p.lossPct === 0, p);
    if (opt('--rtt') && p.ok) {
      // Never below the configured delay; above it by at most what each netem qdisc on the
      // way costs: timer granularity, 0.2-0.35 ms per traversal measured in the one-CPU UML
      // guest, each hop being crossed twice. A loaded host only ever adds delay (the guest's
      // timers fire late), so a round above the bound is measured again, twice at most, and
      // the smallest minimum counts.
      // --rtt-slack MS: one bound for every path (the userspace engine on a kernel without netem).
      const slack = args.includes('--rtt-slack') ? Number(args[args.indexOf('--rtt-slack') + 1]) : 0.4 * 2 * hops + 0.5;
      for (let round = 1; round < 3 && (p.minMs ?? 0) - p.expectedRttMs > slack; round++) {
        const again = ping(E[se], ips[se][si], ips[de][di]);
        if (again.ok && (again.minMs ?? Infinity) < (p.minMs ?? Infinity)) p.minMs = again.minMs;
        p.rounds = round + 1;
      }
      const over = (p.minMs ?? 0) - p.expectedRttMs;
      check(`rtt ${p.path} = ${p.expectedRttMs} ms (+${slack} ms)`, over >= -0.05 && over <= slack, { minMs: p.minMs, avgMs: p.avgMs, expected: p.expectedRttMs, hops });
      p.overMs = Math.round(over * 1000) / 1000;
    }
  }

  if (sw === 'ovs') {
    // The traffic really went through the switch's per-client flows.
    const r = spawnSync('ovs-ofctl', ['dump-flows', 'netmirage-br0'], { encoding: 'utf8', env: { ...process.env, OVS_RUNDIR: ovsDir } });
    const packets = (prio) => [...r.stdout.matchAll(new RegExp(`n_packets=(\\d+).*priority=${prio},`, 'g'))].reduce((n, m) => n + Number(m[1]), 0);
    result.ovsPackets = { arp: packets(32668), self: packets(16384), client: packets(8192), toEdge: packets(128) };
    check('OVS flows carried the pings', result.ovsPackets.self > 0 && result.ovsPackets.client > 0 && result.ovsPackets.toEdge > 0 && result.ovsPackets.arp > 0, result.ovsPackets);
  } else {
    const rules = run(['ip', '-n', initRoot ? CORE : `${PREFIX}root`, 'rule']).stdout.split('\n').filter((l) => / iif nic[12] lookup /.test(l));
    check('one root rule per client', rules.length === 12, rules);
  }

  if (opt('--iperf')) {
    // c5 (application 5 of edge 1) takes 1250 KiB/s = 10.24 Mbit/s towards its applications.
    const dst = ips[0][5];
    const server = spawn('nsenter', [`--net=/run/netns/${E[0]}`, '--', 'iperf3', '-s', '-1', '-B', dst, '-p', '5301'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 700));
    const c = run(inNs(E[1], ['iperf3', '-c', dst, '-B', ips[1][0], '-p', '5301', '-t', '8', '-O', '2', '-J']), { allowFail: true, timeout: 60_000 });
    server.kill();
    let bps;
    try {
      bps = JSON.parse(c.stdout).end.sum_received.bits_per_second;
    } catch {
      bps = undefined;
    }
    const rate = 1250 * 1024 * 8;
    const expected = (rate * 1448) / 1514;
    result.iperf = { rateBitsPerSec: rate, expectedGoodput: Math.round(expected), measured: bps === undefined ? null : Math.round(bps), ratio: bps === undefined ? null : bps / expected };
    check('iperf3 through the 10.24 Mbit/s client within ±5 %', bps !== undefined && Math.abs(bps / expected - 1) <= 0.05, result.iperf);
  }

  E.forEach((ns, i) => {
    if (viaSsh && i === 0) return; // the core's --destroy removes it
    const r = run(inNs(ns, ['node', EDGE_BIN, '--remove', 'eth1']), { allowFail: true });
    check(`edge ${i + 1} --remove`, r.status === 0, r.status === 0 ? undefined : r.stderr);
    const after = snapshot(ns);
    for (const k of ['addr', 'rule', 'routes']) check(`edge ${i + 1} ${k} as before`, after[k] === before[ns][k], after[k] === before[ns][k] ? undefined : { before: before[ns][k], after: after[k] });
  });
} catch (e) {
  result.failures.push(`aborted: ${e.message}`);
} finally {
  const step = (name, fn) => {
    try {
      fn();
    } catch (e) {
      result.failures.push(`${name}: ${e.message}`);
    }
  };
  if (built) {
    step('destroy', () => {
      const d = run(inNs(CORE, ['node', CORE_BIN, '-d', '-p', PREFIX, '--ovs-dir', ovsDir]), { allowFail: true });
      check('netmirage-core --destroy', d.status === 0, d.status === 0 ? undefined : d.stderr);
      const after = snapshot(CORE);
      for (const k of ['addr', 'rule', 'routes', 'links']) check(`core host ${k} as before`, after[k] === before[CORE][k], after[k] === before[CORE][k] ? undefined : { before: before[CORE][k], after: after[k] });
    });
    if (viaSsh) {
      step('edge 1 restored over SSH', () => {
        const after = snapshot(E[0]);
        for (const k of ['addr', 'rule', 'routes']) check(`edge 1 ${k} as before (restored over SSH)`, after[k] === before[E[0]][k], after[k] === before[E[0]][k] ? undefined : { before: before[E[0]][k], after: after[k] });
      });
    }
    step('leftovers', () => {
      const left = run(['ip', 'netns', 'list']).stdout.split('\n').filter((l) => l.startsWith(PREFIX));
      check('no namespace with the prefix left', left.length === 0, left);
      check('no OVS process left', ourOvsProcesses().length === 0, ourOvsProcesses());
    });
  }
  sshd?.kill();
  if (madeSshdDir) rmSync('/run/sshd', { recursive: true, force: true });
  for (const ns of [CORE, ...E]) run(['ip', 'netns', 'del', ns], { allowFail: true });
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result, null, 1) + '\n');
process.exitCode = result.failures.length === 0 ? 0 : 1;
