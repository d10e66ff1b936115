/**
 * IPv4 and IPv6 addresses and prefixes, both as BigInt so one code path serves both
 * families (IPv6 needs 128 bits; the cost for IPv4 is negligible at our sizes).
 * Text in, text out: parsing accepts what people write in topology files (`10.0.0.1/24`,
 * `fc00:1::`, `::ffff:192.0.2.1/128`); formatting is canonical (RFC 5952 for IPv6).
 */

export type Family = 4 | 6;

export interface Prefix {
  family: Family;
  /** The address as written (host bits may be set: `10.0.0.1/24` is an interface address). */
  addr: bigint;
  len: number;
}

export const FAMILY_BITS: Record<Family, number> = { 4: 32, 6: 128 };

function bitsOf(family: Family): bigint {
  return family === 4 ? 32n : 128n;
}

/** Parses a bare IPv4 address; undefined when it is not one. */
export function parseV4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    // No leading zeros: `010` is octal to some tools and decimal to others.
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

/** Parses a bare IPv6 address (`::` compression and a trailing dotted quad allowed). */
export function parseV6(text: string): bigint | undefined {
  if (text.length === 0 || text.length > 45) return undefined;
  let s = text.toLowerCase();
  // A trailing IPv4 part becomes two hextets.
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.includes('.', lastColon)) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string): string[] | undefined => {
    if (h === '') return [];
    const groups = h.split(':');
    return groups.every((g) => /^[0-9a-f]{1,4}$/.test(g)) ? groups : undefined;
  };
  const head = parse(halves[0] ?? '');
  const tail = halves.length === 2 ? parse(halves[1] ?? '') : [];
  if (head === undefined || tail === undefined) return undefined;
  let groups: string[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    groups = [...head, ...Array<string>(missing).fill('0'), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

export function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 0xffn).toString()).join('.');
}

/** RFC 5952: lowercase, no leading zeros, the longest run (≥ 2) of zero groups as `::`. */
export function formatV6(v: bigint): string {
  // Four 32-bit words with six BigInt operations (a compile formats thousands of addresses;
  // a shift per group cost ~5 µs each), then the eight groups as plain numbers.
  const hi = v >> 64n;
  const lo = v & 0xffffffffffffffffn;
  const w = [Number(hi >> 32n), Number(hi & 0xffffffffn), Number(lo >> 32n), Number(lo & 0xffffffffn)];
  const groups: number[] = [];
  for (const x of w) groups.push(x >>> 16, x & 0xffff);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string => {
    let out = '';
    for (let i = from; i < to; i++) out += (i > from ? ':' : '') + (groups[i] as number).toString(16);
    return out;
  };
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

export function formatAddr(family: Family, v: bigint): string {
  return family === 4 ? formatV4(v) : formatV6(v);
}

/** Parses a bare address of either family. */
export function parseAddr(text: string): { family: Family; addr: bigint } | undefined {
  const t = text.trim();
  const v4 = parseV4(t);
  if (v4 !== undefined) return { family: 4, addr: v4 };
  const v6 = parseV6(t);
  if (v6 !== undefined) return { family: 6, addr: v6 };
  return undefined;
}

/**
 * `10.0.0.1/24`, `fd00::1/64`, or a bare address (a host prefix, /32 or /128, as DUNE's
 * ipnetwork reads `fc00:1::`). Returns an error message instead of throwing.
 */
export function parsePrefix(text: string): Prefix | string {
  const t = text.trim();
  const slash = t.indexOf('/');
  const addrText = slash < 0 ? t : t.slice(0, slash);
  const a = parseAddr(addrText);
  if (a === undefined) return `"${text}" is not an IPv4 or IPv6 address`;
  const max = FAMILY_BITS[a.family];
  if (slash < 0) return { family: a.family, addr: a.addr, len: max };
  const lenText = t.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
    return `"${text}" has an invalid prefix length (IPv${a.family} allows /0 to /${max})`;
  }
  return { family: a.family, addr: a.addr, len: Number(lenText) };
}

/** Number of addresses in a prefix of this length. */
export function blockSize(family: Family, len: number): bigint {
  return 1n << (bitsOf(family) - BigInt(len));
}

/** The prefix's first address (host bits cleared). */
export function networkOf(p: Prefix): bigint {
  const size = blockSize(p.family, p.len);
  return p.addr - (p.addr % size);
}

/** Inclusive range [first, last] of the addresses a prefix covers. */
export function rangeOf(p: Prefix): [bigint, bigint] {
  const first = networkOf(p);
  return [first, first + blockSize(p.family, p.len) - 1n];
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  const [a0, a1] = rangeOf(a);
  const [b0, b1] = rangeOf(b);
  return a0 <= b1 && b0 <= a1;
}

/** `addr/len` with the address as written. */
export function formatPrefix(p: Prefix): string {
  return `${formatAddr(p.family, p.addr)}/${p.len}`;
}

/** `network/len`: the route destination for a prefix. */
export function formatNetwork(p: Prefix): string {
  return `${formatAddr(p.family, networkOf(p))}/${p.len}`;
}

/** Inclusive ranges, sorted and merged, for skipping during allocation. */
export function mergeRanges(ranges: [bigint, bigint][]): [bigint, bigint][] {
  const sorted = [...ranges].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r[0] <= last[1] + 1n) {
      if (r[1] > last[1]) last[1] = r[1];
    } else {
      out.push([r[0], r[1]]);
    }
  }
  return out;
}

/**
 * Carves `count` aligned blocks of `/len` from `pool`, in order, skipping every block that
 * overlaps a reserved range. Returns the blocks' first addresses, or how many fit when the
 * pool runs out.
 */
export function carve(
  pool: Prefix,
  len: number,
  count: number,
  reserved: [bigint, bigint][],
): { ok: true; starts: bigint[] } | { ok: false; fitted: number } {
  const size = blockSize(pool.family, len);
  const [, poolEnd] = rangeOf(pool);
  const skip = mergeRanges(reserved);
  const starts: bigint[] = [];
  let c = networkOf(pool);
  let r = 0;
  while (starts.length < count) {
    const end = c + size - 1n;
    if (end > poolEnd) return { ok: false, fitted: starts.length };
    while (r < skip.length && (skip[r]?.[1] ?? 0n) < c) r++;
    const block = skip[r];
    if (block !== undefined && block[0] <= end) {
      // Jump past the reserved range, to the next aligned block.
      const next = block[1] + 1n;
      c = next % size === 0n ? next : next + size - (next % size);
      continue;
    }
    starts.push(c);
    c += size;
  }
  return { ok: true, starts };
}
