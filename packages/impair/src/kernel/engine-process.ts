/**
 * What an engine process sets for itself: its priority, for every thread, and garbage
 * collections that do not wait for other threads.
 *
 * The priority, for every thread of the process. On Linux a nice value belongs to a
 * thread: `setpriority(PRIO_PROCESS, 0, n)` (os.setPriority(0, n)) changes only the caller's,
 * and V8's helper threads (collections, compilation) and libuv's pool stayed at 0 while the
 * engine's own thread ran at -10. Threads started later (worker threads, the pool's) inherit
 * the value of the thread that starts them.
 */
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { setFlagsFromString } from 'node:v8';

/**
 * The nice value of an engine holding packets for a time (delay, jitter, rate: ahead of the
 * programs whose packets it times, as netem is in the kernel), and of one with nothing to
 * time (a little behind them: it then takes their packets in batches; see RuntimeOptions.nice).
 */
export const TIMING_NICE = -10;
export const IDLE_NICE = 5;

/**
 * Sets `value` on every thread of this process. Throws when not even the calling thread's
 * could be set (not allowed); a thread that ended meanwhile is skipped.
 */
export function setProcessNice(value: number): void {
  setPriority(0, value);
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return; // no procfs: the calling thread's is what can be set
  }
  for (const tid of tids) {
    try {
      setPriority(Number(tid), value);
    } catch {
      // gone since the listing
    }
  }
}

/**
 * Young-generation collections on the engine's own thread only. A parallel scavenge hands
 * parts to V8's helper threads and waits for them; on a virtual machine a helper that sleeps
 * takes up to milliseconds to be woken, and every packet the engine holds waits as long:
 * Kdl's engine (a ping through 36 crossings) paused 1-4 ms per scavenge, 0.1-0.3 ms of it
 * work; alone, 0.6-1.5 ms. The flag is read at each scavenge, so setting it once the
 * process runs takes effect (worker threads included: flags are the process's).
 */
export function singleThreadedScavenges(): void {
  setFlagsFromString('--no-parallel-scavenge');
}
