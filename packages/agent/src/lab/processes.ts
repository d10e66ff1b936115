/**
 * Processes inside lab nodes. A process is started as
 *   ip netns exec <ns> [taskset -c <cpus>] <argv...>
 * with no shell: `ip netns exec` and `taskset` both exec, so the pid we get is the
 * program's own. It is detached (own session) so the lab outlives the CLI, with its output
 * in a per-process log file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuneError } from '@dune/topology';

const BASE_ENV_KEYS = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TERM', 'USER', 'LOGNAME', 'TZ'];

export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of BASE_ENV_KEYS) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  env['PATH'] ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return env;
}

/** `~/x` → `$HOME/x` in every word, as a shell would for a leading tilde. Nothing else is expanded. */
export function expandTilde(argv: readonly string[], home = homedir()): string[] {
  return argv.map((w) => (w === '~' ? home : w.startsWith('~/') ? join(home, w.slice(2)) : w));
}

export function nsExecArgv(ns: string, argv: readonly string[], cpus: readonly number[] = []): string[] {
  const inner = cpus.length > 0 ? ['taskset', '-c', cpus.join(','), ...argv] : [...argv];
  return ['netns', 'exec', ns, ...inner];
}

/** Process start time in clock ticks since boot, or undefined when it is gone. */
export function procStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a process exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = s.slice(s.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function isAlive(pid: number, startTicks: number): boolean {
  const t = procStartTicks(pid);
  if (t === undefined || t !== startTicks) return false;
  return isRunning(pid);
}

export interface Started {
  pid: number;
  startTicks: number;
}

export async function startProcess(
  ns: string,
  argv: readonly string[],
  opts: { env: Record<string, string>; cpus: readonly number[]; log: string },
): Promise<Started> {
  const out = openSync(opts.log, 'a', 0o600);
  try {
    const child = spawn('ip', nsExecArgv(ns, expandTilde(argv), opts.cpus), {
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...baseEnv(), ...opts.env },
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (e) => reject(e));
      child.once('spawn', () => resolve(child.pid ?? -1));
    });
    child.unref();
    // Give exec a moment so the start time we record is the final program's (same pid).
    const startTicks = procStartTicks(pid);
    if (startTicks === undefined) {
      throw new DuneError('process-start', `process ${argv.join(' ')} in ${ns} exited at once`, {
        hint: `see its log: ${opts.log}`,
      });
    }
    return { pid, startTicks };
  } finally {
    closeSync(out);
  }
}

/** Runs a command in a namespace and waits for it (exec and hooks). */
export function runInNs(
  ns: string,
  argv: readonly string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; log?: string } = {},
): { status: number | null; output: string } {
  // Output goes to a file, not a pipe: a command that leaves a process in the background
  // (`sh -c 'daemon &'`, as DUNE files do) would hold a pipe open and keep us waiting.
  const dir = mkdtempSync(join(tmpdir(), 'dune-run-'));
  const file = join(dir, 'output');
  const fd = openSync(file, 'w', 0o600);
  try {
    const r = spawnSync('ip', nsExecArgv(ns, expandTilde(argv)), {
      env: { ...baseEnv(), ...(opts.env ?? {}) },
      timeout: opts.timeoutMs ?? 30_000,
      stdio: ['ignore', fd, fd],
    });
    return { status: r.status, output: readFileSync(file, 'utf8') };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Pids whose network namespace is the named one (what `ip netns pids` does). */
export function pidsInNamespace(ns: string): number[] {
  let target: string;
  try {
    const st = statSync(`/run/netns/${ns}`);
    target = `net:[${st.ino}]`;
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readlinkSync(`/proc/${d}/ns/net`) === target) pids.push(Number(d));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

/** Pids in any of the namespaces, in one pass over /proc. */
export function pidsInNamespaces(nss: readonly string[]): Map<string, number[]> {
  const byInode = new Map<string, string>();
  for (const ns of nss) {
    try {
      byInode.set(`net:[${statSync(`/run/netns/${ns}`).ino}]`, ns);
    } catch {
      // already gone
    }
  }
  const out = new Map<string, number[]>();
  if (byInode.size === 0) return out;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ns = byInode.get(readlinkSync(`/proc/${d}/ns/net`));
      if (ns !== undefined) {
        const l = out.get(ns) ?? [];
        l.push(Number(d));
        out.set(ns, l);
      }
    } catch {
      // gone
    }
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Returns the pids that had to be killed. */
export async function terminate(pids: readonly number[], graceMs = 3000): Promise<number[]> {
  const live = new Set<number>();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
      live.add(pid);
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (live.size > 0 && Date.now() < deadline) {
    await sleep(25);
    for (const pid of [...live]) {
      try {
        process.kill(pid, 0);
        const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (s.slice(s.lastIndexOf(')') + 2).startsWith('Z')) live.delete(pid);
      } catch {
        live.delete(pid);
      }
    }
  }
  const killed = [...live];
  for (const pid of killed) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone in between
    }
  }
  return killed;
}
