/**
 * The `trace` stage: a Mahimahi packet-delivery trace followed packet by packet, as mm-link
 * does. Each timestamp of the trace (ms from when it was set) is a delivery opportunity of
 * 1500 bytes: packets leave in order, a packet taking what is left of the current opportunity
 * and as many further ones as its size needs; an opportunity the queue does not use is lost.
 * The trace repeats with period = its last timestamp (`loop`), or else its last second
 * repeats for ever (its last rate holds, as on the kernel backends).
 */
import type { DeliveryTrace, Impairment } from '@dune/topology';
import { defineStage } from './stage.js';

/** Bytes per opportunity (Mahimahi's documented budget; see MAHIMAHI_BYTES). */
export const OPPORTUNITY_BYTES = 1500;

/** The part of a trace that repeats after its end when it does not loop. */
const HOLD_MS = 1000;

export interface TraceConfig {
  opps: readonly number[];
  periodMs: number;
  loop: boolean;
  /** Without loop: the first index of the repeated tail, and the tail's period. */
  tailFrom: number;
  tailMs: number;
  /** Engine time (µs) when these parameters were set: the trace's 0 if it is a new one. */
  setAtUs: number;
  /** Which trace this is: its epoch and shape (a new one starts over). */
  sig: string;
}

export interface TraceState {
  sig: string;
  startUs: number;
  /** Global index of the opportunity the last packet left at, and the bytes it left unused. */
  idx: number;
  left: number;
}

/** The time (ms from the trace's start) of opportunity `g`, counting repetitions. */
export function opportunityMs(c: TraceConfig, g: number): number {
  const n = c.opps.length;
  if (c.loop) return Math.floor(g / n) * c.periodMs + (c.opps[g % n] as number);
  if (g < n) return c.opps[g] as number;
  const m = n - c.tailFrom;
  const k = Math.floor((g - n) / m) + 1;
  return (c.opps[c.tailFrom + ((g - n) % m)] as number) + k * c.tailMs;
}

/** First index i in [lo, hi) with opps[i] >= v (hi when none). */
function lowerBound(opps: readonly number[], v: number, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((opps[mid] as number) < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The global index of the first opportunity at or after `tMs` (ms from the start). */
export function firstOpportunity(c: TraceConfig, tMs: number): number {
  const n = c.opps.length;
  const t = Math.max(0, tMs);
  if (c.loop) {
    const cycle = Math.floor(t / c.periodMs);
    return cycle * n + lowerBound(c.opps, t - cycle * c.periodMs, 0, n);
  }
  if (t <= c.periodMs) return lowerBound(c.opps, t, 0, n);
  const m = n - c.tailFrom;
  const u = t - c.periodMs;
  const k = Math.floor(u / c.tailMs);
  // Within tail repetition k + 1: opps[i] - (period - tailMs) >= u - k * tailMs.
  const i = lowerBound(c.opps, u - k * c.tailMs + c.periodMs - c.tailMs, c.tailFrom, n);
  return i === n ? n + (k + 1) * m : n + k * m + (i - c.tailFrom);
}

export function traceConfig(t: DeliveryTrace, setAtUs: number): TraceConfig {
  const opps = t.opportunitiesMs;
  const periodMs = opps[opps.length - 1] as number;
  const tailStart = periodMs - Math.min(HOLD_MS, periodMs);
  // The tail: the opportunities after tailStart (whole ms; the last one, at periodMs, always is).
  const tailFrom = lowerBound(opps, tailStart + 0.5, 0, opps.length);
  return { opps, periodMs, loop: t.loop, tailFrom, tailMs: periodMs - tailStart, setAtUs, sig: `${t.epoch}:${opps.length}:${periodMs}:${t.loop}` };
}

export const trace = defineStage({
  doc:
    'follows a Mahimahi delivery trace packet by packet: at each millisecond of the trace 1500 bytes may leave, ' +
    'packets wait in order for the opportunities their size needs (mm-link\'s model); set by `dune trace run` on ' +
    'the userspace backend',
  config: (p: Impairment, nowUs: number): TraceConfig | undefined =>
    p.deliveryTrace && p.deliveryTrace.opportunitiesMs.length > 0 ? traceConfig(p.deliveryTrace, nowUs) : undefined,
  state: (): TraceState => ({ sig: '', startUs: 0, idx: -1, left: 0 }),
  process(pkt, cfg, st) {
    if (st.sig !== cfg.sig) {
      // A new trace starts when it was set; the same one set again (another key changed) goes on.
      st.sig = cfg.sig;
      st.startUs = cfg.setAtUs;
      st.idx = -1;
      st.left = 0;
    }
    const tMs = (pkt.t - st.startUs) / 1000;
    let g: number;
    let left: number;
    if (st.idx >= 0 && st.left > 0 && opportunityMs(cfg, st.idx) >= tMs) {
      g = st.idx;
      left = st.left;
    } else {
      g = Math.max(st.idx + 1, firstOpportunity(cfg, tMs));
      left = OPPORTUNITY_BYTES;
    }
    let need = Math.max(1, pkt.size);
    while (need > left) {
      need -= left;
      g += 1;
      left = OPPORTUNITY_BYTES;
    }
    st.idx = g;
    st.left = left - need;
    pkt.t = Math.max(pkt.t, st.startUs + opportunityMs(cfg, g) * 1000);
    return undefined;
  },
});
