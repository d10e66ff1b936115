/**
 * Shared by the e2e tests: run the BUILT `dune` as a user would (node + dist, argv only, no
 * shell), run other tools the same way, and check what a lab leaves behind.
 *
 * Every wait here is bounded: a command that hangs is killed at its timeout and the test
 * fails saying which command it was.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expandPrefixRun } from '@dune/compiler';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const DUNE_JS = join(REPO, 'packages/cli/dist/bin/dune.js');
export const isRoot = process.getuid?.() === 0;
export const ROOT_REASON = 'skipped: e2e tests need root (they build real labs: namespaces, veth, htb, nftables)';

/**
 * Why a test of the userspace engine cannot run here, or '' when it can: it needs root, the
 * built agent, and the kernel's NFQUEUE (as `dune-agent probe` finds it).
 */
export function nfqueueSkipReason(): string {
  const agent = join(REPO, 'packages/agent/dist/bin/dune-agent.js');
  if (!isRoot) return ROOT_REASON;
  if (!existsSync(agent)) return 'skipped: run npm run build first';
  const r = spawnSync(process.execPath, [agent, 'probe'], { encoding: 'utf8' });
  try {
    const c = JSON.parse(r.stdout) as Record<string, { ok: boolean; error?: string }>;
    return c['nfqueue']?.ok === true ? '' : `skipped: no NFQUEUE in this kernel (${c['nfqueue']?.error ?? ''})`;
  } catch {
    return `skipped: dune-agent probe failed (${r.stderr.trim().slice(0, 200)})`;
  }
}
export const STATE_ROOT = '/run/dune';

/** Each e2e file calls this first: the tests drive the built CLI, not the sources. */
export function requireBuilt(): void {
  if (!existsSync(DUNE_JS)) throw new Error(`${DUNE_JS} does not exist: run npm run build first`);
}

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  timeoutMs?: number;
  uid?: number;
  gid?: number;
  cwd?: string;
}

/** Runs argv (no shell) to completion; killed with SIGKILL at the timeout, which fails the caller's expectation. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<Result> {
  const [cmd, ...args] = argv;
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: opts.cwd ?? REPO,
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      stderr += `\n[e2e: killed after ${timeoutMs} ms: ${argv.join(' ')}]`;
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** `dune ARGS...` with the built CLI. */
export function dune(args: readonly string[], opts: RunOptions = {}): Promise<Result> {
  return run([process.execPath, DUNE_JS, ...args], opts);
}

/** `dune ARGS...` that must succeed: its output on failure is in the error. */
export async function duneOk(args: readonly string[], opts: RunOptions = {}): Promise<Result> {
  const r = await dune(args, opts);
  if (r.code !== 0) throw new Error(`dune ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** `dune ARGS...` started and left running (a server, a capture, an up to be killed). */
export function duneSpawn(args: readonly string[]): ChildProcess {
  return spawn(process.execPath, [DUNE_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
}

/** Synchronous argv-only run, for quick kernel queries (ip, nft). */
export function sh(argv: readonly string[]): { code: number; out: string; err: string } {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd as string, args, { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? 1, out: r.stdout ?? '', err: r.stderr ?? '' };
}

/** Runs fn over items with at most `limit` at a time (2 cores: a few are plenty). */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Polls until fn returns a value (not undefined/false) or the deadline passes. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs: number, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `dune-e2e-${tag}-`));
}

export function removeTemp(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

// ---- what a lab leaves behind ----------------------------------------------------------

export function labNamespaces(lab: string): string[] {
  try {
    return readdirSync('/run/netns').filter((n) => n.startsWith(`dune.${lab}.`)).sort();
  } catch {
    return [];
  }
}

/** Host-namespace interfaces whose alias carries the lab's mark. */
export function labHostInterfaces(lab: string): string[] {
  const out = sh(['ip', '-d', '-o', 'link', 'show']).out;
  return out
    .split('\n')
    .filter((l) => l.includes(` alias dune:${lab}:`))
    .map((l) => l.split(': ')[1] ?? l);
}

/** nftables tables in the host namespace named like the lab's (`inet dune_<lab>`). */
export function labNftTables(lab: string): string[] {
  return sh(['nft', 'list', 'tables'])
    .out.split('\n')
    .map((l) => l.trim())
    .filter((l) => l === `table inet dune_${lab}`);
}

export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '');
  } catch {
    return false;
  }
}

/** The userspace impairment engine processes of `lab`, by command line. */
export function enginePids(lab: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('impair-engine');
      if (i >= 0 && argv[argv.indexOf('--lab', i) + 1] === lab && pidAlive(Number(d))) pids.push(Number(d));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Everything of the lab still on the machine, described; [] when it is all gone. */
export function leftovers(lab: string, pids: readonly number[] = []): string[] {
  const left: string[] = [];
  for (const ns of labNamespaces(lab)) left.push(`namespace ${ns}`);
  for (const i of labHostInterfaces(lab)) left.push(`host interface ${i}`);
  for (const t of labNftTables(lab)) left.push(`nft ${t}`);
  for (const pid of pids) if (pidAlive(pid)) left.push(`process ${pid}`);
  if (existsSync(join(STATE_ROOT, lab))) left.push(`journal ${join(STATE_ROOT, lab)}`);
  if (existsSync(join(STATE_ROOT, `.${lab}.lock`))) left.push(`lock ${join(STATE_ROOT, `.${lab}.lock`)}`);
  return left;
}

/** afterAll of every file: down the lab (whatever state it is in) and require nothing left. */
export async function downAndCheck(lab: string): Promise<string[]> {
  const r = await dune(['down', '--lab', lab], { timeoutMs: 60_000 });
  if (r.code !== 0) return [`dune down --lab ${lab} exited ${r.code}: ${r.stderr}`];
  return leftovers(lab);
}

// ---- probing from inside nodes -------------------------------------------------------

export const PROBE = join(REPO, 'test/e2e/probe.mjs');

/** What probe.mjs reports for one target. */
export interface ProbeResult {
  family: 4 | 6;
  addr: string;
  ping: { code: number | null; out: string };
  trace: { code: number | null; out: string };
}

/**
 * From inside `node`: ping (and traceroute, unless pingOnly) every address, with one `dune
 * exec` running probe.mjs. Addresses with a ':' are IPv6.
 */
export async function probeFrom(lab: string, node: string, addrs: readonly string[], pingOnly = false): Promise<ProbeResult[]> {
  const targets = addrs.map((a) => `${a.includes(':') ? 6 : 4}:${a}`);
  const r = await duneOk(['exec', '--lab', lab, node, '--', process.execPath, PROBE, ...(pingOnly ? ['--ping-only'] : []), ...targets], { timeoutMs: 120_000 });
  return JSON.parse(r.stdout) as ProbeResult[];
}

// ---- lab data ---------------------------------------------------------------------------

export interface StatusNode {
  node: string;
  ns: string;
  present: boolean;
  v4?: string;
  v6?: string;
  cpus: number[];
}

export interface StatusLink {
  link: string;
  node: string;
  dev: string;
  peer: string;
  impairment: Record<string, unknown>;
  txPackets: number | null;
}

export interface Status {
  lab: string;
  phase: string;
  nodes: StatusNode[];
  links: StatusLink[];
  processes: { name: string; node: string; pid: number; alive: boolean; cpus: number[]; argv: string[] }[];
}

export async function status(lab: string): Promise<Status> {
  const r = await duneOk(['status', '--lab', lab, '--json']);
  return JSON.parse(r.stdout) as Status;
}

export interface PlanEnd {
  node: string;
  ns: string;
  dev: string;
  v4?: string;
  v6?: string;
}

export interface PlanOp {
  op: string;
  ns?: string;
  /** A `route` op's destination; a `routes` op's (a route table's) destinations. */
  dst?: string | string[];
  via?: string;
  dev?: string;
  link?: string;
  impairment?: Record<string, number>;
  [k: string]: unknown;
}

export interface PlanJson {
  lab: string;
  nodes: { node: string; ns: string; v4?: string; v6?: string; cpus: number[] }[];
  links: { index: number; a: PlanEnd; b: PlanEnd; kind: string }[];
  hosts: { phynode: string; ops: PlanOp[] }[];
}

export async function planJson(args: readonly string[]): Promise<PlanJson> {
  const r = await duneOk(['plan', ...args, '--json']);
  return JSON.parse(r.stdout) as PlanJson;
}

/**
 * The path packets take from `src` to `dst`'s loopback by the plan's own route ops: start at
 * src, look up the route to dst's /32 (/128), go to the node that owns the next hop, repeat.
 * Returns the nodes visited, src and dst included.
 */
export function planPath(plan: PlanJson, src: string, dst: string, family: 4 | 6): string[] {
  const nodeOfNs = new Map(plan.nodes.map((n) => [n.ns, n.node]));
  const owner = new Map<string, string>();
  for (const l of plan.links) {
    for (const e of [l.a, l.b]) {
      if (e.v4) owner.set(e.v4, e.node);
      if (e.v6) owner.set(e.v6, e.node);
    }
  }
  const next = new Map<string, string>();
  for (const h of plan.hosts) {
    for (const op of h.ops) {
      if ((op.op === 'route' || op.op === 'routes') && op.ns !== undefined && op.dst !== undefined && op.via !== undefined) {
        for (const d of typeof op.dst === 'string' ? [op.dst] : op.dst.flatMap((e) => (e.includes('-') ? expandPrefixRun(e) : [e]))) next.set(`${nodeOfNs.get(op.ns)}|${d}`, op.via);
      }
    }
  }
  const target = plan.nodes.find((n) => n.node === dst);
  const addr = family === 4 ? `${target?.v4}/32` : `${target?.v6}/128`;
  const path = [src];
  let at = src;
  while (at !== dst) {
    const via = next.get(`${at}|${addr}`);
    const hop = via === undefined ? undefined : owner.get(via);
    if (hop === undefined) throw new Error(`plan has no route from ${at} to ${dst} (${addr}); path so far ${path.join(' → ')}`);
    path.push(hop);
    at = hop;
    if (path.length > plan.nodes.length + 1) throw new Error(`routing loop from ${src} to ${dst}: ${path.join(' → ')}`);
  }
  return path;
}

/** Every address (loopbacks and link ends) → its node, to read traceroute hops. */
export function addressOwners(plan: PlanJson): Map<string, string> {
  const m = new Map<string, string>();
  for (const n of plan.nodes) {
    if (n.v4) m.set(n.v4, n.node);
    if (n.v6) m.set(n.v6, n.node);
  }
  for (const l of plan.links) {
    for (const e of [l.a, l.b]) {
      if (e.v4) m.set(e.v4, e.node);
      if (e.v6) m.set(e.v6, e.node);
    }
  }
  return m;
}

/** `ping` summary: transmitted, received, and the TTL of the first reply. */
export function parsePing(out: string): { sent: number; received: number; ttl?: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  const t = /ttl=(\d+)/.exec(out);
  const r: { sent: number; received: number; ttl?: number } = { sent: Number(m?.[1] ?? NaN), received: Number(m?.[2] ?? NaN) };
  if (t) r.ttl = Number(t[1]);
  return r;
}

/** Goodput iperf3 measured at the receiver, bit/s, from `-J` output. */
export function iperfReceivedBps(json: string): number {
  const j = JSON.parse(json) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const v = j.end?.sum_received?.bits_per_second;
  if (v === undefined) throw new Error(`iperf3 -J gave no sum_received: ${json.slice(0, 500)}`);
  return v;
}

/**
 * One iperf3 measurement through a lab, both ends started with `dune exec`: a one-shot server
 * in `server` (its "listening" line, flushed with --forceflush, says it is ready), then the
 * client in `client` for `seconds` (with `clientArgs`, e.g. `-b 1G`). Returns the receiver's goodput in bit/s.
 */
export async function iperf(lab: string, server: string, addr: string, client: string, seconds: number, clientArgs: readonly string[] = []): Promise<number> {
  const srv = duneSpawn(['exec', '--lab', lab, server, '--', 'iperf3', '-s', '-1', '-B', addr, '--forceflush']);
  try {
    let out = '';
    srv.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    await waitFor('the iperf3 server to listen', () => out.includes('Server listening'), 10_000);
    const c = await dune(['exec', '--lab', lab, client, '--', 'iperf3', '-c', addr, '-t', String(seconds), '-J', ...clientArgs], { timeoutMs: (seconds + 15) * 1000 });
    if (c.code !== 0) throw new Error(`iperf3 client exited ${c.code}: ${c.stdout.slice(0, 800)} ${c.stderr}`);
    return iperfReceivedBps(c.stdout);
  } finally {
    // -1: the server exits after its one client; if the client never came, stop it.
    if (srv.exitCode === null) srv.kill('SIGTERM');
  }
}

/**
 * The exact binomial interval [lo, hi] holding at least `level` of the probability of
 * Binomial(n, p): lo is the largest k with P(X < k) <= (1-level)/2, hi the smallest k with
 * P(X > k) <= (1-level)/2.
 */
export function binomialInterval(n: number, p: number, level: number): [number, number] {
  const tail = (1 - level) / 2;
  const logC = (k: number) => lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1);
  const pmf = (k: number) => Math.exp(logC(k) + k * Math.log(p) + (n - k) * Math.log(1 - p));
  let cum = 0;
  let lo = 0;
  for (let k = 0; k <= n; k++) {
    if (cum + pmf(k) > tail) {
      lo = k;
      break;
    }
    cum += pmf(k);
  }
  cum = 0;
  let hi = n;
  for (let k = n; k >= 0; k--) {
    if (cum + pmf(k) > tail) {
      hi = k;
      break;
    }
    cum += pmf(k);
  }
  return [lo, hi];
}

/** ln Γ(x), Lanczos (g = 7), good to ~1e-13 for the x > 0 used here. */
function lgamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lgamma(1 - x);
  const xx = x - 1;
  let a = c[0] as number;
  const t = xx + 7.5;
  for (let i = 1; i < 9; i++) a += (c[i] as number) / (xx + i);
  return 0.5 * Math.log(2 * Math.PI) + (xx + 0.5) * Math.log(t) - t + Math.log(a);
}
