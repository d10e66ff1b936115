/** Small helpers shared by the core and the edge. */
import { appendFileSync, existsSync, readdirSync, rmdirSync } from 'node:fs';

/** ⌈log2 n⌉ for n ≥ 1. */
export function bitsFor(n: number): number {
  let b = 0;
  while (2 ** b < n) b++;
  return b;
}

export const LOG_LEVELS = ['debug', 'info', 'warning', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type Log = (level: LogLevel, message: string) => void;

/** NetMirage's logging: messages at or above `min`, to a file or stderr. */
export function makeLog(min: LogLevel, file: string | undefined, stderr: (s: string) => void): Log {
  const rank = LOG_LEVELS.indexOf(min);
  return (level, message) => {
    if (LOG_LEVELS.indexOf(level) < rank) return;
    const line = `[${level}] ${message}`;
    if (file === undefined) stderr(line);
    else appendFileSync(file, `${new Date().toISOString()} ${line}\n`);
  };
}

/** A state directory goes when its last file does. */
export function removeIfEmpty(dir: string): void {
  try {
    if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    // another run wrote into it meanwhile: keep it
  }
}
