/**
 * Route tables' runs (plan.ts, RoutesOp.dst): consecutive prefixes packed as FIRST-LAST/LEN and
 * expanded back to exactly the text the compiler gives a destination on its own.
 */
import { describe, expect, test } from 'vitest';
import { countRoutes, expandPrefixRun, expandRoutes, packPrefixRuns, type RoutesOp } from '../src/plan.js';
import { formatNetwork, parsePrefix } from '../src/cidr.js';
import { compile } from '../src/index.js';
import { syntheticInternet } from '../src/synthetic.js';
import { ops } from './helpers.js';

/** The next prefix of the same length, as the compiler computes it. */
function next(p: string): string | undefined {
  const pre = parsePrefix(p);
  if (typeof pre === 'string') return undefined;
  const bits = pre.family === 4 ? 32 : 128;
  const after = pre.addr + (1n << BigInt(bits - pre.len));
  return after >> BigInt(bits) === 0n ? formatNetwork({ ...pre, addr: after }) : undefined;
}

/** Every prefix from `first`, `count` of them, one at a time through the slow formatter. */
function walk(first: string, count: number): string[] {
  const out = [first];
  while (out.length < count) out.push(next(out[out.length - 1] as string) as string);
  return out;
}

describe('route runs', () => {
  test('IPv4 host routes, across octets', () => {
    const ps = walk('10.0.0.250/32', 12);
    const packed = packPrefixRuns(ps, next);
    expect(packed).toEqual(['10.0.0.250-10.0.1.5/32']);
    expect(expandPrefixRun(packed[0] as string)).toEqual(ps);
  });

  test('IPv6 host routes across a 65,536 boundary and through a zero group keep the canonical text', () => {
    for (const first of ['fd7a:d0::fffa/128', 'fd00:0:0:1::fff0/128', '2001:db8::1:fffe/128', 'fd7a:d0::/128']) {
      const ps = walk(first, 40);
      const packed = packPrefixRuns(ps, next);
      expect(packed).toHaveLength(1);
      expect(expandPrefixRun(packed[0] as string)).toEqual(ps);
    }
    expect(walk('fd00:0:0:1::fffe/128', 3)).toEqual(['fd00:0:0:1::fffe/128', 'fd00:0:0:1::ffff/128', 'fd00::1:0:0:1:0/128']);
  });

  test('shorter prefixes step by their size; gaps and changes of length start a new entry', () => {
    const ps = ['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24', '10.1.4.0/24', '10.1.5.0/32', '10.1.5.1/32', 'fd00:1::/64', 'fd00:1:0:1::/64'];
    const packed = packPrefixRuns(ps, next);
    expect(packed).toEqual(['10.1.0.0-10.1.2.0/24', '10.1.4.0/24', '10.1.5.0-10.1.5.1/32', 'fd00:1::-fd00:1:0:1::/64']);
    const op: RoutesOp = { op: 'routes', ns: 'n', dev: 'eth0', via: '10.128.0.1', dst: packed };
    expect(expandRoutes(op).map((r) => r.dst)).toEqual(ps);
    expect(countRoutes(op)).toBe(ps.length);
  });

  test('a malformed run is refused with its text', () => {
    expect(() => expandPrefixRun('10.0.0.9-10.0.0.2/32')).toThrow(/10.0.0.9-10.0.0.2\/32.*steps of one \/32/);
    expect(() => expandPrefixRun('10.0.0.0-10.0.0.1/24')).toThrow(/steps of one \/24/);
    expect(() => expandPrefixRun('10.0.0.1-fd00::1/32')).toThrow(/neither a prefix nor a run/);
  });

  test('a compiled internet: the packed tables hold exactly the routes of one op per destination, in fewer bytes', () => {
    const plan = compile(syntheticInternet({ nodes: 300, clients: 30, seed: 7 }));
    const tables = plan.hosts.flatMap((h) => h.ops).filter((o): o is RoutesOp => o.op === 'routes');
    const routes = ops(plan, 'route');
    expect(routes.length).toBe(tables.reduce((n, t) => n + countRoutes(t), 0));
    // Every route once per node (no destination twice in a node's tables).
    expect(new Set(routes.map((r) => `${r.ns} ${r.dst}`)).size).toBe(routes.length);
    // Each expanded prefix is one the compiler would write alone (its network in canonical text).
    for (const r of routes) {
      const p = parsePrefix(r.dst);
      expect(typeof p === 'string' ? p : formatNetwork(p)).toBe(r.dst);
    }
    const entries = tables.reduce((n, t) => n + t.dst.length, 0);
    expect(entries).toBeLessThan(routes.length);
  });
});
