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
// Internal modes (used by the script itself): `echo PORT [HOST]`, `client HOST PORT SIZE SECONDS`.
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const SERVER_BIN = fileURLToPath(new URL('../../packages/impair/dist/bin/impaired-network-server.js', import.meta.url));
const SIZES = [64, 1400];
const LAT_COUNT = Number(process.env.BENCH_LAT_COUNT ?? 3000);
const TPUT_SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 256);


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

function report(title, direct, through) {
  console.log(`\n${title}`);
  console.log('  size   path        RTT p50     RTT p99     throughput       added p50 (RTT, 2 crossings)   throughput ratio');
  for (const size of SIZES) {
    const d = direct[size];
    const t = through[size];
    console.log(`  ${String(size).padStart(4)}B  direct   ${fmtUs(d.p50Us)}  ${fmtUs(d.p99Us)}  ${fmtPps(d.pps)}`);
    console.log(
      `  ${String(size).padStart(4)}B  engine   ${fmtUs(t.p50Us)}  ${fmtUs(t.p99Us)}  ${fmtPps(t.pps)}   ` +
        `${fmtUs(t.p50Us - d.p50Us)} (${((t.p50Us - d.p50Us) / 2).toFixed(0)} µs per crossing)   ${(t.pps / d.pps).toFixed(2)}`,
    );
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
  const proxy = await startProc([process.execPath, SERVER_BIN, '-l', 'user', '-t', 'udp', '-p', String(echoPort), '-x', '0', '-a', '0'], /proxy on port (\d+)/);
  const proxyPort = Number(proxy.match[1]);
  const direct = {};
  const viaProxy = {};
  try {
    for (const size of SIZES) {
      direct[size] = await measure(echoPort, size);
      viaProxy[size] = await measure(proxyPort, size);
    }
  } finally {
    await stopProc(proxy);
    await stopProc(echoP);
  }
  report('UDP proxy (impaired-network-server -l user) on loopback', direct, viaProxy);

  // --- kernel level: NFQUEUE in a namespace of our own
  const why = process.getuid?.() !== 0 ? 'not root' : !hasIptables() ? 'iptables is not installed' : '';
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
    const kDirect = {};
    const kEngine = {};
    try {
      for (const size of SIZES) kDirect[size] = await measure(7400, size, ns);
      const k = await startProc([process.execPath, SERVER_BIN, '-l', 'kernel', '-t', 'udp', '-p', '7400', '--netns', ns, '-a', '0'], /Configure at/);
      try {
        for (const size of SIZES) kEngine[size] = await measure(7400, size, ns);
      } finally {
        await stopProc(k);
      }
    } finally {
      await stopProc(e);
    }
    report(`kernel mode (NFQUEUE, iptables on lo in namespace ${ns})`, kDirect, kEngine);
  } finally {
    cleanup();
  }
  console.log('\nGoal: added p50 under 100 µs, proxy throughput at least half the direct path\'s (throughput ratio ≥ 0.5).');
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
