import { describe, expect, test } from 'vitest';
import { carve, formatNetwork, formatV6, parsePrefix, parseV4, parseV6, rangeOf, type Prefix } from '../src/cidr.js';
import { compile } from '../src/index.js';
import { compileError, ops, TopoBuilder } from './helpers.js';

describe('CIDR helpers', () => {
  test('IPv4 parse and reject', () => {
    expect(parseV4('10.0.0.1')).toBe(0x0a000001n);
    expect(parseV4('255.255.255.255')).toBe(0xffffffffn);
    for (const bad of ['10.0.0', '10.0.0.256', '10.0.0.01', '1.2.3.4.5', '', 'a.b.c.d']) expect(parseV4(bad)).toBeUndefined();
  });

  test('IPv6 parse, RFC 5952 formatting', () => {
    const cases: [string, string][] = [
      ['fd7a:d0::1', 'fd7a:d0::1'],
      ['FC00:0001:0000:0000:0000:0000:0000:0000', 'fc00:1::'],
      ['::', '::'],
      ['::1', '::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ];
    for (const [input, out] of cases) {
      const v = parseV6(input);
      expect(v, input).toBeDefined();
      expect(formatV6(v as bigint)).toBe(out);
    }
    for (const bad of ['1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', ':::']) expect(parseV6(bad), bad).toBeUndefined();
  });

  test('IPv6 text is RFC 5952 form, as the WHATWG URL parser writes it, for 20,000 addresses rich in zero groups', () => {
    let seed = 12345;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let k = 0; k < 20_000; k++) {
      let v = 0n;
      for (let i = 0; i < 8; i++) {
        const r = next();
        v = (v << 16n) | BigInt(r < 0.5 ? 0 : r < 0.6 ? 1 : Math.floor(next() * 65536));
      }
      const full = (v.toString(16).padStart(32, '0').match(/.{4}/g) ?? []).join(':');
      expect(formatV6(v), full).toBe(new URL(`http://[${full}]/`).hostname.slice(1, -1));
    }
  });

  test('prefixes: bare address is a host prefix; bad lengths are refused', () => {
    expect(parsePrefix('fc00:1::')).toEqual({ family: 6, addr: 0xfc000001n << 96n, len: 128 });
    expect(parsePrefix('10.0.0.1/24')).toEqual({ family: 4, addr: 0x0a000001n, len: 24 });
    expect(formatNetwork(parsePrefix('10.0.0.77/24') as Prefix)).toBe('10.0.0.0/24');
    expect(parsePrefix('10.0.0.1/33')).toMatch(/invalid prefix length/);
    expect(parsePrefix('fd00::/129')).toMatch(/invalid prefix length/);
    expect(parsePrefix('nope/8')).toMatch(/not an IPv4 or IPv6 address/);
  });

  test('carve skips reserved ranges and stays aligned', () => {
    const pool = parsePrefix('10.0.0.0/29') as Prefix;
    const reserved = [rangeOf(parsePrefix('10.0.0.3/32') as Prefix)];
    const r = carve(pool, 31, 3, reserved);
    expect(r).toEqual({ ok: true, starts: [0x0a000000n, 0x0a000004n, 0x0a000006n] });
    expect(carve(pool, 31, 4, reserved)).toEqual({ ok: false, fitted: 3 });
  });

  test('IPv6 carve with BigInt at the top of the space', () => {
    const pool = parsePrefix('ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124') as Prefix;
    const r = carve(pool, 127, 8, []);
    expect(r.ok).toBe(true);
    expect(carve(pool, 127, 9, [])).toEqual({ ok: false, fitted: 8 });
  });
});

describe('addressing', () => {
  test('links get /31 and /127 in link order, a end first; nodes get /32 and /128 in node order', () => {
    const plan = compile(new TopoBuilder().nodesNamed('a', 'b', 'c').link('a', 'b').link('b', 'c').build());
    expect(plan.links.map((l) => [l.a.v4, l.b.v4, l.a.v6, l.b.v6])).toEqual([
      ['10.128.0.0', '10.128.0.1', 'fd7a:de00::', 'fd7a:de00::1'],
      ['10.128.0.2', '10.128.0.3', 'fd7a:de00::2', 'fd7a:de00::3'],
    ]);
    // The pools' first address is never a loopback.
    expect(plan.nodes.map((n) => [n.v4, n.v6])).toEqual([
      ['10.0.0.1', 'fd7a:d0::1'],
      ['10.0.0.2', 'fd7a:d0::2'],
      ['10.0.0.3', 'fd7a:d0::3'],
    ]);
    const b = ops(plan, 'addr').filter((o) => o.ns === 'dune.test.b');
    expect(b.map((o) => `${o.dev} ${o.cidr}`)).toEqual([
      'lo 10.0.0.2/32',
      'lo fd7a:d0::2/128',
      'eth0 10.128.0.1/31',
      'eth0 fd7a:de00::1/127',
      'eth1 10.128.0.2/31',
      'eth1 fd7a:de00::2/127',
    ]);
  });

  test('wider link subnets skip the network address', () => {
    const plan = compile(
      new TopoBuilder()
        .lab({ pools: { linkV4: '192.168.0.0/16', linkV6: 'fd00:1::/48', nodeV4: '10.0.0.0/24', nodeV6: 'fd00:2::/64', linkV4Len: 30, linkV6Len: 64 } })
        .nodesNamed('a', 'b')
        .link('a', 'b')
        .build(),
    );
    expect(plan.links[0]).toMatchObject({ a: { v4: '192.168.0.1', v6: 'fd00:1::1' }, b: { v4: '192.168.0.2', v6: 'fd00:1::2' } });
  });

  test('user addresses are added, and generated ones avoid their whole prefixes', () => {
    const t = new TopoBuilder()
      .node('a', { addrs: { lo: ['10.0.0.1', 'fc00:1::'], eth0: ['10.128.0.1/30', 'fd7a:de00::/126'] } })
      .node('b', { addrs: { lo: ['10.0.0.2/32'] } })
      .link('a:eth0', 'b:eth0')
      .build();
    const plan = compile(t);
    // 10.0.0.1 and .2 are the user's: loopbacks start at .3
    expect(plan.nodes.map((n) => n.v4)).toEqual(['10.0.0.3', '10.0.0.4']);
    // 10.128.0.0/30 (from 10.128.0.1/30) and fd7a:de00::/126 are the user's
    expect(plan.links[0]).toMatchObject({ a: { v4: '10.128.0.4', v6: 'fd7a:de00::4' }, b: { v4: '10.128.0.5', v6: 'fd7a:de00::5' } });
    const a = ops(plan, 'addr').filter((o) => o.ns === 'dune.test.a');
    expect(a.map((o) => `${o.dev} ${o.cidr}`)).toEqual([
      'lo 10.0.0.3/32',
      'lo fd7a:d0::1/128',
      'lo 10.0.0.1/32',
      'lo fc00:1::/128',
      'eth0 10.128.0.4/31',
      'eth0 fd7a:de00::4/127',
      'eth0 10.128.0.1/30',
      'eth0 fd7a:de00::/126',
    ]);
  });

  test('user addresses on a renamed interface follow the rename', () => {
    const t = new TopoBuilder()
      .node('a', { addrs: { 'an interface name far too long': ['192.0.2.1/24'] } })
      .node('b')
      .link('a:an interface name far too long', 'b')
      .build();
    const plan = compile(t);
    expect(ops(plan, 'addr').find((o) => o.cidr === '192.0.2.1/24')?.dev).toBe('eth0');
  });

  test('duplicate addresses name both owners', () => {
    const t = new TopoBuilder()
      .node('r0', { addrs: { lo: ['fc00:1::1/128'], eth0: ['10.9.0.1/24'] } })
      .node('r1', { addrs: { lo: ['fc00:1::1'], eth0: ['10.9.0.1/24', '10.9.0.9/24', '10.9.0.9/24'] } })
      .link('r0:eth0', 'r1:eth0')
      .build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "3 errors in the topology:
      test.toml:2:1: error[duplicate-address]: address fc00:1::1 is on both r0:lo (fc00:1::1/128) and r1:lo (fc00:1::1/128)
        hint: give each interface its own address
      test.toml:2:1: error[duplicate-address]: address 10.9.0.1 is on both r0:eth0 (10.9.0.1/24) and r1:eth0 (10.9.0.1/24)
        hint: give each interface its own address
      test.toml:2:1: error[duplicate-address]: address 10.9.0.9 is listed twice on r1:eth0
        hint: give each interface its own address"
    `);
  });

  test('invalid addresses and unknown interfaces carry the node location', () => {
    const t = new TopoBuilder()
      .node('r0')
      .node('r1', { addrs: { eth0: ['10.0.0.300/24'], eth7: ['10.0.0.1/24'] } })
      .link('r0:eth0', 'r1:eth0')
      .build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "2 errors in the topology:
      test.toml:2:1: error[invalid-address]: node "r1", interface eth0: "10.0.0.300/24" is not an IPv4 or IPv6 address
        hint: write an address with its prefix length, e.g. "10.0.0.1/24" or "fd00::1/64"
      test.toml:2:1: error[unknown-interface]: node "r1" has addresses for interface "eth7", but none of its links ends there (it has: lo, eth0)
        hint: use one of: lo, eth0"
    `);
  });

  test('pool exhaustion says how many were needed and the pool size', () => {
    const t = new TopoBuilder()
      .lab({ pools: { linkV4: '10.128.0.0/30', linkV6: 'fd7a:de00::/32', nodeV4: '10.0.0.0/30', nodeV6: 'fd7a:d0::/32', linkV4Len: 31, linkV6Len: 127 } })
      .nodesNamed('a', 'b', 'c')
      .chain(['a', 'b', 'c', 'a'])
      .build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "2 errors in the topology:
      error[pool-exhausted]: the IPv4 node pool 10.0.0.0/30 (4 blocks of /32) has room for 2, but 3 nodes need one each
        hint: set a larger pool or a longer prefix length under [topology.addressing]
      error[pool-exhausted]: the IPv4 link pool 10.128.0.0/30 (2 blocks of /31) has room for 2, but 3 links need one each
        hint: set a larger pool or a longer prefix length under [topology.addressing]"
    `);
  });

  test('exhaustion caused by user addresses says so', () => {
    const t = new TopoBuilder()
      .lab({ pools: { linkV4: '10.128.0.0/29', linkV6: 'fd7a:de00::/32', nodeV4: '10.0.0.0/24', nodeV6: 'fd7a:d0::/32', linkV4Len: 31, linkV6Len: 127 } })
      .node('a', { addrs: { eth0: ['10.128.0.1/30'] } })
      .node('b', { addrs: { eth0: ['10.128.0.5/30'] } })
      .node('c')
      .link('a:eth0', 'b:eth0')
      .link('b:eth1', 'c')
      .build();
    expect(compileError(t).diagnostics[0]?.message).toBe(
      'the IPv4 link pool 10.128.0.0/29 (4 blocks of /31) has room for 0 after skipping user addresses (a:eth0 10.128.0.1/30, b:eth0 10.128.0.5/30), but 2 links need one each',
    );
  });

  test('bad pools are reported', () => {
    const t = new TopoBuilder()
      .lab({ pools: { linkV4: '10.128.0.0/9', linkV6: '10.0.0.0/8', nodeV4: '10.0.0.1/10', nodeV6: 'fd7a:d0::/32', linkV4Len: 32, linkV6Len: 127 } })
      .nodesNamed('a', 'b')
      .link('a', 'b')
      .build();
    expect(compileError(t).diagnostics.map((d) => d.message)).toEqual([
      'address pool linkV6 = "10.0.0.0/8" is IPv4, it must be IPv6',
      'address pool nodeV4 = "10.0.0.1/10" has host bits set',
      'linkV4Len = 32: a link subnet needs two addresses, so it must be between /9 and /31',
    ]);
  });

  test('overlapping link and node pools are an error', () => {
    const t = new TopoBuilder()
      .lab({ pools: { linkV4: '10.0.0.0/8', linkV6: 'fd7a:de00::/32', nodeV4: '10.1.0.0/16', nodeV6: 'fd7a:d0::/32', linkV4Len: 31, linkV6Len: 127 } })
      .nodesNamed('a', 'b')
      .link('a', 'b')
      .build();
    expect(compileError(t).diagnostics.map((d) => d.code)).toEqual(['overlapping-pools']);
  });
});
