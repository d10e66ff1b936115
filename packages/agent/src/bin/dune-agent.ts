#!/usr/bin/env node
/**
 * `dune-agent`: see ../daemon/main.ts. The same script is what a lab engine's worker
 * threads run (`impair-engine --threads N`): in one, it serves as that thread.
 */
import { realpathSync } from 'node:fs';
import { isMainThread, workerData } from 'node:worker_threads';
import { agentMain } from '../daemon/main.js';

if (!isMainThread && (workerData as { dunePlane?: unknown } | null)?.dunePlane === 1) {
  const { runPlaneWorker } = await import('@dune/impair');
  runPlaneWorker();
} else {
  const script = realpathSync(process.argv[1] ?? '');
  process.exit(await agentMain(process.argv.slice(2), script));
}
