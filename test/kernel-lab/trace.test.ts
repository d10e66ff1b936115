/**
 * Links that change over time on the netem backend, on a real netem: boots a User-Mode Linux
 * guest (./uml-run; its kernel has sch_netem, the host's does not), runs
 * scenarios/trace.mjs in it (labs by the real `dune up`, followed by the real `dune trace
 * run`, measured by iperf3 and ping) and asserts on the ONE JSON line it prints.
 *
 * The follower's clock starts when the state at 0 is in place; the iperf3 client starts just
 * after (up to a second later on UML's one CPU). So each step is judged on the receiver's
 * per-second rates that lie inside the step whatever that offset (δ ∈ [0, 1] s), TCP's first
 * second left out. Rates are goodput × 1514/1448 (netem's rate counts whole frames) for the
 * CSV trace, × 1500/1448 for Mahimahi (whose opportunities are 1500-byte packets).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { guestMissing, onPath, ROOT } from './guest.js';

const UML_RUN = fileURLToPath(new URL('./uml-run', import.meta.url));
const GUEST_TIMEOUT_S = 240;

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (the guest builds namespaces)';
  if (!onPath('iperf3')) return 'iperf3 not found';
  return guestMissing();
}

interface Followed {
  perSecond: number[];
  changes: { atMs: number; elapsedMs: number; tookMs: number }[];
}
interface GuestRun {
  results: { csv: Followed; mahimahi: Followed; latency: { samples: [number, number][] } };
  errors: Record<string, string>;
}

function guest(): Promise<GuestRun> {
  return new Promise((resolve, reject) => {
    execFile(UML_RUN, ['node test/kernel-lab/scenarios/trace.mjs'], { cwd: ROOT, env: { ...process.env, UML_TIMEOUT: String(GUEST_TIMEOUT_S) }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const line = stdout.split('\n').find((l) => l.startsWith('KLRESULT '));
        if (!line) return reject(new Error(`no result from the guest (${err?.message ?? 'exit 0'}):\n${stdout.slice(-4000)}\n${stderr.slice(-2000)}`));
        const r = JSON.parse(line.slice('KLRESULT '.length)) as GuestRun;
        const errors = Object.entries(r.errors);
        if (errors.length > 0) return reject(new Error(`scenario failed in the guest:\n${errors.map(([k, v]) => `${k}: ${v}`).join('\n')}`));
        resolve(r);
      });
  });
}

const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
const skip = missing();

describe.skipIf(skip !== undefined)(`traces on netem in a UML guest ${skip ?? ''}`, () => {
  it('follows a CSV rate trace 10 → 2 → 10 Mbit/s and a Mahimahi trace 6 → 3 Mbit/s within 10 % per step, latency steps seen by ping', async () => {
    const r = await guest();
    const report: string[] = [];
    try {
    const judge = (name: string, f: Followed, factor: number, steps: [number, number, number][]): void => {
      const per = f.perSecond.map((g) => (g * factor) / 1e6);
      report.push(`${name} per second (Mbit/s): ${per.map((x) => x.toFixed(2)).join(' ')}`);
      for (const [from, to, want] of steps) {
        const got = mean(per.slice(from, to));
        report.push(`  ${want} Mbit/s: ${got.toFixed(2)} (${(((got - want) / want) * 100).toFixed(1)} %)`);
        expect(Math.abs(got - want) / want, `${name} step ${want} Mbit/s: ${got}`).toBeLessThan(0.1);
      }
      const late = f.changes.filter((c) => c.atMs > 0).map((c) => c.elapsedMs + c.tookMs - c.atMs);
      report.push(`  ${f.changes.length} changes, done at most ${Math.max(...late)} ms after their time`);
    };
    // The second the rate drops in still delivers part of what arrived at 10 Mbit/s (measured 2.17-2.69
    // there): the 2 Mbit/s step is judged from 5 s. After 2 Mbit/s, TCP drains the 200-packet queue
    // (1.2 s at 2 Mbit/s) before it ramps up: the last step is judged from 10 s.
    judge('csv', r.results.csv, 1514 / 1448, [[1, 3, 10], [5, 8, 2], [10, 13, 10]]);
    judge('mahimahi', r.results.mahimahi, 1500 / 1448, [[0, 2, 6], [3, 5, 3]]);
    // Latency steps on a → b, 1 ms the other way: RTT = step + 1 ms (+ a little).
    for (const [from, to, want] of [[0.5, 2.5, 11], [3.5, 5.5, 51], [6.5, 8.5, 2]] as const) {
      const xs = r.results.latency.samples.filter(([t]) => t >= from && t < to).map(([, rtt]) => rtt).sort((a, b) => a - b);
      const median = xs[Math.floor(xs.length / 2)] as number;
      report.push(`latency ${want - 1} ms one way: median RTT ${median} ms over ${xs.length} pings`);
      expect(xs.length).toBeGreaterThan(10);
      expect(median).toBeGreaterThanOrEqual(want);
      expect(median).toBeLessThan(want + 1.5);
    }
    } finally {
      console.log(report.join('\n'));
    }
  }, (GUEST_TIMEOUT_S + 30) * 1000);
});
