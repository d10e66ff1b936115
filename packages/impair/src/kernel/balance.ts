/**
 * `--queue-balance N`: the port's packets spread over N queues per direction by the kernel
 * (the NFQUEUE target's `--queue-balance A:B`: by a hash of the source and destination
 * addresses, the same both ways, so a host pair stays on one queue and keeps its order; with
 * `--queue-cpu-fanout`, by the CPU that queued the packet), one engine per queue pair, each on
 * its own thread, so that N cores carry the traffic.
 *
 *   up queues   U .. U+N-1      down queues  U+N .. U+2N-1
 *   pair 0 (U, U+N): the main thread's engine (the one the REST API and the shell drive)
 *   pair i (U+i, U+N+i), i ≥ 1: a worker thread (balance-worker.ts), an engine of its own
 *
 * Parameters go to every engine; each worker's counts are taken every `takeMs` and added to
 * the main engine's pipes (counters, latency histograms, the per-second series, /metrics add
 * up over all queues). What stays per engine: the event log and packet_queue's per-packet
 * events (the main engine's queues only), and a rate or a queue limit, which each engine
 * applies to its share (the host pairs hashed to its queues): N engines pass up to N times the rate.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Impairment } from '@dune/topology';
import type { CountersDelta } from '../engine/counters.js';
import type { Engine, Pipe } from '../engine/engine.js';
import type { BalanceWorkerData } from './balance-worker.js';

/** The queue pairs of a balanced range: pair i is (up + i, up + n + i). */
export function balancedQueues(up: number, n: number): { up: number; down: number }[] {
  return Array.from({ length: n }, (_, i) => ({ up: up + i, down: up + n + i }));
}

/** The worker's script: next to this file, or (running from the sources, as in tests) in dist. */
function workerUrl(): URL {
  const here = new URL('./balance-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL(here.href.replace('/src/kernel/', '/dist/kernel/'));
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(`--queue-balance needs the built worker (${fileURLToPath(built)}): run \`npm run build\``);
}

export interface BalanceOptions {
  engine: Engine;
  pipes: Record<'up' | 'down', Pipe>;
  netns?: string;
  /** Queue pairs served by workers (pair 0, the main engine's, is not among them). */
  pairs: { up: number; down: number }[];
  params: Record<'up' | 'down', Impairment>;
  failOpen?: boolean;
  maxQueueLen?: number;
  takeMs?: number;
}

interface Running {
  worker: Worker;
  pair: { up: number; down: number };
}

export class QueueWorkers {
  private readonly running: Running[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(private readonly opts: BalanceOptions) {}

  /**
   * Starts one worker per pair, one after the other (each binds its queues before the next
   * starts); on any failure, those started are stopped and the error thrown.
   */
  static async start(opts: BalanceOptions): Promise<QueueWorkers> {
    const w = new QueueWorkers(opts);
    try {
      const url = workerUrl();
      for (const [i, pair] of opts.pairs.entries()) {
        const data: BalanceWorkerData = {
          netns: opts.netns, upQueue: pair.up, downQueue: pair.down, seed: (opts.engine.seed + i + 1) >>> 0,
          params: opts.params, failOpen: opts.failOpen, maxQueueLen: opts.maxQueueLen,
        };
        const worker = new Worker(url, { workerData: data });
        await new Promise<void>((resolve, reject) => {
          const onMsg = (m: { type: string; message?: string }) => {
            if (m.type === 'ready') {
              worker.off('message', onMsg);
              worker.off('error', reject);
              resolve();
            } else if (m.type === 'error') reject(new Error(`queue-balance worker (queues ${pair.up}, ${pair.down}): ${m.message}`));
          };
          worker.on('message', onMsg);
          worker.once('error', reject);
        });
        worker.on('message', (m: { type: string; up?: CountersDelta; down?: CountersDelta; errors?: Record<string, number> }) => {
          if (m.type === 'counts') w.absorb(m);
        });
        w.running.push({ worker, pair });
      }
    } catch (e) {
      await w.close();
      throw e;
    }
    w.timer = setInterval(() => w.take(), opts.takeMs ?? 250);
    w.timer.unref();
    return w;
  }

  get pairs(): { up: number; down: number }[] {
    return this.running.map((r) => r.pair);
  }

  private absorb(m: { up?: CountersDelta; down?: CountersDelta; errors?: Record<string, number> }): void {
    if (m.up) this.opts.pipes.up.counters.absorb(m.up);
    if (m.down) this.opts.pipes.down.counters.absorb(m.down);
    for (const [k, v] of Object.entries(m.errors ?? {})) this.opts.engine.countFrontendError(k, v);
  }

  /** Asks every worker for its counts (they arrive as messages, added when they do). */
  take(): void {
    for (const r of this.running) r.worker.postMessage({ type: 'take' });
  }

  setParams(params: Record<'up' | 'down', Impairment>): void {
    for (const r of this.running) r.worker.postMessage({ type: 'params', params });
  }

  /** Every worker releases what it holds, unbinds its queues and ends (remove the rules first). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all(
      this.running.map(async ({ worker }) => {
        const exited = new Promise<void>((r) => worker.once('exit', () => r()));
        // Its last counts, then its end.
        worker.postMessage({ type: 'take' });
        worker.postMessage({ type: 'close' });
        const timeout = setTimeout(() => void worker.terminate(), 3000);
        await exited;
        clearTimeout(timeout);
      }),
    );
  }
}
