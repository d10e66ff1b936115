/**
 * Where a lab engine's packets are handled: a plane is one engine (pipes, heap, clock) with
 * its NFQUEUE sockets, one per namespace it has queues in. The lab engine (lab-engine.ts)
 * keeps everything else: which pipes exist, their queue numbers, the rules.
 *
 *   threads 1 (default)   one LocalPlane in the engine's own thread
 *   threads N             N WorkerPlanes, each a worker thread (plane-worker.ts) running a
 *                         LocalPlane of its own; the main thread only keeps the control socket,
 *                         the rules and shadow pipes that add up the workers' counts
 *
 * A pipe lives in one plane, both its hooks too (one rate, one queue, one clock per
 * direction); a namespace has a socket in each plane that has a queue there. Packets never
 * cross threads.
 *
 * Calls to a worker are messages, handled in order: `commit` waits until the worker has
 * handled everything sent before it and returns the binds that failed (a bind is not known
 * to hold before then).
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Impairment } from '@dune/topology';
import { RealClock } from '../engine/clock.js';
import type { CountersDelta, Tally } from '../engine/counters.js';
import { Engine, type Pipe } from '../engine/engine.js';
import { Histogram, type HistogramSnapshot } from '../engine/histogram.js';
import type { NfqueueFrontend } from '../kernel/nfqueue.js';
import { LabEngineError } from './protocol.js';

/** The kernel side a plane needs: opening a namespace's NFQUEUE socket. */
export interface FrontendOpener {
  openFrontend(engine: Engine, ns: string, recvBuffer: Buffer, opts?: { failOpen?: boolean }): NfqueueFrontend;
}

/** A bind a worker could not make. */
export interface BindFailure {
  ns: string;
  queue: number;
  pipe: string;
  message: string;
  /** The LabEngineError code, when there is one. */
  code?: string;
}

/** Engine-wide figures of one plane since its last take (histograms as deltas), for status. */
export interface PlaneTake {
  pipes: Record<string, { delta: CountersDelta; held: Tally; queued: Tally }>;
  lateness: HistogramSnapshot;
  releaseCost: HistogramSnapshot;
  readDelay: HistogramSnapshot;
  aheadUs: number;
  kernelPackets: { received: number; stamped: number };
  frontendErrors: Record<string, number>;
  held: Tally;
  namespaces: number;
  /** The share of the last interval the worker's thread was busy (0..1). */
  utilization: number;
}

const tally0 = (): Tally => ({ packets: 0, bytes: 0 });

/**
 * One engine and its sockets, in this thread. Binds throw at once; what a bind needs is
 * the pipe object of this plane's engine.
 */
export class LocalPlane {
  private readonly frontends = new Map<string, NfqueueFrontend>();
  /** The counts of sockets closed (their namespaces gone or emptied). */
  private readonly retired = { received: 0, stamped: 0 };

  constructor(
    readonly engine: Engine,
    private readonly kernel: FrontendOpener,
    private readonly recvBuffer: Buffer,
    private readonly failOpen: boolean,
  ) {}

  get namespaces(): number {
    return this.frontends.size;
  }

  /** Binds `queue` in `ns` to `pipe`, opening the namespace's socket first if need be. */
  bind(ns: string, queue: number, pipe: Pipe): void {
    let fe = this.frontends.get(ns);
    if (fe === undefined) {
      try {
        fe = this.kernel.openFrontend(this.engine, ns, this.recvBuffer, this.failOpen ? { failOpen: true } : {});
      } catch (e) {
        throw new LabEngineError('nfqueue-failed', `cannot open nfnetlink_queue in ${ns}: ${(e as Error).message}`, 'the kernel needs nfnetlink_queue (CONFIG_NETFILTER_NETLINK_QUEUE)');
      }
      this.frontends.set(ns, fe);
    }
    try {
      fe.addQueue(queue, pipe);
    } catch (e) {
      throw new LabEngineError('nfqueue-failed', `binding queue ${queue} in ${ns} for ${pipe.name}: ${(e as Error).message}`);
    }
  }

  /** Unbinds one queue (its held packets accepted). */
  unbind(ns: string, queue: number): void {
    try {
      this.frontends.get(ns)?.removeQueue(queue);
    } catch {
      // the socket's close unbinds too
    }
  }

  /** Closes the namespace's socket, if this plane has one there (held packets accepted). */
  closeNs(ns: string): void {
    const fe = this.frontends.get(ns);
    if (fe === undefined) return;
    this.retired.received += fe.stats.packets;
    this.retired.stamped += fe.stats.stamped;
    try {
      fe.close();
    } catch {
      // a namespace already gone
    }
    this.frontends.delete(ns);
  }

  kernelPackets(): { received: number; stamped: number } {
    const k = { ...this.retired };
    for (const fe of this.frontends.values()) {
      k.received += fe.stats.packets;
      k.stamped += fe.stats.stamped;
    }
    return k;
  }

  /** Closes every socket left (held packets accepted); the engine is its owner's to close. */
  close(): void {
    for (const ns of [...this.frontends.keys()]) this.closeNs(ns);
  }
}

/** The worker's script: next to this file, or (running from the sources, as in tests) in dist. */
export function planeWorkerUrl(): URL {
  const here = new URL('./plane-worker-entry.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL(here.href.replace('/src/lab/', '/dist/lab/'));
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(`an engine with threads needs the built worker (${fileURLToPath(built)}): run \`npm run build\``);
}

/** What a worker is started with (workerData). */
export interface PlaneWorkerData {
  /** Marks the data: a script that is also a process's main (the agent's bundle) tells its workers by it. */
  dunePlane: 1;
  index: number;
  seed: number;
  failOpen: boolean;
}

export const isPlaneWorkerData = (d: unknown): d is PlaneWorkerData => typeof d === 'object' && d !== null && (d as { dunePlane?: unknown }).dunePlane === 1;

/** main → worker */
export type PlaneRequest =
  | { t: 'add'; name: string; params: Impairment }
  | { t: 'set'; name: string; params: Impairment }
  | { t: 'remove'; name: string }
  | { t: 'bind'; ns: string; queue: number; name: string }
  | { t: 'unbind'; ns: string; queue: number }
  | { t: 'closeNs'; ns: string }
  | { t: 'commit'; id: number }
  | { t: 'take'; id: number }
  | { t: 'close'; id: number };

/** worker → main */
export type PlaneReply =
  | { t: 'ready' }
  | { t: 'commit'; id: number; failures: BindFailure[] }
  | { t: 'take'; id: number; take: PlaneTake }
  | { t: 'closed'; id: number; take: PlaneTake };

/**
 * A plane in a worker thread. The main thread's engine holds a shadow pipe per pipe here
 * (its parameters, and the counts the worker hands over at each take); held and queued
 * are the worker's as of the last take.
 */
export class WorkerPlane {
  pipes = 0;
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: PlaneReply) => void>();
  private failed: Error | undefined;
  private readonly shadows = new Map<string, Pipe>();
  private readonly last = new Map<string, { held: Tally; queued: Tally }>();
  private lastTake: PlaneTake | undefined;
  private closed = false;

  private constructor(
    readonly index: number,
    worker: Worker,
    private readonly onDeath: (why: string) => void,
  ) {
    this.worker = worker;
    worker.on('message', (m: PlaneReply) => {
      if (m.t === 'ready') return;
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      w?.(m);
    });
    worker.on('error', (e) => this.die(`thread ${index} failed: ${e.stack ?? e.message}`));
    worker.on('exit', (code) => {
      if (!this.closed) this.die(`thread ${index} exited (status ${code})`);
    });
  }

  /** Starts a worker and waits until its engine is up. */
  static async start(index: number, script: string | URL, data: Omit<PlaneWorkerData, 'dunePlane' | 'index'>, onDeath: (why: string) => void): Promise<WorkerPlane> {
    const worker = new Worker(script, { workerData: { ...data, dunePlane: 1, index } satisfies PlaneWorkerData });
    await new Promise<void>((resolve, reject) => {
      const onMsg = (m: PlaneReply): void => {
        if (m.t !== 'ready') return;
        cleanup();
        resolve();
      };
      const onErr = (e: Error): void => {
        cleanup();
        reject(new LabEngineError('thread-failed', `engine thread ${index} did not start: ${e.message}`));
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new LabEngineError('thread-failed', `engine thread ${index} exited while starting (status ${code})`));
      };
      const cleanup = (): void => {
        worker.off('message', onMsg);
        worker.off('error', onErr);
        worker.off('exit', onExit);
      };
      worker.on('message', onMsg);
      worker.on('error', onErr);
      worker.on('exit', onExit);
    });
    return new WorkerPlane(index, worker, onDeath);
  }

  private die(why: string): void {
    if (this.failed !== undefined) return;
    this.failed = new LabEngineError('thread-failed', why);
    for (const w of this.waiting.values()) w({ t: 'commit', id: -1, failures: [{ ns: '', queue: -1, pipe: '', message: why }] });
    this.waiting.clear();
    this.onDeath(why);
  }

  private post(m: PlaneRequest): void {
    if (this.failed) throw this.failed;
    this.worker.postMessage(m);
  }

  private call(m: { t: 'commit' | 'take' | 'close' }, timeoutMs = 30_000): Promise<PlaneReply> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new LabEngineError('thread-failed', `engine thread ${this.index} did not answer "${m.t}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        if (r.t !== 'ready' && r.id === -1) reject(this.failed);
        else resolve(r);
      });
      this.worker.postMessage({ ...m, id });
    });
  }

  addPipe(shadow: Pipe, params: Impairment): void {
    this.shadows.set(shadow.name, shadow);
    this.post({ t: 'add', name: shadow.name, params });
  }

  setParams(name: string, params: Impairment): void {
    this.post({ t: 'set', name, params });
  }

  removePipe(name: string): void {
    this.shadows.delete(name);
    this.last.delete(name);
    this.post({ t: 'remove', name });
  }

  bind(ns: string, queue: number, pipe: Pipe): void {
    this.post({ t: 'bind', ns, queue, name: pipe.name });
  }

  unbind(ns: string, queue: number): void {
    if (!this.failed) this.post({ t: 'unbind', ns, queue });
  }

  closeNs(ns: string): void {
    if (!this.failed) this.post({ t: 'closeNs', ns });
  }

  /** Everything sent so far handled; the binds among it that failed. */
  async commit(): Promise<BindFailure[]> {
    const r = await this.call({ t: 'commit' });
    return r.t === 'commit' ? r.failures : [];
  }

  /** The worker's counts since the last take, added to the shadow pipes. */
  async take(): Promise<PlaneTake | undefined> {
    if (this.failed || this.closed) return undefined;
    const r = await this.call({ t: 'take' }, 5000);
    return r.t === 'take' ? this.absorb(r.take) : undefined;
  }

  private absorb(t: PlaneTake): PlaneTake {
    for (const [name, p] of Object.entries(t.pipes)) {
      const shadow = this.shadows.get(name);
      if (shadow === undefined) continue;
      shadow.counters.absorb(p.delta);
      this.last.set(name, { held: p.held, queued: p.queued });
    }
    this.lastTake = t;
    return t;
  }

  held(name: string): Tally {
    return { ...(this.last.get(name)?.held ?? tally0()) };
  }

  queued(name: string): Tally {
    return { ...(this.last.get(name)?.queued ?? tally0()) };
  }

  get namespaces(): number {
    return this.lastTake?.namespaces ?? 0;
  }

  get utilization(): number {
    return this.lastTake?.utilization ?? 0;
  }

  /** The worker releases what it holds, closes its sockets and ends; its last counts are absorbed. */
  async close(): Promise<PlaneTake | undefined> {
    if (this.closed) return undefined;
    let last: PlaneTake | undefined;
    if (!this.failed) {
      try {
        const r = await this.call({ t: 'close' }, 5000);
        if (r.t === 'closed') last = this.absorb(r.take);
      } catch {
        // terminated below
      }
    }
    this.closed = true;
    const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    const timer = setTimeout(() => void this.worker.terminate(), 3000);
    if (this.worker.threadId >= 0) await exited;
    clearTimeout(timer);
    return last;
  }
}

/** `--threads auto`: one per core this process may run on. */
export const autoThreads = (): number => Math.max(1, availableParallelism());

/** The figures of one plane's engine since the last take (histograms reset: they travel as deltas). */
export function takeLocal(plane: LocalPlane, pipes: Iterable<Pipe>, lastErrors: Map<string, number>, elu: { idle: number; active: number }, eluNow: { idle: number; active: number }): PlaneTake {
  const e = plane.engine;
  const out: PlaneTake['pipes'] = {};
  for (const p of pipes) {
    const queued = p.queueDepth();
    out[p.name] = { delta: p.counters.take(queued), held: { ...p.held }, queued };
  }
  const clock = e.clock instanceof RealClock ? e.clock : undefined;
  const snap = (h: Histogram | undefined): HistogramSnapshot => {
    const s = (h ?? new Histogram()).snapshot();
    h?.reset();
    return s;
  };
  const frontendErrors: Record<string, number> = {};
  for (const [k, v] of e.frontendErrors) {
    const d = v - (lastErrors.get(k) ?? 0);
    if (d > 0) frontendErrors[k] = d;
    lastErrors.set(k, v);
  }
  const idle = eluNow.idle - elu.idle;
  const active = eluNow.active - elu.active;
  return {
    pipes: out,
    lateness: snap(clock?.lateness),
    releaseCost: snap(e.releaseCost),
    readDelay: snap(e.readDelay),
    aheadUs: e.releaseAheadUs,
    kernelPackets: plane.kernelPackets(),
    frontendErrors,
    held: e.held,
    namespaces: plane.namespaces,
    utilization: idle + active > 0 ? active / (idle + active) : 0,
  };
}
