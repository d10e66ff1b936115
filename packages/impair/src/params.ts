/**
 * Parameters as people write them (REST body, shell, command line, config file) → the
 * model's `Impairment` per pipe, validated whole before anything is applied.
 *
 * Three forms, freely mixed in one body:
 *   - packet_queue's: `{"bandwidth": 125000, "buffer": 64000, "delay": 0.3, "loss": 0.01}`
 *     (bytes/s, bytes, seconds, probability; -1 or 0 = unlimited) applies to every pipe;
 *   - per pipe: `{"up": {"delay": "20ms", "loss": "1%"}, "down": {"rate": "10mbit"}}`
 *     (`both` addresses every pipe); per-pipe keys win over top-level ones;
 *   - the model's own keys with the unit in the name: `{"up": {"delayUs": 20000}}`.
 * Every friendly key takes a string with a unit ("20ms", "1%", "10mbit", "64KiB", "100p")
 * or a bare number in packet_queue's unit (seconds, probability, bytes/s, bytes); `null`
 * or "none" turns the setting off.
 */
import {
  choicesHint, FOLLOWER_FIELDS, formatDurationUs, formatRate, IMPAIRMENT_KEYS, IMPAIRMENT_TABLE, JITTER_DISTRIBUTIONS, parseDurationUs, parsePercent, parseQueue,
  parseRateBitsPerSec, parseSizeBytes, type DeliveryTrace, type GilbertElliott, type Impairment, type ImpairmentTomlKey, type JitterDistribution,
} from '@dune/topology';

export const LIMITS = {
  maxDelayUs: 60_000_000,
  minRateBitsPerSec: 8,
  maxRateBitsPerSec: 1e12,
  maxQueuePackets: 1_000_000,
  maxQueueBytes: 1024 ** 3,
  maxReorderGap: 1_000_000,
  maxStringLength: 64,
  maxTraceOpportunities: 10_000_000,
} as const;

export interface ParamProblem {
  /** Where: `up.delay`, `loss`, ... */
  path: string;
  message: string;
  /** What is accepted there. */
  valid?: string;
}

/** Bad parameters: every problem of the input at once; nothing was applied. */
export class ParamsError extends Error {
  readonly code = 'invalid-parameters';
  readonly problems: ParamProblem[];
  readonly validKeys: Record<string, string>;
  constructor(problems: ParamProblem[], pipeNames: readonly string[]) {
    const head = problems.length === 1 ? '' : `${problems.length} problems: `;
    super(head + problems.map((p) => `${p.path}: ${p.message}`).join('; '));
    this.name = 'ParamsError';
    this.problems = problems;
    this.validKeys = validKeys(pipeNames);
  }
}

/** A problem with one value; the key table's parsers throw it. */
class Bad extends Error {}

type Fields = Partial<Impairment>;

interface KeySpec {
  /** What is accepted, with range and units. */
  valid: string;
  /** The model fields this key owns (cleared by null, replaced as a whole by a value). */
  fields: (keyof Impairment)[];
  parse(v: unknown): Fields;
}

const DURATION_VALID = `a duration 0..${LIMITS.maxDelayUs / 1e6}s: "20ms", "1.5s", "250us" (a bare number is seconds)`;
const PROB_VALID = 'a percentage 0..100%: "1%", "0.5%" (a bare number is a probability 0..1)';

function str(v: unknown): string {
  if (typeof v !== 'string') throw new Bad(`expected a string, got ${describe(v)}`);
  if (v.length > LIMITS.maxStringLength) throw new Bad(`the string is ${v.length} characters long (at most ${LIMITS.maxStringLength})`);
  return v.trim();
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isFinite(v) ? `the number ${v}` : `${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v === 'object' ? 'an object' : typeof v}`;
}

function finite(v: unknown): number {
  if (typeof v !== 'number') throw new Bad(`expected a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) throw new Bad(`${v} is not a finite number`);
  return v;
}

function inRange(v: number, lo: number, hi: number, what: string): number {
  if (v < lo) throw new Bad(`${what} ${v} is ${v < 0 ? 'negative' : `below ${lo}`}`);
  if (v > hi) throw new Bad(`${what} ${v} is above the maximum ${hi}`);
  return v;
}

function int(v: unknown, lo: number, hi: number, what: string): number {
  const n = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : finite(v);
  if (!Number.isInteger(n)) throw new Bad(`${what} ${n} is not a whole number`);
  return inRange(n, lo, hi, what);
}

/** Runs a units.ts parser, turning its UnitError into a Bad with the same text. */
function unit<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new Bad((e as Error).message);
  }
}

function durationUs(v: unknown): number {
  const us = typeof v === 'number' ? finite(v) * 1e6 : unit(() => parseDurationUs(str(v), 's'));
  if (us < 0) throw new Bad(`${describe(v)} is a negative duration`);
  if (us > LIMITS.maxDelayUs) throw new Bad(`${describe(v)} is a duration above ${LIMITS.maxDelayUs / 1e6}s`);
  return Math.round(us * 1000) / 1000;
}

function percent(v: unknown): number {
  if (typeof v === 'number') finite(v);
  return unit(() => parsePercent(typeof v === 'number' ? v : str(v), { bareIsFraction: true }));
}

function isOff(v: unknown): boolean {
  return v === null || (typeof v === 'string' && ['none', 'off', 'unlimited'].includes(v.trim().toLowerCase()));
}

function rateBits(v: unknown): number {
  if (typeof v === 'number') {
    throw new Bad(`the rate ${v} has no unit: write it as "${v}mbit" or "${v}KB/s", or use rateBitsPerSec`);
  }
  const bits = unit(() => parseRateBitsPerSec(str(v)));
  if (bits === 0) return 0;
  return inRange(bits, LIMITS.minRateBitsPerSec, LIMITS.maxRateBitsPerSec, 'the rate in bit/s');
}

function queueFields(q: { packets: number } | { bytes: number }): Fields {
  if ('packets' in q) {
    const n = inRange(q.packets, 0, LIMITS.maxQueuePackets, 'the queue length in packets');
    return n === 0 ? {} : { queuePackets: n };
  }
  const b = inRange(q.bytes, 0, LIMITS.maxQueueBytes, 'the queue size in bytes');
  return b === 0 ? {} : { queueBytes: b };
}

function geModel(v: unknown): GilbertElliott {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new Bad(`expected an object like {"p": "1%", "r": "10%", "1-h": "100%", "1-k": "0%"}, got ${describe(v)}`);
  }
  const o = v as Record<string, unknown>;
  const names: Record<string, keyof GilbertElliott> = {
    p: 'pPct', r: 'rPct', '1-h': 'oneMinusHPct', '1-k': 'oneMinusKPct',
    pPct: 'pPct', rPct: 'rPct', oneMinusHPct: 'oneMinusHPct', oneMinusKPct: 'oneMinusKPct',
  };
  const ge: GilbertElliott = { pPct: NaN, rPct: NaN, oneMinusHPct: 100, oneMinusKPct: 0 };
  for (const [k, raw] of Object.entries(o)) {
    const field = names[k];
    if (field === undefined) throw new Bad(`"${k}" is not a Gilbert-Elliott parameter (${choicesHint(k, ['p', 'r', '1-h', '1-k'])})`);
    ge[field] = k.endsWith('Pct') ? inRange(finite(raw), 0, 100, k) : percent(raw);
  }
  if (Number.isNaN(ge.pPct) || Number.isNaN(ge.rPct)) throw new Bad('p and r are required');
  return ge;
}

/** A Mahimahi trace followed per packet, as a trace follower sends it. */
function deliveryTrace(v: unknown): DeliveryTrace {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Bad(`expected {"opportunitiesMs": [1, 2, ...], "loop": false, "epoch": 0}, got ${describe(v)}`);
  const o = v as Record<string, unknown>;
  const opps = o.opportunitiesMs;
  if (!Array.isArray(opps) || opps.length === 0) throw new Bad('opportunitiesMs must be a non-empty array of milliseconds');
  if (opps.length > LIMITS.maxTraceOpportunities) throw new Bad(`a trace of ${opps.length} opportunities is above the maximum ${LIMITS.maxTraceOpportunities}`);
  let prev = 0;
  for (const [i, x] of opps.entries()) {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < prev) throw new Bad(`opportunitiesMs[${i}] ${describe(x)} is not a whole millisecond at or after ${prev}`);
    prev = x;
  }
  if (prev <= 0) throw new Bad('the last opportunity must be above 0 ms');
  if (typeof o.loop !== 'boolean') throw new Bad('loop must be true or false');
  const epoch = finite(o.epoch);
  return { opportunitiesMs: opps as number[], loop: o.loop, epoch };
}

function canonPct(field: keyof Impairment): KeySpec {
  return { valid: 'a number 0..100 (percent)', fields: [field], parse: (v) => ({ [field]: inRange(finite(v), 0, 100, field) }) };
}
function canonUs(field: keyof Impairment): KeySpec {
  return { valid: `a number of microseconds 0..${LIMITS.maxDelayUs}`, fields: [field], parse: (v) => ({ [field]: inRange(finite(v), 0, LIMITS.maxDelayUs, field) }) };
}
function friendlyPct(field: keyof Impairment): KeySpec {
  return { valid: PROB_VALID, fields: [field], parse: (v) => ({ [field]: percent(v) }) };
}
function distribution(field: keyof Impairment): KeySpec {
  return {
    valid: `one of ${JITTER_DISTRIBUTIONS.join(', ')}`,
    fields: [field],
    parse(v) {
      const s = str(v);
      if (!(JITTER_DISTRIBUTIONS as readonly string[]).includes(s)) {
        throw new Bad(`"${s}" is not a jitter distribution: ${choicesHint(s, JITTER_DISTRIBUTIONS)}`);
      }
      return { [field]: s as JitterDistribution };
    },
  };
}

const LOSS_SLOT: (keyof Impairment)[] = ['lossPct', 'lossGilbertElliott'];
const QUEUE_SLOT: (keyof Impairment)[] = ['queuePackets', 'queueBytes'];

const pctShown = (x: number | undefined): string => `${x ?? 0}%`;
type Shown = string | number | Record<string, string> | null;

/**
 * Our keys in the REST API's terms, one per key of the impairment key table (topology's
 * impairment-keys.ts, whose `rest` names them here), with their friendly form for GET.
 */
const FRIENDLY: Record<ImpairmentTomlKey, KeySpec & { show(p: Impairment): Shown }> = {
  latency: { valid: DURATION_VALID, fields: ['delayUs'], parse: (v) => ({ delayUs: durationUs(v) }), show: (p) => formatDurationUs(p.delayUs ?? 0) },
  jitter: { valid: DURATION_VALID, fields: ['jitterUs'], parse: (v) => ({ jitterUs: durationUs(v) }), show: (p) => formatDurationUs(p.jitterUs ?? 0) },
  jitter_distribution: { ...distribution('jitterDistribution'), show: (p) => p.jitterDistribution ?? 'normal' },
  jitter_correlation: { ...friendlyPct('jitterCorrelationPct'), show: (p) => pctShown(p.jitterCorrelationPct) },
  loss: { valid: PROB_VALID, fields: LOSS_SLOT, parse: (v) => ({ lossPct: percent(v) }), show: (p) => pctShown(p.lossPct) },
  loss_correlation: { ...friendlyPct('lossCorrelationPct'), show: (p) => pctShown(p.lossCorrelationPct) },
  duplicate: { ...friendlyPct('duplicatePct'), show: (p) => pctShown(p.duplicatePct) },
  corrupt: { ...friendlyPct('corruptPct'), show: (p) => pctShown(p.corruptPct) },
  reorder: { ...friendlyPct('reorderPct'), show: (p) => pctShown(p.reorderPct) },
  reorder_gap: {
    valid: `the reorder gap: a whole number 0..${LIMITS.maxReorderGap}`,
    fields: ['reorderGap'],
    parse: (v) => ({ reorderGap: int(v, 0, LIMITS.maxReorderGap, 'the gap') }),
    show: (p) => p.reorderGap ?? 0,
  },
  bw: {
    valid: `a rate ${LIMITS.minRateBitsPerSec}bit..1tbit with a unit: "10mbit", "512kbps" (bits), "1MB/s", "64KiB/s" (bytes); "none": unlimited`,
    fields: ['rateBitsPerSec'],
    parse(v) {
      const bits = rateBits(v);
      return bits === 0 ? {} : { rateBitsPerSec: bits };
    },
    show: (p) => (p.rateBitsPerSec ? formatRate(p.rateBitsPerSec) : 'unlimited'),
  },
  queue: {
    valid: `a queue limit: packets ("100p", or a bare number up to ${LIMITS.maxQueuePackets}) or bytes ("64KiB", up to 1GiB); 0: unlimited`,
    fields: QUEUE_SLOT,
    parse(v) {
      if (typeof v === 'number') return queueFields({ packets: int(v, 0, LIMITS.maxQueuePackets, 'the queue length') });
      const q = unit(() => parseQueue(str(v)));
      if ('packets' in q && !Number.isInteger(Number(q.packets))) throw new Bad('a queue length in packets is a whole number');
      return queueFields(q);
    },
    show: (p) => (p.queuePackets ? `${p.queuePackets}p` : p.queueBytes ? `${p.queueBytes}B` : 'unlimited'),
  },
};

/** packet_queue's own two beside ours, in its units when bare. */
const PACKET_QUEUE: Record<string, KeySpec> = {
  bandwidth: {
    valid: 'a rate: bytes per second as a bare number (-1 or 0: unlimited), or "10mbit", "1MB/s"',
    fields: ['rateBitsPerSec'],
    parse(v) {
      if (typeof v === 'number') {
        const n = finite(v);
        if (n === -1 || n === 0) return {};
        const bits = inRange(n, 0, LIMITS.maxRateBitsPerSec / 8, 'the bandwidth in bytes/s') * 8;
        return { rateBitsPerSec: inRange(Math.round(bits), LIMITS.minRateBitsPerSec, LIMITS.maxRateBitsPerSec, 'the bandwidth in bit/s') };
      }
      const bits = rateBits(v);
      return bits === 0 ? {} : { rateBitsPerSec: bits };
    },
  },
  buffer: {
    valid: `a queue size: bytes as a bare number (-1 or 0: unlimited) up to ${LIMITS.maxQueueBytes}, or "64KiB"`,
    fields: QUEUE_SLOT,
    parse(v) {
      if (typeof v === 'number' && (v === -1 || v === 0)) return {};
      const bytes = typeof v === 'number' ? finite(v) : unit(() => parseSizeBytes(str(v)));
      return queueFields({ bytes: Math.round(inRange(bytes, 0, LIMITS.maxQueueBytes, 'the buffer in bytes')) });
    },
  },
};

/** The Gilbert-Elliott model (TOML's loss_model table), shown after the loss keys. */
const GEMODEL: KeySpec & { show(p: Impairment): Shown } = {
  valid: 'Gilbert-Elliott loss: {"p": "1%", "r": "10%", "1-h": "100%", "1-k": "0%"} (p: good→bad, r: bad→good, 1-h: loss when bad, default 100%, 1-k: loss when good, default 0%)',
  fields: LOSS_SLOT,
  parse: (v) => ({ lossGilbertElliott: geModel(v) }),
  show: (p) =>
    p.lossGilbertElliott
      ? { p: pctShown(p.lossGilbertElliott.pPct), r: pctShown(p.lossGilbertElliott.rPct), '1-h': pctShown(p.lossGilbertElliott.oneMinusHPct), '1-k': pctShown(p.lossGilbertElliott.oneMinusKPct) }
      : null,
};

/** The model's own keys, the unit in the name (all but the trace followers' FOLLOWER_KEYS). */
const CANONICAL: Record<Exclude<keyof Impairment, (typeof FOLLOWER_FIELDS)[number]>, KeySpec> = {
  delayUs: canonUs('delayUs'),
  jitterUs: canonUs('jitterUs'),
  jitterDistribution: distribution('jitterDistribution'),
  jitterCorrelationPct: canonPct('jitterCorrelationPct'),
  lossPct: { ...canonPct('lossPct'), fields: LOSS_SLOT },
  lossCorrelationPct: canonPct('lossCorrelationPct'),
  lossGilbertElliott: {
    valid: '{"pPct", "rPct", "oneMinusHPct", "oneMinusKPct"}: numbers 0..100',
    fields: LOSS_SLOT,
    parse: (v) => ({ lossGilbertElliott: geModel(v) }),
  },
  duplicatePct: canonPct('duplicatePct'),
  corruptPct: canonPct('corruptPct'),
  reorderPct: canonPct('reorderPct'),
  reorderGap: { valid: `a whole number 0..${LIMITS.maxReorderGap}`, fields: ['reorderGap'], parse: (v) => ({ reorderGap: int(v, 0, LIMITS.maxReorderGap, 'reorderGap') }) },
  rateBitsPerSec: {
    valid: `a number of bits per second, 0 (unlimited) or ${LIMITS.minRateBitsPerSec}..${LIMITS.maxRateBitsPerSec}`,
    fields: ['rateBitsPerSec'],
    parse(v) {
      const n = finite(v);
      return n === 0 ? {} : { rateBitsPerSec: inRange(n, LIMITS.minRateBitsPerSec, LIMITS.maxRateBitsPerSec, 'rateBitsPerSec') };
    },
  },
  queuePackets: {
    valid: `a whole number 0..${LIMITS.maxQueuePackets} (0: unlimited)`,
    fields: ['queuePackets'],
    parse: (v) => queueFields({ packets: int(v, 0, LIMITS.maxQueuePackets, 'queuePackets') }),
  },
  queueBytes: {
    valid: `a whole number 0..${LIMITS.maxQueueBytes} (0: unlimited)`,
    fields: ['queueBytes'],
    parse: (v) => queueFields({ bytes: int(v, 0, LIMITS.maxQueueBytes, 'queueBytes') }),
  },
};

const TABLE_KEYS = Object.keys(IMPAIRMENT_TABLE) as ImpairmentTomlKey[];

/** Each table key under its REST name; the Gilbert-Elliott model follows the loss keys. */
function friendlyEntries(): [string, KeySpec & { show(p: Impairment): Shown }][] {
  return TABLE_KEYS.flatMap((k) => {
    const e: [string, KeySpec & { show(p: Impairment): Shown }] = [IMPAIRMENT_TABLE[k].rest, FRIENDLY[k]];
    return k === 'loss_correlation' ? [e, ['gemodel', GEMODEL]] : [e];
  });
}

/** Every key a pipe accepts: the impairment key table's, packet_queue's and the model's. */
export const PARAM_KEYS: Record<string, KeySpec> = Object.fromEntries([
  // packet_queue's four, in its units when bare
  ...friendlyEntries().filter(([k]) => k === 'delay' || k === 'loss'),
  ...Object.entries(PACKET_QUEUE),
  // the rest of the table, friendly
  ...friendlyEntries().filter(([k]) => k !== 'delay' && k !== 'loss'),
  // the model's own keys
  ...IMPAIRMENT_KEYS.filter((k): k is keyof typeof CANONICAL => Object.hasOwn(CANONICAL, k)).map((k) => [k, CANONICAL[k]]),
]);

/** Model keys a trace follower sets (`dune trace run`): taken in a pipe's object, not offered to people. */
const FOLLOWER_KEYS: Record<string, KeySpec> = {
  deliveryTrace: {
    valid: '{"opportunitiesMs": [...], "loop": bool, "epoch": number}: a Mahimahi trace followed per packet',
    fields: ['deliveryTrace'],
    parse: (v) => ({ deliveryTrace: deliveryTrace(v) }),
  },
};

/** Keys a pipe accepts, and `both` / pipe names at the top level. */
export function validKeys(pipeNames: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pipeNames) out[p] = `an object of the keys below, for the ${p} direction only`;
  out.both = 'an object of the keys below, for every direction';
  for (const [k, spec] of Object.entries(PARAM_KEYS)) out[k] = spec.valid;
  return out;
}

/** Applies one pipe's patch to `target`, collecting problems (and, when not strict, unknown keys as warnings). */
function applyPipePatch(target: Impairment, patch: Record<string, unknown>, path: string, problems: ParamProblem[], warnings?: ParamProblem[]): void {
  for (const [key, value] of Object.entries(patch)) {
    const spec = PARAM_KEYS[key] ?? (Object.hasOwn(FOLLOWER_KEYS, key) ? FOLLOWER_KEYS[key] : undefined);
    const at = path ? `${path}.${key}` : key;
    if (spec === undefined) {
      (warnings ?? problems).push({ path: at, message: `unknown key "${key}"${warnings ? ' ignored' : ''}; ${choicesHint(key, Object.keys(PARAM_KEYS))}` });
      continue;
    }
    try {
      const fields = isOff(value) ? {} : spec.parse(value);
      for (const f of spec.fields) delete target[f];
      Object.assign(target, fields);
    } catch (e) {
      if (!(e instanceof Bad)) throw e;
      problems.push({ path: at, message: e.message, valid: spec.valid });
    }
  }
}

function asObject(v: unknown, path: string, problems: ParamProblem[]): Record<string, unknown> | undefined {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  problems.push({ path: path || '(body)', message: `expected a JSON object, got ${describe(v)}` });
  return undefined;
}

function rank(path: string): number {
  return path === '' ? 0 : path === 'both' ? 1 : 2;
}

export interface MergeOptions {
  /**
   * false: unknown keys are left out and listed in `warnings`, as packet_queue ignores them
   * (its clients send keys it never knew). Default true: an unknown key is a problem.
   */
  strict?: boolean;
  /** Filled with the keys ignored when not strict. */
  warnings?: ParamProblem[];
}

/**
 * The parameters of every pipe after merging `body` into `current`. Throws ParamsError,
 * listing every problem, when anything is wrong; `current` is never modified.
 */
export function mergeParams(current: Record<string, Impairment>, body: unknown, opts: MergeOptions = {}): Record<string, Impairment> {
  const warnings = opts.strict === false ? (opts.warnings ?? []) : undefined;
  const pipeNames = Object.keys(current);
  const problems: ParamProblem[] = [];
  const next: Record<string, Impairment> = structuredClone(current);
  const obj = asObject(body, '', problems);
  if (obj) {
    // Top-level keys, then `both`, then each pipe's own: later wins.
    const layers: [path: string, targets: string[], patch: Record<string, unknown>][] = [['', pipeNames, {}]];
    for (const [k, v] of Object.entries(obj)) {
      if (k === 'both' || pipeNames.includes(k)) {
        const o = asObject(v, k, problems);
        if (o) layers.push([k, k === 'both' ? pipeNames : [k], o]);
      } else if (k in PARAM_KEYS) {
        layers[0]![2][k] = v;
      } else {
        const choices = [...pipeNames, 'both', ...Object.keys(PARAM_KEYS)];
        (warnings ?? problems).push({ path: k, message: `unknown key "${k}"${warnings ? ' ignored' : ''}; ${choicesHint(k, choices)}` });
      }
    }
    layers.sort((a, b) => rank(a[0]) - rank(b[0]));
    for (const [path, targets, patch] of layers) {
      // Parsed once so that each problem is reported once, then applied to every target.
      applyPipePatch({}, patch, path, problems, warnings);
      for (const name of targets) applyPipePatch(next[name]!, patch, path, [], []);
    }
  }
  if (problems.length > 0) throw new ParamsError(problems, pipeNames);
  return next;
}

/** Notes about settings that are valid but have no effect as they stand. */
export function paramNotes(byPipe: Record<string, Impairment>): string[] {
  const notes: string[] = [];
  for (const [name, p] of Object.entries(byPipe)) {
    if ((p.reorderPct ?? 0) > 0 && !(p.delayUs || p.jitterUs)) notes.push(`${name}: reorder has no effect without a delay`);
    if ((p.jitterCorrelationPct ?? 0) > 0 && !p.jitterUs) notes.push(`${name}: jitterCorrelation has no effect without jitter`);
    if ((p.lossCorrelationPct ?? 0) > 0 && p.lossGilbertElliott) notes.push(`${name}: lossCorrelation does not apply to the Gilbert-Elliott model`);
  }
  return notes;
}

/** The friendly form of one pipe's parameters, every key present ("0ms", "0%", "unlimited"). */
export function formatParams(p: Impairment): Record<string, Shown> {
  return Object.fromEntries(friendlyEntries().map(([k, spec]) => [k, spec.show(p)]));
}

/** packet_queue's GET /pipes body for one pipe: bandwidth bytes/s, buffer bytes, delay s, loss 0..1. */
export function packetQueueForm(p: Impairment): { bandwidth: number; buffer: number; delay: number; loss: number } {
  return {
    bandwidth: p.rateBitsPerSec ? p.rateBitsPerSec / 8 : -1,
    buffer: p.queueBytes ?? -1,
    delay: (p.delayUs ?? 0) / 1e6,
    loss: (p.lossPct ?? 0) / 100,
  };
}
