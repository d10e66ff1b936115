/**
 * The stages, in the order packets meet them. The order is defined here and nowhere else.
 * See stage.ts for the contract every entry follows.
 */
import type { GilbertElliott, Impairment, JitterDistribution } from '@dune/topology';
import { normInv as normal, type Draws } from './random.js';
import { defineStage } from './stage.js';
import { trace } from './delivery-trace.js';

/** Cap of a heavy-tailed jitter draw, in standard deviations above the mean. */
export const JITTER_TAIL_CAP = 8;

// ---------- loss: Bernoulli (optionally correlated) or Gilbert-Elliott ----------

type LossConfig =
  | { kind: 'bernoulli'; pct: number; corrPct: number }
  | { kind: 'gilbert-elliott'; ge: GilbertElliott };

const loss = defineStage({
  doc: 'drops packets at random: Bernoulli with a probability (and correlation), or the Gilbert-Elliott two-state chain',
  config(p: Impairment): LossConfig | undefined {
    if (p.lossGilbertElliott) return { kind: 'gilbert-elliott', ge: p.lossGilbertElliott };
    if (p.lossPct && p.lossPct > 0) return { kind: 'bernoulli', pct: p.lossPct, corrPct: p.lossCorrelationPct ?? 0 };
    return undefined;
  },
  state: () => ({ bad: false }),
  process(_pkt, cfg, st, { draws }) {
    if (cfg.kind === 'bernoulli') return draws.correlatedChance('loss', cfg.pct, cfg.corrPct) ? 'loss' : undefined;
    // Loss is decided in the current state, then the chain moves (netem's gemodel: p = good→bad,
    // r = bad→good, 1-h = loss in bad, 1-k = loss in good), with independent draws for each.
    const { ge } = cfg;
    const lost = draws.chance(st.bad ? ge.oneMinusHPct : ge.oneMinusKPct);
    if (st.bad) {
      if (draws.chance(ge.rPct)) st.bad = false;
    } else if (draws.chance(ge.pPct)) {
      st.bad = true;
    }
    return lost ? 'loss' : undefined;
  },
});

// ---------- duplicate ----------

const duplicate = defineStage({
  doc: 'sends a second copy of a packet with a probability; the copy goes through the later stages on its own',
  config: (p: Impairment) => (p.duplicatePct && p.duplicatePct > 0 ? { pct: p.duplicatePct } : undefined),
  state: () => ({}),
  process(pkt, cfg, _st, ctx) {
    if (ctx.draws.chance(cfg.pct)) ctx.emit(ctx.clone(pkt));
    return undefined;
  },
});

// ---------- corrupt ----------

const corrupt = defineStage({
  doc: 'flips one random bit of a packet with a probability (in kernel mode after the IP header, so checksums catch it)',
  config: (p: Impairment) => (p.corruptPct && p.corruptPct > 0 ? { pct: p.corruptPct } : undefined),
  state: () => ({}),
  process(pkt, cfg, _st, { draws }) {
    if (!draws.chance(cfg.pct)) return undefined;
    const data = pkt.data;
    if (data === null || data.length <= pkt.corruptFrom) return undefined;
    const span = data.length - pkt.corruptFrom;
    const at = pkt.corruptFrom + Math.min(span - 1, Math.floor(draws.uniform() * span));
    data[at]! ^= 1 << Math.min(7, Math.floor(draws.uniform() * 8));
    pkt.corrupted = true;
    return undefined;
  },
});

// ---------- queue and rate ----------

interface RateConfig {
  /** 0: no rate; the limit then counts every packet the pipe holds, as netem's `limit`. */
  bitsPerSec: number;
  limitPackets: number;
  limitBytes: number;
}

/** Departures of the packets still in the rate queue, oldest first. */
class DepartureFifo {
  private times: number[] = [];
  private sizes: number[] = [];
  private head = 0;
  packets = 0;
  bytes = 0;
  /** When the link finishes sending the last queued packet. */
  busyUntil = 0;

  /** Forgets the packets that have left by `t`. */
  drain(t: number): void {
    while (this.head < this.times.length && this.times[this.head]! <= t) {
      this.packets -= 1;
      this.bytes -= this.sizes[this.head]!;
      this.head += 1;
    }
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }

  push(departure: number, size: number): void {
    this.times.push(departure);
    this.sizes.push(size);
    this.packets += 1;
    this.bytes += size;
    this.busyUntil = departure;
  }
}

const queue = defineStage({
  doc:
    'a bottleneck: packets are sent one after another at the rate (bits or bytes per second), waiting in a FIFO ' +
    'whose limit (packets or bytes) drops what does not fit, counted as queue drops; without a rate the limit ' +
    'counts every packet the direction holds, like netem\'s limit',
  config(p: Impairment): RateConfig | undefined {
    const bitsPerSec = p.rateBitsPerSec ?? 0;
    const limitPackets = p.queuePackets ?? 0;
    const limitBytes = p.queueBytes ?? 0;
    if (bitsPerSec <= 0 && limitPackets <= 0 && limitBytes <= 0) return undefined;
    return { bitsPerSec, limitPackets, limitBytes };
  },
  state: () => new DepartureFifo(),
  process(pkt, cfg, q, ctx) {
    if (cfg.bitsPerSec <= 0) {
      const { packets, bytes } = ctx.held;
      if (cfg.limitPackets > 0 && packets + 1 > cfg.limitPackets) return 'queue';
      if (cfg.limitBytes > 0 && bytes + pkt.size > cfg.limitBytes) return 'queue';
      return undefined;
    }
    q.drain(pkt.t);
    if (cfg.limitPackets > 0 && q.packets + 1 > cfg.limitPackets) return 'queue';
    if (cfg.limitBytes > 0 && q.bytes + pkt.size > cfg.limitBytes) return 'queue';
    const start = Math.max(pkt.t, q.busyUntil);
    const departure = start + (pkt.size * 8 * 1e6) / cfg.bitsPerSec;
    q.push(departure, pkt.size);
    pkt.t = departure;
    return undefined;
  },
});

// ---------- reorder ----------

const reorder = defineStage({
  doc:
    'sends a packet without the delay, so it overtakes delayed ones, with a probability; with a gap N only every ' +
    'N-th packet may be chosen (netem\'s reorder and gap; needs a delay to have an effect)',
  config: (p: Impairment) =>
    p.reorderPct && p.reorderPct > 0 ? { pct: p.reorderPct, gap: Math.max(1, p.reorderGap ?? 1) } : undefined,
  state: () => ({ counter: 0 }),
  process(pkt, cfg, st, { draws }) {
    // netem: `if (gap == 0 || counter < gap - 1 || !chance(reorder)) delay it, counter++;
    // else send it now, counter = 0` (tc turns a reorder without gap into gap 1).
    if (st.counter < cfg.gap - 1 || !draws.chance(cfg.pct)) {
      st.counter += 1;
      return undefined;
    }
    st.counter = 0;
    pkt.reordered = true;
    return undefined;
  },
});

// ---------- delay and jitter ----------

interface DelayConfig {
  delayUs: number;
  jitterUs: number;
  dist: JitterDistribution;
  corrPct: number;
}

const PARETO_ALPHA = 3;
const PARETO_MEAN = PARETO_ALPHA / (PARETO_ALPHA - 1);
const PARETO_SD = Math.sqrt(PARETO_ALPHA / ((PARETO_ALPHA - 1) ** 2 * (PARETO_ALPHA - 2)));
const PN_SD = Math.sqrt(0.25 ** 2 + 0.75 ** 2);

/** A draw of mean 0 and standard deviation 1 in the shape of `dist` (uniform: ±1 bounds instead). */
export function jitterShape(dist: JitterDistribution, u: number, draws: Draws): number {
  switch (dist) {
    case 'uniform':
      return 2 * u - 1;
    case 'normal':
      return normal(u);
    case 'pareto':
      return Math.min(JITTER_TAIL_CAP, pareto(u));
    case 'paretonormal':
      // netem's paretonormal table: 1/4 normal + 3/4 pareto, here rescaled to unit variance.
      return Math.min(JITTER_TAIL_CAP, (0.25 * draws.normal() + 0.75 * pareto(u)) / PN_SD);
  }
}

function pareto(u: number): number {
  return ((1 - u) ** (-1 / PARETO_ALPHA) - PARETO_MEAN) / PARETO_SD;
}

const delay = defineStage({
  doc:
    'holds each packet for the delay plus a jitter draw (uniform: ±jitter; normal, pareto, paretonormal: jitter is ' +
    'the standard deviation), never below zero; draws may be correlated; jitter can reorder packets, as in netem',
  config(p: Impairment): DelayConfig | undefined {
    const delayUs = p.delayUs ?? 0;
    const jitterUs = p.jitterUs ?? 0;
    if (delayUs <= 0 && jitterUs <= 0) return undefined;
    return { delayUs, jitterUs, dist: p.jitterDistribution ?? 'normal', corrPct: p.jitterCorrelationPct ?? 0 };
  },
  state: () => ({}),
  process(pkt, cfg, _st, { draws }) {
    if (pkt.reordered) return undefined;
    let d = cfg.delayUs;
    if (cfg.jitterUs > 0) {
      const u = draws.correlatedUniform('jitter', cfg.corrPct);
      d = Math.max(0, d + cfg.jitterUs * jitterShape(cfg.dist, u, draws));
    }
    pkt.t += d;
    return undefined;
  },
});

/** Every stage, in pipeline order. */
export const STAGES = { loss, duplicate, corrupt, queue, trace, reorder, delay } as const;
export type StageName = keyof typeof STAGES;
export const STAGE_ORDER = Object.keys(STAGES) as StageName[];
