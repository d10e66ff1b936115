/**
 * The lab's state on this host: `/run/dune/<lab>/` (tmpfs: gone at reboot, as are the
 * namespaces it describes).
 *
 *   plan.json      the plan last applied (canonical JSON)
 *   state.json     phase, processes (pid + start time, to survive pid reuse), host objects
 *   vnis.json      the VXLAN VNIs (and ports) the lab holds here, read by other labs' up
 *   logs/          one log per process (impair-engine.log: the userspace impairment engine)
 *   impair.sock    the userspace impairment engine's control socket, when the lab has one
 *
 * Writes are atomic (write to a temp file, rename), so a kill -9 at any point leaves either
 * the old or the new file, never half of one.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Op, Plan, VniUse } from '@dune/compiler';

export const STATE_ROOT = process.env['DUNE_STATE_DIR'] ?? '/run/dune';

export interface ProcessRecord {
  name: string;
  node: string;
  ns: string;
  pid: number;
  /** /proc/<pid>/stat field 22: tells a reused pid from ours. */
  startTicks: number;
  argv: string[];
  cpus: number[];
  log: string;
  preDown: string[][];
  down?: string[];
}

/** The lab's userspace impairment engine on this host (see impair/userspace.ts). */
export interface EngineRecord {
  pid: number;
  startTicks: number;
  /** Its control socket: /run/dune/<lab>/impair.sock. */
  socket: string;
  log: string;
  argv: string[];
  startedAt: string;
}

export interface LabState {
  lab: string;
  /** `applying` while up runs: a journal left in this phase means up was interrupted. */
  phase: 'applying' | 'up' | 'tearing-down';
  createdAt: string;
  updatedAt: string;
  processes: ProcessRecord[];
  /** Namespaces this up created (the rest existed already). */
  namespaces: string[];
  /**
   * Namespaces an `up` is about to create, written before it creates them. The kernel
   * layer marks lo only after a whole batch of namespaces exists, so an up killed in
   * between leaves namespaces without the mark: these names (which did not exist before)
   * tell `down` they are the lab's all the same. Cleared once the up has finished.
   */
  pendingNamespaces?: string[];
  /** Files written, for down to remove. */
  files: string[];
  /** Directories created to hold those files, for down to remove when they are empty again. */
  dirs?: string[];
  backend: Record<string, string>;
  /** The userspace impairment engine serving this lab's NFQUEUE rules, when it has one. */
  impairEngine?: EngineRecord;
  /**
   * Nodes stopped at runtime (`dune node stop`), by name: the plan ops taken out of the
   * journaled plan while the node is stopped (its `process` ops and its link ends' `up`
   * ops), put back and applied by `start`. An `up` converges to the topology and clears it.
   */
  parked?: Record<string, Op[]>;
}

export function labDir(lab: string): string {
  return join(STATE_ROOT, lab);
}

export function logDir(lab: string): string {
  return join(labDir(lab), 'logs');
}

function atomicWrite(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

/**
 * A plan serialised to a file beside the lab's directory (not in it: a directory is a lab to
 * `journalLabs`), in pieces: a big plan never becomes one string, and is written once per up
 * (`LabJournal.begin` moves it into place) rather than serialised again to be compared and
 * then written. `digest` is the SHA-256 of its canonical JSON.
 */
export interface StagedPlan {
  lab: string;
  path: string;
  digest: string;
  bytes: number;
}

export function stagePlan(lab: string, chunks: Iterable<string>): StagedPlan {
  mkdirSync(STATE_ROOT, { recursive: true, mode: 0o755 });
  const path = join(STATE_ROOT, `.${lab}.plan-${process.pid}`);
  const h = createHash('sha256');
  let bytes = 0;
  const fd = openSync(path, 'w', 0o600);
  try {
    // Chunks (serializePlanChunks: ~10,000 ops each), written as they are made.
    for (const chunk of chunks) {
      const b = Buffer.from(chunk, 'utf8');
      h.update(b);
      for (let off = 0; off < b.length; ) off += writeSync(fd, b, off);
      bytes += b.length;
    }
  } catch (e) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw e;
  }
  closeSync(fd);
  return { lab, path, digest: h.digest('hex'), bytes };
}

/** Drops a staged plan that was not used (nothing to do, or the up failed before `begin`). */
export function discardStagedPlan(staged: StagedPlan | undefined): void {
  if (staged !== undefined) rmSync(staged.path, { force: true });
}

/** SHA-256 of the lab's journaled plan.json, read in pieces; undefined when there is none. */
export function journaledPlanDigest(lab: string): string | undefined {
  const p = join(labDir(lab), 'plan.json');
  let fd: number;
  try {
    fd = openSync(p, 'r');
  } catch {
    return undefined;
  }
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (let n = readSync(fd, buf, 0, buf.length, null); n > 0; n = readSync(fd, buf, 0, buf.length, null)) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function writePlan(lab: string, chunks: Iterable<string>): void {
  placePlan(lab, stagePlan(lab, chunks));
}

function placePlan(lab: string, staged: StagedPlan): void {
  mkdirSync(logDir(lab), { recursive: true, mode: 0o700 });
  renameSync(staged.path, join(labDir(lab), 'plan.json'));
}

export function readPlan(lab: string): Plan | undefined {
  const p = join(labDir(lab), 'plan.json');
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as Plan;
}

/**
 * The journaled plan, parsed only when `worth` says so from its bytes ('absent' when there is
 * none, 'skipped' when not worth it): what down needs from a plan is rare, and a thousand-node
 * plan is megabytes of JSON whose parse costs tens of milliseconds.
 */
export function readPlanIf(lab: string, worth: (json: Buffer) => boolean): Plan | 'absent' | 'skipped' {
  let buf: Buffer;
  try {
    buf = readFileSync(join(labDir(lab), 'plan.json'));
  } catch {
    return 'absent';
  }
  return worth(buf) ? (JSON.parse(buf.toString('utf8')) as Plan) : 'skipped';
}

export function readPlanText(lab: string): string | undefined {
  const p = join(labDir(lab), 'plan.json');
  return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
}

function writeState(state: LabState): void {
  mkdirSync(logDir(state.lab), { recursive: true, mode: 0o700 });
  state.updatedAt = new Date().toISOString();
  atomicWrite(join(labDir(state.lab), 'state.json'), JSON.stringify(state, null, 2) + '\n');
}

export function readState(lab: string): LabState | undefined {
  const p = join(labDir(lab), 'state.json');
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

/** The VXLAN VNIs a lab holds on this host (compiler vni.ts), beside its plan: small, so other labs' up reads it fast. */
function writeVnis(lab: string, uses: readonly VniUse[]): void {
  atomicWrite(join(labDir(lab), 'vnis.json'), `${JSON.stringify(uses)}\n`);
}

/** Every lab's VNIs on this host, from the journals. */
export function readVnis(): VniUse[] {
  const out: VniUse[] = [];
  for (const lab of journalLabs()) {
    try {
      out.push(...(JSON.parse(readFileSync(join(labDir(lab), 'vnis.json'), 'utf8')) as VniUse[]));
    } catch {
      // no VXLAN links, or a lab without the file (none is written before its plan)
    }
  }
  return out;
}

export function removeJournal(lab: string): void {
  rmSync(labDir(lab), { recursive: true, force: true });
}

/** Labs with a journal on this host. */
export function journalLabs(): string[] {
  if (!existsSync(STATE_ROOT)) return [];
  return readdirSync(STATE_ROOT, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

export function newState(lab: string): LabState {
  const now = new Date().toISOString();
  return { lab, phase: 'applying', createdAt: now, updatedAt: now, processes: [], namespaces: [], files: [], backend: {} };
}

/**
 * The one writer of a lab's journal on this host: every change to plan.json, state.json and
 * vnis.json goes through a method that says what happened, and is on disk (atomically)
 * when the method returns. Readers use readState/readPlan.
 */
export class LabJournal {
  readonly lab: string;
  /** The state as last written; read it freely, change it only through the methods. */
  readonly state: LabState;

  private constructor(state: LabState) {
    this.lab = state.lab;
    this.state = state;
  }

  /** The lab's journal as it is on disk, or undefined when it has none. */
  static open(lab: string): LabJournal | undefined {
    const s = readState(lab);
    return s === undefined ? undefined : new LabJournal(s);
  }

  /** A lab starting from nothing. */
  static fresh(lab: string): LabJournal {
    return new LabJournal(newState(lab));
  }

  private save(): void {
    writeState(this.state);
  }

  /**
   * An up begins: the plan it applies (staged by `stagePlan`, moved into place) and its VNIs
   * first, then phase `applying` with the namespaces it is about to create (see
   * LabState.pendingNamespaces).
   */
  begin(plan: StagedPlan, vnis: readonly VniUse[], backend: Record<string, string>, pendingNamespaces: string[]): void {
    placePlan(this.lab, plan);
    writeVnis(this.lab, vnis);
    this.state.phase = 'applying';
    this.state.backend = backend;
    this.state.pendingNamespaces = pendingNamespaces;
    this.save();
  }

  /** The kernel part is built: the namespaces it made carry their marks now. */
  namespacesMade(namespaces: readonly string[]): void {
    this.state.namespaces.push(...namespaces);
    delete this.state.pendingNamespaces;
    this.save();
  }

  /**
   * Processes started, in one journal write for the batch: the state lists every namespace
   * and file of the lab, so a write per process made starting n processes cost n². (One
   * started but not yet written down still dies with the lab: down kills every process in
   * its namespaces.)
   */
  processesStarted(started: readonly { rec: ProcessRecord; controlSocket?: string | undefined }[]): void {
    if (started.length === 0) return;
    const names = new Set(started.map((s) => s.rec.name));
    for (const { controlSocket } of started) if (controlSocket !== undefined && !this.state.files.includes(controlSocket)) this.state.files.push(controlSocket);
    this.state.processes = this.state.processes.filter((p) => !names.has(p.name)).concat(started.map((s) => s.rec));
    this.save();
  }


  processesStopped(names: ReadonlySet<string>): void {
    this.state.processes = this.state.processes.filter((p) => !names.has(p.name));
    this.save();
  }

  /**
   * Files about to be written for the lab (each backed up first when it existed), and the
   * directories made for them: one journal write for the whole batch.
   */
  filesWritten(entries: readonly { path: string; dirsMade?: readonly string[] }[]): void {
    const files = new Set(this.state.files);
    const dirs = new Set(this.state.dirs ?? []);
    for (const e of entries) {
      files.add(e.path);
      for (const d of e.dirsMade ?? []) dirs.add(d);
    }
    this.state.files = [...files];
    if (dirs.size > 0) this.state.dirs = [...dirs];
    this.save();
  }

  filesRestored(paths: readonly string[]): void {
    const gone = new Set(paths);
    this.state.files = this.state.files.filter((f) => !gone.has(f));
    this.save();
  }

  /** The userspace impairment engine started (a record) or stopped (undefined). */
  engine(rec: EngineRecord | undefined): void {
    if (rec === undefined) delete this.state.impairEngine;
    else this.state.impairEngine = rec;
    if (existsSync(labDir(this.lab))) this.save();
  }

  /** Which backend carries which impairment key, recomputed for the whole lab. */
  backend(backend: Record<string, string>): void {
    this.state.backend = backend;
    this.save();
  }

  /** The plan changed while the lab runs (a live impairment, a runtime change). */
  static planChanged(lab: string, chunks: Iterable<string>): void {
    writePlan(lab, chunks);
  }

  /** A node stopped: the plan ops taken out while it is (its processes, its link ends' `up`). */
  nodeParked(node: string, ops: Op[]): void {
    (this.state.parked ??= {})[node] = ops;
    this.save();
  }

  /** A stopped node started again: its ops are back in the plan. */
  nodeResumed(node: string): void {
    if (this.state.parked !== undefined) {
      delete this.state.parked[node];
      if (Object.keys(this.state.parked).length === 0) delete this.state.parked;
    }
    this.save();
  }

  /** The up is complete; the plan has every node's ops again, so no node is stopped. */
  commit(): void {
    delete this.state.parked;
    this.state.phase = 'up';
    this.save();
  }
}
