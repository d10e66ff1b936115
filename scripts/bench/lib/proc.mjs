// Timing and process helpers shared by the kernel benchmarks (scripts/bench/up.mjs,
// packages/agent/bench/apply.mjs). Root only; nothing here asserts a time.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

export const now = () => process.hrtime.bigint();
export const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
export const sleep = (m) => new Promise((r) => setTimeout(r, m));
export const secs = (m) => `${(m / 1000).toFixed(2)} s`;

const TICK_MS = 10; // USER_HZ is 100 on every Linux we run on

/** CPU time (user + sys, ms) of this process's children that have been waited for. */
export function childCpuMs() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
  return (Number(f[13]) + Number(f[14])) * TICK_MS;
}

/** 1-minute load average: the machine is shared, so every figure is printed beside it. */
export const loadavg = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

/**
 * Runs a command to completion; returns wall and CPU (its and its waited-for children's)
 * milliseconds with its output. Throws with its stderr on a non-zero exit unless `allowFail`.
 */
export function run(cmd, args, { input, allowFail = false, env } = {}) {
  const c0 = childCpuMs();
  const t0 = now();
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', maxBuffer: 1 << 30, ...(env ? { env } : {}) });
  const wallMs = ms(t0);
  const cpuMs = childCpuMs() - c0;
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0 && !allowFail) {
    throw new Error(`${cmd} ${args.join(' ').slice(0, 200)} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).slice(0, 800)}`);
  }
  return { wallMs, cpuMs, status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `ip -batch -` (in namespace `ns` when given): one ip process for every line. */
export function ipBatch(lines, ns) {
  if (lines.length === 0) return { wallMs: 0, cpuMs: 0 };
  return run('ip', [...(ns ? ['-n', ns] : []), '-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** Named namespaces (`ip netns list`) starting with `prefix`. */
export function namespaces(prefix) {
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
}

/** Kernel threads now running namespace cleanup (a kworker's name says `+netns` meanwhile). */
function netnsWorkers() {
  let n = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').includes('+netns')) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

/**
 * Waits until the kernel has finished tearing down deleted namespaces, which it does
 * asynchronously after `ip netns del` (or `dune down`) has returned, eating CPU meanwhile:
 * so each measurement starts without the previous one's cleanup in the background. (The
 * machine may be busy with other work; only the namespace cleanup is waited for.)
 */
export async function settle(maxMs = 30_000) {
  const t0 = now();
  let quiet = 0;
  await sleep(300);
  while (ms(t0) < maxMs) {
    quiet = netnsWorkers() === 0 ? quiet + 1 : 0;
    if (quiet >= 4) return;
    await sleep(250);
  }
}
