/**
 * Stage 2: IPv4 and IPv6 addresses.
 *
 * - Every link gets a /linkV4Len and a /linkV6Len subnet from the link pools, in link order;
 *   its a end takes the first address, its b end the second (for /31 and /127 the subnet's
 *   first two, RFC 3021 / RFC 6164; for wider subnets the first two after the network address).
 * - Every node gets a /32 and a /128 from the node pools, in node order. The pool's first
 *   address (and for IPv4 its last) is never handed out: `10.0.0.0` and the IPv6
 *   subnet-router anycast address are poor loopbacks.
 * - Every L2 segment (segments.ts) with routers on it gets one IPv4 and one IPv6 subnet from
 *   the segment pools, just wide enough for its members (IPv4: members + network + broadcast;
 *   IPv6: a /64 unless the pool is narrower), largest first; member i takes address i + 1. A
 *   switch's own ends get no address, and segment links take nothing from the link pools.
 * - The user's `addrs` are added to their interfaces as written, and nothing generated
 *   overlaps any of them (the whole prefix, not just the address, is kept free).
 */
import type { Diagnostics, Topology } from '@dune/topology';
import { DEFAULT_SEGMENT_POOLS } from '@dune/topology';
import {
  blockSize,
  carve,
  formatAddr,
  formatNetwork,
  formatPrefix,
  networkOf,
  overlaps,
  parsePrefix,
  rangeOf,
  type Family,
  type Prefix,
} from './cidr.js';
import type { Interfaces } from './interfaces.js';
import type { Segments } from './segments.js';

export interface Addressing {
  /** Per link: the a and b ends' addresses, without prefix length. */
  v4a: string[];
  v4b: string[];
  v6a: string[];
  v6b: string[];
  linkV4Len: number;
  linkV6Len: number;
  /** Per link: the prefix length its ends' addresses carry (a segment's, or linkV4Len/linkV6Len). */
  v4Len: number[];
  v6Len: number[];
  /** Per segment: its subnets (`10.64.0.0/24`), '' when it has no routers. */
  segV4: string[];
  segV6: string[];
  /** Per node: its loopback addresses, without prefix length. */
  nodeV4: string[];
  nodeV6: string[];
  /** Per node: kernel interface name (`lo` included) → the user's addresses, `addr/len`. */
  user: Map<string, string[]>[];
  /** Per node: the networks of its user addresses on `lo`, which get routes like loopbacks. */
  loNetsV4: string[][];
  loNetsV6: string[][];
}

interface Owned {
  prefix: Prefix;
  owner: string;
}

const POOL_HINT = 'set a larger pool or a longer prefix length under [topology.addressing]';

export function assignAddresses(topo: Topology, ifs: Interfaces, segs: Segments, diags: Diagnostics): Addressing {
  const nNodes = topo.nodes.length;
  const nLinks = topo.links.length;
  const pools = topo.lab.pools;

  const out: Addressing = {
    v4a: new Array<string>(nLinks).fill(''),
    v4b: new Array<string>(nLinks).fill(''),
    v6a: new Array<string>(nLinks).fill(''),
    v6b: new Array<string>(nLinks).fill(''),
    linkV4Len: pools.linkV4Len,
    linkV6Len: pools.linkV6Len,
    v4Len: new Array<number>(nLinks).fill(pools.linkV4Len),
    v6Len: new Array<number>(nLinks).fill(pools.linkV6Len),
    segV4: new Array<string>(segs.list.length).fill(''),
    segV6: new Array<string>(segs.list.length).fill(''),
    nodeV4: new Array<string>(nNodes).fill(''),
    nodeV6: new Array<string>(nNodes).fill(''),
    user: Array.from({ length: nNodes }, () => new Map<string, string[]>()),
    loNetsV4: Array.from({ length: nNodes }, () => []),
    loNetsV6: Array.from({ length: nNodes }, () => []),
  };

  // The user's addresses: parsed, checked for duplicates, and reserved.
  const owned: Owned[] = [];
  const byAddr = new Map<string, Owned>();
  topo.nodes.forEach((node, ni) => {
    const kernelNames = ifs.userToKernel[ni] ?? new Map<string, string>();
    for (const [iface, list] of Object.entries(node.addrs)) {
      const kernel = iface === 'lo' ? 'lo' : kernelNames.get(iface);
      if (kernel === undefined) {
        const known = ['lo', ...(ifs.byNode[ni] ?? []).map((x) => x.name)];
        diags.error(
          'unknown-interface',
          `node "${node.id}" has addresses for interface "${iface}", but none of its links ends there (it has: ${known.join(', ')})`,
          node.loc,
          `use one of: ${known.join(', ')}`,
        );
        continue;
      }
      for (const text of list) {
        const p = parsePrefix(text);
        if (typeof p === 'string') {
          diags.error('invalid-address', `node "${node.id}", interface ${iface}: ${p}`, node.loc, 'write an address with its prefix length, e.g. "10.0.0.1/24" or "fd00::1/64"');
          continue;
        }
        const owner = `${node.id}:${kernel}`;
        const key = `${p.family}:${p.addr}`;
        const first = byAddr.get(key);
        const addr = formatAddr(p.family, p.addr);
        if (first !== undefined) {
          const where = first.owner === owner ? `is listed twice on ${owner}` : `is on both ${first.owner} (${formatPrefix(first.prefix)}) and ${owner} (${formatPrefix(p)})`;
          diags.error('duplicate-address', `address ${addr} ${where}`, node.loc, 'give each interface its own address');
          continue;
        }
        const o = { prefix: p, owner };
        byAddr.set(key, o);
        owned.push(o);
        const m = out.user[ni] as Map<string, string[]>;
        const l = m.get(kernel) ?? [];
        l.push(formatPrefix(p));
        m.set(kernel, l);
        if (kernel === 'lo') (p.family === 4 ? out.loNetsV4 : out.loNetsV6)[ni]?.push(formatNetwork(p));
      }
    }
  });

  // Pools.
  const pool = (field: 'linkV4' | 'linkV6' | 'nodeV4' | 'nodeV6' | 'segmentV4' | 'segmentV6', family: Family): Prefix | undefined => {
    const text = pools[field] ?? (field === 'segmentV4' || field === 'segmentV6' ? DEFAULT_SEGMENT_POOLS[field] : '');
    const p = parsePrefix(text);
    if (typeof p === 'string') {
      diags.error('invalid-pool', `address pool ${field}: ${p}`, undefined, POOL_HINT);
      return undefined;
    }
    if (p.family !== family) {
      diags.error('invalid-pool', `address pool ${field} = "${text}" is IPv${p.family}, it must be IPv${family}`, undefined, POOL_HINT);
      return undefined;
    }
    if (networkOf(p) !== p.addr) {
      diags.error('invalid-pool', `address pool ${field} = "${text}" has host bits set`, undefined, `did you mean "${formatNetwork(p)}"?`);
      return undefined;
    }
    return p;
  };
  const linkV4 = pool('linkV4', 4);
  const linkV6 = pool('linkV6', 6);
  const nodeV4 = pool('nodeV4', 4);
  const nodeV6 = pool('nodeV6', 6);
  const hasSegments = segs.list.some((sg) => sg.members.length > 0);
  const segV4 = hasSegments ? pool('segmentV4', 4) : undefined;
  const segV6 = hasSegments ? pool('segmentV6', 6) : undefined;
  for (const [name, a, b, other] of [
    ['IPv4 link', linkV4, nodeV4, 'node'], ['IPv6 link', linkV6, nodeV6, 'node'],
    ['IPv4 segment', segV4, linkV4, 'link'], ['IPv4 segment', segV4, nodeV4, 'node'],
    ['IPv6 segment', segV6, linkV6, 'link'], ['IPv6 segment', segV6, nodeV6, 'node'],
  ] as const) {
    if (a && b && overlaps(a, b)) {
      diags.error('overlapping-pools', `the ${name} pool ${formatPrefix(a)} and ${other} pool ${formatPrefix(b)} overlap`, undefined, 'give links, segments and nodes disjoint pools under [topology.addressing]');
    }
  }
  const checkLen = (field: 'linkV4Len' | 'linkV6Len', p: Prefix | undefined, max: number): boolean => {
    const len = pools[field];
    if (!Number.isInteger(len) || len > max || (p !== undefined && len < p.len)) {
      const min = p?.len ?? 0;
      diags.error('invalid-pool', `${field} = ${len}: a link subnet needs two addresses, so it must be between /${min} and /${max}`, undefined, POOL_HINT);
      return false;
    }
    return true;
  };
  const v4LenOk = checkLen('linkV4Len', linkV4, 31);
  const v6LenOk = checkLen('linkV6Len', linkV6, 127);

  const reserved = (family: Family) => owned.filter((o) => o.prefix.family === family);

  const allocate = (what: 'node' | 'link' | 'segment', p: Prefix, len: number, count: number, hostSkip: boolean, taken: [bigint, bigint][] = []): bigint[] | undefined => {
    const users = reserved(p.family);
    const ranges = [...users.map((o) => rangeOf(o.prefix)), ...taken];
    if (hostSkip) {
      const [first, last] = rangeOf(p);
      if (last - first > 1n) {
        ranges.push([first, first]);
        if (p.family === 4) ranges.push([last, last]);
      }
    }
    const r = carve(p, len, count, ranges);
    if (r.ok) return r.starts;
    const total = blockSize(p.family, p.len) / blockSize(p.family, len);
    const blocking = users.filter((o) => overlaps(o.prefix, p));
    const skipped = blocking.length === 0 ? '' : ` after skipping user addresses (${blocking.slice(0, 3).map((o) => `${o.owner} ${formatPrefix(o.prefix)}`).join(', ')}${blocking.length > 3 ? `, … ${blocking.length} in all` : ''})`;
    diags.error(
      'pool-exhausted',
      `the IPv${p.family} ${what} pool ${formatPrefix(p)} (${total} blocks of /${len}) has room for ${r.fitted}${skipped}, but ${count} ${what}s need one each`,
      undefined,
      POOL_HINT,
    );
    return undefined;
  };

  if (nodeV4) {
    const s = allocate('node', nodeV4, 32, nNodes, true);
    if (s) s.forEach((a, i) => (out.nodeV4[i] = formatAddr(4, a)));
  }
  if (nodeV6) {
    const s = allocate('node', nodeV6, 128, nNodes, true);
    if (s) s.forEach((a, i) => (out.nodeV6[i] = formatAddr(6, a)));
  }
  const p2p: number[] = [];
  for (let li = 0; li < nLinks; li++) if (segs.ofLink[li] === -1) p2p.push(li);
  const linkEnds = (p: Prefix, len: number, aOut: string[], bOut: string[]) => {
    const s = allocate('link', p, len, p2p.length, false);
    if (!s) return;
    const hostBits = (p.family === 4 ? 32 : 128) - len;
    const off = hostBits <= 1 ? 0n : 1n;
    s.forEach((start, i) => {
      const li = p2p[i] as number;
      aOut[li] = formatAddr(p.family, start + off);
      bOut[li] = formatAddr(p.family, start + off + 1n);
    });
  };
  const segmentEnds = (p: Prefix) => {
    const fam = p.family;
    const bits = fam === 4 ? 32 : 128;
    const lenOf = (members: number): number => {
      // Room for the members plus the network address (and IPv4's broadcast).
      let host = 2;
      while (2n ** BigInt(host) < BigInt(members + 2)) host++;
      return fam === 4 ? bits - host : Math.max(Math.min(64, bits - host), p.len);
    };
    const byLen = new Map<number, number[]>();
    segs.list.forEach((sg, s) => {
      if (sg.members.length === 0) return;
      const len = lenOf(sg.members.length);
      byLen.set(len, [...(byLen.get(len) ?? []), s]);
    });
    const taken: [bigint, bigint][] = [];
    for (const len of [...byLen.keys()].sort((x, y) => x - y)) {
      const list = byLen.get(len) as number[];
      if (len < p.len) {
        diags.error('pool-exhausted', `the IPv${fam} segment pool ${formatPrefix(p)} is too small for a segment of ${segs.list[list[0] as number]?.members.length} routers (a /${len})`, undefined,
          `set a larger segment_v${fam} under [topology.addressing]`);
        return;
      }
      const starts = allocate('segment', p, len, list.length, false, taken);
      if (!starts) return;
      starts.forEach((start, i) => {
        const s = list[i] as number;
        taken.push(rangeOf({ family: fam, addr: start, len }));
        (fam === 4 ? out.segV4 : out.segV6)[s] = formatNetwork({ family: fam, addr: start, len });
        segs.list[s]?.members.forEach((m, k) => {
          const a = formatAddr(fam, start + 1n + BigInt(k));
          const aOut = fam === 4 ? (m.end === 'a' ? out.v4a : out.v4b) : m.end === 'a' ? out.v6a : out.v6b;
          aOut[m.link] = a;
          (fam === 4 ? out.v4Len : out.v6Len)[m.link] = len;
        });
      });
    }
  };
  if (segV4) segmentEnds(segV4);
  if (segV6) segmentEnds(segV6);
  if (linkV4 && v4LenOk) linkEnds(linkV4, pools.linkV4Len, out.v4a, out.v4b);
  if (linkV6 && v6LenOk) linkEnds(linkV6, pools.linkV6Len, out.v6a, out.v6b);
  return out;
}
