/** Running a helper program (nft, iptables) with argv only, never a shell. */
import { spawn } from 'node:child_process';
import { nsPath } from './netns.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(argv: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd ?? '', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => resolve({ code: 127, stdout, stderr: stderr + String(e.message) }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/** argv to run `argv` inside a namespace (null: where we are). nsenter changes only the netns. */
export function inNs(ns: string | null, argv: string[]): string[] {
  return ns === null ? argv : ['nsenter', `--net=${nsPath(ns)}`, '--', ...argv];
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
