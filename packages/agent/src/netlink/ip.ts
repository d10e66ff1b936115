/** Addresses as the kernel wants them: network-order bytes, with their family. */
import { isIPv4, isIPv6 } from 'node:net';
import { ipText } from '@dune/topology';
import { AF_INET, AF_INET6 } from './constants.js';

export interface IpAddr {
  family: typeof AF_INET | typeof AF_INET6;
  bytes: Buffer;
}

export interface IpPrefix extends IpAddr {
  prefixLen: number;
}

/**
 * Parsed addresses by their text. A plan names the same few thousand addresses again and
 * again (Kdl: 1.1 M routes over ~7,000 distinct strings), and parsing each one anew was a
 * fifth of applying them. Results are shared: callers must not modify `bytes`.
 */
const CACHE_MAX = 1 << 16;
const ipCache = new Map<string, IpAddr>();
const prefixCache = new Map<string, IpPrefix>();

function remember<T>(cache: Map<string, T>, s: string, v: T): T {
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(s, v);
  return v;
}

export function parseIp(s: string): IpAddr {
  const hit = ipCache.get(s);
  if (hit !== undefined) return hit;
  if (isIPv4(s)) return remember(ipCache, s, { family: AF_INET, bytes: Buffer.from(s.split('.').map(Number)) });
  if (isIPv6(s)) return remember(ipCache, s, { family: AF_INET6, bytes: v6Bytes(s) });
  throw new Error(`not an IP address: ${JSON.stringify(s)}`);
}

/** `10.0.0.1/31`, `fd00::1/127`, `default` (needs `family`), or a bare address (host prefix). */
export function parsePrefix(s: string, familyForDefault?: number): IpPrefix {
  if (s === 'default') {
    const family = familyForDefault === AF_INET6 ? AF_INET6 : AF_INET;
    return { family, bytes: Buffer.alloc(family === AF_INET ? 4 : 16), prefixLen: 0 };
  }
  const hit = prefixCache.get(s);
  if (hit !== undefined) return hit;
  const slash = s.indexOf('/');
  const addr = parseIp(slash < 0 ? s : s.slice(0, slash));
  const max = addr.family === AF_INET ? 32 : 128;
  const len = slash < 0 ? max : Number(s.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > max) throw new Error(`bad prefix length in ${JSON.stringify(s)}`);
  return remember(prefixCache, s, { ...addr, prefixLen: len });
}

function v6Bytes(s: string): Buffer {
  let text = s;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const out = Buffer.alloc(16);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const b = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${(((b[0] ?? 0) << 8) | (b[1] ?? 0)).toString(16)}:${(((b[2] ?? 0) << 8) | (b[3] ?? 0)).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function formatIp(family: number, b: Buffer): string {
  return ipText(family === AF_INET ? b.subarray(0, 4) : b.subarray(0, 16));
}

export function parseMac(s: string): Buffer {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new Error(`not a MAC address: ${JSON.stringify(s)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * Each prefix of a route table entry (plan.ts RoutesOp.dst): one prefix, or a run
 * `FIRST-LAST/LEN` stepped through in network byte order, without text per prefix (a run's
 * prefixes never become strings on the way to the kernel). `bytes` is reused between calls:
 * copy it to keep it.
 */
export function forEachPrefix(entry: string, fn: (p: IpPrefix) => void, familyForDefault?: number): void {
  const dash = entry.indexOf('-');
  if (dash < 0) {
    fn(parsePrefix(entry, familyForDefault));
    return;
  }
  const slash = entry.lastIndexOf('/');
  const first = parseIp(entry.slice(0, dash));
  const last = parseIp(entry.slice(dash + 1, slash));
  const len = Number(entry.slice(slash + 1));
  const max = first.family === AF_INET ? 32 : 128;
  if (last.family !== first.family || !Number.isInteger(len) || len < 1 || len > max) throw new Error(`not a route run: ${JSON.stringify(entry)}`);
  // How many: (last - first) / 2^(max - len) + 1, checked once (not compared at every step).
  const big = (b: Buffer): bigint => BigInt(`0x${b.toString('hex')}`);
  const span = big(last.bytes) - big(first.bytes);
  const step = 1n << BigInt(max - len);
  if (span < 0n || span % step !== 0n || span / step >= 1n << 24n) {
    throw new Error(`the route run ${JSON.stringify(entry)} does not go up to its last prefix in steps of one /${len}`);
  }
  const count = Number(span / step) + 1;
  const cur: IpPrefix = { family: first.family, bytes: Buffer.from(first.bytes), prefixLen: len };
  // The step, one at bit `len - 1`: its byte and value.
  const at = (len - 1) >> 3;
  const add = 1 << (7 - ((len - 1) & 7));
  const bytes = cur.bytes;
  for (let k = 0; k < count; k++) {
    if (k > 0) {
      let carry = add;
      for (let i = at; i >= 0 && carry > 0; i--) {
        const v = (bytes[i] as number) + carry;
        bytes[i] = v & 255;
        carry = v >> 8;
      }
    }
    fn(cur);
  }
}

