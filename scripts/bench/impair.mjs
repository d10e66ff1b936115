// Benchmark of the impairment engine with no impairment set: what it costs to go through it.
//
//   npm run bench:impair            (after `npm run build`; kernel mode needs root + iptables)
//
// For 64-byte and 1,400-byte UDP datagrams it measures, each in its own processes (echo
// service, client, engine):
//   - latency: one datagram at a time, echoed back: RTT p50 and p99;
//   - throughput: 256 datagrams in flight (BENCH_WINDOW), echoed back, for a few seconds: datagrams/s;
// (closed loop: with too few in flight the figure measures latency, not capacity)
// on a direct path (client ↔ echo) and through the engine: the UDP proxy on loopback, and,
// as root, kernel mode (NFQUEUE) inside a namespace of its own against the same direct path
// there. Ratios are printed beside each figure. "Added" latency is per round trip, which
// crosses the engine twice (up and down).
//
// BENCH_KERNEL=0 measures the UDP proxy only (no namespace, no rule: needs no kernel lock).
// BENCH_OLD=DIR (a checkout of an older version, built) measures its engine in the same run,
// so that the new ratios print beside the old ones on the same machine at the same time.
//
// As root it then builds a two-node lab with the CLI (`dune up`), the link delayed 1 ms each
// way by the engine (impairment_backend = "userspace"), and measures iperf3 TCP across it
// beside the same lab without delay, and ping's RTT over the link (goal: ≥ 1 Gbit/s with
// the delay still within 1 ms): the engine as labs use it by default (a direction's TCP queued
// where it arrives, the rest where it leaves), beside everything queued where packets leave
// (DUNE_IMPAIR_QUEUE_AT=egress) or where they arrive (=ingress). scripts/bench/impair-tcp.mjs does the
// same for other delays.
//
// Internal modes (used by the script itself): `echo PORT [HOST]`, `client HOST PORT SIZE SECONDS`.
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SERVER_BIN = `${REPO}packages/impair/dist/bin/impaired-network-server.js`;
const DUNE = `${REPO}packages/cli/dist/bin/dune.js`;
const OLD = process.env.BENCH_OLD ? `${process.env.BENCH_OLD.replace(/\/$/, '')}/packages/impair/dist/bin/impaired-network-server.js` : undefined;
const SIZES = [64, 1400];
const LAT_COUNT = Number(process.env.BENCH_LAT_COUNT ?? 3000);
const TPUT_SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 256);
// BENCH_PROF=DIR: the engines run under `node --cpu-prof`, their profiles written to DIR.
const PROF = process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : [];


async function echo(port, host) {
  const s = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  await new Promise((r) => s.bind(port, host, r));
  process.stdout.write(`ready ${s.address().port}\n`);
}

async function client(host, port, size, seconds) {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  await new Promise((r) => s.bind(0, '127.0.0.1', r));
  const payload = Buffer.alloc(size, 0x5a);
  // latency: one at a time
  const rtts = [];
  await new Promise((resolve) => {
    let t0 = 0;
    let n = 0;
    // a lost datagram must not stall the run
    const watchdog = setInterval(() => {
      if (performance.now() - t0 > 200) next();
    }, 200);
    const next = () => {
      if (n++ >= LAT_COUNT) {
        clearInterval(watchdog);
        resolve();
        return;
      }
      t0 = performance.now();
      s.send(payload, port, host);
    };
    s.on('message', () => {
      rtts.push((performance.now() - t0) * 1000);
      next();
    });
    next();
  });
  s.removeAllListeners('message');
  // throughput: WINDOW in flight
  let echoed = 0;
  let inFlight = 0;
  const end = performance.now() + seconds * 1000;
  await new Promise((resolve) => {
    const fill = () => {
      while (inFlight < WINDOW && performance.now() < end) {
        inFlight++;
        s.send(payload, port, host);
      }
    };
    s.on('message', () => {
      echoed++;
      inFlight--;
      if (performance.now() < end) fill();
      else if (inFlight <= 0) resolve();
    });
    // losses shrink the window: top it up now and then
    const topUp = setInterval(() => {
      if (performance.now() >= end) {
        clearInterval(topUp);
        setTimeout(resolve, 100);
      } else {
        inFlight = Math.min(inFlight, WINDOW - 8);
        fill();
      }
    }, 100);
    fill();
  });
  const started = end - seconds * 1000;
  rtts.sort((a, b) => a - b);
  const q = (p) => rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))];
  process.stdout.write(`${JSON.stringify({ p50Us: q(0.5), p99Us: q(0.99), pps: echoed / ((performance.now() - started) / 1000), samples: rtts.length })}\n`);
  s.close();
  process.exit(0);
}

function startProc(argv, ready, netns) {
  const [file, args] = netns ? ['ip', ['netns', 'exec', netns, ...argv]] : [argv[0], argv.slice(1)];
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const m = ready.exec(out);
      if (m) {
        clearInterval(timer);
        resolve({ child, match: m });
      }
    }, 20);
    child.on('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`${argv.join(' ')} exited (${code}): ${out}`));
    });
  });
}

async function stopProc(p) {
  p.child.removeAllListeners('exit');
  const done = new Promise((r) => p.child.on('exit', r));
  p.child.kill('SIGTERM');
  await done;
}

async function measure(port, size, netns) {
  const argv = [process.execPath, SELF, 'client', '127.0.0.1', String(port), String(size), String(TPUT_SECONDS)];
  const out = netns ? execFileSync('ip', ['netns', 'exec', netns, ...argv], { encoding: 'utf8' }) : execFileSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  return JSON.parse(out);
}

const fmtUs = (v) => `${v.toFixed(0).padStart(6)} µs`;
const fmtPps = (v) => `${Math.round(v).toString().padStart(7)} pkt/s`;

/** The mean of two measurements of the same path (the direct path, before and after the engines ran). */
function meanOf(a, b) {
  if (b === undefined) return a;
  return { p50Us: (a.p50Us + b.p50Us) / 2, p99Us: (a.p99Us + b.p99Us) / 2, pps: (a.pps + b.pps) / 2 };
}

/** rows: [name, {size: result}] of the engines, beside the direct path (measured before and after them). */
function report(title, direct, rows) {
  console.log(`\n${title}`);
  console.log('  size   path          RTT p50     RTT p99     throughput       added p50 (RTT, 2 crossings)   throughput ratio');
  for (const size of SIZES) {
    const d = direct[size];
    console.log(`  ${String(size).padStart(4)}B  direct     ${fmtUs(d.p50Us)}  ${fmtUs(d.p99Us)}  ${fmtPps(d.pps)}`);
    for (const [name, m] of rows) {
      const t = m?.[size];
      if (t === undefined) continue;
      console.log(
        `  ${String(size).padStart(4)}B  ${name.padEnd(8)}   ${fmtUs(t.p50Us)}  ${fmtUs(t.p99Us)}  ${fmtPps(t.pps)}   ` +
          `${fmtUs(t.p50Us - d.p50Us)} (${((t.p50Us - d.p50Us) / 2).toFixed(0).padStart(3)} µs per crossing)   ${(t.pps / d.pps).toFixed(2)}`,
      );
    }
  }
}

async function main() {
  if (!existsSync(SERVER_BIN)) {
    console.error('bench:impair: build first (`npm run build`): the engine runs from packages/impair/dist');
    process.exit(1);
  }
  console.log(`impair bench: no impairment; latency from ${LAT_COUNT} ping-pongs, throughput with ${WINDOW} in flight for ${TPUT_SECONDS} s`);
  // --- user level: the UDP proxy
  const echoP = await startProc([process.execPath, SELF, 'echo', '0'], /ready (\d+)/);
  const echoPort = Number(echoP.match[1]);
  const direct = {};
  const viaProxy = {};
  const viaOld = OLD ? {} : undefined;
  try {
    const before = {};
    for (const size of SIZES) before[size] = await measure(echoPort, size);
    for (const [bin, into] of [[OLD, viaOld], [SERVER_BIN, viaProxy]]) {
      if (bin === undefined) continue;
      const proxy = await startProc([process.execPath, ...PROF, bin, '-l', 'user', '-t', 'udp', '-p', String(echoPort), '-x', '0', '-a', '0'], /proxy on port (\d+)/);
      const proxyPort = Number(proxy.match[1]);
      try {
        for (const size of SIZES) into[size] = await measure(proxyPort, size);
      } finally {
        await stopProc(proxy);
      }
    }
    for (const size of SIZES) direct[size] = meanOf(before[size], await measure(echoPort, size));
  } finally {
    await stopProc(echoP);
  }
  report('UDP proxy (impaired-network-server -l user) on loopback; direct: mean of before and after', direct, [['old', viaOld], ['engine', viaProxy]]);

  // --- kernel level: NFQUEUE in a namespace of our own
  const why = process.env.BENCH_KERNEL === '0' ? 'BENCH_KERNEL=0' : process.getuid?.() !== 0 ? 'not root' : !hasIptables() ? 'iptables is not installed' : '';
  if (why) {
    console.log(`\nkernel mode: skipped (${why})`);
    return;
  }
  const ns = `dunebench-impair-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  const cleanup = () => {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // gone
    }
  };
  process.on('SIGINT', () => (cleanup(), process.exit(130)));
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const e = await startProc([process.execPath, SELF, 'echo', '7400'], /ready (\d+)/, ns);
    // The engine as it was (BENCH_OLD), with one queue per direction (the classic setup, the
    // baseline), and balanced over one queue per core (--queue-balance auto, spread by CPU: the
    // bench is one host pair, which the kernel's address hash would keep on one queue). The
    // direct path is measured before and after them, and its mean is the reference.
    const variants = [
      ...(OLD ? [['old', OLD, []]] : []),
      ['1 queue', SERVER_BIN, ['--queue-balance', '1']],
      ['balanced', SERVER_BIN, ['--queue-balance', 'auto', '--queue-cpu-fanout']],
    ];
    const extra = process.env.BENCH_KARGS ? process.env.BENCH_KARGS.split(' ') : [];
    const kDirect = {};
    const rows = [];
    try {
      const before = {};
      for (const size of SIZES) before[size] = await measure(7400, size, ns);
      for (const [name, bin, args] of variants) {
        const into = {};
        const k = await startProc([process.execPath, ...PROF, bin, '-l', 'kernel', '-t', 'udp', '-p', '7400', '--netns', ns, '-a', '0', ...args, ...extra], /Configure at/);
        try {
          for (const size of SIZES) into[size] = await measure(7400, size, ns);
        } finally {
          await stopProc(k);
        }
        rows.push([name, into]);
      }
      for (const size of SIZES) kDirect[size] = meanOf(before[size], await measure(7400, size, ns));
    } finally {
      await stopProc(e);
    }
    report(`kernel mode (NFQUEUE, iptables on lo in namespace ${ns}; direct: mean of before and after)`, kDirect, rows);
  } finally {
    cleanup();
  }
  if (existsSync(DUNE) && process.env.BENCH_LAB !== '0') await labLink();
  console.log('\nGoals: added p50 under 100 µs; both modes at least half the direct path\'s throughput (ratio ≥ 0.5) at 64 and 1,400 B;');
  console.log('a lab link delayed by the engine carries ≥ 1 Gbit/s of TCP with the delay within 1 ms.');
}

function dune(args, opts = {}) {
  return execFileSync(process.execPath, [DUNE, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** iperf3 TCP from a to b for `seconds`: the receiver's bit/s. */
async function iperfLab(lab, addr, seconds) {
  const srv = spawn(process.execPath, [DUNE, 'exec', '--lab', lab, 'b', '--', 'iperf3', '-s', '-1', '-B', addr, '--forceflush'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    srv.stdout.on('data', (d) => (out += d));
    for (let i = 0; i < 500 && !out.includes('Server listening'); i++) await new Promise((r) => setTimeout(r, 20));
    const j = JSON.parse(dune(['exec', '--lab', lab, 'a', '--', 'iperf3', '-c', addr, '-t', String(seconds), '-J'], { timeout: (seconds + 20) * 1000 }));
    return j.end.sum_received.bits_per_second;
  } finally {
    if (srv.exitCode === null) srv.kill('SIGTERM');
  }
}

/** ping a → b: mean RTT in ms. */
function pingLab(lab, addr, count) {
  // -U: user-to-user time. Plain ping reads the kernel's receive stamp, which a direction
  // queued where it arrives (DUNE_IMPAIR_QUEUE_AT=ingress) gets before the engine holds it.
  const out = dune(['exec', '--lab', lab, 'a', '--', 'ping', '-U', '-n', '-q', '-i', '0.01', '-c', String(count), addr]);
  const m = /rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(out);
  return { min: Number(m[1]), mean: Number(m[2]), max: Number(m[3]) };
}

/** A two-node lab, a–b, with and without a 1 ms delay each way in the engine: TCP and RTT. */
async function labLink() {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const dir = mkdtempSync('/tmp/bench-impair-');
  const seconds = Number(process.env.BENCH_IPERF_SECONDS ?? 5);
  const topo = (delay) => [
    '[topology]', ...(delay ? ['impairment_backend = "userspace"'] : []),
    `links = [ { endpoints = ["a:eth0", "b:eth0"]${delay ? `, latency = "${delay}"` : ''} } ]`, '[topology.nodes.a]', '[topology.nodes.b]', '',
  ].join('\n');
  const rows = [];
  try {
    // The default queues TCP where a direction arrives and the rest where it leaves; `egress`
    // and `ingress` (DUNE_IMPAIR_QUEUE_AT) queue everything at one end, for comparison.
    for (const [lab, delay, at] of [['benchlinkd', null, 'default'], ['benchlinkf', '1ms', 'default'], ['benchlinke', '1ms', 'egress'], ['benchlinki', '1ms', 'ingress']]) {
      writeFileSync(`${dir}/${lab}.toml`, topo(delay));
      const env = { ...process.env };
      delete env.DUNE_IMPAIR_QUEUE_AT;
      if (at !== 'default') env.DUNE_IMPAIR_QUEUE_AT = at;
      dune(['up', `${dir}/${lab}.toml`, '--lab', lab], { env });
      try {
        const st = JSON.parse(dune(['status', '--lab', lab, '--json']));
        const addr = st.nodes.find((n) => n.node === 'b').v4;
        const rtt = pingLab(lab, addr, 300);
        const bps = await iperfLab(lab, addr, seconds);
        const rttAfter = pingLab(lab, addr, 100);
        rows.push({ lab, delay, at, bps, rtt, rttAfter });
      } finally {
        dune(['down', '--lab', lab]);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const [d, ...es] = rows;
  console.log(`\nlab link a–b (dune up; iperf3 TCP ${seconds} s; ping -U 300 × 10 ms)`);
  console.log('  path                                           TCP          ratio   RTT mean (min)        RTT − direct − 2 ms');
  console.log(`  direct (no delay)                        ${(d.bps / 1e9).toFixed(2).padStart(6)} Gbit/s   1.00   ${d.rtt.mean.toFixed(3)} (${d.rtt.min.toFixed(3)}) ms`);
  for (const e of es) {
    console.log(
      `  engine, 1 ms each way, ${(e.at === 'default' ? 'default (split)' : `all at ${e.at}`).padEnd(15)}  ${(e.bps / 1e9).toFixed(2).padStart(6)} Gbit/s   ${(e.bps / d.bps).toFixed(2)}   ${e.rtt.mean.toFixed(3)} (${e.rtt.min.toFixed(3)}) ms   ` +
        `${(e.rtt.mean - d.rtt.mean - 2).toFixed(3)} ms (after the TCP run: ${(e.rttAfter.mean - d.rtt.mean - 2).toFixed(3)} ms)`,
    );
  }
}

function hasIptables() {
  try {
    execFileSync('iptables', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const mode = process.argv[2];
if (mode === 'echo') await echo(Number(process.argv[3]), process.argv[4] ?? '127.0.0.1');
else if (mode === 'client') await client(process.argv[3], Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6]));
else await main();
