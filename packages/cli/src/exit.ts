/**
 * How the process ends after a command. Node ends a process whose loop has drained by tearing
 * its JavaScript heap down page by page (255 munmap calls after a 1,000-node `up`: 46 ms from
 * the last line written to the process reaped), where exit(2) hands the whole address space
 * back at once. A command whose work is wholly done when its action returns (nothing started
 * that is meant to go on in this process, every line written: writes to pipes and files are
 * synchronous on Linux) asks for the quick end; the rest end as Node ends them.
 */
let quick = false;

/** Called by a command's action once everything it does is done. */
export function endQuicklyWhenDone(): void {
  quick = true;
}

/** Whether the command that ran asked for the quick end (read by bin/run.ts, after main). */
export function endsQuickly(): boolean {
  return quick;
}
