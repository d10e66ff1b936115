/**
 * Units as people write them in topology files. Each parser returns the value in the unit
 * its name carries, or throws a UnitError that lists the accepted units.
 *
 * Rates follow networking usage, not tc's: `bps`, `kbps`, `Mbps`, `Gbps` are *bits* per
 * second (tc reads `bps` as bytes). Bytes per second are written `B/s`, `KB/s`, `KiB/s`, ...
 */

export class UnitError extends Error {
  readonly accepted: readonly string[];
  constructor(message: string, accepted: readonly string[]) {
    super(message);
    this.name = 'UnitError';
    this.accepted = accepted;
  }
}

const NUMBER = /^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([^\s\d].*?)?\s*$/;

function split(text: string, what: string, accepted: readonly string[]): { value: number; unit: string } {
  const m = NUMBER.exec(text);
  if (!m || m[1] === undefined) {
    throw new UnitError(`"${text}" is not a ${what}: expected a number followed by a unit`, accepted);
  }
  const value = Number(m[1]);
  if (!Number.isFinite(value)) throw new UnitError(`"${text}" is not a finite number`, accepted);
  if (value < 0) throw new UnitError(`${what} "${text}" is negative`, accepted);
  return { value, unit: m[2] ?? '' };
}

const DURATION_US: Record<string, number> = {
  ns: 0.001,
  us: 1,
  'µs': 1,
  usec: 1,
  ms: 1000,
  msec: 1000,
  s: 1_000_000,
  sec: 1_000_000,
  secs: 1_000_000,
  m: 60_000_000,
  min: 60_000_000,
};
export const DURATION_UNITS = Object.keys(DURATION_US);

/** "5ms", "1.5s", "250us" → microseconds. A bare number is an error unless `bareUnit` is set. */
export function parseDurationUs(input: string | number, bareUnit?: keyof typeof DURATION_US): number {
  if (typeof input === 'number') {
    if (bareUnit === undefined) {
      throw new UnitError(`the duration ${input} has no unit; write it as "${input}ms"`, DURATION_UNITS);
    }
    return checkNonNegative(input, 'duration') * (DURATION_US[bareUnit] ?? 1);
  }
  const { value, unit } = split(input, 'duration', DURATION_UNITS);
  if (unit === '') {
    if (bareUnit === undefined) {
      throw new UnitError(`the duration "${input}" has no unit; write it as "${input}ms"`, DURATION_UNITS);
    }
    return value * (DURATION_US[bareUnit] ?? 1);
  }
  const f = DURATION_US[unit] ?? DURATION_US[unit.toLowerCase()];
  if (f === undefined) {
    throw new UnitError(`"${unit}" in "${input}" is not a unit of time`, DURATION_UNITS);
  }
  return round6(value * f);
}

const SI: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };
const IEC: Record<string, number> = { ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3, ti: 1024 ** 4 };

export const RATE_UNITS = [
  'bit', 'kbit', 'mbit', 'gbit', 'tbit', 'kibit', 'mibit', 'gibit',
  'bps', 'kbps', 'Mbps', 'Gbps', 'Tbps',
  'B/s', 'KB/s', 'MB/s', 'GB/s', 'KiB/s', 'MiB/s', 'GiB/s',
] as const;

/** "100gbit", "10mbit", "1.2Gbps", "512kbps", "10KiB/s" → bits per second. */
export function parseRateBitsPerSec(input: string | number, bareUnit?: 'bit' | 'kbit' | 'mbit' | 'KiB/s' | 'B/s'): number {
  if (typeof input === 'number') {
    if (bareUnit === undefined) {
      throw new UnitError(`the rate ${input} has no unit; write it as "${input}mbit"`, RATE_UNITS);
    }
    return parseRateBitsPerSec(`${checkNonNegative(input, 'rate')}${bareUnit}`);
  }
  const { value, unit } = split(input, 'rate', RATE_UNITS);
  if (unit === '') {
    if (bareUnit === undefined) {
      throw new UnitError(`the rate "${input}" has no unit; write it as "${input}mbit"`, RATE_UNITS);
    }
    return parseRateBitsPerSec(`${value}${bareUnit}`);
  }
  const bits = rateFactor(unit);
  if (bits === undefined) throw new UnitError(`"${unit}" in "${input}" is not a unit of rate`, RATE_UNITS);
  return Math.round(value * bits);
}

function rateFactor(unit: string): number | undefined {
  // bytes per second: an uppercase B before "/s" (or "ps" spelt "Bps" is ambiguous: refuse it).
  let m = /^([kKmMgGtT]i?)?B\/s$/.exec(unit);
  if (m) return 8 * prefix(m[1] ?? '');
  m = /^([kKmMgGtT]i?)?(?:bit|bits|b\/s|bit\/s|bps)$/.exec(unit);
  if (m) return prefix(m[1] ?? '');
  return undefined;
}

function prefix(p: string): number {
  const l = p.toLowerCase();
  return IEC[l] ?? SI[l] ?? NaN;
}

export const SIZE_UNITS = ['B', 'KB', 'MB', 'GB', 'KiB', 'MiB', 'GiB', 'k', 'kb', 'mb'] as const;

/** "1500", "64KiB", "1MB" → bytes. A bare number is bytes. */
export function parseSizeBytes(input: string | number): number {
  if (typeof input === 'number') return Math.round(checkNonNegative(input, 'size'));
  const { value, unit } = split(input, 'size', SIZE_UNITS);
  if (unit === '' || unit === 'B' || unit === 'b') return Math.round(value);
  const m = /^([kKmMgG]i?)B?$/.exec(unit);
  if (!m) throw new UnitError(`"${unit}" in "${input}" is not a unit of size`, SIZE_UNITS);
  return Math.round(value * prefix(m[1] ?? ''));
}

export const PERCENT_UNITS = ['%'] as const;

/** "10%", "0.5 %" → percent (0..100). A bare number is refused: 0.1 could mean 0.1 % or 10 %. */
export function parsePercent(input: string | number, opts: { bareIsFraction?: boolean } = {}): number {
  if (typeof input === 'number') {
    if (!opts.bareIsFraction) {
      throw new UnitError(`the percentage ${input} has no unit; write it as "${input}%" (bare numbers are ambiguous)`, PERCENT_UNITS);
    }
    const pct = checkNonNegative(input, 'probability') * 100;
    if (pct > 100) throw new UnitError(`the probability ${input} is above 1`, PERCENT_UNITS);
    return round6(pct);
  }
  const { value, unit } = split(input, 'percentage', PERCENT_UNITS);
  if (unit === '' && opts.bareIsFraction) return parsePercent(value, opts);
  if (unit !== '%') throw new UnitError(`"${input}" is not a percentage: write it as "${value}%"`, PERCENT_UNITS);
  if (value > 100) throw new UnitError(`the percentage "${input}" is above 100%`, PERCENT_UNITS);
  return round6(value);
}

export const QUEUE_UNITS = ['p', 'packets', ...SIZE_UNITS] as const;

/** A queue limit: "100p" / "100 packets" / 100 → packets; "64KiB" → bytes. */
export function parseQueue(input: string | number): { packets: number } | { bytes: number } {
  if (typeof input === 'number') return { packets: Math.round(checkNonNegative(input, 'queue length')) };
  const { value, unit } = split(input, 'queue length', QUEUE_UNITS);
  if (unit === '' || unit === 'p' || unit === 'packets' || unit === 'pkts') return { packets: Math.round(value) };
  try {
    return { bytes: parseSizeBytes(input) };
  } catch {
    throw new UnitError(`"${unit}" in "${input}" is not a unit of queue length`, QUEUE_UNITS);
  }
}

function checkNonNegative(v: number, what: string): number {
  if (!Number.isFinite(v)) throw new UnitError(`the ${what} ${v} is not a finite number`, []);
  if (v < 0) throw new UnitError(`the ${what} ${v} is negative`, []);
  return v;
}

function round6(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}

/** 1500000 → "1.5ms"; for summaries. */
export function formatDurationUs(us: number): string {
  if (us >= 1_000_000 && us % 1000 === 0) return `${us / 1_000_000}s`;
  if (us >= 1000) return `${round6(us / 1000)}ms`;
  return `${round6(us)}us`;
}

/** 1e8 → "100mbit" */
export function formatRate(bitsPerSec: number): string {
  for (const [u, f] of [['tbit', 1e12], ['gbit', 1e9], ['mbit', 1e6], ['kbit', 1e3]] as const) {
    if (bitsPerSec >= f) return `${round6(bitsPerSec / f)}${u}`;
  }
  return `${bitsPerSec}bit`;
}
