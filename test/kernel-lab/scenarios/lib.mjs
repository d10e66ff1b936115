/**
 * Helpers for the kernel-lab scenarios, which run INSIDE the UML guest (see ../uml-run):
 * bring a lab up and down with the built `dune` CLI, ping and run the UDP probe between its
 * nodes, and reduce what they measured to a few numbers. Everything is plain Node, no
 * dependencies: the guest sees the checkout at the same path as the host.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DUNE = join(ROOT, 'packages/cli/dist/bin/dune.js');
const PROBE = fileURLToPath(new URL('./udp-probe.mjs', import.meta.url));

/** Wall time of every dune, ping and probe call, by kind: where a guest run spends its time. */
export const timings = {};
function timed(kind, t0) {
  const e = (timings[kind] ??= { n: 0, ms: 0 });
  e.n++;
  e.ms += Math.round(performance.now() - t0);
}

/** Runs `dune ARGS...`; throws with its output when it fails. */
export function dune(...args) {
  const t0 = performance.now();
  try {
    return duneRaw(args);
  } finally {
    timed(`dune ${args[0]}`, t0);
  }
}

function duneRaw(args) {
  const r = spawnSync(process.execPath, [DUNE, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dune ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The namespace of a node, as the compiler names it. */
export const nsOf = (lab, node) => `dune.${lab}.${node}`;

/**
 * A lab from a TOML text, up until `down()`. The file lives in the guest's /tmp (a tmpfs).
 * `reup(toml)` runs `dune up` again on the same lab with another topology: it converges,
 * changing impairments live.
 */
export function up(lab, toml) {
  const dir = mkdtempSync(join(tmpdir(), 'kl-'));
  const file = join(dir, `${lab}.toml`);
  const apply = (text) => {
    writeFileSync(file, text);
    const t0 = performance.now();
    const out = dune('up', file, '--lab', lab);
    return { ms: Math.round(performance.now() - t0), out };
  };
  const first = apply(toml);
  return {
    lab,
    upMs: first.ms,
    ns: (node) => nsOf(lab, node),
    reup: apply,
    /** `dune down`, then nothing of the lab may be left: no namespace, no state directory. */
    down() {
      try {
        dune('down', '--lab', lab);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const left = [
        ...execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter((n) => n?.startsWith(`dune.${lab}.`)),
        ...(existsSync(`/run/dune/${lab}`) ? [`/run/dune/${lab}`] : []),
      ];
      if (left.length > 0) throw new Error(`dune down --lab ${lab} left ${left.join(', ')}`);
    },
  };
}

/** A command inside a namespace (argv only, no shell). */
export function nsExec(ns, argv, opts = {}) {
  return execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', ...opts });
}

/** The node's loopback IPv4 address: what routes reach it by. */
export function loopbackV4(ns) {
  const j = JSON.parse(nsExec(ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', 'lo']));
  const a = j[0]?.addr_info?.find((x) => !x.local.startsWith('127.'));
  if (!a) throw new Error(`no loopback address in ${ns}`);
  return a.local;
}

/** `tc -s qdisc show dev DEV` in a namespace, parsed to what the scenarios check. */
export function qdiscStats(ns, dev) {
  const out = nsExec(ns, ['tc', '-s', 'qdisc', 'show', 'dev', dev]);
  const netem = /qdisc netem \S+ .*?limit (\d+)/.exec(out);
  const sent = /Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/.exec(out);
  return {
    text: out.trim(),
    limit: netem ? Number(netem[1]) : undefined,
    sentPkts: sent ? Number(sent[2]) : undefined,
    dropped: sent ? Number(sent[3]) : undefined,
  };
}

/**
 * Pings `dst` from `ns`: a short warm-up (neighbour resolution, cold caches) that is thrown
 * away, then COUNT echo requests INTERVAL seconds apart. RTTs in ms, in sequence order
 * (ping's RTTs come from kernel timestamps, so a slow guest CPU hardly shows in them).
 * Pings on different links run concurrently: `await Promise.all([ping(...), ping(...)])`.
 */
export async function ping(ns, dst, count, interval = 0.01) {
  const t0 = performance.now();
  await run('ip', ['netns', 'exec', ns, 'ping', '-c', '3', '-i', '0.05', '-W', '2', '-q', '-n', dst]);
  const r = await run('ip', ['netns', 'exec', ns, 'ping', '-c', String(count), '-i', String(interval), '-W', '2', '-n', dst]);
  const rtts = [];
  for (const m of r.stdout.matchAll(/icmp_seq=(\d+) .*time=([\d.]+) ms/g)) rtts.push(Number(m[2]));
  const sum = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?/.exec(r.stdout);
  timed('ping', t0);
  return {
    rtts,
    transmitted: sum ? Number(sum[1]) : 0,
    received: sum ? Number(sum[2]) : 0,
    duplicates: sum?.[3] ? Number(sum[3]) : 0,
  };
}

/** A command to completion, asynchronously: { code, stdout, stderr }. */
export function run(cmd, argv) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function lineReader(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

/**
 * The UDP probe from node `from` to `to`: a receiver in `to`, a paced sender in `from`
 * (after a ping has resolved the path, unless `prime` is false).
 * `drainMs` after the sender is done (the largest delay the path can add, plus margin), the
 * receiver is told to stop and report. Returns both sides' raw records.
 */
export async function udpProbe({ fromNs, toNs, dst, count, intervalUs, size = 64, warmup = 50, echo = false, drainMs = 500, port = 9000, prime = true }) {
  const t0 = performance.now();
  if (prime) {
    // Resolve the next hop first. netem impairs ARP like anything else: a lost (or corrupted)
    // ARP request is retried only after 1 s, and meanwhile the neighbour layer keeps a few
    // packets and drops the rest, before netem sees them. One echo reply means it resolved.
    const r = await run('ip', ['netns', 'exec', fromNs, 'ping', '-c', '1', '-w', '10', '-i', '0.2', '-q', '-n', dst]);
    if (r.code !== 0) throw new Error(`no echo reply from ${dst} in ${fromNs} within 10 s: ${r.stdout}${r.stderr}`);
  }
  const recv = spawn('ip', ['netns', 'exec', toNs, process.execPath, PROBE, 'recv', String(port), ...(echo ? ['--echo'] : [])], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = [];
  let ready;
  const isReady = new Promise((res) => (ready = res));
  lineReader(recv.stdout, (l) => (l === 'ready' ? ready() : lines.push(l)));
  const recvDone = new Promise((res) => recv.on('close', res));
  await Promise.race([isReady, recvDone.then(() => Promise.reject(new Error('udp receiver exited before it was ready')))]);
  const sender = await run('ip', [
    'netns', 'exec', fromNs, process.execPath, PROBE, 'send', dst, String(port), String(count), String(intervalUs), String(size), String(warmup),
    ...(echo ? [String(drainMs)] : []),
  ]);
  if (sender.code !== 0) {
    recv.kill();
    throw new Error(`udp sender failed (${sender.code}): ${sender.stderr}`);
  }
  if (!echo) await sleep(drainMs);
  recv.stdin.end();
  await recvDone;
  const r = JSON.parse(lines.find((l) => l.startsWith('{')) ?? 'null');
  if (!r) throw new Error('udp receiver printed no result');
  timed('udp probe', t0);
  return { send: JSON.parse(sender.stdout.trim().split('\n').pop()), recv: r };
}

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// ---- statistics -------------------------------------------------------------------------

export function quantile(xs, q) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function mean(xs) {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function stdev(xs) {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(xs.length - 1, 1));
}

const r3 = (x) => Math.round(x * 1000) / 1000;

/** median, p10, p90, mean, stdev, min, max, n of a sample (ms in, ms out). */
export function summary(xs) {
  return {
    n: xs.length,
    median: r3(quantile(xs, 0.5)),
    p10: r3(quantile(xs, 0.1)),
    p90: r3(quantile(xs, 0.9)),
    mean: r3(mean(xs)),
    stdev: r3(stdev(xs)),
    min: r3(Math.min(...xs)),
    max: r3(Math.max(...xs)),
  };
}

/**
 * What the receiver saw, in the terms the scenarios assert on:
 *   lost: sequence numbers never received; duplicates: extra copies;
 *   reordered: RFC 4737 reordered packets (first arrivals whose seq is below one already
 *   seen); inversions: adjacent arrival pairs whose seq goes down;
 *   owd: one-way delay summary (ms), first copies only; corrupted: datagrams that failed the
 *   CRC; rxSpanMs: first to last arrival; txSpanMs: first to last send.
 */
export function probeStats(p) {
  const { seqs, txUs, rxUs, corrupted, bytes } = p.recv;
  const sent = p.send.sent;
  const seen = new Set();
  let duplicates = 0;
  let reordered = 0;
  let inversions = 0;
  let maxSeq = -1;
  const owdMs = [];
  seqs.forEach((s, i) => {
    if (i > 0 && s < seqs[i - 1]) inversions++;
    if (seen.has(s)) {
      duplicates++;
      return;
    }
    seen.add(s);
    if (s < maxSeq) reordered++;
    maxSeq = Math.max(maxSeq, s);
    owdMs.push((rxUs[i] - txUs[i]) / 1000);
  });
  const received = seen.size;
  const rtts = (p.send.rttUs ?? []).map(([, r]) => r / 1000);
  const tx = p.send.txUs;
  return {
    sent,
    received,
    lost: sent - received,
    lossPct: r3(((sent - received) / sent) * 100),
    duplicates,
    duplicatePct: r3((duplicates / sent) * 100),
    reordered,
    reorderedPct: r3((reordered / Math.max(received, 1)) * 100),
    inversions,
    corrupted,
    corruptedPct: r3((corrupted / sent) * 100),
    owd: summary(owdMs),
    owdMs,
    rtt: rtts.length ? summary(rtts) : undefined,
    bytes,
    rxSpanMs: rxUs.length > 1 ? r3((rxUs[rxUs.length - 1] - rxUs[0]) / 1000) : 0,
    txSpanMs: tx.length > 1 ? r3((tx[tx.length - 1] - tx[0]) / 1000) : 0,
    txUs: tx,
  };
}

/** Runs scenario functions in order and prints ONE line: `KLRESULT {json}`. */
export async function main(scenarios, info = {}) {
  const t0 = performance.now();
  const results = {};
  const errors = {};
  for (const [name, fn] of Object.entries(scenarios)) {
    const t = performance.now();
    try {
      results[name] = await fn();
      results[name].ms = Math.round(performance.now() - t);
    } catch (e) {
      errors[name] = String(e?.stack ?? e);
    }
  }
  process.stdout.write(`KLRESULT ${JSON.stringify({ ...info, results, errors, timings, totalMs: Math.round(performance.now() - t0) })}\n`);
}
