/**
 * Metrics: what a role's run printed → numbers. One table of parsers keyed by the name an
 * experiment file uses (`parse = "iperf3"`), each with its fields and their units.
 *
 *   iperf3   `iperf3 -J` output (TCP or UDP): rates, retransmits, jitter, loss, RTT
 *   ping     iputils ping's summary lines: min/avg/max/mdev (ms), loss (%)
 *   json     any JSON on stdout, by a dotted path (`end.sum_sent.retransmits`)
 *   regex    a pattern with one capture group, over stdout then stderr
 *   exit     the exit status (128 + signal number for a signal, as a shell shows it)
 *   time     the role's wall time, in seconds
 */
import { constants } from 'node:os';

export interface RoleOutput {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: string | null;
  seconds: number;
}

export interface MetricRequest {
  field?: string;
  pattern?: RegExp;
  take: 'first' | 'last' | 'mean' | 'sum' | 'count';
}

export interface ParserDef {
  /** Fields and their units, for parsers that have named fields. */
  fields?: Record<string, string>;
  unit?: string;
  extract(out: RoleOutput, m: MetricRequest): number;
}

/** A role's output that does not hold the metric asked for; the run records it as its error. */
export class MetricError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetricError';
  }
}

type Json = Record<string, unknown>;

function parseJson(text: string, what: string): unknown {
  const t = text.trim();
  if (t === '') throw new MetricError(`${what}: no output`);
  try {
    return JSON.parse(t);
  } catch {
    throw new MetricError(`${what}: the output is not JSON (${t.slice(0, 80)}${t.length > 80 ? '…' : ''})`);
  }
}

/** `a.b.0.c` into parsed JSON. */
export function jsonPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = Array.isArray(cur) ? cur[Number(part)] : (cur as Json)[part];
  }
  return cur;
}

function num(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  throw new MetricError(`${what}: not found`);
}

const IPERF3_FIELDS = {
  /** Goodput: what the receiver got (TCP), or the UDP sum. */
  bps: 'bit/s',
  sent_bps: 'bit/s',
  received_bps: 'bit/s',
  retransmits: '',
  bytes: 'B',
  jitter_ms: 'ms',
  lost_percent: '%',
  mean_rtt_ms: 'ms',
} as const;

function iperf3(out: RoleOutput, m: MetricRequest): number {
  const doc = parseJson(out.stdout, 'iperf3 -J') as Json;
  if (typeof doc['error'] === 'string') throw new MetricError(`iperf3: ${doc['error']}`);
  const end = (doc['end'] ?? {}) as Json;
  const udp = end['sum'] !== undefined && end['sum_received'] === undefined;
  const f = m.field ?? 'bps';
  const get = (p: string) => num(jsonPath(end, p), `iperf3 ${f} (end.${p})`);
  switch (f) {
    case 'bps':
      return udp ? get('sum.bits_per_second') : get('sum_received.bits_per_second');
    case 'sent_bps':
      return udp ? get('sum.bits_per_second') : get('sum_sent.bits_per_second');
    case 'received_bps':
      return udp ? get('sum.bits_per_second') * (1 - get('sum.lost_percent') / 100) : get('sum_received.bits_per_second');
    case 'retransmits':
      return get('sum_sent.retransmits');
    case 'bytes':
      return udp ? get('sum.bytes') : get('sum_received.bytes');
    case 'jitter_ms':
      return get('sum.jitter_ms');
    case 'lost_percent':
      return get('sum.lost_percent');
    case 'mean_rtt_ms':
      // iperf3 reports it in microseconds per stream; the mean over the streams.
      return mean(((end['streams'] ?? []) as Json[]).map((s, i) => num(jsonPath(s, 'sender.mean_rtt'), `iperf3 mean_rtt of stream ${i}`) / 1000));
    default:
      throw new MetricError(`iperf3: no field ${f}`);
  }
}

const PING_FIELDS = { min: 'ms', avg: 'ms', max: 'ms', mdev: 'ms', loss: '%', transmitted: '', received: '' } as const;

export interface PingSummary {
  transmitted: number;
  received: number;
  loss: number;
  min?: number;
  avg?: number;
  max?: number;
  mdev?: number;
}

/** iputils (and busybox) ping's last lines. */
export function parsePingSummary(text: string): PingSummary {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  if (!counts) throw new MetricError('ping: no "packets transmitted" summary in the output');
  const transmitted = Number(counts[1]);
  const received = Number(counts[2]);
  const loss = transmitted === 0 ? 0 : ((transmitted - received) / transmitted) * 100;
  const rtt = /(?:rtt|round-trip) min\/avg\/max(?:\/(?:mdev|stddev))? = ([\d.]+)\/([\d.]+)\/([\d.]+)(?:\/([\d.]+))? ms/.exec(text);
  const s: PingSummary = { transmitted, received, loss };
  if (rtt) {
    s.min = Number(rtt[1]);
    s.avg = Number(rtt[2]);
    s.max = Number(rtt[3]);
    if (rtt[4] !== undefined) s.mdev = Number(rtt[4]);
  }
  return s;
}

function ping(out: RoleOutput, m: MetricRequest): number {
  const s = parsePingSummary(out.stdout);
  const f = (m.field ?? 'avg') as keyof PingSummary;
  const v = s[f];
  if (v === undefined) throw new MetricError(`ping: no ${f} (${s.received} of ${s.transmitted} replies)`);
  return v;
}

function take(values: number[], how: MetricRequest['take'], what: string): number {
  if (how === 'count') return values.length;
  if (values.length === 0) throw new MetricError(`${what}: no match`);
  switch (how) {
    case 'first':
      return values[0] as number;
    case 'last':
      return values[values.length - 1] as number;
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'mean':
      return mean(values);
  }
}

function regex(out: RoleOutput, m: MetricRequest): number {
  const re = new RegExp((m.pattern as RegExp).source, 'g');
  const values: number[] = [];
  for (const text of [out.stdout, out.stderr]) {
    for (const hit of text.matchAll(re)) {
      const v = Number(hit[1]);
      if (Number.isFinite(v)) values.push(v);
    }
    if (values.length > 0) break;
  }
  return take(values, m.take, `regex /${re.source}/`);
}

function json(out: RoleOutput, m: MetricRequest): number {
  const doc = parseJson(out.stdout, 'json');
  const v = jsonPath(doc, m.field as string);
  if (Array.isArray(v)) return take(v.map((x, i) => num(x, `json ${m.field}.${i}`)), m.take, `json ${m.field}`);
  return num(v, `json ${m.field}`);
}

function exitStatus(out: RoleOutput): number {
  if (out.code !== null) return out.code;
  const n = (constants.signals as Record<string, number>)[out.signal ?? ''];
  return 128 + (n ?? 0);
}

export const METRIC_PARSERS = {
  iperf3: { fields: IPERF3_FIELDS, extract: iperf3 },
  ping: { fields: PING_FIELDS, extract: ping },
  json: { extract: json },
  regex: { extract: regex },
  exit: { unit: '', extract: exitStatus },
  time: { unit: 's', extract: (o: RoleOutput) => o.seconds },
} as const satisfies Record<string, ParserDef>;

export type MetricParser = keyof typeof METRIC_PARSERS;

/** One metric from one role's output; throws MetricError when the output does not hold it. */
export function extractMetric(parser: MetricParser, out: RoleOutput, m: MetricRequest): number {
  return (METRIC_PARSERS[parser] as ParserDef).extract(out, m);
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
