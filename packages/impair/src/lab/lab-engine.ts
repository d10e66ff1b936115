/**
 * A lab's engine: one process per host and lab, in the host namespace, serving NFQUEUE for
 * every link direction whose impairment the kernel cannot apply.
 *
 *   node namespace ns1 ── one NETLINK_NETFILTER socket ── queues 1000, 1001 ─┐
 *   node namespace ns2 ── one NETLINK_NETFILTER socket ── queue 1000 ────────┼─> pipes `ns/dev` ─> one Engine, one heap, one clock
 *   ...                                                                      ┘
 *
 * Each pipe is one direction of one link: its queue is bound before the rule that feeds it
 * exists, and its rule is gone before the queue is unbound, so no packet ever meets a queue
 * nobody listens on (the kernel would drop it). Queue numbers are per namespace (the
 * kernel's queues are), the lowest free from QUEUE_BASE.
 *
 * A namespace deleted and created again under the same name (a converging `up` that
 * re-creates a node) is noticed by its inode: the old socket is closed and the pipes are
 * bound again in the new one.
 */
import { statSync } from 'node:fs';
import type { Impairment } from '@dune/topology';
import { RealClock, type Clock } from '../engine/clock.js';
import { Engine, type Pipe } from '../engine/engine.js';
import { Histogram } from '../engine/histogram.js';
import { NfqueueFrontend } from '../kernel/nfqueue.js';
import { kernelClock } from '../kernel/native.js';
import { mergeParams, ParamsError } from '../params.js';
import { LocalPlane, planeWorkerUrl, WorkerPlane, type BindFailure, type PlaneTake } from './plane.js';
import {
  LAB_ENGINE_PROTOCOL, LabEngineError, pipeName, type HelloResult, type LabEngineStatus, type LabPipeSpec, type LabPipeStatus, type SyncResult,
} from './protocol.js';
import { nftApply } from './nft-rules.js';
import { removeScript, removeStaleJumps, restoreInNs, restoreMany, rulesScript, type QueueRule } from './rules.js';

/** Lab queues start here: tools a user runs inside a node (impaired-network-*) default to 1 and 2. */
export const QUEUE_BASE = 1000;
const QUEUE_MAX = 65535;
/** Rule writes (one nsenter + restore per family each) run this many at a time. */
const RULE_CONCURRENCY = 6;
const RECV_BUFFER_BYTES = 4 * 1024 * 1024;

/** Where one direction's packets are queued: leaving by `dev` (`out`) or arriving by it (`in`), every protocol or one part. */
interface Hook {
  ns: string;
  dev: string;
  dir: 'in' | 'out';
  /** Which packets this hook queues: TCP only, all but TCP, or (undefined) all. */
  proto?: 'tcp' | 'other' | undefined;
}

/** One hook of a pipe, bound: a queue in a namespace's socket, fed by one rule there. */
interface Binding extends Hook {
  lp: LabPipe;
  st: NsState;
  nfqueue: number;
}

interface LabPipe {
  /** The direction: leaving ns by dev. */
  ns: string;
  dev: string;
  link: string;
  /** The far end as given (queued there unless the direction duplicates). */
  ingress?: LabPipeSpec['ingress'];
  pipe: Pipe;
  /** The plane it runs in (an index into LabEngine's planes): both hooks with it. */
  plane: number;
  /** One per hook: both feed the one engine pipe (its rate, queue and clock are shared). */
  binds: Binding[];
}

/**
 * Where a direction is queued (see LabPipeSpec.ingress). With a far end, and unless the
 * direction duplicates (a duplicate is sent from the egress side): its TCP where it arrives,
 * everything else where it leaves (or all of it where it arrives, with `all`). A far end that
 * does not exist (yet) is ignored.
 */
function hooksOf(spec: { ns: string; dev: string; ingress?: LabPipeSpec['ingress'] }, params: Impairment, exists: (ns: string) => boolean): Hook[] {
  const ing = spec.ingress;
  const out: Hook = { ns: spec.ns, dev: spec.dev, dir: 'out' };
  if (ing === undefined || typeof ing.ns !== 'string' || typeof ing.dev !== 'string' || ing.ns === '' || ing.ns.includes('/') || ing.ns === spec.ns) return [out];
  if ((params.duplicatePct ?? 0) > 0 || !exists(ing.ns)) return [out];
  const inHook: Hook = { ns: ing.ns, dev: ing.dev, dir: 'in' };
  return ing.all === true ? [inHook] : [{ ...inHook, proto: 'tcp' }, { ...out, proto: 'other' }];
}

const hookKey = (h: Hook): string => `${h.ns}|${h.dev}|${h.dir}|${h.proto ?? ''}`;
const hooksKey = (hs: readonly Hook[]): string => hs.map(hookKey).join(' ');

/** A direction as a sync wants it (validated). */
interface Want {
  ns: string;
  dev: string;
  link: string;
  params: Impairment;
  ingress: LabPipeSpec['ingress'];
  hooks: Hook[];
}

interface NsState {
  ns: string;
  /** The namespace's identity: its nsfs inode. */
  ino: number;
  /** The pipes' hooks bound in this namespace, by pipe name (`ns/dev` of the direction): at most one each. */
  binds: Map<string, Binding>;
  /** Whether this process has put the jump from POSTROUTING in place. */
  jump: boolean;
  /** Opened in a recovering sync: a dead engine's jump may be there. */
  stale: boolean;
}

/** The kernel side, replaceable in tests. */
export interface LabKernel {
  /** The namespace's inode, or undefined when it does not exist. */
  nsIno(ns: string): number | undefined;
  openFrontend(engine: Engine, ns: string, recvBuffer: Buffer, opts?: { failOpen?: boolean }): NfqueueFrontend;
  writeRules(ns: string, lab: string, rules: readonly QueueRule[], addJump: boolean): Promise<void>;
  /** Many namespaces' rules at once (cheaper: one process started for all); each one's error or undefined. */
  writeRulesMany?(items: readonly { ns: string; rules: readonly QueueRule[]; addJump: boolean }[], lab: string): Promise<(Error | undefined)[]>;
  removeRules(ns: string, lab: string): Promise<void>;
  removeStaleJumps(ns: string, lab: string): Promise<number>;
}

export const realKernel: LabKernel = {
  nsIno(ns) {
    try {
      return statSync(`/run/netns/${ns}`).ino;
    } catch {
      return undefined;
    }
  },
  openFrontend(engine, ns, recvBuffer, opts) {
    const f = new NfqueueFrontend({ engine, netns: ns, queues: [], recvBuffer, writerBytes: 4096, ...(opts?.failOpen ? { failOpen: true } : {}) });
    f.start();
    return f;
  },
  // Over netlink from here (nft-rules.ts): one nf_tables batch per namespace, no process started.
  writeRules: async (ns, lab, rules) => nftApply(ns, lab, rules),
  // A namespace's first write (addJump) from a sync that is not recovering a dead engine's
  // namespaces: its tables are only created (nftApply's `fresh`; replaced whole if there).
  writeRulesMany: async (items, lab) => items.map((it) => {
    try {
      nftApply(it.ns, lab, it.rules, undefined, it.addJump);
      return undefined;
    } catch (e) {
      return e as Error;
    }
  }),
  removeRules: async (ns, lab) => nftApply(ns, lab, []),
  // A dead engine's tables are replaced whole by the first write.
  removeStaleJumps: async () => 0,
};

/** The iptables way (iptables-restore through nsenter, two processes per namespace and family): kept for comparison. */
export const iptablesKernel: LabKernel = {
  ...realKernel,
  writeRules: (ns, lab, rules, addJump) => restoreInNs(ns, rulesScript(lab, rules, addJump)),
  writeRulesMany: (items, lab) => restoreMany(items.map((it) => ({ ns: it.ns, script: rulesScript(lab, it.rules, it.addJump) }))),
  removeRules: (ns, lab) => restoreInNs(ns, removeScript(lab)),
  removeStaleJumps,
};

export interface LabEngineOptions {
  lab: string;
  seed?: number;
  clock?: Clock;
  kernel?: LabKernel;
  /**
   * Engine threads: 1 (default), the pipes in this thread; N > 1, spread over N worker
   * threads (see plane.ts), each with its own engine and sockets. `start()` starts them.
   */
  threads?: number;
  /** When a kernel queue is full (the engine fell behind), let packets through unimpaired instead of dropping them. */
  failOpen?: boolean;
  /** The script a worker thread runs (default: plane-worker-entry.js of this package); it must call runPlaneWorker. */
  workerScript?: string | URL;
  /** A worker thread died: its pipes no longer pass packets. (The engine process exits on it.) */
  onThreadDeath?: (why: string) => void;
}

/** A pipe's link without its side (`3:a` → `3`), or undefined when it has none. */
const linkKey = (link: string): string | undefined => {
  const k = link.split(':')[0];
  return k === undefined || k === '' ? undefined : k;
};

const queueRule = (b: Binding): QueueRule => ({ dev: b.dev, nfqueue: b.nfqueue, dir: b.dir, ...(b.proto ? { proto: b.proto } : {}) });

async function mapLimit<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      try {
        await fn(items[i] as T);
      } catch (e) {
        errors.push(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length > 0) {
    const first = errors[0] as Error;
    throw new LabEngineError('rules-failed', `${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more namespaces failed)` : ''}`,
      'is iptables installed (apt-get install iptables) and the kernel built with the NFQUEUE target (`dune-agent probe` shows nfqueue)?');
  }
}


export class LabEngine {
  readonly lab: string;
  readonly engine: Engine;
  readonly clock: Clock;
  readonly startedAt = new Date().toISOString();
  private readonly kernel: LabKernel;
  private readonly nss = new Map<string, NsState>();
  /** Pipe name (`ns/dev` of the direction) → the pipe and its hooks. */
  private readonly pipes = new Map<string, LabPipe>();
  private closed = false;
  readonly threads: number;
  readonly failOpen: boolean;
  /**
   * Where pipes run: one LocalPlane in this thread (its engine is `engine`), or worker
   * threads (then `engine` holds shadow pipes: their parameters and the workers' counts).
   */
  private planes: (LocalPlane | WorkerPlane)[] = [];
  /** Pipes per plane (a new link goes to the plane with fewest). */
  private planePipes: number[] = [];
  /**
   * The plane of each link (the part of a pipe's `link` before ":"), with how many of its
   * directions are there: a link's two directions run in one thread, so a flow's data and
   * its acknowledgements meet the same engine, and links spread over the threads.
   */
  private readonly linkPlane = new Map<string, { plane: number; n: number }>();
  /** Engine-wide figures gathered from the workers' takes. */
  private readonly fromWorkers = {
    lateness: new Histogram(), releaseCost: new Histogram(), readDelay: new Histogram(),
    last: new Map<number, PlaneTake>(),
  };

  constructor(private readonly opts: LabEngineOptions) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(opts.lab)) throw new LabEngineError('bad-lab-name', `"${opts.lab}" is not a lab name (letters, digits, "_" and "-")`);
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new LabEngineError('bad-threads', `threads must be a whole number from 1 to 256, got ${threads}`);
    this.lab = opts.lab;
    this.threads = threads;
    this.failOpen = opts.failOpen === true;
    this.clock = opts.clock ?? kernelClock();
    this.kernel = opts.kernel ?? realKernel;
    // No per-second series (that is the live page's): with a thousand pipes it would cost memory for nothing.
    this.engine = new Engine({ clock: this.clock, seed: opts.seed, eventCapacity: 1000, seriesSeconds: 1 });
    if (threads === 1) {
      this.planes = [new LocalPlane(this.engine, this.kernel, Buffer.allocUnsafe(RECV_BUFFER_BYTES), this.failOpen)];
      this.planePipes = [0];
    }
  }

  /** Starts the worker threads (threads > 1); all or none. */
  async start(): Promise<void> {
    if (this.planes.length > 0) return;
    const script = this.opts.workerScript ?? planeWorkerUrl();
    const started: WorkerPlane[] = [];
    try {
      for (let i = 0; i < this.threads; i++) {
        started.push(await WorkerPlane.start(i, script, { seed: (this.engine.seed + i + 1) >>> 0, failOpen: this.failOpen }, (why) => this.threadDied(why)));
      }
    } catch (e) {
      await Promise.all(started.map((w) => w.close()));
      throw e;
    }
    this.planes = started;
    this.planePipes = started.map(() => 0);
  }

  private threadDied(why: string): void {
    if (this.closed) return;
    this.opts.onThreadDeath?.(why);
  }

  private get workers(): WorkerPlane[] {
    return this.planes.filter((p): p is WorkerPlane => p instanceof WorkerPlane);
  }

  get pipeCount(): number {
    return this.pipes.size;
  }

  hello(): HelloResult {
    return {
      protocol: LAB_ENGINE_PROTOCOL, lab: this.lab, pid: process.pid, seed: this.engine.seed, startedAt: this.startedAt, pipes: this.pipeCount, namespaces: this.nss.size,
      threads: this.threads, failOpen: this.failOpen,
    };
  }

  /** Validated parameters for one pipe, or every problem (nothing is applied then). */
  private validate(specs: readonly { ns: string; dev: string; params: unknown }[]): Impairment[] {
    const problems: { path: string; message: string; valid?: string }[] = [];
    const seen = new Set<string>();
    const out: Impairment[] = [];
    for (const s of specs) {
      if (typeof s !== 'object' || s === null || typeof s.ns !== 'string' || typeof s.dev !== 'string' || s.ns === '' || s.dev === '' || s.ns.includes('/')) {
        problems.push({ path: '(pipe)', message: `a pipe needs "ns" (a namespace name) and "dev" (an interface), got ${JSON.stringify(s).slice(0, 120)}` });
        out.push({});
        continue;
      }
      const name = pipeName(s.ns, s.dev);
      if (seen.has(name)) problems.push({ path: name, message: 'given twice' });
      seen.add(name);
      try {
        out.push(mergeParams({ [name]: {} }, { [name]: s.params ?? {} })[name] ?? {});
      } catch (e) {
        if (!(e instanceof ParamsError)) throw e;
        problems.push(...e.problems);
        out.push({});
      }
    }
    if (problems.length > 0) {
      throw new LabEngineError('invalid-parameters', problems.map((p) => `${p.path}: ${p.message}`).join('; '), 'nothing was changed', problems);
    }
    return out;
  }

  private requireOpen(): void {
    if (this.closed) throw new LabEngineError('shutting-down', 'the engine is shutting down');
    if (this.planes.length === 0) throw new LabEngineError('not-started', 'the engine\'s threads are not started (call start())');
  }

  /** Whether a namespace exists, asked once per namespace per call. */
  private existsCache(): (ns: string) => boolean {
    const seen = new Map<string, boolean>();
    return (ns) => {
      let v = seen.get(ns);
      if (v === undefined) seen.set(ns, (v = this.kernel.nsIno(ns) !== undefined));
      return v;
    };
  }

  private want(s: { ns: string; dev: string; link?: string; ingress?: LabPipeSpec['ingress'] }, params: Impairment, exists: (ns: string) => boolean): Want {
    return { ns: s.ns, dev: s.dev, link: String(s.link ?? ''), params, ingress: s.ingress, hooks: hooksOf(s, params, exists) };
  }

  /** What the pipes are now, as a sync would want them (hooks recomputed: a far end gone moves them). */
  private current(exists: (ns: string) => boolean): Map<string, Want> {
    const m = new Map<string, Want>();
    for (const [name, lp] of this.pipes) m.set(name, this.want(lp, lp.pipe.parameters, exists));
    return m;
  }

  /** Makes the pipes exactly `specs`: adds, removes and changes; rules written where needed. */
  async sync(specs: readonly LabPipeSpec[], recover = false): Promise<SyncResult> {
    this.requireOpen();
    const params = this.validate(specs);
    const exists = this.existsCache();
    const want = new Map<string, Want>();
    specs.forEach((s, i) => want.set(pipeName(s.ns, s.dev), this.want(s, params[i] as Impairment, exists)));
    return this.reconcile(want, recover, exists);
  }

  /**
   * Makes the pipes `want`. Per namespace, one rule write: new queues are bound before it,
   * queues going are unbound after it, so no packet meets a queue nobody listens on. A pipe
   * whose hooks move (a duplicate set or cleared, a namespace re-created) goes wholly first.
   */
  private async reconcile(want: ReadonlyMap<string, Want>, recover: boolean, exists: (ns: string) => boolean): Promise<SyncResult> {
    const t0 = performance.now();
    for (const w of want.values()) {
      if (!exists(w.ns)) throw new LabEngineError('no-such-namespace', `there is no namespace ${w.ns} (/run/netns/${w.ns})`);
    }
    const hookNs = new Set([...want.values()].flatMap((w) => w.hooks.map((h) => h.ns)));
    const res: SyncResult = { added: 0, removed: 0, changed: 0, unchanged: 0, namespaces: hookNs.size, rulesWritten: 0, ms: 0 };

    // Namespaces gone or re-created: their rules and queues went with them; close our sockets there.
    const broken = new Set<LabPipe>();
    for (const st of [...this.nss.values()]) {
      if (this.kernel.nsIno(st.ns) !== st.ino) {
        for (const b of st.binds.values()) broken.add(b.lp);
        this.dropNs(st);
      }
    }
    const moved = new Set<string>();
    const moving: LabPipe[] = [];
    const leaving: LabPipe[] = [];
    for (const [name, lp] of this.pipes) {
      const w = want.get(name);
      if (w === undefined) {
        if (broken.has(lp)) {
          moving.push(lp);
          res.removed++;
        } else leaving.push(lp);
      } else if (broken.has(lp)) {
        moving.push(lp);
      } else if (hooksKey(lp.binds) !== hooksKey(w.hooks)) {
        moving.push(lp);
        moved.add(name);
      }
    }
    await this.removePipes(moving);

    // Going: out of their namespaces' binds now (the rules are written without them), unbound after.
    const { dirty, unbind } = this.detach(leaving);
    const emptied = [...dirty].filter((st) => st.binds.size === 0 && !hookNs.has(st.ns));
    await mapLimit(emptied, RULE_CONCURRENCY, async (st) => {
      await this.kernel.removeRules(st.ns, this.lab);
      st.jump = false;
    });
    for (const st of emptied) {
      dirty.delete(st);
      this.dropNs(st);
    }

    const failures: BindFailure[] = [];
    for (const [name, w] of want) {
      const lp = this.pipes.get(name);
      if (lp === undefined) {
        try {
          for (const st of this.addPipe(w, recover, unbind)) dirty.add(st);
        } catch (e) {
          if (!(e instanceof LabEngineError)) throw e;
          failures.push({ ns: w.ns, queue: -1, pipe: name, message: e.message, code: e.code });
          continue;
        }
        if (moved.has(name)) res.changed++;
        else res.added++;
        continue;
      }
      if (w.link !== '') lp.link = w.link;
      if (JSON.stringify(lp.pipe.parameters) === JSON.stringify(w.params)) res.unchanged++;
      else {
        this.setPipeParams(lp, w.params);
        res.changed++;
      }
    }
    // A worker's binds are known to hold once it has handled them: those that failed are undone.
    for (const f of await this.commit()) {
      const lp = this.pipes.get(f.pipe);
      if (lp === undefined) continue;
      failures.push(f);
      for (const b of lp.binds) {
        dirty.add(b.st);
        this.unbind(b);
      }
      lp.binds = [];
      this.pipes.delete(f.pipe);
      this.dropPipe(lp);
    }
    await this.writeRulesOf([...dirty].filter((st) => this.nss.get(st.ns) === st));
    res.rulesWritten = dirty.size;
    for (const b of unbind) {
      if (this.nss.get(b.st.ns) === b.st) this.unbind(b);
    }
    for (const lp of leaving) {
      this.dropPipe(lp);
      res.removed++;
    }
    await this.settle();
    if (failures.length > 0) {
      const first = failures[0] as BindFailure;
      throw new LabEngineError(first.code ?? 'nfqueue-failed', `${first.message}${failures.length > 1 ? ` (and ${failures.length - 1} more pipes failed)` : ''}`,
        'the other pipes were applied; is another program bound to these queue numbers in the namespace?');
    }
    res.ms = Math.round(performance.now() - t0);
    return res;
  }

  /** New parameters for a pipe, where it runs (and on its shadow). */
  private setPipeParams(lp: LabPipe, params: Impairment): void {
    this.engine.setParams({ [lp.pipe.name]: params }, 'lab');
    const plane = this.planes[lp.plane];
    if (plane instanceof WorkerPlane) plane.setParams(lp.pipe.name, params);
  }

  /** The pipe out of its engine (its queues unbound before). */
  private dropPipe(lp: LabPipe): void {
    this.engine.removePipe(lp.pipe.name);
    const plane = this.planes[lp.plane];
    if (plane instanceof WorkerPlane) plane.removePipe(lp.pipe.name);
    this.planePipes[lp.plane] = Math.max(0, (this.planePipes[lp.plane] ?? 0) - 1);
    const key = linkKey(lp.link);
    const l = key === undefined ? undefined : this.linkPlane.get(key);
    if (l !== undefined && l.plane === lp.plane && --l.n <= 0) this.linkPlane.delete(key as string);
  }

  /** Every worker has handled what it was sent; the binds among that which failed. */
  private async commit(): Promise<BindFailure[]> {
    const ws = this.workers;
    if (ws.length === 0) return [];
    return (await Promise.all(ws.map((w) => w.commit()))).flat();
  }

  /** Waits until every worker has handled what it was sent (unbinds before a queue number is reused). */
  private async settle(): Promise<void> {
    await this.commit();
  }

  /**
   * Takes pipes out of the lab and their hooks out of their namespaces' rule sets; returns
   * the namespaces whose rules change and the hooks whose queues are to be unbound after.
   */
  private detach(lps: readonly LabPipe[]): { dirty: Set<NsState>; unbind: Binding[] } {
    const dirty = new Set<NsState>();
    const unbind: Binding[] = [];
    for (const lp of lps) {
      for (const b of lp.binds) {
        b.st.binds.delete(lp.pipe.name);
        dirty.add(b.st);
        unbind.push(b);
      }
      this.pipes.delete(lp.pipe.name);
    }
    return { dirty, unbind };
  }

  /** Pipes out, wholly: each namespace's rules rewritten without them (removed with its last), then their queues unbound. */
  private async removePipes(lps: readonly LabPipe[]): Promise<void> {
    if (lps.length === 0) return;
    const { dirty, unbind } = this.detach(lps);
    const emptied = [...dirty].filter((st) => st.binds.size === 0);
    await mapLimit(emptied, RULE_CONCURRENCY, async (st) => {
      await this.kernel.removeRules(st.ns, this.lab);
      st.jump = false;
    });
    await this.writeRulesOf([...dirty].filter((st) => st.binds.size > 0));
    for (const b of unbind) {
      if (!emptied.includes(b.st) && this.nss.get(b.st.ns) === b.st) this.unbind(b);
    }
    for (const st of emptied) this.dropNs(st);
    for (const lp of lps) this.dropPipe(lp);
    await this.settle();
  }

  /** Adds one pipe (its rules rewritten); fails if it exists. */
  async add(spec: LabPipeSpec): Promise<{ nfqueue: number }> {
    this.requireOpen();
    const [params] = this.validate([spec]);
    const name = pipeName(spec.ns, spec.dev);
    const existing = this.pipes.get(name);
    if (existing !== undefined) throw new LabEngineError('pipe-exists', `pipe ${name} exists (queue ${existing.binds[0]?.nfqueue})`, 'use set to change its parameters');
    const exists = this.existsCache();
    const want = this.current(exists);
    want.set(name, this.want(spec, params as Impairment, exists));
    await this.reconcile(want, false, exists);
    return { nfqueue: this.pipes.get(name)?.binds[0]?.nfqueue ?? -1 };
  }

  /** Removes one pipe: its rules first, then its queues. Idempotent. */
  async remove(ns: string, dev: string): Promise<{ removed: boolean }> {
    this.requireOpen();
    const lp = this.pipes.get(pipeName(ns, dev));
    if (lp === undefined) return { removed: false };
    await this.removePipes([lp]);
    return { removed: true };
  }

  /** Replaces one pipe's parameters (with `create`, adds it when missing). */
  async set(ns: string, dev: string, params: unknown, opts: { link?: string; create?: boolean; ingress?: LabPipeSpec['ingress'] } = {}): Promise<{ nfqueue: number; created: boolean }> {
    this.requireOpen();
    const [valid] = this.validate([{ ns, dev, params }]);
    const name = pipeName(ns, dev);
    const lp = this.pipes.get(name);
    if (lp === undefined && !opts.create) {
      throw new LabEngineError('no-such-pipe', `no pipe ${name} in lab ${this.lab}`, 'add it first, or pass "create": true');
    }
    const exists = this.existsCache();
    // The far end is remembered from when the pipe was made (or given again here).
    const w = this.want({ ns, dev, link: opts.link ?? lp?.link ?? '', ingress: opts.ingress ?? lp?.ingress }, valid as Impairment, exists);
    if (lp !== undefined && hooksKey(lp.binds) === hooksKey(w.hooks) && lp.binds.every((b) => this.nss.get(b.st.ns) === b.st && this.kernel.nsIno(b.st.ns) === b.st.ino)) {
      this.setPipeParams(lp, valid as Impairment);
      if (opts.link) lp.link = opts.link;
      return { nfqueue: lp.binds[0]?.nfqueue ?? -1, created: false };
    }
    // New, or queued elsewhere from now on (a duplicate set or cleared).
    const want = this.current(exists);
    want.set(name, w);
    await this.reconcile(want, false, exists);
    return { nfqueue: this.pipes.get(name)?.binds[0]?.nfqueue ?? -1, created: lp === undefined };
  }

  /** With worker threads: their counts since the last refresh taken in (status shows them after). */
  async refresh(): Promise<void> {
    const takes = await Promise.all(this.workers.map(async (w) => [w.index, await w.take().catch(() => undefined)] as const));
    for (const [i, t] of takes) if (t !== undefined) this.absorbTake(i, t);
  }

  private absorbTake(index: number, t: PlaneTake): void {
    const f = this.fromWorkers;
    f.lateness.add(t.lateness);
    f.releaseCost.add(t.releaseCost);
    f.readDelay.add(t.readDelay);
    for (const [k, v] of Object.entries(t.frontendErrors)) this.engine.countFrontendError(k, v);
    f.last.set(index, t);
  }

  status(): LabEngineStatus {
    const pipes: LabPipeStatus[] = [];
    const now = this.clock.now();
    for (const p of this.pipes.values()) {
      const c = p.pipe.counters;
      const plane = this.planes[p.plane];
      const worker = plane instanceof WorkerPlane ? plane : undefined;
      const q = worker ? worker.queued(p.pipe.name) : p.pipe.queueDepth(now);
      pipes.push({
        ns: p.ns,
        dev: p.dev,
        link: p.link,
        nfqueue: p.binds[0]?.nfqueue ?? -1,
        queuedAt: p.binds.map((b) => ({ ns: b.ns, dev: b.dev, dir: b.dir, nfqueue: b.nfqueue, ...(b.proto ? { proto: b.proto } : {}) })),
        params: p.pipe.parameters,
        received: { ...c.received },
        delivered: { ...c.delivered },
        dropped: { loss: { ...c.dropped.loss }, queue: { ...c.dropped.queue }, overflow: { ...c.dropped.overflow } },
        duplicated: c.duplicated,
        corrupted: c.corrupted,
        reordered: c.reordered,
        held: worker ? worker.held(p.pipe.name) : { ...p.pipe.held },
        ...(worker ? { thread: worker.index } : {}),
        queued: q,
        latencyUs: { p50: Math.round(c.latency.quantile(0.5)), p99: Math.round(c.latency.quantile(0.99)), max: Math.round(c.latency.max) },
      });
    }
    pipes.sort((a, b) => (a.ns === b.ns ? (a.dev < b.dev ? -1 : 1) : a.ns < b.ns ? -1 : 1));
    const cpu = process.cpuUsage();
    const local = this.planes[0] instanceof LocalPlane ? this.planes[0] : undefined;
    const f = this.fromWorkers;
    const takes = [...f.last.values()];
    const late = local ? (this.clock instanceof RealClock ? this.clock.lateness : undefined) : f.lateness;
    const releaseCost = local ? this.engine.releaseCost : f.releaseCost;
    const readDelay = local ? this.engine.readDelay : f.readDelay;
    const aheadUs = local ? this.engine.releaseAheadUs : takes.reduce((a, t) => a + t.aheadUs, 0) / Math.max(1, takes.length);
    const kernelPackets = local ? local.kernelPackets() : { received: 0, stamped: 0 };
    const held = local ? { ...this.engine.held } : { packets: 0, bytes: 0 };
    for (const t of local ? [] : takes) {
      kernelPackets.received += t.kernelPackets.received;
      kernelPackets.stamped += t.kernelPackets.stamped;
      held.packets += t.held.packets;
      held.bytes += t.held.bytes;
    }
    const q = (h: Histogram) => ({ p50: Math.round(h.quantile(0.5)), p99: Math.round(h.quantile(0.99)), max: Math.round(h.max) });
    return {
      protocol: LAB_ENGINE_PROTOCOL,
      lab: this.lab,
      pid: process.pid,
      seed: this.engine.seed,
      startedAt: this.startedAt,
      namespaces: this.nss.size,
      pipes,
      held,
      frontendErrors: Object.fromEntries(this.engine.frontendErrors),
      schedulerLatenessUs: late ? q(late) : { p50: 0, p99: 0, max: 0 },
      releaseCostUs: { ...q(releaseCost), aheadUs: Math.round(aheadUs) },
      kernelPackets,
      readDelayUs: q(readDelay),
      failOpen: this.failOpen,
      ...(local ? {} : {
        threads: this.workers.map((w) => ({
          thread: w.index, pipes: this.planePipes[w.index] ?? 0, namespaces: w.namespaces,
          held: f.last.get(w.index)?.held ?? { packets: 0, bytes: 0 }, utilization: Math.round(w.utilization * 1000) / 1000,
        })),
      }),
      cpuSeconds: { user: cpu.user / 1e6, system: cpu.system / 1e6 },
      rssBytes: process.memoryUsage.rss(),
    };
  }

  /**
   * Stops: held packets are accepted (they were on their way), queues unbound, sockets
   * closed; the rules removed first unless `keepRules` (the namespaces are about to go).
   */
  async close(opts: { keepRules?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = [...this.nss.values()];
    if (!opts.keepRules) {
      await mapLimit(all.filter((st) => this.kernel.nsIno(st.ns) === st.ino), RULE_CONCURRENCY, (st) => this.kernel.removeRules(st.ns, this.lab)).catch(() => undefined);
    }
    for (const st of all) this.dropNs(st);
    this.pipes.clear();
    for (const p of this.planes) {
      if (p instanceof LocalPlane) p.close();
    }
    await Promise.all(this.workers.map(async (w) => {
      const t = await w.close();
      if (t !== undefined) this.absorbTake(w.index, t);
    }));
    this.engine.close();
  }

  private openNs(ns: string, stale: boolean): NsState {
    const ino = this.kernel.nsIno(ns);
    if (ino === undefined) throw new LabEngineError('no-such-namespace', `there is no namespace ${ns} (/run/netns/${ns})`);
    const st: NsState = { ns, ino, binds: new Map(), jump: false, stale };
    this.nss.set(ns, st);
    return st;
  }

  /**
   * Makes a pipe and binds a queue per hook (the lowest free in its namespace, not one still
   * draining in `busy`); all or nothing. Returns the namespaces whose rules must be written.
   */
  private addPipe(w: Want, recover: boolean, busy: readonly Binding[]): NsState[] {
    const name = pipeName(w.ns, w.dev);
    this.engine.removePipe(name);
    const pipe = this.engine.addPipe(name, w.params);
    // The plane of the link's other direction, else the one with the fewest pipes (the first of those).
    const key = linkKey(w.link);
    const same = key === undefined ? undefined : this.linkPlane.get(key);
    let at = same?.plane ?? 0;
    if (same === undefined) for (let i = 1; i < this.planePipes.length; i++) if ((this.planePipes[i] ?? 0) < (this.planePipes[at] ?? 0)) at = i;
    if (key !== undefined) this.linkPlane.set(key, { plane: at, n: (same?.n ?? 0) + 1 });
    const plane = this.planes[at] as LocalPlane | WorkerPlane;
    if (plane instanceof WorkerPlane) plane.addPipe(pipe, w.params);
    this.planePipes[at] = (this.planePipes[at] ?? 0) + 1;
    const lp: LabPipe = { ns: w.ns, dev: w.dev, link: w.link, ingress: w.ingress, pipe, plane: at, binds: [] };
    try {
      for (const h of w.hooks) {
        const st = this.nss.get(h.ns) ?? this.openNs(h.ns, recover);
        const used = new Set([...[...st.binds.values()].map((b) => b.nfqueue), ...busy.filter((b) => b.st === st).map((b) => b.nfqueue)]);
        let q = QUEUE_BASE;
        while (used.has(q)) q++;
        if (q > QUEUE_MAX) throw new LabEngineError('no-free-queue', `namespace ${st.ns} has no free NFQUEUE queue number`);
        plane.bind(st.ns, q, pipe);
        const b: Binding = { ...h, lp, st, nfqueue: q };
        lp.binds.push(b);
        st.binds.set(name, b);
      }
    } catch (e) {
      for (const b of lp.binds) this.unbind(b);
      this.dropPipe(lp);
      throw e;
    }
    this.pipes.set(name, lp);
    return lp.binds.map((b) => b.st);
  }

  /**
   * Writes the rule sets of many namespaces: in RULE_CONCURRENCY groups, each written at once
   * (writeRulesMany) where the kernel side can, else one namespace at a time.
   */
  private async writeRulesOf(dirty: readonly NsState[]): Promise<void> {
    const many = this.kernel.writeRulesMany?.bind(this.kernel);
    const plain = dirty.filter((st) => many === undefined || st.stale);
    await mapLimit(plain, RULE_CONCURRENCY, (st) => this.writeRules(st));
    if (many === undefined) return;
    const batched = dirty.filter((st) => !plain.includes(st));
    if (batched.length === 0) return;
    const size = Math.ceil(batched.length / RULE_CONCURRENCY);
    const groups: NsState[][] = [];
    for (let i = 0; i < batched.length; i += size) groups.push(batched.slice(i, i + size));
    await mapLimit(groups, RULE_CONCURRENCY, async (group) => {
      const errors = await many(group.map((st) => ({ ns: st.ns, addJump: !st.jump, rules: [...st.binds.values()].map(queueRule) })), this.lab);
      group.forEach((st, i) => {
        if (errors[i] === undefined) st.jump = true;
      });
      const failed = errors.filter((e): e is Error => e !== undefined);
      if (failed.length > 0) throw new Error(`${failed[0]!.message}${failed.length > 1 ? ` (and ${failed.length - 1} more namespaces failed)` : ''}`);
    });
  }

  /** Writes the namespace's rule set: one rule per hook bound there. */
  private async writeRules(st: NsState): Promise<void> {
    if (st.stale) {
      await this.kernel.removeStaleJumps(st.ns, this.lab);
      st.stale = false;
    }
    await this.kernel.writeRules(st.ns, this.lab, [...st.binds.values()].map(queueRule), !st.jump);
    st.jump = true;
  }

  /** Unbinds one hook's queue (its held packets accepted); the pipe is the caller's. */
  private unbind(b: Binding): void {
    this.planes[b.lp.plane]?.unbind(b.st.ns, b.nfqueue);
    if (b.st.binds.get(b.lp.pipe.name) === b) b.st.binds.delete(b.lp.pipe.name);
  }

  /** Closes a namespace's socket (its held packets accepted); its hooks are unbound from their pipes. */
  private dropNs(st: NsState): void {
    for (const p of this.planes) p.closeNs(st.ns);
    for (const b of st.binds.values()) b.lp.binds = b.lp.binds.filter((x) => x !== b);
    st.binds.clear();
    if (this.nss.get(st.ns) === st) this.nss.delete(st.ns);
  }
}
