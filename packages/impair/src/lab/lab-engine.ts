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
import { NfqueueFrontend } from '../kernel/nfqueue.js';
import { mergeParams, ParamsError } from '../params.js';
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

interface LabPipe {
  /** The direction: leaving ns by dev. */
  ns: string;
  dev: string;
  link: string;
  /** Where it is queued: `out` in ns by dev, or `in` at the far end (the namespace state holding it, by hookDev). */
  dir: 'in' | 'out';
  hookDev: string;
  /** The far end as given (queued there unless the direction duplicates). */
  ingress?: { ns: string; dev: string } | undefined;
  nfqueue: number;
  pipe: Pipe;
}

interface Hook {
  ns: string;
  dev: string;
  dir: 'in' | 'out';
}

/** Where a direction is queued: where it arrives when it can be (see LabPipeSpec.ingress), else where it leaves. */
function hookOf(spec: { ns: string; dev: string; ingress?: { ns: string; dev: string } | undefined }, params: Impairment): Hook {
  const ing = spec.ingress;
  if (ing !== undefined && typeof ing.ns === 'string' && typeof ing.dev === 'string' && ing.ns !== '' && !ing.ns.includes('/') && !((params.duplicatePct ?? 0) > 0)) {
    return { ns: ing.ns, dev: ing.dev, dir: 'in' };
  }
  return { ns: spec.ns, dev: spec.dev, dir: 'out' };
}

interface NsState {
  ns: string;
  /** The namespace's identity: its nsfs inode. */
  ino: number;
  frontend: NfqueueFrontend;
  /** The pipes queued in this namespace, by pipe name (`ns/dev` of the direction). */
  pipes: Map<string, LabPipe>;
  /** Whether this process has put the jump from POSTROUTING in place. */
  jump: boolean;
  /** Opened in a recovering sync: a dead engine's jump may be there. */
  stale: boolean;
}

/** The kernel side, replaceable in tests. */
export interface LabKernel {
  /** The namespace's inode, or undefined when it does not exist. */
  nsIno(ns: string): number | undefined;
  openFrontend(engine: Engine, ns: string, recvBuffer: Buffer): NfqueueFrontend;
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
  openFrontend(engine, ns, recvBuffer) {
    const f = new NfqueueFrontend({ engine, netns: ns, queues: [], recvBuffer, writerBytes: 4096 });
    f.start();
    return f;
  },
  // Over netlink from here (nft-rules.ts): one nf_tables batch per namespace, no process started.
  writeRules: async (ns, lab, rules) => nftApply(ns, lab, rules),
  writeRulesMany: async (items, lab) => items.map((it) => {
    try {
      nftApply(it.ns, lab, it.rules);
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
}

const queueRule = (p: LabPipe): QueueRule => ({ dev: p.hookDev, nfqueue: p.nfqueue, dir: p.dir });

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
  /** Pipe name → the namespace state that queues it. */
  private readonly where = new Map<string, NsState>();
  private readonly recvBuffer = Buffer.allocUnsafe(RECV_BUFFER_BYTES);
  private closed = false;

  constructor(opts: LabEngineOptions) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(opts.lab)) throw new LabEngineError('bad-lab-name', `"${opts.lab}" is not a lab name (letters, digits, "_" and "-")`);
    this.lab = opts.lab;
    this.clock = opts.clock ?? new RealClock();
    this.kernel = opts.kernel ?? realKernel;
    // No per-second series (that is the live page's): with a thousand pipes it would cost memory for nothing.
    this.engine = new Engine({ clock: this.clock, seed: opts.seed, eventCapacity: 1000, seriesSeconds: 1 });
  }

  get pipeCount(): number {
    let n = 0;
    for (const s of this.nss.values()) n += s.pipes.size;
    return n;
  }

  hello(): HelloResult {
    return { protocol: LAB_ENGINE_PROTOCOL, lab: this.lab, pid: process.pid, seed: this.engine.seed, startedAt: this.startedAt, pipes: this.pipeCount, namespaces: this.nss.size };
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
  }

  /** Makes the pipes exactly `specs`: adds, removes and changes; rules written where needed. */
  async sync(specs: readonly LabPipeSpec[], recover = false): Promise<SyncResult> {
    this.requireOpen();
    const t0 = performance.now();
    const params = this.validate(specs);
    type Want = { ns: string; dev: string; link: string; params: Impairment; hook: Hook; ingress: LabPipeSpec['ingress'] };
    const want = new Map<string, Map<string, Want>>();
    specs.forEach((s, i) => {
      const prm = params[i] as Impairment;
      const hook = hookOf(s, prm);
      const m = want.get(hook.ns) ?? new Map<string, Want>();
      m.set(pipeName(s.ns, s.dev), { ns: s.ns, dev: s.dev, link: String(s.link ?? ''), params: prm, hook, ingress: s.ingress });
      want.set(hook.ns, m);
    });
    const res: SyncResult = { added: 0, removed: 0, changed: 0, unchanged: 0, namespaces: want.size, rulesWritten: 0, ms: 0 };

    // Namespaces gone or re-created: their rules went with them; close our sockets there.
    for (const st of [...this.nss.values()]) {
      if (this.kernel.nsIno(st.ns) !== st.ino) {
        res.removed += want.has(st.ns) ? 0 : st.pipes.size;
        this.dropNs(st);
      }
    }
    // Namespaces we serve no more: rules out, then queues unbound.
    const leaving = [...this.nss.values()].filter((st) => !want.has(st.ns));
    await mapLimit(leaving, RULE_CONCURRENCY, async (st) => {
      await this.kernel.removeRules(st.ns, this.lab);
      st.jump = false;
    });
    for (const st of leaving) {
      res.removed += st.pipes.size;
      this.dropNs(st);
    }

    // Directions whose queueing point moves (a duplicate set or cleared): out of the old place first.
    for (const [hns, devs] of want) {
      for (const [name, w] of devs) {
        const st = this.where.get(name);
        const p = st?.pipes.get(name);
        if (st !== undefined && p !== undefined && (st.ns !== hns || p.dir !== w.hook.dir || p.hookDev !== w.hook.dev)) {
          await this.removeOne(st, p);
          res.added--;
          res.changed++;
        }
      }
    }

    // Per namespace: new queues bound now, rules rewritten, old queues unbound after.
    const dirty: NsState[] = [];
    const unbind: [NsState, LabPipe][] = [];
    for (const [ns, devs] of want) {
      let st = this.nss.get(ns);
      let changedSet = false;
      if (st === undefined) {
        st = this.openNs(ns, recover);
        changedSet = true;
      }
      for (const [name, p] of st.pipes) {
        if (!devs.has(name)) {
          unbind.push([st, p]);
          changedSet = true;
        }
      }
      for (const [name, w] of devs) {
        const p = st.pipes.get(name);
        if (p === undefined) {
          this.addPipe(st, w.ns, w.dev, w.hook, w.ingress, w.link, w.params, unbind.filter(([s]) => s === st).map(([, x]) => x.nfqueue));
          res.added++;
          changedSet = true;
        } else {
          if (w.link !== '') p.link = w.link;
          if (JSON.stringify(p.pipe.parameters) === JSON.stringify(w.params)) res.unchanged++;
          else {
            this.engine.setParams({ [p.pipe.name]: w.params }, 'lab');
            res.changed++;
          }
        }
      }
      if (changedSet) dirty.push(st);
    }
    await this.writeRulesOf(dirty, unbind);
    res.rulesWritten = dirty.length;
    for (const [st, p] of unbind) {
      this.unbindPipe(st, p);
      res.removed++;
    }
    res.ms = Math.round(performance.now() - t0);
    return res;
  }

  /** Adds one pipe (its rules rewritten); fails if it exists. */
  async add(spec: LabPipeSpec): Promise<{ nfqueue: number }> {
    this.requireOpen();
    const [params] = this.validate([spec]);
    const name = pipeName(spec.ns, spec.dev);
    const existing = this.where.get(name)?.pipes.get(name);
    if (existing !== undefined) throw new LabEngineError('pipe-exists', `pipe ${name} exists (queue ${existing.nfqueue})`, 'use set to change its parameters');
    return this.addOne(spec.ns, spec.dev, String(spec.link ?? ''), params as Impairment, hookOf(spec, params as Impairment), spec.ingress);
  }

  private async addOne(ns: string, dev: string, link: string, params: Impairment, hook: Hook, ingress: LabPipeSpec['ingress']): Promise<{ nfqueue: number }> {
    if (this.kernel.nsIno(ns) === undefined) throw new LabEngineError('no-such-namespace', `there is no namespace ${ns} (/run/netns/${ns})`);
    if (hook.ns !== ns && this.kernel.nsIno(hook.ns) === undefined) hook = { ns, dev, dir: 'out' };
    let st = this.nss.get(hook.ns);
    const fresh = st === undefined || this.kernel.nsIno(hook.ns) !== st.ino;
    if (st !== undefined && fresh) this.dropNs(st);
    if (fresh) st = this.openNs(hook.ns, false);
    const s = st as NsState;
    const p = this.addPipe(s, ns, dev, hook, ingress, link, params, []);
    try {
      await this.writeRules(s, []);
    } catch (e) {
      this.unbindPipe(s, p);
      if (s.pipes.size === 0) this.dropNs(s);
      throw e;
    }
    return { nfqueue: p.nfqueue };
  }

  /** Removes one pipe: its rule first, then its queue. Idempotent. */
  async remove(ns: string, dev: string): Promise<{ removed: boolean }> {
    this.requireOpen();
    const name = pipeName(ns, dev);
    const st = this.where.get(name);
    const p = st?.pipes.get(name);
    if (st === undefined || p === undefined) return { removed: false };
    await this.removeOne(st, p);
    return { removed: true };
  }

  /** One pipe out: its rule first, then its queue (the namespace's socket closed with its last pipe). */
  private async removeOne(st: NsState, p: LabPipe): Promise<void> {
    if (this.kernel.nsIno(st.ns) !== st.ino) {
      this.dropNs(st);
      return;
    }
    if (st.pipes.size === 1) {
      await this.kernel.removeRules(st.ns, this.lab);
      this.dropNs(st);
    } else {
      await this.writeRules(st, [p.pipe.name]);
      this.unbindPipe(st, p);
    }
  }

  /** Replaces one pipe's parameters (with `create`, adds it when missing). */
  async set(ns: string, dev: string, params: unknown, opts: { link?: string; create?: boolean; ingress?: { ns: string; dev: string } } = {}): Promise<{ nfqueue: number; created: boolean }> {
    this.requireOpen();
    const [valid] = this.validate([{ ns, dev, params }]);
    const name = pipeName(ns, dev);
    const st = this.where.get(name);
    const p = st?.pipes.get(name);
    // The far end is remembered from when the pipe was made (or given again here).
    const ingress = opts.ingress ?? p?.ingress;
    const hook = hookOf({ ns, dev, ingress }, valid as Impairment);
    if (st !== undefined && p !== undefined && this.kernel.nsIno(st.ns) === st.ino) {
      if (st.ns === hook.ns && p.dir === hook.dir && p.hookDev === hook.dev) {
        this.engine.setParams({ [p.pipe.name]: valid as Impairment }, 'lab');
        if (opts.link) p.link = opts.link;
        return { nfqueue: p.nfqueue, created: false };
      }
      // A duplicate set or cleared: the direction is queued elsewhere from now on.
      await this.removeOne(st, p);
      const r = await this.addOne(ns, dev, opts.link ?? p.link, valid as Impairment, hook, ingress);
      return { nfqueue: r.nfqueue, created: false };
    }
    if (!opts.create) {
      throw new LabEngineError('no-such-pipe', `no pipe ${name} in lab ${this.lab}`, 'add it first, or pass "create": true');
    }
    const r = await this.addOne(ns, dev, opts.link ?? '', valid as Impairment, hook, ingress);
    return { nfqueue: r.nfqueue, created: true };
  }

  status(): LabEngineStatus {
    const pipes: LabPipeStatus[] = [];
    const now = this.clock.now();
    for (const st of this.nss.values()) {
      for (const p of st.pipes.values()) {
        const c = p.pipe.counters;
        const q = p.pipe.queueDepth(now);
        pipes.push({
          ns: p.ns,
          dev: p.dev,
          link: p.link,
          nfqueue: p.nfqueue,
          params: p.pipe.parameters,
          received: { ...c.received },
          delivered: { ...c.delivered },
          dropped: { loss: { ...c.dropped.loss }, queue: { ...c.dropped.queue }, overflow: { ...c.dropped.overflow } },
          duplicated: c.duplicated,
          corrupted: c.corrupted,
          reordered: c.reordered,
          held: { ...p.pipe.held },
          queued: q,
          latencyUs: { p50: Math.round(c.latency.quantile(0.5)), p99: Math.round(c.latency.quantile(0.99)), max: Math.round(c.latency.max) },
        });
      }
    }
    pipes.sort((a, b) => (a.ns === b.ns ? (a.dev < b.dev ? -1 : 1) : a.ns < b.ns ? -1 : 1));
    const late = this.clock instanceof RealClock ? this.clock.lateness : undefined;
    const cpu = process.cpuUsage();
    return {
      protocol: LAB_ENGINE_PROTOCOL,
      lab: this.lab,
      pid: process.pid,
      seed: this.engine.seed,
      startedAt: this.startedAt,
      namespaces: this.nss.size,
      pipes,
      held: { ...this.engine.held },
      frontendErrors: Object.fromEntries(this.engine.frontendErrors),
      schedulerLatenessUs: late ? { p50: Math.round(late.quantile(0.5)), p99: Math.round(late.quantile(0.99)), max: Math.round(late.max) } : { p50: 0, p99: 0, max: 0 },
      releaseCostUs: {
        p50: Math.round(this.engine.releaseCost.quantile(0.5)), p99: Math.round(this.engine.releaseCost.quantile(0.99)),
        max: Math.round(this.engine.releaseCost.max), aheadUs: Math.round(this.engine.releaseAheadUs),
      },
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
    this.engine.close();
  }

  private openNs(ns: string, stale: boolean): NsState {
    const ino = this.kernel.nsIno(ns);
    if (ino === undefined) throw new LabEngineError('no-such-namespace', `there is no namespace ${ns} (/run/netns/${ns})`);
    let frontend: NfqueueFrontend;
    try {
      frontend = this.kernel.openFrontend(this.engine, ns, this.recvBuffer);
    } catch (e) {
      throw new LabEngineError('nfqueue-failed', `cannot open nfnetlink_queue in ${ns}: ${(e as Error).message}`, 'the kernel needs nfnetlink_queue (CONFIG_NETFILTER_NETLINK_QUEUE)');
    }
    const st: NsState = { ns, ino, frontend, pipes: new Map(), jump: false, stale };
    this.nss.set(ns, st);
    return st;
  }

  /** Binds a queue (the lowest free one, not one still draining in `busy`) to a new pipe. */
  private addPipe(st: NsState, ns: string, dev: string, hook: Hook, ingress: LabPipeSpec['ingress'], link: string, params: Impairment, busy: readonly number[]): LabPipe {
    const used = new Set([...[...st.pipes.values()].map((p) => p.nfqueue), ...busy]);
    let q = QUEUE_BASE;
    while (used.has(q)) q++;
    if (q > QUEUE_MAX) throw new LabEngineError('no-free-queue', `namespace ${st.ns} has no free NFQUEUE queue number`);
    const name = pipeName(ns, dev);
    this.engine.removePipe(name);
    const pipe = this.engine.addPipe(name, params);
    try {
      st.frontend.addQueue(q, pipe);
    } catch (e) {
      this.engine.removePipe(name);
      throw new LabEngineError('nfqueue-failed', `binding queue ${q} in ${st.ns} for ${dev}: ${(e as Error).message}`);
    }
    const p: LabPipe = { ns, dev, link, dir: hook.dir, hookDev: hook.dev, ingress, nfqueue: q, pipe };
    if (hook.dir === 'out' && hook.ns !== ns) throw new Error(`internal: ${name} queued out of ${hook.ns}`);
    st.pipes.set(name, p);
    this.where.set(name, st);
    return p;
  }

  /**
   * Writes the rule sets of many namespaces: in RULE_CONCURRENCY groups, each written by one
   * process (writeRulesMany) where the kernel side can, else one namespace at a time.
   */
  private async writeRulesOf(dirty: readonly NsState[], unbind: readonly [NsState, LabPipe][]): Promise<void> {
    const without = (st: NsState) => unbind.filter(([s]) => s === st).map(([, p]) => p.pipe.name);
    const many = this.kernel.writeRulesMany?.bind(this.kernel);
    const plain = dirty.filter((st) => many === undefined || st.stale);
    await mapLimit(plain, RULE_CONCURRENCY, (st) => this.writeRules(st, without(st)));
    if (many === undefined) return;
    const batched = dirty.filter((st) => !plain.includes(st));
    const size = Math.ceil(batched.length / RULE_CONCURRENCY);
    const groups: NsState[][] = [];
    for (let i = 0; i < batched.length; i += size) groups.push(batched.slice(i, i + size));
    await mapLimit(groups, RULE_CONCURRENCY, async (group) => {
      const errors = await many(group.map((st) => ({
        ns: st.ns, addJump: !st.jump,
        rules: [...st.pipes.values()].filter((p) => !without(st).includes(p.pipe.name)).map(queueRule),
      })), this.lab);
      group.forEach((st, i) => {
        if (errors[i] === undefined) st.jump = true;
      });
      const failed = errors.filter((e): e is Error => e !== undefined);
      if (failed.length > 0) throw new Error(`${failed[0]!.message}${failed.length > 1 ? ` (and ${failed.length - 1} more namespaces failed)` : ''}`);
    });
  }

  /** Writes the namespace's rule set: every pipe it has but those named in `without`. */
  private async writeRules(st: NsState, without: readonly string[]): Promise<void> {
    if (st.stale) {
      await this.kernel.removeStaleJumps(st.ns, this.lab);
      st.stale = false;
    }
    const rules = [...st.pipes.values()].filter((p) => !without.includes(p.pipe.name)).map(queueRule);
    await this.kernel.writeRules(st.ns, this.lab, rules, !st.jump);
    st.jump = true;
  }

  private unbindPipe(st: NsState, p: LabPipe): void {
    try {
      st.frontend.removeQueue(p.nfqueue);
    } catch {
      // the socket's close unbinds too
    }
    this.engine.removePipe(p.pipe.name);
    st.pipes.delete(p.pipe.name);
    if (this.where.get(p.pipe.name) === st) this.where.delete(p.pipe.name);
  }

  /** Closes a namespace's socket (its held packets accepted) and forgets its pipes. */
  private dropNs(st: NsState): void {
    try {
      st.frontend.close();
    } catch {
      // a namespace already gone
    }
    for (const p of st.pipes.values()) {
      this.engine.removePipe(p.pipe.name);
      if (this.where.get(p.pipe.name) === st) this.where.delete(p.pipe.name);
    }
    st.pipes.clear();
    if (this.nss.get(st.ns) === st) this.nss.delete(st.ns);
  }
}
