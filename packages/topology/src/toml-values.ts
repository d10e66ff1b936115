/**
 * Leaf values of a DUNE TOML file: type checks and conversions that report into a
 * Diagnostics (and return undefined) instead of throwing, so one run finds every error.
 */
import { isIP } from 'node:net';
import type { TomlValueWithoutBigInt } from 'smol-toml';
import { choicesHint, type Diagnostics, type SourceLoc } from './errors.js';
import type { TomlPath } from './toml-locate.js';
import { UnitError } from './units.js';

export type TomlValue = TomlValueWithoutBigInt;
export type TomlTable = { [key: string]: TomlValue };

/** A value from the file with where it was written. */
export interface Located<T = TomlValue> {
  value: T;
  path: TomlPath;
  /** Where the value starts. */
  loc: SourceLoc;
  /** Where its key is written (the header for a table). */
  keyLoc: SourceLoc;
}

export function isTable(v: unknown): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** "a string", "an integer", ... as TOML names its types. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the float ${v}`;
  if (typeof v === 'boolean') return `the boolean ${v}`;
  if (v instanceof Date) return 'a date-time';
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  return 'a value of unknown type';
}

const BARE = /^[A-Za-z0-9_-]+$/;

/** ['topology', 'links', 1, 'r1:eth1'] → `topology.links[1]."r1:eth1"` */
export function pathText(path: TomlPath): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += `${out === '' ? '' : '.'}${BARE.test(p) ? p : JSON.stringify(p)}`;
  }
  return out === '' ? 'the top level' : out;
}

/** Assigns an own property, also for keys such as `__proto__` that plain assignment would not create. */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

export function badType(d: Diagnostics, l: Located<unknown>, expected: string, hint?: string): undefined {
  d.error('bad-type', `${pathText(l.path)} must be ${expected}, got ${describeValue(l.value)}`, l.loc, hint);
  return undefined;
}

export function badValue(d: Diagnostics, l: Located<unknown>, message: string, hint?: string): undefined {
  d.error('bad-value', message, l.loc, hint);
  return undefined;
}

export function asString(d: Diagnostics, l: Located, hint?: string): string | undefined {
  return typeof l.value === 'string' ? l.value : badType(d, l, 'a string', hint);
}

export function asBool(d: Diagnostics, l: Located): boolean | undefined {
  return typeof l.value === 'boolean' ? l.value : badType(d, l, 'true or false');
}

export function asInt(d: Diagnostics, l: Located, min: number, max: number): number | undefined {
  const v = l.value;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    return badType(d, l, max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`);
  }
  if (v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`;
    return badValue(d, l, `${pathText(l.path)} is ${v}; it must be ${range}`);
  }
  return v;
}

export function asChoice<C extends string>(d: Diagnostics, l: Located, choices: readonly C[]): C | undefined {
  if (typeof l.value !== 'string') return badType(d, l, `one of ${choices.map((c) => `"${c}"`).join(', ')}`);
  const v = l.value;
  if ((choices as readonly string[]).includes(v)) return v as C;
  return badValue(d, l, `${pathText(l.path)} is "${v}", which is not a known value`, choicesHint(v, choices));
}

/** A value with a unit (duration, rate, percentage, ...): a UnitError becomes `bad-unit`. */
export function asUnit<R>(d: Diagnostics, l: Located, what: string, example: string, parse: (v: string | number) => R): R | undefined {
  if (typeof l.value !== 'string' && typeof l.value !== 'number') return badType(d, l, `${what} such as "${example}"`);
  try {
    return parse(l.value);
  } catch (e) {
    if (!(e instanceof UnitError)) throw e;
    const accepted = e.accepted.length > 0 ? `accepted units: ${e.accepted.join(', ')}` : `write it as "${example}"`;
    d.error('bad-unit', `${pathText(l.path)}: ${e.message}`, l.loc, `write ${what} such as "${example}"; ${accepted}`);
    return undefined;
  }
}

/** An IP address without a prefix length: the reason it is not one, or undefined. */
export function ipProblem(text: string): string | undefined {
  return isIP(text) === 0 ? `"${text}" is not an IPv4 or IPv6 address` : undefined;
}

/**
 * "10.0.0.1/24" → itself; a bare address gets /32 or /128 when `bareHost` is set.
 * Returns the CIDR text or a reason it is not one.
 */
export function parseCidr(text: string, bareHost: boolean): { cidr: string; family: 4 | 6; len: number } | { problem: string } {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const ipVersion = isIP(addr);
  if (ipVersion === 0) return { problem: `"${addr}" is not an IPv4 or IPv6 address` };
  const family = ipVersion === 4 ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  if (slash < 0) {
    if (!bareHost) return { problem: `"${text}" has no prefix length; write it as "${text}/${max === 32 ? 16 : 64}"` };
    return { cidr: `${text}/${max}`, family, len: max };
  }
  const lenText = text.slice(slash + 1);
  const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!(len >= 0 && len <= max)) return { problem: `"${lenText}" in "${text}" is not a prefix length (0 to ${max} for IPv${family})` };
  return { cidr: text, family, len };
}

/** Linux interface names: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace. */
export function ifnameProblem(name: string): string | undefined {
  if (name === '') return 'an interface name cannot be empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > 15) return `the interface name "${name}" is ${bytes} bytes long; Linux allows at most 15`;
  if (name === '.' || name === '..') return `"${name}" is not a valid interface name`;
  const bad = /[/:\s]/u.exec(name)?.[0];
  if (bad !== undefined) return `the interface name "${name}" contains ${JSON.stringify(bad)}, which Linux refuses`;
  return undefined;
}

export const IFNAME_HINT = 'interface names are at most 15 bytes, without "/", ":" or whitespace, e.g. "eth0" or "to-r2"';

/** A unicast MAC address written as six colon-separated hex pairs; the reason it is not, or undefined. */
export function macProblem(mac: string): string | undefined {
  if (!/^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/.test(mac)) return `"${mac}" is not a MAC address (six hex pairs such as "02:00:00:00:00:01")`;
  const first = parseInt(mac.slice(0, 2), 16);
  if (first & 1) return `"${mac}" is a multicast MAC address; an interface needs a unicast one (even first byte)`;
  if (/^(00:){5}00$/.test(mac)) return `"${mac}" is the all-zero MAC address`;
  return undefined;
}

/** Plain JSON-like data for template contexts: dates become their TOML text. */
export function plainValue(v: TomlValue): unknown {
  if (Array.isArray(v)) return v.map(plainValue);
  if (v instanceof Date) return v.toISOString();
  if (isTable(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) setOwn(out, k, plainValue(v[k] as TomlValue));
    return out;
  }
  return v;
}
