/**
 * The impairment keys, one table: the TOML name, what it sets in the model (Impairment), its
 * unit and converter, how netem encodes it, which stage of the userspace engine carries it,
 * its name in the userspace tools' REST API, and its text in `dune status` and graph labels.
 * Everything that lists impairment keys derives from here:
 *
 *   TOML link attributes, `dune set`, the API's link settings, schedules, trace CSV columns   (parse)
 *   GraphML edges: by TOML name in TOML units (graphml-resolve.ts; NetMirage's numeric
 *     latency/jitter/packetloss/queue_len in its own units, keyed by these keys)
 *   `dune status`, `dune plan`'s summary (status), graph labels (label)
 *   netem: packages/agent/src/impair/backends.ts NETEM (TypeScript wants one entry per key)
 *   the userspace tools: packages/impair/src/params.ts (rest; one parser per key, likewise)
 *   the userspace engine: the stage named by `engine` (packages/impair/src/engine/stages.ts)
 *
 * test/impairment-keys.test.ts takes every key through all of them: adding a key is an entry
 * here plus the entries the type checker then asks for in the backends.
 */
import type { Diagnostics } from './errors.js';
import { JITTER_DISTRIBUTIONS, type DeliveryTrace, type Impairment } from './model.js';
import { asChoice, asInt, asUnit, type Located } from './toml-values.js';
import { formatDurationUs, formatRate, parseDurationUs, parsePercent, parseQueue, parseRateBitsPerSec } from './units.js';

export type ImpairmentConvert = (d: Diagnostics, l: Located) => Partial<Impairment> | undefined;

export interface ImpairmentKeySpec {
  /** Model fields it sets (several: one slot, a later layer that sets one replaces all). */
  fields: readonly (keyof Impairment)[];
  /** The unit, as the docs say it. */
  unit: string;
  parse: ImpairmentConvert;
  /** netem's encoding (tc's word); the htb/nftables backends are named where they also carry it. */
  netem: string;
  /** The userspace engine's stage that carries it (a name of STAGES in packages/impair/src/engine/stages.ts). */
  engine: string;
  /** Its key in the userspace tools' REST API and shell (packages/impair/src/params.ts), in their units. */
  rest: string;
  /** Its words in `dune status` (and the plan's summary), or undefined when unset or said by another key. */
  status(i: Impairment): string | undefined;
  /** Its words in a graph's link label (`5ms ±1ms 1% loss 10Mbit`), or undefined. */
  label(i: Impairment): string | undefined;
}

const pct = (field: keyof Impairment): ImpairmentConvert => (d, l) => only(field, asUnit(d, l, 'a percentage', '1%', (v) => parsePercent(v)));

function only<K extends keyof Impairment>(key: K, value: Impairment[K] | undefined): Partial<Impairment> | undefined {
  return value === undefined ? undefined : ({ [key]: value } as Partial<Impairment>);
}

const pctText = (word: string, field: keyof Impairment) => (i: Impairment): string | undefined => (i[field] ? `${word} ${String(i[field])}%` : undefined);
const pctLabel = (word: string, field: keyof Impairment) => (i: Impairment): string | undefined => (i[field] ? `${String(i[field])}% ${word}` : undefined);
/** A key not shown on its own: another key's words say it (the jitter its distribution) or it only tunes one. */
export const NOT_SHOWN = (): undefined => undefined;
const none = NOT_SHOWN;

/** In the order `dune status` prints them and the docs list them. */
export const IMPAIRMENT_TABLE = {
  latency: {
    fields: ['delayUs'], unit: 'duration ("5ms")', netem: 'delay TIME', engine: 'delay', rest: 'delay',
    parse: (d, l) => only('delayUs', asUnit(d, l, 'a duration', '5ms', (v) => parseDurationUs(v))),
    status: (i) => (i.delayUs ? `delay ${formatDurationUs(i.delayUs)}` : undefined),
    label: (i) => (i.delayUs ? formatDurationUs(i.delayUs) : undefined),
  },
  jitter: {
    fields: ['jitterUs'], unit: 'duration ("1ms")', netem: 'delay TIME JITTER', engine: 'delay', rest: 'jitter',
    parse: (d, l) => only('jitterUs', asUnit(d, l, 'a duration', '1ms', (v) => parseDurationUs(v))),
    status: (i) => (i.jitterUs ? `jitter ${formatDurationUs(i.jitterUs)}${i.jitterDistribution ? ` ${i.jitterDistribution}` : ''}` : undefined),
    label: (i) => (i.jitterUs ? `±${formatDurationUs(i.jitterUs)}` : undefined),
  },
  jitter_distribution: {
    fields: ['jitterDistribution'], unit: JITTER_DISTRIBUTIONS.join(' | '), netem: 'distribution NAME', engine: 'delay', rest: 'distribution',
    parse: (d, l) => only('jitterDistribution', asChoice(d, l, JITTER_DISTRIBUTIONS)),
    // Said by jitter.
    status: none,
    label: none,
  },
  jitter_correlation: {
    fields: ['jitterCorrelationPct'], unit: 'percent', netem: 'delay TIME JITTER CORR', engine: 'delay', rest: 'jitterCorrelation',
    parse: pct('jitterCorrelationPct'), status: none, label: none,
  },
  loss: {
    fields: ['lossPct', 'lossGilbertElliott'], unit: 'percent', netem: 'loss random PCT (or nftables numgen)', engine: 'loss', rest: 'loss',
    parse: pct('lossPct'),
    status: (i) => (i.lossPct ? `loss ${i.lossPct}%` : i.lossGilbertElliott ? `loss gemodel p=${i.lossGilbertElliott.pPct}% r=${i.lossGilbertElliott.rPct}%` : undefined),
    label: (i) => [i.lossPct ? `${i.lossPct}% loss` : undefined, i.lossGilbertElliott ? `GE loss p=${i.lossGilbertElliott.pPct}%` : undefined].filter((x) => x !== undefined).join(' ') || undefined,
  },
  loss_correlation: {
    fields: ['lossCorrelationPct'], unit: 'percent', netem: 'loss random PCT CORR', engine: 'loss', rest: 'lossCorrelation',
    parse: pct('lossCorrelationPct'), status: none, label: none,
  },
  duplicate: {
    fields: ['duplicatePct'], unit: 'percent', netem: 'duplicate PCT', engine: 'duplicate', rest: 'duplicate',
    parse: pct('duplicatePct'), status: pctText('duplicate', 'duplicatePct'), label: pctLabel('dup', 'duplicatePct'),
  },
  corrupt: {
    fields: ['corruptPct'], unit: 'percent', netem: 'corrupt PCT', engine: 'corrupt', rest: 'corrupt',
    parse: pct('corruptPct'), status: pctText('corrupt', 'corruptPct'), label: pctLabel('corrupt', 'corruptPct'),
  },
  reorder: {
    fields: ['reorderPct'], unit: 'percent', netem: 'reorder PCT', engine: 'reorder', rest: 'reorder',
    parse: pct('reorderPct'), status: pctText('reorder', 'reorderPct'), label: pctLabel('reorder', 'reorderPct'),
  },
  reorder_gap: {
    fields: ['reorderGap'], unit: 'packets (integer)', netem: 'reorder PCT gap N', engine: 'reorder', rest: 'gap',
    // `dune set` and trace cells give it as text: digits are the integer.
    parse: (d, l) => only('reorderGap', asInt(d, typeof l.value === 'string' && /^\d+$/.test(l.value) ? { ...l, value: Number(l.value) } : l, 1, 2 ** 32 - 1)),
    status: none,
    label: none,
  },
  bw: {
    fields: ['rateBitsPerSec'], unit: 'rate ("100mbit")', netem: 'rate RATE (or htb)', engine: 'queue', rest: 'rate',
    parse: (d, l) => only('rateBitsPerSec', asUnit(d, l, 'a rate', '100mbit', (v) => parseRateBitsPerSec(v))),
    status: (i) => (i.rateBitsPerSec ? `rate ${formatRate(i.rateBitsPerSec)}` : undefined),
    label: (i) => (i.rateBitsPerSec ? formatRate(i.rateBitsPerSec) : undefined),
  },
  queue: {
    fields: ['queuePackets', 'queueBytes'], unit: 'packets ("100p") or bytes ("64kb")', netem: 'limit N (or htb leaf pfifo/bfifo)', engine: 'queue', rest: 'queue',
    parse: (d, l) => {
      const q = asUnit(d, l, 'a queue length', '100p', parseQueue);
      if (q === undefined) return undefined;
      return 'packets' in q ? { queuePackets: q.packets } : { queueBytes: q.bytes };
    },
    status: (i) => (i.queuePackets ? `queue ${i.queuePackets}p` : i.queueBytes ? `queue ${i.queueBytes}B` : undefined),
    label: none,
  },
} as const satisfies Record<string, ImpairmentKeySpec>;

export type ImpairmentTomlKey = keyof typeof IMPAIRMENT_TABLE;

/** The keys a running link takes (`dune set`, link.set, trace columns, schedules). */
export const LIVE_KEYS: string[] = Object.keys(IMPAIRMENT_TABLE);

/** The table's entries, typed for iteration. */
export const IMPAIRMENT_SPECS = IMPAIRMENT_TABLE as Record<ImpairmentTomlKey, ImpairmentKeySpec>;

/** The model fields no TOML key sets: a trace follower sets them (`trace = "FILE"` says so in a topology). */
export const FOLLOWER_FIELDS = ['deliveryTrace'] as const satisfies readonly (keyof Impairment)[];

/** The model fields a TOML key sets ([] for an unknown key). */
export function impairmentFieldsOf(key: string): (keyof Impairment)[] {
  return Object.hasOwn(IMPAIRMENT_TABLE, key) ? [...(IMPAIRMENT_TABLE as Record<string, ImpairmentKeySpec>)[key]!.fields] : [];
}

/** One direction's impairment in `dune status`'s words: `delay 5ms, loss 1%, rate 10 Mbit/s`, or `-`. */
export function describeImpairment(i: Impairment): string {
  const parts = Object.values(IMPAIRMENT_SPECS).map((k) => k.status(i)).filter((s): s is string => s !== undefined);
  if (i.deliveryTrace) parts.push(describeDeliveryTrace(i.deliveryTrace));
  return parts.join(', ') || '-';
}

/** A Mahimahi trace followed per packet, in a few words: `mahimahi trace 2250 opportunities over 6s (4.5 Mbit/s mean)`. */
export function describeDeliveryTrace(t: DeliveryTrace): string {
  const n = t.opportunitiesMs.length;
  const periodMs = t.opportunitiesMs[n - 1] ?? 0;
  const mean = periodMs > 0 ? ` (${formatRate(Math.round((n * 1500 * 8 * 1000) / periodMs))} mean)` : '';
  return `mahimahi trace ${n} opportunities over ${formatDurationUs(periodMs * 1000)}${mean}${t.loop ? ', looping' : ''}`;
}

/** One direction's impairment in a graph's few words: `5ms ±1ms 1% loss 10Mbit`. */
export function labelImpairment(i: Impairment): string {
  return Object.values(IMPAIRMENT_SPECS).map((k) => k.label(i)).filter((s): s is string => s !== undefined).join(' ');
}
