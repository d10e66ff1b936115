/**
 * One engine thread of a lab engine run with `--threads N` (see plane.ts): a LocalPlane of
 * its own (engine, heap, clock, a socket per namespace it has queues in), driven by the main
 * thread's messages, in order. Its counts go back at each `take`.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Engine } from '../engine/engine.js';
import { kernelClock } from '../kernel/native.js';
import { isPlaneWorkerData, LocalPlane, takeLocal, type BindFailure, type PlaneReply, type PlaneRequest } from './plane.js';
import { realKernel } from './lab-engine.js';

const RECV_BUFFER_BYTES = 4 * 1024 * 1024;

/** Runs the worker's side; call it from a worker thread started with PlaneWorkerData. */
export function runPlaneWorker(): void {
  const port = parentPort;
  const d: unknown = workerData;
  if (port === null || !isPlaneWorkerData(d)) throw new Error('runPlaneWorker runs in a lab engine\'s worker thread');
  // No per-second series: the main thread keeps none for a lab either.
  const engine = new Engine({ clock: kernelClock(), seed: d.seed, eventCapacity: 100, seriesSeconds: 1 });
  const plane = new LocalPlane(engine, realKernel, Buffer.allocUnsafe(RECV_BUFFER_BYTES), d.failOpen);
  let failures: BindFailure[] = [];
  const errorsSent = new Map<string, number>();
  let elu = performance.eventLoopUtilization();
  const reply = (r: PlaneReply): void => port.postMessage(r);
  const take = () => {
    const now = performance.eventLoopUtilization();
    const t = takeLocal(plane, engine.pipeNames.map((n) => engine.pipe(n)), errorsSent, elu, now);
    elu = now;
    return t;
  };
  port.on('message', (m: PlaneRequest) => {
    switch (m.t) {
      case 'add':
        engine.removePipe(m.name);
        engine.addPipe(m.name, m.params);
        break;
      case 'set':
        if (engine.pipeNames.includes(m.name)) engine.setParams({ [m.name]: m.params }, 'lab');
        break;
      case 'remove':
        engine.removePipe(m.name);
        break;
      case 'bind':
        try {
          plane.bind(m.ns, m.queue, engine.pipe(m.name));
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          failures.push({ ns: m.ns, queue: m.queue, pipe: m.name, message: (e as Error).message, ...(typeof code === 'string' ? { code } : {}) });
        }
        break;
      case 'unbind':
        plane.unbind(m.ns, m.queue);
        break;
      case 'closeNs':
        plane.closeNs(m.ns);
        break;
      case 'commit':
        reply({ t: 'commit', id: m.id, failures });
        failures = [];
        break;
      case 'take':
        reply({ t: 'take', id: m.id, take: take() });
        break;
      case 'close': {
        plane.close();
        engine.close();
        reply({ t: 'closed', id: m.id, take: take() });
        port.close();
        break;
      }
    }
  });
  reply({ t: 'ready' });
}
