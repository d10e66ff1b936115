/**
 * A fixed-size log-linear histogram of non-negative values (microseconds here): exact below
 * 16, then 16 buckets per power of two (relative error under 3.2 %), up to 2^40. Memory is
 * constant whatever the traffic, so it can count every packet.
 */

const SUB = 16;
const LINEAR = 16;
const MAX_EXP = 40;
const BUCKETS = LINEAR + (MAX_EXP - 4) * SUB;

/** Prometheus bucket bounds, seconds. */
export const PROM_BOUNDS_SECONDS = [
  0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
] as const;

function bucketOf(v: number): number {
  if (v < LINEAR) return Math.max(0, Math.floor(v));
  const e = Math.floor(Math.log2(v));
  if (e >= MAX_EXP) return BUCKETS - 1;
  const sub = Math.min(SUB - 1, Math.floor((v / 2 ** e - 1) * SUB));
  return LINEAR + (e - 4) * SUB + sub;
}

function bucketLow(i: number): number {
  if (i < LINEAR) return i;
  const e = Math.floor((i - LINEAR) / SUB) + 4;
  const sub = (i - LINEAR) % SUB;
  return 2 ** e * (1 + sub / SUB);
}

export interface HistogramSnapshot {
  counts: Float64Array;
  prom: Float64Array;
  count: number;
  sum: number;
  max: number;
  min: number;
}

export class Histogram {
  /**
   * Per bucket; allocated with the first value (4.7 KB: a lab's engine has a histogram per
   * link direction, most of which see nothing for long, some never).
   */
  private counts: Float64Array | undefined;
  /** Cumulative-ready counts per Prometheus bound (value ≤ bound), plus the sum. */
  private readonly prom = new Float64Array(PROM_BOUNDS_SECONDS.length);
  count = 0;
  sum = 0;
  max = 0;
  min = Infinity;

  record(v: number): void {
    (this.counts ??= new Float64Array(BUCKETS))[bucketOf(v)]! += 1;
    this.count += 1;
    this.sum += v;
    if (v > this.max) this.max = v;
    if (v < this.min) this.min = v;
    const s = v / 1e6;
    for (let i = 0; i < PROM_BOUNDS_SECONDS.length; i++) {
      if (s <= PROM_BOUNDS_SECONDS[i]!) {
        this.prom[i]! += 1;
        break;
      }
    }
  }

  /** The q-quantile (0..1), as the middle of its bucket, clamped to the observed range. */
  quantile(q: number): number {
    const counts = this.counts;
    if (this.count === 0 || counts === undefined) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += counts[i]!;
      if (seen >= rank) {
        const lo = bucketLow(i);
        const mid = i < LINEAR ? lo : (lo + bucketLow(i + 1)) / 2;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /** Cumulative counts for PROM_BOUNDS_SECONDS (the `le` buckets, +Inf excluded). */
  cumulativeProm(): number[] {
    const out: number[] = [];
    let acc = 0;
    for (let i = 0; i < this.prom.length; i++) {
      acc += this.prom[i]!;
      out.push(acc);
    }
    return out;
  }

  /** Everything recorded, as plain data (to move between threads; see `add`). */
  snapshot(): HistogramSnapshot {
    return { counts: this.counts?.slice() ?? new Float64Array(BUCKETS), prom: this.prom.slice(), count: this.count, sum: this.sum, max: this.max, min: this.min };
  }

  /** Adds another histogram's records (a snapshot of it) to this one's. */
  add(h: HistogramSnapshot): void {
    if (h.count === 0) return;
    const counts = (this.counts ??= new Float64Array(BUCKETS));
    for (let i = 0; i < BUCKETS; i++) counts[i]! += h.counts[i]!;
    for (let i = 0; i < this.prom.length; i++) this.prom[i]! += h.prom[i]!;
    this.count += h.count;
    this.sum += h.sum;
    if (h.max > this.max) this.max = h.max;
    if (h.min < this.min) this.min = h.min;
  }

  reset(): void {
    this.counts?.fill(0);
    this.prom.fill(0);
    this.count = 0;
    this.sum = 0;
    this.max = 0;
    this.min = Infinity;
  }

  summary(): { count: number; meanUs: number; p50Us: number; p90Us: number; p99Us: number; maxUs: number } {
    const r = (x: number) => Math.round(x * 10) / 10;
    return {
      count: this.count,
      meanUs: r(this.mean),
      p50Us: r(this.quantile(0.5)),
      p90Us: r(this.quantile(0.9)),
      p99Us: r(this.quantile(0.99)),
      maxUs: r(this.max),
    };
  }
}
