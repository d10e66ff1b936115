/**
 * The statistics behind the kernel-lab tolerances: exact binomial intervals for counts
 * (loss, duplication, corruption, early packets) and a Monte Carlo model of netem's
 * reordering for the UDP probe's actual send times. Pure functions, tested without root.
 */
import { seededRandom } from '@dune/topology';

/** The q-quantile of a sample, linear between order statistics (like numpy's default). */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function stdev(xs: readonly number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(xs.length - 1, 1));
}

/**
 * The central `conf` interval of Binomial(n, p), exactly (default 99.9 %: the suite runs a
 * dozen statistical checks, and 1 % false failures each would fail a correct build too often): the largest lo with
 * P(X < lo) ≤ (1-conf)/2 and the smallest hi with P(X > hi) ≤ (1-conf)/2.
 */
export function binomialInterval(n: number, p: number, conf = 0.999): { lo: number; hi: number } {
  const tail = (1 - conf) / 2;
  // pmf by the recurrence P(k+1) = P(k)·(n-k)/(k+1)·p/(1-p), in logs to stay finite.
  const logPmf: number[] = [n * Math.log1p(-p)];
  for (let k = 0; k < n; k++) logPmf.push((logPmf[k] as number) + Math.log((n - k) / (k + 1)) + Math.log(p / (1 - p)));
  const pmf = logPmf.map((l) => Math.exp(l));
  let lo = 0;
  let below = 0;
  while (lo < n && below + (pmf[lo] as number) <= tail) below += pmf[lo++] as number;
  let hi = n;
  let above = 0;
  while (hi > 0 && above + (pmf[hi] as number) <= tail) above += pmf[hi--] as number;
  return { lo, hi };
}

/** A seeded PRNG, so the simulated intervals are the same on every run. */
export const prng = seededRandom;

/** RFC 4737 reordered packets: arrivals whose sequence number is below one already seen. */
export function reorderedCount(arrivalSeqs: readonly number[]): number {
  let max = -1;
  let n = 0;
  for (const s of arrivalSeqs) {
    if (s < max) n++;
    else max = s;
  }
  return n;
}

/**
 * netem's reordering with gap 1 (`delay D reorder P%`): each packet independently, with
 * probability P, is sent at once (queued at the head); otherwise it waits D. Given when each
 * packet was really sent, the reordered count (RFC 4737) the receiver should see is a random
 * variable; this samples it `trials` times and returns its central `conf` interval and mean.
 */
export function simulateReorder(
  txUs: readonly number[],
  pct: number,
  delayUs: number,
  opts: { trials?: number; conf?: number; seed?: number } = {},
): { lo: number; hi: number; mean: number } {
  const trials = opts.trials ?? 2000;
  const conf = opts.conf ?? 0.999;
  const rnd = prng(opts.seed ?? 1);
  const counts: number[] = [];
  const idx = txUs.map((_, i) => i);
  const arrival = new Float64Array(txUs.length);
  for (let t = 0; t < trials; t++) {
    for (let i = 0; i < txUs.length; i++) arrival[i] = (txUs[i] as number) + (rnd() < pct / 100 ? 0 : delayUs);
    const order = [...idx].sort((a, b) => (arrival[a] as number) - (arrival[b] as number) || a - b);
    counts.push(reorderedCount(order));
  }
  return { lo: quantile(counts, (1 - conf) / 2), hi: quantile(counts, 1 - (1 - conf) / 2), mean: mean(counts) };
}
