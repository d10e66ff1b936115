/**
 * The `userspace` impairment backend's process side: one engine per host and lab
 * (`dune-agent impair-engine`, the @dune/impair lab engine), started detached by `up` like a
 * lab process, recorded in the journal (state.impairEngine), logging to
 * /run/dune/<lab>/logs/impair-engine.log, driven over /run/dune/<lab>/impair.sock:
 *
 *   up      every impair op planned → the parts the userspace backend carries → `sync`
 *           (the engine binds the queues, writes the rules, drops what is no longer wanted)
 *   set     the direction's new part → `set` (or `remove`), live
 *   status  `counters`: per link direction delivered, dropped by cause, held, queued
 *   down    `shutdown` (rules left to the namespaces' deletion), then SIGTERM/SIGKILL if
 *           need be; an engine of the lab found by its command line is stopped too, so a
 *           lost journal leaves no engine behind
 *
 * The engine runs in the host namespace and opens one netlink socket inside each node
 * namespace it serves: one process whatever the number of nodes.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImpairmentEngineSettings, Op } from '@dune/compiler';
import type { HelloResult, LabEngineStatus, LabPipeSpec, LabReply, SyncResult } from '@dune/impair';
import { DuneError, type Impairment } from '@dune/topology';
import { labDir, logDir, type EngineRecord, type LabJournal, type LabState } from '../lab/journal.js';
import { isAlive, procStartTicks, terminate } from '../lab/processes.js';
import type { Caps } from '../probe-types.js';
import { planImpairment, type ImpairmentBackendSetting } from './backends.js';

export const ENGINE_SUBCOMMAND = 'impair-engine';

export const engineSocketPath = (lab: string): string => join(labDir(lab), 'impair.sock');
export const engineLogPath = (lab: string): string => join(logDir(lab), 'impair-engine.log');

/**
 * The `dune-agent` script to run the engine with: this file itself inside the agent's bundle
 * (what remote hosts run), else the built one beside the package's sources.
 */
export function agentScript(): string {
  const self = fileURLToPath(import.meta.url);
  const candidates = [
    process.env['DUNE_AGENT_SCRIPT'],
    basename(self) === 'dune-agent.mjs' ? self : undefined,
    fileURLToPath(new URL('../bin/dune-agent.js', import.meta.url)),
    // Run from the sources (tests): the built agent.
    fileURLToPath(new URL('../../dist/bin/dune-agent.js', import.meta.url)),
  ];
  const found = candidates.find((c): c is string => c !== undefined && /\.m?js$/.test(c) && existsSync(c));
  if (found === undefined) {
    throw new DuneError('agent-not-built', 'the userspace impairment engine runs from the built agent, which is missing', { hint: 'run `npm run build` in the checkout' });
  }
  return found;
}

/**
 * Where each direction leaving `ns/dev` arrives, when the engine can queue it there: the other
 * end of a veth, in a node namespace of this host, not a bridge port (a bridged frame meets
 * no IP PREROUTING). Queued there, a packet no longer belongs to its sender's socket.
 */
export function farEnds(ops: readonly Op[]): Map<string, { ns: string; dev: string }> {
  const nodeNs = new Set<string>();
  const enslaved = new Set<string>();
  for (const op of ops) {
    if (op.op === 'netns') nodeNs.add(op.ns);
    else if (op.op === 'enslave') enslaved.add(`${op.ns}/${op.dev}`);
  }
  const out = new Map<string, { ns: string; dev: string }>();
  const usable = (ns: string, dev: string) => nodeNs.has(ns) && !enslaved.has(`${ns}/${dev}`);
  for (const op of ops) {
    if (op.op !== 'veth' || !usable(op.ns, op.name) || !usable(op.peerNs, op.peerName)) continue;
    out.set(`${op.ns}/${op.name}`, { ns: op.peerNs, dev: op.peerName });
    out.set(`${op.peerNs}/${op.peerName}`, { ns: op.ns, dev: op.name });
  }
  return out;
}

/** Every direction's part for the engine, from the host's impair ops. */
export function enginePipes(ops: readonly Op[], caps: Caps, prefer: ImpairmentBackendSetting): LabPipeSpec[] {
  const pipes: LabPipeSpec[] = [];
  // By default a direction's TCP is queued where it arrives (the sender's TCP Small Queues then
  // do not count the packets the engine holds: ≥ 1 Gbit/s instead of ~0.8 across a delayed
  // link), the rest where it leaves: a packet to a node itself is stamped by the kernel on
  // arrival, before the engine holds it, and `ping` reads that stamp. DUNE_IMPAIR_QUEUE_AT:
  // `egress` queues all where it leaves, `ingress` all where it arrives.
  const at = process.env['DUNE_IMPAIR_QUEUE_AT'];
  const far = at === 'egress' ? new Map<string, { ns: string; dev: string }>() : farEnds(ops);
  for (const op of ops) {
    if (op.op !== 'impair') continue;
    const p = planImpairment(op.impairment, caps, { mtu: op.mtu, where: `${op.ns}/${op.dev}`, prefer, userspaceEngine: true });
    const end = far.get(`${op.ns}/${op.dev}`);
    const ingress = end === undefined ? undefined : at === 'ingress' ? { ...end, all: true } : end;
    if (p.userspace !== undefined) pipes.push({ ns: op.ns, dev: op.dev, link: op.link, params: p.userspace, ...(ingress ? { ingress } : {}) });
  }
  return pipes;
}

export class EngineCallError extends DuneError {
  constructor(method: string, code: string, message: string, hint?: string) {
    super(`impair-engine-${code}`, `userspace impairment engine, ${method}: ${message}`, hint !== undefined ? { hint } : {});
    this.name = 'EngineCallError';
  }
}

/** One request to the engine and its answer. */
export function engineCall<T>(socket: string, method: string, params: unknown = {}, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    let buf = '';
    let done = false;
    const finish = (f: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      f();
    };
    const timer = setTimeout(() => finish(() => reject(new EngineCallError(method, 'timeout', `no answer on ${socket} within ${timeoutMs} ms`))), timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`${JSON.stringify({ id: 1, method, params })}\n`));
    s.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let msg: LabReply;
      try {
        msg = JSON.parse(buf.slice(0, nl)) as LabReply;
      } catch {
        finish(() => reject(new EngineCallError(method, 'bad-reply', `${socket} answered something that is not JSON: ${buf.slice(0, 200)}`)));
        return;
      }
      finish(() => {
        if (msg.ok) resolve(msg.result as T);
        else reject(new EngineCallError(method, msg.error.code, msg.error.message, msg.error.hint));
      });
    });
    s.on('error', (e) => finish(() => reject(new EngineCallError(method, 'unreachable', `${socket}: ${e.message}`, 'see `dune status`; `dune up` starts the engine again'))));
    s.on('close', () => finish(() => reject(new EngineCallError(method, 'closed', `${socket} closed the connection without an answer`))));
  });
}

export function engineAlive(rec: EngineRecord | undefined): boolean {
  return rec !== undefined && isAlive(rec.pid, rec.startTicks);
}

function nsOf(pid: number | 'self', kind: 'net' | 'mnt'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/**
 * Engines of `lab` on this host, by their command line (`... impair-engine --lab LAB ...`),
 * in this agent's own network and mount namespaces: where the agent starts them. (Several
 * "phynodes" on one machine are namespaces with agents of their own: their engines of a
 * lab of the same name are theirs.)
 */
export function findEnginePids(lab: string): number[] {
  const pids: number[] = [];
  const net = nsOf('self', 'net');
  const mnt = nsOf('self', 'mnt');
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const i = argv.indexOf(ENGINE_SUBCOMMAND);
    const l = argv.indexOf('--lab', i);
    if (i < 0 || l <= i || argv[l + 1] !== lab) continue;
    if (nsOf(Number(d), 'net') !== net || nsOf(Number(d), 'mnt') !== mnt) continue;
    pids.push(Number(d));
  }
  return pids;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The lab's engine settings, as the plan carries them (absent: one thread, fail closed). */
export function labEngineSettings(plan: { impairmentEngine?: ImpairmentEngineSettings }): ImpairmentEngineSettings {
  return plan.impairmentEngine ?? {};
}

/**
 * The engine's command line after the script: `impair-engine --lab LAB --socket PATH`, then
 * `--threads N|auto` when it runs more than one thread and `--fail-open` when it fails open.
 * The lab's name stays right after the subcommand: findEnginePids looks for it there.
 */
export function engineArgv(lab: string, socket: string, opts: ImpairmentEngineSettings = {}): string[] {
  const argv = [ENGINE_SUBCOMMAND, '--lab', lab, '--socket', socket];
  if (opts.threads !== undefined && opts.threads !== 1) argv.push('--threads', String(opts.threads));
  if (opts.failOpen === true) argv.push('--fail-open');
  return argv;
}

/**
 * Why a running engine does not run as `opts` asks, from its hello, or undefined when it does.
 * Only what the hello says is compared (an engine from before these settings says neither).
 * `threads: 'auto'` is one per core of this host (`cores`), as the engine resolves it.
 */
export function engineMismatch(hello: { threads?: number; failOpen?: boolean }, opts: ImpairmentEngineSettings, cores = availableParallelism()): string | undefined {
  const threads = opts.threads === 'auto' ? Math.max(1, cores) : (opts.threads ?? 1);
  const why: string[] = [];
  if (hello.threads !== undefined && hello.threads !== threads) why.push(`it runs ${hello.threads} thread${hello.threads === 1 ? '' : 's'}, the lab asks for ${threads}${opts.threads === 'auto' ? ' (auto)' : ''}`);
  if (hello.failOpen !== undefined && hello.failOpen !== (opts.failOpen === true)) why.push(`it fails ${hello.failOpen ? 'open' : 'closed'}, the lab asks to fail ${opts.failOpen === true ? 'open' : 'closed'}`);
  return why.length > 0 ? why.join('; ') : undefined;
}

/**
 * The lab's engine, started if it is not running, or replaced if it runs with other settings
 * than `opts` (the plan's impairmentEngine). `recover` is true when an engine of this lab ran
 * before and did not stop cleanly (its rules may still be in the namespaces), and when it was
 * replaced: the new engine writes every rule again.
 */
export async function ensureEngine(lab: string, journal: LabJournal, opts: ImpairmentEngineSettings = {}): Promise<{ started: boolean; recover: boolean }> {
  const rec = journal.state.impairEngine;
  if (engineAlive(rec)) {
    let hello: HelloResult | undefined;
    try {
      hello = await engineCall<HelloResult>((rec as EngineRecord).socket, 'hello', {}, 5000);
    } catch {
      // alive but not answering: replaced below
    }
    if (hello !== undefined) {
      if (engineMismatch(hello, opts) === undefined) return { started: false, recover: false };
      // Other settings: this engine removes its rules and goes (the directions it served pass
      // unimpaired until the new one's sync), and the new one writes them all again (recover:
      // `rec` is set). Rules left in place would stay in namespaces the lab no longer queues in.
      await stopEngine(lab, journal, { keepRules: false });
    }
  }
  const strays = findEnginePids(lab);
  if (strays.length > 0) await terminate(strays, 3000);
  const recover = rec !== undefined || strays.length > 0;
  const socket = engineSocketPath(lab);
  const log = engineLogPath(lab);
  const argv = [agentScript(), ...engineArgv(lab, socket, opts)];
  mkdirSync(logDir(lab), { recursive: true, mode: 0o700 });
  const out = openSync(log, 'a', 0o600);
  let pid: number;
  let exited: number | string | null = null;
  try {
    // Detached (own session): the lab outlives the command that built it.
    const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', out, out], cwd: '/', env: process.env });
    pid = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => resolve(child.pid ?? -1));
    });
    child.once('exit', (c, sig) => (exited = c ?? (sig ? `signal ${sig}` : 1)));
    child.unref();
  } finally {
    closeSync(out);
  }
  const startTicks = procStartTicks(pid);
  for (let i = 0; i < 200 && exited === null; i++) {
    try {
      const h = await engineCall<HelloResult>(socket, 'hello', {}, 2000);
      if (h.pid === pid) {
        journal.engine({ pid, startTicks: startTicks ?? 0, socket, log, argv: [process.execPath, ...argv], startedAt: new Date().toISOString() });
        return { started: true, recover };
      }
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-8).join('\n') : '';
  if (exited === null) await terminate([pid], 1000);
  const how = exited === null ? `no answer on ${socket} within 10 s` : `it exited (${typeof exited === 'number' ? `status ${exited}` : exited})`;
  throw new DuneError('impair-engine-start', `the userspace impairment engine of lab ${lab} did not come up: ${how}${tail ? `:\n${tail}` : ''}`, { hint: `see its log: ${log}` });
}

/**
 * Makes the engine serve exactly `pipes`: started when there are some and it is not
 * running, stopped (its rules removed) when there are none.
 */
export async function syncEngine(lab: string, journal: LabJournal, pipes: readonly LabPipeSpec[], started?: Promise<{ recover: boolean }>, opts: ImpairmentEngineSettings = {}): Promise<SyncResult | undefined> {
  if (pipes.length === 0) {
    if (journal.state.impairEngine !== undefined || findEnginePids(lab).length > 0) await stopEngine(lab, journal, { keepRules: false });
    return undefined;
  }
  // `started`: ensureEngine, called earlier (an up starts the engine before building the
  // network, so that its start overlaps that work).
  const { recover } = await (started ?? ensureEngine(lab, journal, opts));
  const rec = journal.state.impairEngine as EngineRecord;
  // Big labs: a thousand namespaces' rules are written by a few iptables-restore at a time.
  return engineCall<SyncResult>(rec.socket, 'sync', { pipes, recover }, 30_000 + pipes.length * 100);
}

/** One direction's engine part changed live (`params` null: the engine no longer has a part in it). */
export async function setEnginePipe(lab: string, journal: LabJournal, spec: Omit<LabPipeSpec, 'params'> & { params: Impairment | null }, all: () => LabPipeSpec[], opts: ImpairmentEngineSettings = {}): Promise<void> {
  const rec = journal.state.impairEngine;
  if (!engineAlive(rec)) {
    // No engine (or a dead one): start one with everything the lab wants, this one included.
    if (spec.params !== null || rec !== undefined) await syncEngine(lab, journal, all(), undefined, opts);
    return;
  }
  const socket = (rec as EngineRecord).socket;
  if (spec.params === null) await engineCall(socket, 'remove', { ns: spec.ns, dev: spec.dev });
  else {
    const ingress = all().find((p) => p.ns === spec.ns && p.dev === spec.dev)?.ingress;
    await engineCall(socket, 'set', { ns: spec.ns, dev: spec.dev, link: spec.link, params: spec.params, create: true, ...(ingress ? { ingress } : {}) });
  }
}

/**
 * Stops the lab's engine (the journal's, and any other found by its command line). With
 * `keepRules` its rules are left for the namespaces' deletion to take away.
 */
export async function stopEngine(lab: string, journal: LabJournal | undefined, opts: { keepRules: boolean }): Promise<number> {
  const rec = journal?.state.impairEngine;
  let stopped = 0;
  if (engineAlive(rec)) {
    const r = rec as EngineRecord;
    try {
      await engineCall(r.socket, 'shutdown', { keepRules: opts.keepRules }, 10_000);
      for (let i = 0; i < 300 && isAlive(r.pid, r.startTicks); i++) await sleep(20);
    } catch {
      // not answering: signals below
    }
    if (isAlive(r.pid, r.startTicks)) await terminate([r.pid], 5000);
    stopped++;
  }
  const strays = findEnginePids(lab);
  if (strays.length > 0) {
    await terminate(strays, 3000);
    stopped += strays.length;
  }
  if (journal?.state.impairEngine !== undefined) journal.engine(undefined);
  return stopped;
}

/** The engine's counters, or why there are none. */
export async function engineStatus(state: LabState | undefined): Promise<{ status?: LabEngineStatus; error?: string }> {
  const rec = state?.impairEngine;
  if (rec === undefined) return {};
  if (!engineAlive(rec)) return { error: `the engine (pid ${rec.pid}) is not running: links it served carry no traffic; \`dune up\` starts it again` };
  try {
    return { status: await engineCall<LabEngineStatus>(rec.socket, 'counters', {}, 10_000) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** What `dune status` shows of the engine. */
export interface EngineSummary {
  pid: number;
  running: boolean;
  socket: string;
  log: string;
  startedAt: string;
  /** From the engine itself, when it answered. */
  namespaces?: number;
  pipes?: number;
  cpuSeconds?: number;
  rssBytes?: number;
  held?: { packets: number; bytes: number };
  frontendErrors?: Record<string, number>;
  schedulerLatenessUs?: { p50: number; p99: number; max: number };
  releaseCostUs?: { p50: number; p99: number; max: number; aheadUs: number };
  kernelPackets?: { received: number; stamped: number };
  readDelayUs?: { p50: number; p99: number; max: number };
  /** Whether a full kernel queue lets packets through unimpaired. */
  failOpen?: boolean;
  /** An engine with worker threads: per thread, its pipes, namespaces, what it holds and how busy it was since the last status. */
  threads?: LabEngineStatus['threads'];
  /** Why there are no counters. */
  error?: string;
}

/** One link direction's counters in the engine, for `dune status`. */
export type EngineLinkCounters = Omit<LabEngineStatus['pipes'][number], 'ns' | 'dev' | 'link'>;

/** The engine's summary and its counters by `ns/dev`; nothing when the lab has no engine. */
export async function engineReport(state: LabState | undefined): Promise<{ summary?: EngineSummary; byPipe: Map<string, EngineLinkCounters> }> {
  const rec = state?.impairEngine;
  const byPipe = new Map<string, EngineLinkCounters>();
  if (rec === undefined) return { byPipe };
  const { status, error } = await engineStatus(state);
  const summary: EngineSummary = { pid: rec.pid, running: engineAlive(rec), socket: rec.socket, log: rec.log, startedAt: rec.startedAt };
  if (error !== undefined) summary.error = error;
  if (status !== undefined) {
    summary.namespaces = status.namespaces;
    summary.pipes = status.pipes.length;
    summary.cpuSeconds = Math.round((status.cpuSeconds.user + status.cpuSeconds.system) * 1000) / 1000;
    summary.rssBytes = status.rssBytes;
    summary.held = status.held;
    summary.frontendErrors = status.frontendErrors;
    summary.schedulerLatenessUs = status.schedulerLatenessUs;
    if (status.releaseCostUs !== undefined) summary.releaseCostUs = status.releaseCostUs;
    if (status.kernelPackets !== undefined) summary.kernelPackets = status.kernelPackets;
    if (status.readDelayUs !== undefined) summary.readDelayUs = status.readDelayUs;
    if (status.failOpen !== undefined) summary.failOpen = status.failOpen;
    if (status.threads !== undefined) summary.threads = status.threads;
    for (const p of status.pipes) {
      const { ns, dev, link: _link, ...counters } = p;
      byPipe.set(`${ns}/${dev}`, counters);
    }
  }
  return { summary, byPipe };
}

/** The lab's setting, as the plan carries it (absent: auto). */
export function labBackendSetting(plan: { impairmentBackend?: 'netem' | 'userspace' }): ImpairmentBackendSetting {
  return plan.impairmentBackend ?? 'auto';
}

/**
 * When a converging `up` changes the lab's `impairment_backend`, every impairment that stays
 * is re-applied (changed live) under the new one.
 */
export function backendSwitch(oldPlan: { impairmentBackend?: string } | undefined, plan: { impairmentBackend?: string }, ops: readonly Op[], already: readonly Op[]): Op[] {
  if (oldPlan === undefined || oldPlan.impairmentBackend === plan.impairmentBackend) return [];
  const seen = new Set(already.filter((o) => o.op === 'impair').map((o) => (o.op === 'impair' ? `${o.ns}/${o.dev}` : '')));
  return ops.filter((o) => o.op === 'impair' && !seen.has(`${o.ns}/${o.dev}`));
}
