/**
 * The only place that prints. Known failures (DuneError, TopologyError) are shown briefly
 * with their hint; anything unexpected with its stack, since it is a bug of ours.
 */
import { DuneError, TopologyError, formatDiagnostic, type Diagnostic } from '@dune/topology';

export interface Output {
  out(text: string): void;
  /** Raw write to stdout, no newline added. */
  write(text: string): void;
  err(text: string): void;
  readonly isTTY: boolean;
}

export const stdio: Output = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  write: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  get isTTY() {
    return Boolean(process.stdout.isTTY);
  },
};

export function printDiagnostics(o: Output, ds: readonly Diagnostic[]): void {
  for (const d of ds) o.err(formatDiagnostic(d));
}

/** Prints an error and returns the exit code for it. */
export function reportError(o: Output, e: unknown): number {
  if (e instanceof TopologyError) {
    printDiagnostics(o, e.diagnostics);
    const n = e.diagnostics.filter((d) => d.severity === 'error').length;
    o.err(`${n} error${n === 1 ? '' : 's'}; nothing was changed.`);
    return 1;
  }
  if (e instanceof DuneError) {
    o.err(formatDiagnostic(e.toDiagnostic()));
    return 1;
  }
  const err = e as Error;
  o.err(`internal error (a bug in dune; please report it with this output):\n${err?.stack ?? String(e)}`);
  return 70;
}

/**
 * An impairment as JSON output shows it: a Mahimahi delivery trace followed per packet is
 * thousands of timestamps, journaled whole for the engine but summarised for a reader.
 */
export function impairmentForJson<T extends { deliveryTrace?: { opportunitiesMs: readonly number[]; loop: boolean } }>(i: T): Omit<T, 'deliveryTrace'> | (Omit<T, 'deliveryTrace'> & { deliveryTrace: { opportunities: number; loop: boolean } }) {
  if (i.deliveryTrace === undefined) return i;
  const { deliveryTrace: t, ...rest } = i;
  return { ...rest, deliveryTrace: { opportunities: t.opportunitiesMs.length, loop: t.loop } };
}

/** An up's steps as one line: `prepare 0.02s, probe 0.11s, netns 0.46s, …` (steps under 10 ms left out). */
export function describeSteps(stepsMs: Record<string, number> | undefined): string {
  if (stepsMs === undefined) return '';
  return Object.entries(stepsMs).filter(([, ms]) => ms >= 10).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(2)}s`).join(', ');
}
