/**
 * One running impairment: the engine with its `up` and `down` pipes behind a front end
 * (UDP proxy or NFQUEUE + iptables), the per-second sampler, and the parameters as set at
 * startup (what DELETE /pipes goes back to). The server and the shell both drive this.
 */
import { getPriority } from 'node:os';
import { IDLE_NICE, setProcessNice, TIMING_NICE } from './kernel/engine-process.js';
import type { Impairment } from '@dune/topology';
import type { RealClock } from './engine/clock.js';
import { kernelClock } from './kernel/native.js';
import { Engine, type Pipe } from './engine/engine.js';
import { addRules, checkInterface, defaultInterface, defaultTag, removeRules, type Transport } from './kernel/iptables.js';
import { balancedQueues, QueueWorkers } from './kernel/balance.js';
import { NfqueueFrontend } from './kernel/nfqueue.js';
import { mergeParams, type MergeOptions } from './params.js';
import { UdpProxy } from './proxy/udp-proxy.js';

export const DIRECTIONS = ['up', 'down'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export interface RuntimeOptions {
  level: 'kernel' | 'user';
  transport: Transport;
  /** The service's port. */
  port: number;
  /** User level: the client-facing port (0: any). */
  proxyPort?: number;
  /** Kernel level: the interface (`auto`: the default route's, `any`: every one). */
  iface?: string;
  /** Kernel level: the network namespace (a name under /run/netns). */
  netns?: string;
  upQueue?: number;
  downQueue?: number;
  /** Kernel level: let packets through unimpaired rather than drop them when the engine falls behind. */
  failOpen?: boolean;
  /**
   * Kernel level: queues per direction, each pair served by an engine on its own thread
   * (kernel/balance.ts); default 1, the main thread alone.
   */
  queueBalance?: number;
  /** Kernel level, with queueBalance: spread packets by CPU rather than by their addresses. */
  cpuFanout?: boolean;
  /** Kernel level: packets a queue holds for the engine at most (the kernel's default, 1024, is small). */
  maxQueueLen?: number;
  /** User level: the addresses to listen on, and where the service is. */
  listen?: string[];
  target4?: string;
  target6?: string;
  idleMs?: number;
  seed?: number;
  spinBelowUs?: number;
  /**
   * Nice value to run at. netem runs in the kernel, ahead of every process; a userspace
   * engine on a busy host wakes late unless it is scheduled ahead too. Default, as root (only
   * root may raise priority): -10 while a direction holds packets for a time (a delay, jitter
   * or a rate), 5 otherwise, followed as the parameters change; unchanged when not root. A
   * number: that, always. null: leave it alone. (Ahead of the senders, an engine with nothing
   * to time preempts them at every packet it is queued, and handles packets a few at a time,
   * three system calls per wake-up; a little behind them it takes them in larger batches.
   * Measured on 2 cores, NFQUEUE at 64 B with 256 datagrams in flight: 30 k round trips/s at
   * -10, 41 k at 0, 47 k at 5, with 3.6 times fewer verdict sends than at 0. When a core is
   * free it runs at once at any nice value: a lone packet's latency is the same.)
   */
  nice?: number | null;
  /** Initial parameters (already merged and validated). */
  params?: Record<Direction, Impairment>;
}

export class ImpairRuntime {
  readonly engine: Engine;
  readonly clock: RealClock;
  readonly pipes: Record<Direction, Pipe>;
  readonly startupParams: Record<Direction, Impairment>;
  proxy: UdpProxy | undefined;
  nfqueue: NfqueueFrontend | undefined;
  /** Kernel level with queueBalance > 1: the worker threads serving the other queue pairs. */
  workers: QueueWorkers | undefined;
  /** Kernel level: the tag of the rules this process added, and the resolved interface. */
  ruleTag: string | undefined;
  iface: string | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private stopped = false;

  private constructor(readonly opts: RuntimeOptions) {
    this.clock = kernelClock({ spinBelowUs: opts.spinBelowUs });
    this.engine = new Engine({ clock: this.clock, seed: opts.seed });
    this.startupParams = structuredClone(opts.params ?? { up: {}, down: {} });
    this.pipes = {
      up: this.engine.addPipe('up', this.startupParams.up),
      down: this.engine.addPipe('down', this.startupParams.down),
    };
  }

  static async start(opts: RuntimeOptions): Promise<ImpairRuntime> {
    const rt = new ImpairRuntime(opts);
    // Before any worker thread starts: they inherit it.
    rt.applyNice();
    try {
      if (opts.level === 'user') await rt.startProxy();
      else await rt.startKernel();
    } catch (e) {
      await rt.stop();
      throw e;
    }
    rt.sampler = setInterval(() => rt.engine.sampleSecond(), 1000);
    rt.sampler.unref();
    return rt;
  }

  private async startProxy(): Promise<void> {
    if (this.opts.transport !== 'udp') throw new Error('user level (the proxy) impairs UDP only: add `-t udp`, or use `-l kernel` (root) for TCP');
    if (this.opts.proxyPort === undefined) throw new Error('user level needs the proxy\'s port: `-x PROXY_PORT` (0: any free port)');
    this.proxy = new UdpProxy({
      engine: this.engine, up: this.pipes.up, down: this.pipes.down, port: this.opts.port, proxyPort: this.opts.proxyPort,
      listen: this.opts.listen, target4: this.opts.target4, target6: this.opts.target6, idleMs: this.opts.idleMs,
    });
    await this.proxy.start();
  }

  private async startKernel(): Promise<void> {
    if (process.getuid?.() !== 0) throw new Error('kernel level needs root (iptables and NFQUEUE); run as root, or use `-l user -t udp -x PROXY_PORT`');
    const netns = this.opts.netns;
    let iface = this.opts.iface ?? 'lo';
    if (iface === 'auto') iface = await defaultInterface(netns);
    await checkInterface(iface, netns);
    this.iface = iface;
    const balance = this.opts.queueBalance ?? 1;
    const upQueue = this.opts.upQueue ?? 1;
    const downQueue = this.opts.downQueue ?? upQueue + balance;
    const pairs = balancedQueues(upQueue, balance).map((p, i) => ({ up: p.up, down: downQueue + i }));
    // Bound before the rules exist, so no packet ever meets a queue nobody listens on.
    this.nfqueue = new NfqueueFrontend({
      engine: this.engine, netns, queues: [{ queue: pairs[0]!.up, pipe: this.pipes.up }, { queue: pairs[0]!.down, pipe: this.pipes.down }],
      failOpen: this.opts.failOpen, maxQueueLen: this.opts.maxQueueLen,
    });
    this.nfqueue.start();
    if (balance > 1) {
      this.workers = await QueueWorkers.start({
        engine: this.engine, pipes: this.pipes, netns, pairs: pairs.slice(1), params: this.parameters,
        failOpen: this.opts.failOpen, maxQueueLen: this.opts.maxQueueLen,
      });
    }
    const range = (q: number) => (balance > 1 ? `${q}-${q + balance - 1}` : `${q}`);
    const tag = `${defaultTag()} q=${range(upQueue)},${range(downQueue)}`;
    this.ruleTag = tag;
    await addRules({ transport: this.opts.transport, port: this.opts.port, iface, upQueue, downQueue, netns, tag, balance, cpuFanout: this.opts.cpuFanout });
  }

  /** The nice value wanted now (see RuntimeOptions.nice); null: leave it. */
  private niceWanted(): number | null {
    if (this.opts.nice !== undefined) return this.opts.nice;
    if (process.getuid?.() !== 0) return null;
    const holds = DIRECTIONS.some((d) => {
      const p = this.pipes[d].parameters;
      return (p.delayUs ?? 0) > 0 || (p.jitterUs ?? 0) > 0 || (p.rateBitsPerSec ?? 0) > 0;
    });
    return holds ? TIMING_NICE : IDLE_NICE;
  }

  private nice: number | null = null;
  /** The process's nice value before the engine set one: put back at stop (a library user's process goes on). */
  private readonly niceBefore = getPriority(0);

  /** Runs at the nice value wanted, every thread (the workers' too: on Linux nice is per thread). */
  private applyNice(): void {
    const v = this.niceWanted();
    if (v === null || v === this.nice) return;
    try {
      setProcessNice(v);
      this.nice = v;
    } catch {
      // not allowed: run at the priority we have
    }
  }

  get parameters(): Record<Direction, Impairment> {
    return { up: this.pipes.up.parameters, down: this.pipes.down.parameters };
  }

  /**
   * Merges `body` (any accepted form) into the parameters; throws ParamsError, applying
   * nothing. Not strict: unknown keys are ignored and listed in `merge.warnings`.
   */
  set(body: unknown, by = 'api', merge: MergeOptions = {}): Record<Direction, Impairment> {
    const next = mergeParams(this.parameters, body, merge) as Record<Direction, Impairment>;
    this.engine.setParams(next, by);
    this.workers?.setParams(next);
    this.applyNice();
    return next;
  }

  /** Back to the startup parameters. */
  reset(by = 'api'): Record<Direction, Impairment> {
    this.engine.setParams(structuredClone(this.startupParams), by);
    this.workers?.setParams(structuredClone(this.startupParams));
    this.applyNice();
    return this.parameters;
  }

  resetCounters(): void {
    for (const d of DIRECTIONS) this.pipes[d].counters.reset();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Removes the rules, releases held packets, closes sockets. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sampler) clearInterval(this.sampler);
    if (this.ruleTag !== undefined) await removeRules({ netns: this.opts.netns, tag: this.ruleTag });
    this.nfqueue?.close();
    await this.workers?.close();
    await this.proxy?.close();
    this.engine.close();
    if (this.nice !== null && this.nice !== this.niceBefore) {
      try {
        setProcessNice(this.niceBefore);
      } catch {
        // not allowed (raising priority needs root): left as it is
      }
      this.nice = null;
    }
  }
}
