/**
 * `node teardown-main.js < LOCATION.json`: removes one lab, for a script's exit handler
 * (exit.ts), which can no longer wait for anything itself.
 */
import { readFileSync } from 'node:fs';
import type { LabLocation } from '@dune/transport';
import { downLab } from './engine.js';

const loc = JSON.parse(readFileSync(0, 'utf8')) as LabLocation;
try {
  await downLab(loc);
} catch (e) {
  process.stderr.write(`dune: could not remove lab ${loc.lab} on exit: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
