import type { Command } from 'commander';
/** The only place that prints: known failures briefly with their hint, anything else with its stack. */
import { DuneError, TopologyError, formatDiagnostic } from '@dune/topology';

export interface Io {
  out(text: string): void;
  /** Raw write to stdout, no newline added. */
  write(text: string): void;
  err(text: string): void;
}

export const stdio: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  write: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

export function reportError(io: Io, e: unknown): number {
  if (e instanceof TopologyError) {
    for (const d of e.diagnostics) io.err(formatDiagnostic(d));
    const n = e.diagnostics.filter((d) => d.severity === 'error').length;
    io.err(`${n} error${n === 1 ? '' : 's'}; nothing was built.`);
    return 1;
  }
  if (e instanceof DuneError) {
    io.err(formatDiagnostic(e.toDiagnostic()));
    return 1;
  }
  const err = e as Error;
  io.err(`internal error (a bug; please report it with this output):\n${err?.stack ?? String(e)}`);
  return 70;
}

/** Runs a commander program: usage errors exit with commander's code, failures are reported. */
export async function runProgram(program: Command, argv: string[], io: Io): Promise<number> {
  program.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) return ce.exitCode ?? 1;
    return reportError(io, e);
  }
}
