/** A lab engine's worker thread, as a script of its own (see plane.ts, planeWorkerUrl). */
import { runPlaneWorker } from './plane-worker.js';

runPlaneWorker();
