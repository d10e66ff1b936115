/**
 * Labs a script brought up are not left behind when it ends: after its last line (the
 * event loop empties), on SIGINT/SIGTERM/SIGHUP, and on process.exit() or an uncaught
 * exception. The first two can wait for a normal down; `exit` runs no more async code, so
 * there the down is a child process (teardown-main.js) that this process waits for.
 * SIGKILL cannot be caught: `dune down --all` finds such a lab by its journal and marks.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LabLocation } from '@dune/transport';

interface Downable {
  readonly name: string;
  readonly location: LabLocation | undefined;
  readonly isUp: boolean;
  down(): Promise<void>;
}

const live = new Set<Downable>();
let installed = false;
let downing: Promise<void> | undefined;

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function downAll(): Promise<void> {
  downing ??= (async () => {
    for (const l of [...live]) {
      try {
        await l.down();
      } catch (e) {
        process.stderr.write(`dune: could not remove lab ${l.name} on exit: ${(e as Error).message}\n`);
      }
    }
  })().finally(() => (downing = undefined));
  return downing;
}

function onSignal(sig: NodeJS.Signals): void {
  void downAll().finally(() => {
    for (const s of SIGNALS) process.removeListener(s, onSignal);
    // The default action now: the process ends by the signal, as it would have.
    process.kill(process.pid, sig);
  });
}

function onBeforeExit(): void {
  if (live.size > 0) void downAll();
}

function onExit(): void {
  for (const l of [...live]) {
    if (l.location === undefined) continue;
    const main = fileURLToPath(new URL('./teardown-main.js', import.meta.url));
    spawnSync(process.execPath, [main], { input: JSON.stringify(l.location), stdio: ['pipe', 'inherit', 'inherit'], timeout: 120_000 });
  }
  live.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('beforeExit', onBeforeExit);
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

export function tearDownOnExit(l: Downable): void {
  install();
  live.add(l);
}

export function forgetOnExit(l: Downable): void {
  live.delete(l);
}
