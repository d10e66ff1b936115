/**
 * One worker thread of `--queue-balance`: an engine of its own (pipes `up` and `down`, the
 * main thread's parameters) behind an NFQUEUE front end bound to one up queue and one down
 * queue of the balanced range. The main thread (balance.ts) sends it parameters and takes its
 * counts; packets never cross threads.
 *
 *   main → worker: {type: 'params', params} | {type: 'take'} | {type: 'close'}
 *   worker → main: {type: 'ready'} | {type: 'error', message} | {type: 'counts', up, down, errors} | {type: 'closed'}
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Impairment } from '@dune/topology';
import { Engine } from '../engine/engine.js';
import { NfqueueFrontend } from './nfqueue.js';
import { kernelClock } from './native.js';

export interface BalanceWorkerData {
  netns?: string;
  upQueue: number;
  downQueue: number;
  seed: number;
  params: Record<'up' | 'down', Impairment>;
  failOpen?: boolean;
  maxQueueLen?: number;
}

const port = parentPort;
if (port === null) throw new Error('balance-worker runs as a worker thread');
const d = workerData as BalanceWorkerData;
const engine = new Engine({ clock: kernelClock(), seed: d.seed });
const up = engine.addPipe('up', d.params.up);
const down = engine.addPipe('down', d.params.down);
const fe = new NfqueueFrontend({
  engine, netns: d.netns, queues: [{ queue: d.upQueue, pipe: up }, { queue: d.downQueue, pipe: down }],
  failOpen: d.failOpen, maxQueueLen: d.maxQueueLen,
});
try {
  fe.start();
  port.postMessage({ type: 'ready' });
} catch (e) {
  port.postMessage({ type: 'error', message: (e as Error).message });
  process.exit(1);
}

let sentErrors = new Map<string, number>();
port.on('message', (m: { type: string; params?: Record<'up' | 'down', Impairment> }) => {
  if (m.type === 'params' && m.params) {
    engine.setParams(m.params, 'api');
  } else if (m.type === 'take') {
    // Frontend errors since the last take.
    const errors: Record<string, number> = {};
    for (const [k, v] of engine.frontendErrors) {
      const delta = v - (sentErrors.get(k) ?? 0);
      if (delta > 0) errors[k] = delta;
    }
    sentErrors = new Map(engine.frontendErrors);
    port.postMessage({ type: 'counts', up: up.counters.take(up.queueDepth()), down: down.counters.take(down.queueDepth()), errors });
  } else if (m.type === 'close') {
    fe.close();
    engine.close();
    port.postMessage({ type: 'closed' });
    port.close();
    setImmediate(() => process.exit(0));
  }
});
