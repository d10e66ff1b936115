/**
 * A lab on this host: up (apply, converge, roll back), down (from the journal, or from the
 * kernel's marks alone), status, set, exec. The kernel work is the agent's netlink layer;
 * this module adds the journal, files, commands and processes around it.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync, chmodSync, linkSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { DuneError, type Impairment } from '@dune/topology';
import type { LinkInfoMsg } from '../netlink/link.js';
import { findNode, PLAN_FORMAT, allocateVnis, countRoutes, expandRouteTables, serializePlanChunks, nsPrefix, NS_PREFIX, vniUses, fileContentBase64, type FileOp, type HostPlan, type ImpairmentEngineSettings, type Op, type OpKind, type Plan, type ProcessOp } from '@dune/compiler';
import {
  LabJournal, STATE_ROOT, discardStagedPlan, journalLabs, journaledPlanDigest, labDir, logDir, readPlan, readPlanIf, readPlanText, readState, removeJournal, readVnis, stagePlan,
  type LabState, type ProcessRecord, type StagedPlan,
} from './journal.js';
import { isAlive, isRunning, pidsInNamespaces, runInNs, startProcess, terminate } from './processes.js';
import { converge, opKey } from './diff.js';
import { applyOps, namespaceJob } from '../apply.js';
import { changeImpairment } from '../impair/index.js';
import { planImpairment, type ImpairmentBackendSetting } from '../impair/backends.js';
import {
  backendSwitch, enginePipes, engineAlive, engineReport, ensureEngine, labBackendSetting, labEngineSettings, setEnginePipe, stopEngine, syncEngine, type EngineLinkCounters, type EngineSummary,
} from '../impair/userspace.js';
import { probeCapabilities, type Caps } from '../probe.js';
import { removeKernelOps } from '../remove.js';
import { closeCreated, createNamespacesAsync, deleteNamespaces, nsPath, type CreateResult } from '../netns.js';
import { NlSocket, describeAck } from '../netlink/socket.js';
import { setLink } from '../netlink/link.js';
import { newAddr, newRoute } from '../netlink/addr-route.js';
import { describeOp, errnoName } from '../errors.js';
import { kindOfOp, opKinds, releaseOps, type OpCounter } from '../ops/index.js';
import { dumpLinks, readLinks } from '../status.js';
import { daemonOps, daemonState, nodeRoutes, waitConverged, type DaemonState, type NodeRoute } from './routing.js';
import { loAliases, teardownLab, type LoAlias } from '../teardown.js';
import { releaseAdopted, saveAdopted, undoHostOps } from '../adopt.js';
import { reclaimTransients } from '../transient.js';
import { native } from '../native.js';

export type LabEvent =
  | { type: 'phase'; phase: string; total?: number }
  | { type: 'progress'; kind: string; done: number; total: number; stage?: string }
  | { type: 'note'; message: string }
  | { type: 'warning'; message: string };

export interface UpOptions {
  onEvent?: (e: LabEvent) => void;
  /** How long routing daemons may take to converge (default: 60 s, or 250 ms per node beyond 240 nodes). */
  routingTimeoutMs?: number;
}

export interface UpResult {
  lab: string;
  /** false when the lab was already as planned. */
  changed: boolean;
  created: Record<string, number>;
  removed: Record<string, number>;
  changedImpairments: number;
  unchanged: number;
  elapsedMs: number;
  /** Where the time went, in order (ms): see StepClock. Absent when nothing was to be done. */
  stepsMs?: Record<string, number>;
  backend: Record<string, string>;
}

/**
 * Wall time per step of an `up`, from its own events: the time up to a `progress` event is
 * that kind's (netns, veth, sysctl, route…), the rest of a phase is the phase's (probe,
 * files, processes…), and what comes before the first event is `prepare` (lock, plan
 * staging, the diff against the journal). The steps add up to the whole.
 */
class StepClock {
  readonly ms: Record<string, number> = {};
  private last: number;
  private phase = 'prepare';
  constructor(t0: number) {
    this.last = t0;
  }
  private add(name: string, now: number): void {
    this.ms[name] = (this.ms[name] ?? 0) + (now - this.last);
    this.last = now;
  }
  /** The step the last progress event closed, and the apply stage it reported for. */
  private lastProgress: { name: string; stage: string } | undefined;
  mark(e: LabEvent): void {
    const now = performance.now();
    if (e.type === 'progress') {
      // The kinds of one apply stage (addr, up and route on the same sockets) report at its
      // end, one after the other: its time is theirs jointly, `addr+up+route`, not the first's.
      const lp = this.lastProgress;
      if (lp !== undefined && e.stage !== undefined && lp.stage === e.stage) {
        const name = `${lp.name}+${e.kind}`;
        this.ms[name] = (this.ms[lp.name] ?? 0) + (now - this.last);
        delete this.ms[lp.name];
        this.last = now;
        this.lastProgress = { name, stage: e.stage };
        return;
      }
      this.add(e.kind, now);
      this.lastProgress = e.stage !== undefined ? { name: e.kind, stage: e.stage } : undefined;
    } else if (e.type === 'phase') {
      this.lastProgress = undefined;
      this.add(this.phase, performance.now());
      this.phase = e.phase;
    }
  }
  done(): Record<string, number> {
    this.add(this.phase, performance.now());
    return Object.fromEntries(Object.entries(this.ms).map(([k, v]) => [k, Math.round(v)]));
  }
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new DuneError('not-root', `dune ${what} needs root: labs are network namespaces, interfaces and state in ${STATE_ROOT}, all root's`, {
      hint: `run it as root, e.g. \`sudo $(command -v dune) ${what} ...\``,
    });
  }
}

const LAB_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A lab name given on the command line becomes a path (/run/dune/<lab>, removed recursively
 * by down) and a namespace prefix: `..` or `` would reach outside the lab's own directory.
 * Compiled plans always carry a safe name (the compiler folds the rest).
 */
export function checkLabName(lab: string): void {
  if (!LAB_NAME.test(lab)) {
    throw new DuneError('bad-lab-name', `"${lab}" is not a lab name: lab names are letters, digits, "_" and "-"`, {
      hint: `see the running labs with \`dune status\`${listLabs().length ? ` (here: ${listLabs().join(', ')})` : ''}`,
    });
  }
}

/**
 * This machine's part of the plan: its one host, or several local phynodes merged. With
 * `expand` (convergence with an earlier plan), route tables become one `route` op per
 * destination, compared one by one; a fresh lab's go to the kernel as tables.
 */
function localHost(plan: Plan, expand = true): HostPlan {
  const remote = plan.hosts.filter((h) => h.target.host !== undefined && h.target.host !== 'localhost');
  if (remote.length > 0) {
    throw new DuneError('remote-hosts', `lab ${plan.lab} places nodes on remote phynodes (${remote.map((h) => h.phynode).join(', ')}), which this build cannot reach yet`, {
      hint: 'drop `host` from the phynodes to build everything on this machine',
    });
  }
  const hosts = plan.hosts;
  const tables = (ops: Op[]): Op[] => (expand ? expandRouteTables(ops) : ops);
  if (hosts.length === 1 && hosts[0] !== undefined) return { ...hosts[0], ops: tables(hosts[0].ops) };
  // Several local phynodes: one machine plays them all.
  const merged: HostPlan = { phynode: hosts.map((h) => h.phynode).join('+'), target: {}, nodes: [], ops: [] };
  for (const h of hosts) {
    merged.nodes.push(...h.nodes);
    for (const op of tables(h.ops)) merged.ops.push(op);
  }
  return merged;
}

/** Ops by kind; a route table counts as the routes it holds (`route`), applied as a table or one by one. */
function count(ops: readonly Op[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const op of ops) {
    if (op.op === 'routes') c['route'] = (c['route'] ?? 0) + countRoutes(op);
    else c[op.op] = (c[op.op] ?? 0) + 1;
  }
  return c;
}

function lockPath(lab: string): string {
  return join(labDir(lab), '..', `.${lab}.lock`);
}

/** One `up`/`down`/`set` per lab at a time. A lock left by a dead process is taken over. */
function withLock<T>(lab: string, fn: () => Promise<T>): Promise<T> {
  checkLabName(lab);
  const p = lockPath(lab);
  mkdirSync(dirname(p), { recursive: true, mode: 0o755 });
  try {
    writeFileSync(p, String(process.pid), { flag: 'wx' });
  } catch {
    const holder = Number(readFileSync(p, 'utf8'));
    // A zombie (killed, not yet reaped) holds nothing: kill(pid, 0) alone would say it lives.
    const alive = holder > 0 && isRunning(holder);
    if (alive && holder !== process.pid) {
      throw new DuneError('lab-busy', `lab ${lab} is being changed by process ${holder}`, { hint: 'wait for it to finish' });
    }
    writeFileSync(p, String(process.pid));
  }
  return fn().finally(() => rmSync(p, { force: true }));
}

/** Ops the agent's kernel layer applies (the rest, files, commands and processes, are the lab's). */
const KERNEL_OPS = new Set((Object.keys(opKinds) as OpKind[]).filter((k) => opKinds[k].apply.stage !== 'deferred'));

/**
 * Builds or converges this host's part of a lab, in one pass:
 *
 *   lock → diff → probe and plan → kernel → impairment engine → processes → commit
 *
 * Every write to the lab's journal goes through its LabJournal, so that at any point a
 * kill leaves a journal `down` can work from; a failure at any step rolls back.
 */
export async function up(plan: Plan, opts: UpOptions = {}): Promise<UpResult> {
  requireRoot('up');
  if (plan.format !== PLAN_FORMAT) {
    throw new DuneError('plan-format', `plan format ${String(plan.format)} is not ${PLAN_FORMAT}`, { hint: 'use the same version of dune to plan and apply' });
  }
  const t0 = performance.now();
  const steps = new StepClock(t0);
  const emit = (e: LabEvent): void => {
    steps.mark(e);
    opts.onEvent?.(e);
  };
  const lab = plan.lab;
  return withLock(lab, async () => {
    reclaimedNote(emit);
    // The kernel probe's nft runs as a child process: started now, it runs while the plan is
    // staged and diffed (probeAndPlan awaits this same probe). A no-op up ignores it.
    probeCapabilities().catch(() => undefined);
    plan = allocateHere(plan);
    // A nic brick's interface, read from the host (or kept from the last plan) before anything moves.
    if (plan.hosts.some((h) => h.ops.some((o) => o.op === 'adopt' && o.saved === undefined))) plan = saveAdopted(plan, readPlan(lab));
    const ahead = namespacesAhead(plan);
    const staged = stagePlan(lab, serializePlanChunks(plan));
    let d: Diff;
    let backend: Record<string, string>, caps: Caps, prefer: ImpairmentBackendSetting;
    try {
      d = await diff(plan, staged, emit, ahead !== undefined);
      if (d.nothing) {
        discardStagedPlan(staged);
        return { lab, changed: false, created: {}, removed: {}, changedImpairments: 0, unchanged: d.host.ops.length, elapsedMs: performance.now() - t0, backend: d.journal.state.backend };
      }
      ({ caps, prefer, backend } = await probeAndPlan(plan, d, emit));
    } catch (e) {
      discardStagedPlan(staged);
      // Nothing was journaled: the namespaces made ahead go now.
      const made = await settleAhead(ahead);
      if (made) deleteNamespaces(made.created.map((c) => c.name));
      throw e;
    }
    const journal = d.journal;
    // The namespaces made ahead are all the lab's (none of its namespaces existed before).
    const newNs = ahead ? ahead.names : d.conv.apply.flatMap((o) => (o.op === 'netns' && !existsSync(`/run/netns/${o.ns}`) ? [o.ns] : []));
    journal.begin(staged, vniUses(plan), backend, newNs);
    // The engine process starts now and loads while the network is built (Kdl: 0.35 s of its
    // step); its pipes go to it once the namespaces exist.
    let started: Promise<{ recover: boolean }> | undefined;
    try {
      const pipes = enginePipes(d.host.ops, caps, prefer);
      // An engine running with other settings than the plan's is replaced.
      started = pipes.length > 0 ? ensureEngine(lab, journal, labEngineSettings(plan)) : undefined;
      started?.catch(() => undefined);
      // The lab's files are written while the kernel makes the links (this thread only waits
      // for them then): a thousand nodes' hosts files, ~30 ms off the up as measured.
      const files = fileOps(d.conv.apply);
      let filesWritten = false;
      const writeFiles = (): void => {
        filesWritten = true;
        writeLabFiles(lab, journal, files, plan);
      };
      await kernel(lab, journal, d, caps, prefer, emit, ahead, files.length > 0 ? writeFiles : undefined);
      await impairEngine(lab, journal, pipes, started, labEngineSettings(plan), emit);
      await applyHostOps(lab, journal, d.conv.apply, emit, plan, filesWritten);
      await routingDaemons(plan, d.host, opts, emit);
      journal.commit();
    } catch (e) {
      emit({ type: 'warning', message: `up failed; rolling back` });
      // Namespaces still being made would outlive the rollback.
      await settleAhead(ahead);
      try {
        // An engine still starting is journaled (or gone) first, so that the rollback stops it.
        await started?.catch(() => undefined);
        await down(lab, { onEvent: emit, locked: true });
      } catch (e2) {
        emit({ type: 'warning', message: `rollback incomplete: ${(e2 as Error).message}; run \`dune down --lab ${lab}\`` });
      }
      throw e;
    }
    const { conv } = d;
    return {
      lab,
      changed: conv.apply.length + conv.remove.length + conv.change.length > 0,
      created: count(conv.apply),
      removed: count(conv.remove),
      changedImpairments: conv.change.length,
      unchanged: conv.unchanged,
      elapsedMs: performance.now() - t0,
      stepsMs: steps.done(),
      backend: journal.state.backend,
    };
  });
}

/**
 * A whole lab on this machine (several local phynodes): its VNIs are allocated here, against
 * the other labs' journals. A host's part of a multi-host lab comes allocated by the
 * controller (transport orchestrate.ts).
 */
function allocateHere(plan: Plan): Plan {
  if (!plan.links.every((l) => plan.hosts.some((h) => h.phynode === l.a.phynode) && plan.hosts.some((h) => h.phynode === l.b.phynode))) return plan;
  const uses = readVnis();
  return allocateVnis(plan, new Map(plan.hosts.map((h) => [h.phynode, uses])));
}

interface Diff {
  host: HostPlan;
  oldPlan: Plan | undefined;
  /** No journal to converge from (a new lab, or one an interrupted up left half-built). */
  fresh: boolean;
  /** Nothing to do: the same plan, applied, and everything of it still there. */
  nothing: boolean;
  conv: ReturnType<typeof converge>;
  journal: LabJournal;
}

/**
 * Namespaces made ahead, on other threads, while JavaScript stages the plan and the kernel
 * probe runs (1,000 namespaces: ~0.2 s of kernel time that nothing else waits on). Only for a
 * new lab, all of it on this machine, nothing of which exists yet (no journal, no namespace
 * with its prefix): every namespace then comes from the plan's netns ops.
 */
interface Ahead {
  names: string[];
  made: Promise<CreateResult>;
  /** Handed to applyOps, which owns the fds from then on. */
  taken: boolean;
}

function namespacesAhead(plan: Plan): Ahead | undefined {
  if (!plan.hosts.every((h) => h.target.host === undefined || h.target.host === 'localhost')) return undefined;
  if (existsSync(labDir(plan.lab)) || hasNamespaces(plan.nsPrefix)) return undefined;
  const job = namespaceJob(localHost(plan, false).ops);
  if (job.names.length === 0) return undefined;
  const made = createNamespacesAsync(job);
  made.catch(() => undefined);
  return { names: job.names, made, taken: false };
}

/** Waits for namespaces still being made; closes their fds when applyOps never took them. */
async function settleAhead(ahead: Ahead | undefined): Promise<CreateResult | undefined> {
  if (ahead === undefined) return undefined;
  const made = await ahead.made.catch(() => undefined);
  if (made && !ahead.taken) {
    ahead.taken = true;
    closeCreated(made);
  }
  return made;
}

/** What this up must do, from the journal of the last one (a half-built lab is removed first). */
async function diff(plan: Plan, staged: StagedPlan, emit: (e: LabEvent) => void, madeAhead = false): Promise<Diff> {
  const lab = plan.lab;
  const old = LabJournal.open(lab);
  // The same canonical bytes: compared by digest, so the old plan is read (and parsed) only to converge from.
  if (old?.state.phase === 'up' && journaledPlanDigest(lab) === staged.digest && labIntact(plan, old.state)) {
    const host = localHost(plan);
    return { host, oldPlan: plan, fresh: false, nothing: true, conv: { remove: [], apply: [], change: [], unchanged: host.ops.length }, journal: old };
  }
  const oldText = readPlanText(lab);
  const oldPlan = oldText === undefined ? undefined : (JSON.parse(oldText) as Plan);
  // An interrupted up (kill -9) leaves phase `applying`: start from a clean slate.
  const fresh = oldPlan === undefined || old === undefined || old.state.phase !== 'up';
  // (Namespaces made ahead are this up's own: they were checked absent before.)
  if (fresh && (oldPlan !== undefined || (!madeAhead && hasNamespaces(plan.nsPrefix)))) {
    emit({ type: 'note', message: `lab ${lab} was left half-built; removing it first` });
    await down(lab, { onEvent: emit, locked: true });
  }
  // Nothing to converge from: a fresh lab's route tables go to the kernel as tables.
  const host = localHost(plan, !fresh);
  const conv = converge(fresh ? undefined : localHost(oldPlan as Plan), host);
  // A changed impairment_backend re-applies every impairment that stays.
  if (!fresh) conv.change.push(...backendSwitch(oldPlan, plan, host.ops, conv.apply.concat(conv.change)));
  return { host, oldPlan, fresh, nothing: false, conv, journal: fresh ? LabJournal.fresh(lab) : (old as LabJournal) };
}

/** The kernel's capabilities, and which backend carries each impairment (refusing what none can). */
async function probeAndPlan(plan: Plan, d: Diff, emit: (e: LabEvent) => void): Promise<{ caps: Caps; prefer: ImpairmentBackendSetting; backend: Record<string, string> }> {
  emit({ type: 'phase', phase: 'probe' });
  const caps = await probeCapabilities();
  const prefer = labBackendSetting(plan);
  // Every impairment of the lab, not only the new ones: which backend carries what is the whole lab's.
  return { caps, prefer, backend: checkImpairments(d.host.ops, caps, prefer) };
}

/** Namespaces, links, addresses, routes, sysctls, qdiscs and nftables: removed, applied, changed. */
async function kernel(lab: string, journal: LabJournal, d: Diff, caps: Caps, prefer: ImpairmentBackendSetting, emit: (e: LabEvent) => void, ahead?: Ahead, meanwhile?: () => void): Promise<void> {
  const { conv } = d;
  if (conv.remove.length > 0) await undo(lab, journal, conv.remove, emit);
  const kernelOps = conv.apply.filter((o) => KERNEL_OPS.has(o.op));
  emit({ type: 'phase', phase: 'network', total: kernelOps.length });
  await applyOps(kernelOps, {
    caps,
    lab,
    impairmentBackend: prefer,
    userspaceEngine: true,
    ...(ahead ? { namespaces: () => ((ahead.taken = true), ahead.made) } : {}),
    ...(meanwhile ? { meanwhile } : {}),
    onEvent: (e) => {
      if (e.type === 'progress') emit({ type: 'progress', kind: e.kind, done: e.done, total: e.total, ...(e.stage !== undefined ? { stage: e.stage } : {}) });
    },
  });
  // A link brought back up (set down at runtime) gets back what it lost going down.
  if (!d.fresh) for (const op of conv.apply) if (op.op === 'up') restoreDevice(op.ns, op.dev, d.host.ops);
  // The userspace engine's parts go to it in the next step, all at once.
  for (const op of conv.change) if (op.op === 'impair') await changeImpairment(op.ns, op.dev, op.impairment, { caps, lab, prefer, userspace: async () => undefined });
  // Every namespace now carries its mark on lo.
  journal.namespacesMade(conv.apply.flatMap((op) => (op.op === 'netns' ? [op.ns] : [])));
}

/** The lab's userspace impairment engine on this host: started, synced with every pipe, or stopped. */
async function impairEngine(lab: string, journal: LabJournal, pipes: ReturnType<typeof enginePipes>, started: Promise<{ recover: boolean }> | undefined, settings: ImpairmentEngineSettings, emit: (e: LabEvent) => void): Promise<void> {
  if (pipes.length > 0 || journal.state.impairEngine !== undefined) emit({ type: 'phase', phase: 'impair engine', total: pipes.length });
  await syncEngine(lab, journal, pipes, started, settings);
}

/** With routing daemons, the up ends once every node routes to every other node's addresses. */
async function routingDaemons(plan: Plan, host: HostPlan, opts: UpOptions, emit: (e: LabEvent) => void): Promise<void> {
  const daemons = daemonOps(host.ops);
  if (daemons.length === 0) return;
  emit({ type: 'phase', phase: 'routing', total: daemons.length });
  await waitConverged(plan, host.ops, {
    ...(opts.routingTimeoutMs !== undefined ? { timeoutMs: opts.routingTimeoutMs } : {}),
    onProgress: (done, total) => emit({ type: 'progress', kind: 'routing', done, total }),
  });
}

function hasNamespaces(prefix: string): boolean {
  return existsSync('/run/netns') && readdirSync('/run/netns').some((n) => n.startsWith(prefix));
}

function labIntact(plan: Plan, state: LabState): boolean {
  for (const n of plan.nodes) if (!existsSync(`/run/netns/${n.ns}`)) return false;
  if (state.impairEngine !== undefined && !engineAlive(state.impairEngine)) return false;
  return state.processes.every((p) => isAlive(p.pid, p.startTicks));
}

/**
 * Fails before anything is built when an impairment cannot be applied here: every impair op
 * is planned against the probed capabilities first (the backend table decides), and every
 * refusal is reported at once. Returns which backend carries what, for status.
 */
function checkImpairments(ops: readonly Op[], caps: Caps, prefer: ImpairmentBackendSetting): Record<string, string> {
  const used: Record<string, string> = {};
  const refused: string[] = [];
  let hint = '';
  for (const op of ops) {
    if (op.op !== 'impair') continue;
    try {
      const p = planImpairment(op.impairment, caps, { mtu: op.mtu, where: `${op.ns}/${op.dev}`, prefer, userspaceEngine: true });
      for (const [k, b] of Object.entries(p.assignments)) used[k] = b as string;
    } catch (e) {
      if (!(e instanceof DuneError)) throw e;
      refused.push(`link ${op.link} (${op.ns} ${op.dev}): ${e.message}`);
      hint = e.hint ?? hint;
    }
  }
  if (refused.length > 0) {
    const shown = refused.slice(0, 8).join('\n  ');
    throw new DuneError('impairment-unsupported', `this kernel cannot apply ${refused.length} link impairment${refused.length === 1 ? '' : 's'}; nothing was changed:\n  ${shown}${refused.length > 8 ? `\n  and ${refused.length - 8} more` : ''}`, { hint });
  }
  return used;
}

function fileOps(ops: readonly Op[]): FileOp[] {
  return ops.filter((o): o is FileOp => o.op === 'file');
}

/** Files (unless `filesWritten`: already, while the kernel made the links), then execs, then processes. */
async function applyHostOps(lab: string, journal: LabJournal, ops: readonly Op[], emit: (e: LabEvent) => void, plan: Pick<Plan, 'blobs'>, filesWritten = false): Promise<void> {
  const files = fileOps(ops);
  const execs = ops.filter((o) => o.op === 'exec');
  const procs = ops.filter((o): o is ProcessOp => o.op === 'process');
  if (files.length > 0) emit({ type: 'phase', phase: 'files', total: files.length });
  if (!filesWritten) writeLabFiles(lab, journal, files, plan);
  if (execs.length > 0) emit({ type: 'phase', phase: 'exec', total: execs.length });
  for (const op of execs) {
    if (op.op !== 'exec') continue;
    const r = runInNs(op.ns, op.argv, { env: op.env ?? {} });
    if (r.status !== 0) {
      const out = r.output.trim().slice(-2000);
      // A DUNE command string runs as `sh -c SCRIPT`: the script is what the user wrote.
      const shown = op.argv.length === 3 && op.argv[0] === 'sh' && op.argv[1] === '-c' ? (op.argv[2] as string) : op.argv.join(' ');
      throw new DuneError('exec-failed', `exec in node ${op.node} failed (exit ${r.status ?? 'by signal'}): ${shown}${out ? `\n${out}` : ''}`, {
        hint: 'fix the command in the topology, or run it by hand with `dune exec`',
      });
    }
  }
  if (procs.length > 0) emit({ type: 'phase', phase: 'processes', total: procs.length });
  // Written down in one journal write (also when a start fails half-way, for the rollback).
  const started: { rec: ProcessRecord; controlSocket?: string | undefined }[] = [];
  try {
    for (const op of procs) {
      const log = join(logDir(lab), `${op.name}.log`);
      const s = await startProcess(op.ns, op.argv, { env: op.env, cpus: op.cpus, log });
      const rec: ProcessRecord = { name: op.name, node: op.node, ns: op.ns, pid: s.pid, startTicks: s.startTicks, argv: op.argv, cpus: op.cpus, log, preDown: op.preDown };
      if (op.down !== undefined) rec.down = op.down;
      // A daemon's control socket is the lab's: removed at down with the directory it sits in.
      started.push({ rec, controlSocket: op.control?.socket });
      for (const argv of op.postUp) {
        const r = runInNs(op.ns, argv, { env: op.env });
        if (r.status !== 0) emit({ type: 'warning', message: `post_up of ${op.name} exited ${r.status}: ${argv.join(' ')}` });
      }
    }
  } finally {
    journal.processesStarted(started);
  }
  if (procs.length > 0) {
    // A daemon that dies at once (bad path, bad flag) is a failed up, not a silent hole.
    await new Promise((r) => setTimeout(r, 150));
    for (const rec of journal.state.processes) {
      if (!isAlive(rec.pid, rec.startTicks)) {
        const tail = existsSync(rec.log) ? readFileSync(rec.log, 'utf8').trim().split('\n').slice(-10).join('\n') : '';
        throw new DuneError('process-died', `process ${rec.name} (${rec.argv.join(' ')}) in node ${rec.node} exited right after it started${tail ? `:\n${tail}` : ''}`, {
          hint: `check the command; its log is ${rec.log}`,
        });
      }
    }
  }
}

function backupPath(lab: string, path: string): string {
  return join(labDir(lab), 'backup', Buffer.from(path).toString('base64url'));
}

/**
 * Writes a lab's files: each one backed up first when it existed before the lab, all of them
 * journaled in one write before any is written (a kill in between leaves files `down` knows
 * of), then each put in place by rename, so a reader never sees half a file. Files with the
 * same content and mode (a lab's hosts files: one text for every node) share one inode: the
 * first is written, the others are hard links to it, so n nodes cost n links, not n copies of
 * a text that itself grows with n. Replacing by rename keeps a later change to one of them
 * from reaching the others.
 */
function writeLabFiles(lab: string, journal: LabJournal, ops: readonly FileOp[], plan: Pick<Plan, 'blobs'>): void {
  if (ops.length === 0) return;
  const known = new Set(journal.state.files);
  const entries: { path: string; dirsMade: string[] }[] = [];
  for (const op of ops) {
    const path = op.path;
    if (!known.has(path) && existsSync(path)) {
      mkdirSync(join(labDir(lab), 'backup'), { recursive: true });
      copyFileSync(path, backupPath(lab, path));
    }
    const dir = dirname(path);
    const first = mkdirSync(dir, { recursive: true });
    // Every directory from the first one created down to the file's own.
    const made: string[] = [];
    if (first !== undefined) {
      made.push(dir);
      for (let d = dir; d !== first && dirname(d) !== d; ) made.push((d = dirname(d)));
    }
    entries.push({ path, dirsMade: made });
  }
  journal.filesWritten(entries);
  const written = new Map<string, string>();
  for (const op of ops) {
    const tmp = `${op.path}.dune-${process.pid}.tmp`;
    const content = fileContentBase64(plan, op);
    const same = `${op.mode}:${op.blob ?? content}`;
    const source = written.get(same);
    let linked = false;
    if (source !== undefined) {
      // A file not there yet: linked straight to its name (link(2) never replaces a file).
      if (linkOrFalse(source, op.path)) continue;
      if (existsSync(op.path)) {
        rmSync(tmp, { force: true });
        linked = linkOrFalse(source, tmp);
      }
      // else another file system (EXDEV) or no hard links there: a copy of its own
    }
    if (!linked) {
      writeFileSync(tmp, Buffer.from(content, 'base64'));
      chmodSync(tmp, op.mode);
    }
    renameSync(tmp, op.path);
    if (source === undefined) written.set(same, op.path);
  }
}

function linkOrFalse(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch {
    return false;
  }
}

/** Directories deepest first: each is removed after what it holds. */
function deepestFirst(dirs: readonly string[]): string[] {
  return [...dirs].sort((a, b) => b.length - a.length);
}


function restoreLabFile(lab: string, path: string): void {
  const b = backupPath(lab, path);
  if (existsSync(b)) copyFileSync(b, path);
  else rmSync(path, { force: true });
}

/**
 * Every file of the lab put back as it was (the few that existed before: copied back from
 * their backup) or removed, then the directories made for them removed where empty again.
 * The removals (a thousand-node lab: a hosts file and a directory per node) run on a thread
 * of their own while the caller goes on; the promise says what could not be removed.
 */
function releaseLabFiles(lab: string, files: readonly string[], dirs: readonly string[]): Promise<string[]> {
  let backups: Set<string>;
  try {
    backups = new Set(readdirSync(join(labDir(lab), 'backup')));
  } catch {
    backups = new Set();
  }
  const doomed: string[] = [];
  const errors: string[] = [];
  for (const f of files) {
    // Most labs back nothing up: no backup name worked out per file then.
    const b = backups.size === 0 ? undefined : backupPath(lab, f);
    if (b === undefined || !backups.has(basename(b))) doomed.push(f);
    else {
      try {
        copyFileSync(b, f);
      } catch (e) {
        errors.push(`put back ${f}: ${(e as Error).message}`);
      }
    }
  }
  const order = deepestFirst(dirs);
  if (doomed.length === 0 && order.length === 0) return Promise.resolve(errors);
  return native().removePaths(doomed, order).then((res) => {
    doomed.forEach((f, i) => {
      const e = res[i] ?? 0;
      if (e !== 0 && e !== osConstants.errno.ENOENT) errors.push(`remove ${f}: ${errnoName(e)}`);
    });
    // A directory not empty (something else was put there) or already gone is left as it is.
    return errors;
  });
}

async function undo(lab: string, journal: LabJournal, ops: readonly Op[], emit: (e: LabEvent) => void): Promise<void> {
  emit({ type: 'phase', phase: 'remove', total: ops.length });
  const names = new Set(ops.filter((o) => o.op === 'process').map((o) => (o as ProcessOp).name));
  await stopProcesses(journal.state.processes.filter((p) => names.has(p.name)));
  journal.processesStopped(names);
  const restored = ops.filter((o): o is FileOp => o.op === 'file').map((o) => o.path);
  for (const path of restored) restoreLabFile(lab, path);
  if (restored.length > 0) journal.filesRestored(restored);
  const kernelOps = ops.filter((o) => KERNEL_OPS.has(o.op));
  if (kernelOps.length > 0) await removeOps(kernelOps);
}

/** Undoes kernel ops: namespaces and links are deleted; routes/addresses go with their device or are deleted. */
async function removeOps(ops: readonly Op[]): Promise<void> {
  await removeKernelOps(ops);
}

async function stopProcesses(recs: readonly ProcessRecord[]): Promise<void> {
  const live = recs.filter((r) => isAlive(r.pid, r.startTicks));
  for (const r of live) {
    for (const argv of r.preDown) runInNs(r.ns, argv, { timeoutMs: 10_000 });
    if (r.down !== undefined) runInNs(r.ns, r.down, { timeoutMs: 10_000 });
  }
  await terminate(live.filter((r) => isAlive(r.pid, r.startTicks)).map((r) => r.pid));
}

export interface DownResult {
  lab: string;
  namespaces: number;
  processes: number;
  files: number;
  foreign: string[];
  elapsedMs: number;
  journal: boolean;
}

/** Transient objects of killed dune processes (probe namespaces) go first: transient.ts. */
function reclaimedNote(emit: (e: LabEvent) => void): void {
  const r = reclaimTransients();
  if (r.reclaimed.length > 0) emit({ type: 'note', message: `removed ${r.reclaimed.length} leftover${r.reclaimed.length === 1 ? '' : 's'} of killed dune processes: ${r.reclaimed.join(', ')}` });
  for (const e of r.errors) emit({ type: 'warning', message: e });
}

/**
 * The lab's namespaces, by the rule teardown follows: lo carries the lab's mark. Also those
 * without any mark that the journal says an interrupted up was creating (see
 * LabState.pendingNamespaces); anything else with the prefix is foreign.
 */
function labNamespaces(lab: string, state: LabState | undefined, prefix: string): { marked: string[]; unmarked: string[]; aliases: Map<string, LoAlias> } {
  const pending = new Set(state?.pendingNamespaces ?? []);
  const marked: string[] = [];
  const unmarked: string[] = [];
  const names = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(prefix)) : [];
  const aliases = loAliases(names);
  for (const [ns, a] of aliases) {
    const alias = 'alias' in a ? a.alias : undefined;
    if (typeof alias === 'string' && alias.startsWith(`dune:${lab}:`)) marked.push(ns);
    else if (alias === null && pending.has(ns)) unmarked.push(ns);
  }
  return { marked, unmarked, aliases };
}

/**
 * What in a plan down must see before deleting namespaces: ops released or undone outside
 * them (kinds with a release hook, adopted interfaces, ops in the host's namespace), as the
 * exact JSON the plan is written in. A fragment can only be there as structure (a quote in a
 * JSON string is escaped), so a false match costs at worst the parse it would have saved.
 * Without any, and with the usual namespace prefix, down does not parse the plan.
 */
const DOWN_MARKERS = [
  ...(Object.keys(opKinds) as OpKind[]).filter((k) => opKinds[k].release !== undefined || k === 'adopt').map((k) => `"op":${JSON.stringify(k)}`),
  '"ns":""',
];

export async function down(lab: string, opts: { onEvent?: (e: LabEvent) => void; locked?: boolean } = {}): Promise<DownResult> {
  requireRoot('down');
  checkLabName(lab);
  const run = async (): Promise<DownResult> => {
    const t0 = performance.now();
    const journal = LabJournal.open(lab);
    const state = journal?.state;
    const emit = opts.onEvent ?? (() => undefined);
    if (!opts.locked) reclaimedNote(emit);
    emit({ type: 'phase', phase: 'stop processes' });
    const recs = state?.processes ?? [];
    await stopProcesses(recs);
    // The userspace impairment engine holds sockets inside the namespaces: it goes first. Its
    // rules go with the namespaces.
    const engines = await stopEngine(lab, journal, { keepRules: true });
    // Anything else still running inside the lab's namespaces (started by exec, by a user's
    // `dune exec ... &`, or recorded by an up that was killed before writing its journal).
    // Only in namespaces that are the lab's: a process in a foreign namespace that merely
    // has the lab's prefix is not ours to kill.
    // A lab whose namespaces are not named dune.<lab>.* (NetMirage's <prefix><node>) says so in its plan.
    const read = readPlanIf(lab, (json) => DOWN_MARKERS.some((m) => json.includes(m)) || !json.includes(`"nsPrefix":${JSON.stringify(nsPrefix(lab))}`));
    const plan = typeof read === 'string' ? undefined : read;
    const planOps = plan?.hosts.flatMap((h) => h.ops) ?? [];
    // Daemons and files the lab keeps outside its namespaces (a private Open vSwitch), while
    // the namespaces they serve still exist.
    for (const e of await releaseOps(planOps)) emit({ type: 'warning', message: e });
    const prefix = plan?.nsPrefix ?? nsPrefix(lab);
    const { marked, unmarked, aliases } = labNamespaces(lab, state, prefix);
    // The lab's files go on another thread while the namespaces are checked and deleted.
    const files = releaseLabFiles(lab, state?.files ?? [], state?.dirs ?? []);
    const stray = [...pidsInNamespaces([...marked, ...unmarked]).values()].flat().filter((p) => p !== process.pid);
    const killed = await terminate(stray, 2000);
    if (killed.length > 0) emit({ type: 'note', message: `killed ${killed.length} process${killed.length === 1 ? '' : 'es'} that ignored SIGTERM` });
    emit({ type: 'phase', phase: 'network' });
    // What deleting the namespaces would not undo, or would undo wrongly: adopted interfaces
    // go back first, then the lab's rules, routes and addresses in the host's namespace.
    for (const e of [...releaseAdopted(planOps), ...undoHostOps(planOps)]) emit({ type: 'warning', message: e });
    // The marks just read are still the marks (the lab is locked): teardown does not read them again.
    const t = await teardownLab(lab, { aliases, ...(prefix === nsPrefix(lab) ? {} : { nsPrefix: prefix }) });
    for (const e of t.errors) emit({ type: 'warning', message: e });
    const failed = new Set(deleteNamespaces(unmarked).map((f) => {
      emit({ type: 'warning', message: `delete namespace ${f.name}: ${f.message}` });
      return f.name;
    }));
    const unmarkedGone = new Set(unmarked.filter((n) => !failed.has(n)));
    for (const e of await files) emit({ type: 'warning', message: e });
    const hadJournal = existsSync(labDir(lab));
    removeJournal(lab);
    return {
      lab,
      namespaces: t.deletedNamespaces.length + unmarkedGone.size,
      processes: recs.length + stray.length + engines,
      files: state?.files.length ?? 0,
      foreign: t.foreign.filter((f) => !unmarkedGone.has(f.ns)).map((f) => `${f.ns} (${f.reason})`),
      elapsedMs: performance.now() - t0,
      journal: hadJournal,
    };
  };
  return opts.locked ? run() : withLock(lab, run);
}

/** Every lab on this host: from journals and from namespace names. */
export function listLabs(): string[] {
  const labs = new Set(journalLabs());
  if (existsSync('/run/netns')) {
    for (const n of readdirSync('/run/netns')) {
      if (!n.startsWith(NS_PREFIX)) continue;
      const lab = n.slice(NS_PREFIX.length).split('.')[0];
      if (lab) labs.add(lab);
    }
  }
  return [...labs].sort();
}

/** The lab a command means: the one given, or the only one there is. */
export function resolveLab(given: string | undefined): string {
  const labs = listLabs();
  if (given !== undefined) {
    checkLabName(given);
    if (!labs.includes(given)) {
      throw new DuneError('no-such-lab', `no lab named "${given}" on this host`, { hint: labs.length ? `labs here: ${labs.join(', ')}` : 'start one with `dune up`' });
    }
    return given;
  }
  if (labs.length === 1 && labs[0] !== undefined) return labs[0];
  if (labs.length === 0) throw new DuneError('no-lab', 'no lab is running on this host', { hint: 'start one with `dune up [FILE]`' });
  throw new DuneError('which-lab', `${labs.length} labs are running: ${labs.join(', ')}`, { hint: 'say which with --lab NAME' });
}

export function labPlan(lab: string): Plan {
  const p = readPlan(lab);
  if (p === undefined) {
    throw new DuneError('no-journal', `lab ${lab} has namespaces but no journal (/run/dune/${lab}/plan.json)`, { hint: `remove it with \`dune down --lab ${lab}\`` });
  }
  return p;
}

export function nodeNs(plan: Plan, node: string): string {
  const n = findNode(plan, node);
  if (n === undefined) {
    const names = plan.nodes.map((x) => x.node);
    throw new DuneError('no-such-node', `lab ${plan.lab} has no node "${node}"`, { hint: `nodes: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', ...' : ''}` });
  }
  return n.ns;
}

export interface LinkStatus {
  link: string;
  node: string;
  dev: string;
  peer: string;
  up: boolean | null;
  mtu: number | null;
  impairment: Impairment;
  rxBytes: number | null;
  txBytes: number | null;
  rxPackets: number | null;
  txPackets: number | null;
  txDropped: number | null;
  /** The userspace engine's counters for this direction, when it carries a part of it. */
  engine?: EngineLinkCounters;
}

export interface LabStatus {
  lab: string;
  phase: string;
  /** `stopped`: by `dune node stop` (its processes stopped, its link ends down) until `start`. */
  nodes: { node: string; ns: string; present: boolean; stopped: boolean; v4?: string; v6?: string; cpus: number[] }[];
  links: LinkStatus[];
  processes: { name: string; node: string; pid: number; alive: boolean; cpus: number[]; argv: string[]; log: string }[];
  backend: Record<string, string>;
  /** The userspace impairment engine, when the lab has one on this host. */
  impairEngine?: EngineSummary;
  /** Routing daemons (routing = "ospf" | "bgp"): each node's daemon, its protocols and neighbours. */
  routing?: DaemonState[];
  /** What bricks count (a diode's dropped frames, a firewall's rules, an antispoof port's drops), per node. */
  counters?: OpCounter[];
}

function num(v: bigint | undefined): number | null {
  return v === undefined ? null : Number(v);
}

export async function status(lab: string): Promise<LabStatus> {
  requireRoot('status');
  const plan = labPlan(lab);
  const state = readState(lab);
  const impairments = new Map<string, Impairment>();
  for (const h of plan.hosts) for (const op of h.ops) if (op.op === 'impair') impairments.set(`${op.ns}/${op.dev}`, op.impairment);
  const byNs = new Map<string, Map<string, LinkInfoMsg>>();
  const nodes = plan.nodes.map((n) => {
    const present = existsSync(`/run/netns/${n.ns}`);
    const o: LabStatus['nodes'][number] = { node: n.node, ns: n.ns, present, stopped: state?.parked?.[n.node] !== undefined, cpus: n.cpus };
    if (n.v4 !== undefined) o.v4 = n.v4;
    if (n.v6 !== undefined) o.v6 = n.v6;
    return o;
  });
  for (const n of nodes) {
    if (!n.present) continue;
    byNs.set(n.ns, new Map(readLinks(n.ns).map((l) => [l.name, l])));
  }
  const engine = await engineReport(state);
  const links: LinkStatus[] = [];
  for (const l of plan.links) {
    for (const [me, peer, side] of [[l.a, l.b, 'a'], [l.b, l.a, 'b']] as const) {
      const k = byNs.get(me.ns)?.get(me.dev);
      links.push({
        link: `${l.index}:${side}`,
        node: me.node,
        dev: me.dev,
        peer: `${peer.node}:${peer.dev}`,
        up: k?.up ?? null,
        mtu: k?.mtu ?? null,
        impairment: impairments.get(`${me.ns}/${me.dev}`) ?? {},
        rxBytes: num(k?.stats?.rxBytes),
        txBytes: num(k?.stats?.txBytes),
        rxPackets: num(k?.stats?.rxPackets),
        txPackets: num(k?.stats?.txPackets),
        txDropped: num(k?.stats?.txDropped),
        ...(engine.byPipe.has(`${me.ns}/${me.dev}`) ? { engine: engine.byPipe.get(`${me.ns}/${me.dev}`) as EngineLinkCounters } : {}),
      });
    }
  }
  const processes = (state?.processes ?? []).map((p) => ({ name: p.name, node: p.node, pid: p.pid, alive: isAlive(p.pid, p.startTicks), cpus: p.cpus, argv: p.argv, log: p.log }));
  const daemons = plan.hosts.flatMap((h) => daemonOps(h.ops)).filter((d) => existsSync(`/run/netns/${d.ns}`));
  const counters: OpCounter[] = [];
  for (const h of plan.hosts) {
    for (const op of h.ops) {
      const read = kindOfOp(op).counters;
      if (read !== undefined && 'ns' in op && existsSync(`/run/netns/${op.ns}`)) counters.push(...(await read(op)));
    }
  }
  return {
    lab,
    phase: state?.phase ?? 'unknown',
    nodes,
    links,
    processes,
    backend: state?.backend ?? {},
    ...(engine.summary ? { impairEngine: engine.summary } : {}),
    ...(daemons.length > 0 ? { routing: daemons.map(daemonState) } : {}),
    ...(counters.length > 0 ? { counters } : {}),
  };
}

/** A node's routing table, each route with its protocol (and the daemon's protocol instance). */
export function routes(lab: string, node: string): NodeRoute[] {
  requireRoot('routes');
  const plan = labPlan(lab);
  return nodeRoutes(plan, nodeNs(plan, node));
}

/** Changes one link direction's impairment live; keys not given keep their value. */
export async function set(lab: string, node: string, dev: string, changes: Partial<Record<keyof Impairment, unknown>>, removed: readonly (keyof Impairment)[] = []): Promise<Impairment> {
  requireRoot('set');
  return withLock(lab, async () => {
    const plan = labPlan(lab);
    const ns = nodeNs(plan, node);
    const link = plan.links.find((l) => (l.a.node === node && l.a.dev === dev) || (l.b.node === node && l.b.dev === dev));
    if (link === undefined) {
      const devs = plan.links.flatMap((l) => [l.a, l.b]).filter((e) => e.node === node).map((e) => e.dev);
      throw new DuneError('no-such-iface', `node ${node} has no link interface "${dev}"`, { hint: `its interfaces: ${devs.join(', ') || 'none'}` });
    }
    const side = link.a.node === node && link.a.dev === dev ? 'a' : 'b';
    let current: Impairment = {};
    let host: HostPlan | undefined;
    let at = -1;
    for (const h of plan.hosts) {
      const i = h.ops.findIndex((o) => o.op === 'impair' && o.ns === ns && o.dev === dev);
      if (i >= 0) {
        host = h;
        at = i;
        const op = h.ops[i];
        if (op?.op === 'impair') current = op.impairment;
      }
    }
    const next: Impairment = { ...current, ...(changes as Impairment) };
    for (const k of removed) delete next[k];
    const caps = await probeCapabilities();
    const prevOp = host?.ops[at];
    const mtu = prevOp?.op === 'impair' ? prevOp.mtu : link.kind === 'vxlan' ? 1450 : 1500;
    const prefer = labBackendSetting(plan);
    checkImpairments([{ op: 'impair', ns, dev, link: `${link.index}:${side}`, impairment: next, mtu }], caps, prefer);
    const newOp: Op = { op: 'impair', ns, dev, link: `${link.index}:${side}`, impairment: next, mtu };
    const journal = LabJournal.open(lab);
    // The engine's part of the direction, live (an engine that is not running is started with every part the lab has).
    const userspace = async (part: Impairment | null): Promise<void> => {
      if (journal === undefined) throw new DuneError('no-journal', `lab ${lab} has no state (/run/dune/${lab}/state.json) to run its userspace engine from`, { hint: `bring it up again with \`dune up\`` });
      const all = () => enginePipes(plan.hosts.flatMap((h) => h.ops).map((o) => (o.op === 'impair' && o.ns === ns && o.dev === dev ? newOp : o)).concat(at < 0 ? [newOp] : []), caps, prefer);
      await setEnginePipe(lab, journal, { ns, dev, link: newOp.link, params: part }, all, labEngineSettings(plan));
    };
    await changeImpairment(ns, dev, next, { caps, lab, prefer, userspace });
    if (host !== undefined && at >= 0) host.ops[at] = newOp;
    else plan.hosts.find((h) => h.nodes.some((n) => n.ns === ns))?.ops.push(newOp);
    LabJournal.planChanged(lab, serializePlanChunks(plan));
    journal?.backend(checkImpairments(plan.hosts.flatMap((h) => h.ops), caps, prefer));
    return next;
  });
}

export { opKey };

/** Ops a running lab accepts as a runtime change (the API's addresses, routes and link state). */
const RUNTIME_OPS = new Set((Object.keys(opKinds) as OpKind[]).filter((k) => opKinds[k].runtime === true));

export interface ChangeParams {
  lab: string;
  /** Ops to apply and add to the journaled plan. */
  apply: Op[];
  /**
   * Ops to undo and drop from the journaled plan. An `up` op undone sets its device down
   * (a link failure): the device stays, without carrier, until an `up` op is applied again.
   */
  remove: Op[];
  /**
   * Node failures, in order, after the ops: `stop` stops the node's supervised processes
   * (its `process` ops: pre_down and down hooks, then SIGTERM) and sets its link ends down;
   * `start` starts them again from the plan and sets the ends up with their addresses and
   * routes. Stopping a stopped node, or starting a running one, changes nothing.
   */
  nodes?: NodeAction[];
}

export interface NodeAction {
  node: string;
  action: 'stop' | 'start';
}

export interface ChangeResult {
  lab: string;
  applied: number;
  removed: number;
}

/**
 * A runtime change: addresses, routes, link state and sysctls changed while the lab runs,
 * applied here and written into the journaled plan, so `status` shows them, a second
 * change sees them and `down` removes them with everything else.
 */
export async function change(p: ChangeParams): Promise<ChangeResult> {
  requireRoot('change');
  return withLock(p.lab, async () => {
    const plan = labPlan(p.lab);
    const ours = new Set(plan.nodes.map((n) => n.ns));
    for (const op of [...p.apply, ...p.remove]) {
      if (!RUNTIME_OPS.has(op.op)) {
        throw new DuneError('bad-change', `a running lab cannot ${p.apply.includes(op) ? 'apply' : 'remove'} a ${op.op} op`, { hint: `runtime changes are ${[...RUNTIME_OPS].join(', ')} ops; change the topology and run up for the rest` });
      }
      if (!('ns' in op) || !ours.has(op.ns as string)) {
        throw new DuneError('bad-change', `namespace ${'ns' in op ? String(op.ns) : '?'} is not a node of lab ${p.lab} on this host`, { hint: `nodes here: ${plan.nodes.map((n) => n.node).slice(0, 20).join(', ')}` });
      }
    }
    const hostOf = (ns: string): HostPlan => plan.hosts.find((h) => h.nodes.some((n) => n.ns === ns)) ?? (plan.hosts[0] as HostPlan);
    const downs = p.remove.filter((o) => o.op === 'up');
    const undo = p.remove.filter((o) => o.op !== 'up' && o.op !== 'sysctl');
    if (undo.length > 0) await removeKernelOps(undo, { lab: p.lab });
    for (const op of downs) if (op.op === 'up') setLinkState(op.ns, op.dev, false);
    if (p.apply.length > 0) await applyOps(p.apply, { lab: p.lab });
    // A device set down lost its routes (both families) and its IPv6 addresses: back up, it
    // gets again what the plan has on it.
    const planned = plan.hosts.flatMap((h) => h.ops);
    for (const op of p.apply) if (op.op === 'up') restoreDevice(op.ns, op.dev, planned);
    const drop = new Set(p.remove.map(opKey));
    for (const h of plan.hosts) h.ops = h.ops.filter((o) => !drop.has(opKey(o)));
    for (const op of p.apply) {
      const h = hostOf((op as { ns: string }).ns);
      const k = opKey(op);
      const i = h.ops.findIndex((o) => opKey(o) === k);
      if (i >= 0) h.ops[i] = op;
      else h.ops.push(op);
    }
    if (p.nodes !== undefined && p.nodes.length > 0) await nodeActions(p.lab, plan, p.nodes);
    LabJournal.planChanged(p.lab, serializePlanChunks(plan));
    return { lab: p.lab, applied: p.apply.length, removed: p.remove.length };
  });
}

/**
 * Stops and starts nodes (ChangeParams.nodes). A stopped node's ops leave the journaled
 * plan for state.parked, so status, a later change and `up` all see the node as it is: an
 * `up` of the topology finds them missing and converges the node back to running.
 */
async function nodeActions(lab: string, plan: Plan, actions: readonly NodeAction[]): Promise<void> {
  const journal = LabJournal.open(lab);
  if (journal === undefined) throw new DuneError('no-journal', `lab ${lab} has no state (/run/dune/${lab}/state.json) to stop or start nodes with`, { hint: 'bring it up again with `dune up`' });
  for (const a of actions) {
    if (a.action !== 'stop' && a.action !== 'start') throw new DuneError('bad-change', `"${String(a.action)}" is not a node action`, { hint: 'node actions are stop and start' });
    const ns = nodeNs(plan, a.node);
    const host = plan.hosts.find((h) => h.nodes.some((n) => n.ns === ns)) ?? (plan.hosts[0] as HostPlan);
    if (a.action === 'stop') {
      if (journal.state.parked?.[a.node] !== undefined) continue;
      const devs = new Set(plan.links.flatMap((l) => [l.a, l.b]).filter((e) => e.node === a.node).map((e) => e.dev));
      const taken = host.ops.filter((o) => (o.op === 'process' && o.node === a.node) || (o.op === 'up' && o.ns === ns && devs.has(o.dev)));
      const names = new Set(taken.flatMap((o) => (o.op === 'process' ? [o.name] : [])));
      // Parked first: a failure below leaves a node that `start` (or `up`) brings back.
      host.ops = host.ops.filter((o) => !taken.includes(o));
      LabJournal.planChanged(lab, serializePlanChunks(plan));
      journal.nodeParked(a.node, taken);
      await stopProcesses(journal.state.processes.filter((r) => names.has(r.name)));
      journal.processesStopped(names);
      for (const o of taken) if (o.op === 'up') setLinkState(o.ns, o.dev, false);
    } else {
      const back = journal.state.parked?.[a.node];
      if (back === undefined) continue;
      const keys = new Set(host.ops.map(opKey));
      for (const o of back) if (!keys.has(opKey(o))) host.ops.push(o);
      const ups = back.filter((o) => o.op === 'up');
      if (ups.length > 0) await applyOps(ups, { lab });
      const planned = plan.hosts.flatMap((h) => h.ops);
      for (const o of ups) if (o.op === 'up') restoreDevice(o.ns, o.dev, planned);
      LabJournal.planChanged(lab, serializePlanChunks(plan));
      journal.nodeResumed(a.node);
      await applyHostOps(lab, journal, back, () => undefined, plan);
    }
  }
}

/** EEXIST: what survived the device going down (IPv4 addresses) is fine as it is. */
const EEXIST = 17;

function restoreDevice(ns: string, dev: string, planned: readonly Op[]): void {
  const mine = expandRouteTables(planned.filter((o) => (o.op === 'addr' || o.op === 'route' || o.op === 'routes') && o.ns === ns && o.dev === dev));
  if (mine.length === 0) return;
  const s = NlSocket.open<Op>(nsPath(ns), ns);
  try {
    const index = dumpLinks(s as unknown as NlSocket).find((l) => l.name === dev)?.index;
    if (index === undefined) return;
    for (const kind of ['addr', 'route'] as const) {
      for (const op of mine) {
        if (op.op === 'addr' && kind === 'addr') s.queue(op, (w, seq) => newAddr(w, seq, index, op.cidr));
        if (op.op === 'route' && kind === 'route') {
          s.queue(op, (w, seq) => newRoute(w, seq, { dst: op.dst, oif: index, ...(op.via !== undefined ? { via: op.via } : {}), ...(op.metric !== undefined ? { metric: op.metric } : {}), ...(op.src !== undefined ? { src: op.src } : {}) }));
        }
      }
      s.drain();
    }
    const failed = s.takeFailures().filter((f) => Math.abs(f.ack.errno) !== EEXIST);
    if (failed[0] !== undefined) {
      throw new DuneError('link-restore', `${dev} in ${ns} is up again, but ${describeOp(failed[0].ref)} could not be restored: ${describeAck(failed[0].ack)}`, { hint: 'run `dune up` with the topology to converge the lab' });
    }
  } finally {
    s.close();
  }
}

function setLinkState(ns: string, dev: string, up: boolean): void {
  const s = NlSocket.open<string>(nsPath(ns), ns);
  try {
    s.queue(dev, (w, seq) => setLink(w, seq, { name: dev, up }));
    s.drain();
    const f = s.takeFailures()[0];
    if (f !== undefined) {
      throw new DuneError('link-state', `cannot set ${dev} ${up ? 'up' : 'down'} in ${ns}: ${describeAck(f.ack)}`, { hint: 'check the interface name with `dune status`' });
    }
  } finally {
    s.close();
  }
}
