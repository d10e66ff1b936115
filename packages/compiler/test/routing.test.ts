import { describe, expect, test } from 'vitest';
import { compile, compileWithDiagnostics, serializePlan } from '../src/index.js';
import { compileError, devTo, linkAddr, nodeV4, nodeV6, ops, routeOf, TopoBuilder } from './helpers.js';

describe('static routes', () => {
  test('5-node line: every next hop, both families, checked by hand', () => {
    const plan = compile(new TopoBuilder().nodesNamed('n1', 'n2', 'n3', 'n4', 'n5').chain(['n1', 'n2', 'n3', 'n4', 'n5']).build());
    // link k joins n(k+1) (a end, 10.128.0.2k) and n(k+2) (b end, 10.128.0.2k+1)
    expect(routeOf(plan, 'n1', '10.0.0.5/32')).toBe('10.128.0.1 eth0');
    expect(routeOf(plan, 'n1', 'fd7a:d0::5/128')).toBe('fd7a:de00::1 eth0');
    expect(routeOf(plan, 'n3', '10.0.0.1/32')).toBe('10.128.0.2 eth0');
    expect(routeOf(plan, 'n3', '10.0.0.5/32')).toBe('10.128.0.5 eth1');
    expect(routeOf(plan, 'n3', 'fd7a:d0::5/128')).toBe('fd7a:de00::5 eth1');
    expect(routeOf(plan, 'n5', '10.0.0.1/32')).toBe('10.128.0.6 eth0');
    expect(routeOf(plan, 'n5', 'fd7a:d0::2/128')).toBe('fd7a:de00::6 eth0');
    // No route to oneself.
    expect(routeOf(plan, 'n3', '10.0.0.3/32')).toBeUndefined();
    expect(plan.stats).toMatchObject({ routesV4: 20, routesV6: 20, routeDestinations: 5, unroutedPairs: 0, components: 1 });
  });

  test('ring: routes take the short way round', () => {
    const plan = compile(new TopoBuilder().nodesNamed('r0', 'r1', 'r2', 'r3', 'r4').chain(['r0', 'r1', 'r2', 'r3', 'r4', 'r0']).build());
    const via = (from: string, to: string, fam: 4 | 6) => routeOf(plan, from, fam === 4 ? nodeV4(plan, to) : nodeV6(plan, to));
    for (const fam of [4, 6] as const) {
      expect(via('r0', 'r1', fam)).toBe(`${linkAddr(plan, 'r1', 'r0', fam)} ${devTo(plan, 'r0', 'r1')}`);
      expect(via('r0', 'r2', fam)).toBe(`${linkAddr(plan, 'r1', 'r0', fam)} ${devTo(plan, 'r0', 'r1')}`);
      expect(via('r0', 'r3', fam)).toBe(`${linkAddr(plan, 'r4', 'r0', fam)} ${devTo(plan, 'r0', 'r4')}`);
      expect(via('r0', 'r4', fam)).toBe(`${linkAddr(plan, 'r4', 'r0', fam)} ${devTo(plan, 'r0', 'r4')}`);
      expect(via('r2', 'r4', fam)).toBe(`${linkAddr(plan, 'r3', 'r2', fam)} ${devTo(plan, 'r2', 'r3')}`);
      expect(via('r2', 'r0', fam)).toBe(`${linkAddr(plan, 'r1', 'r2', fam)} ${devTo(plan, 'r2', 'r1')}`);
    }
    // Literal values for one of them, so the helpers cannot hide a mistake.
    expect(routeOf(plan, 'r0', '10.0.0.4/32')).toBe('10.128.0.8 eth1');
  });

  test('equal-cost ties are broken the same way every time, and consistently along the path', () => {
    const build = () => new TopoBuilder().nodesNamed('a', 'b', 'c', 'd').chain(['a', 'b', 'c', 'd', 'a']).build();
    const p1 = compile(build());
    const p2 = compile(build());
    expect(serializePlan(p1)).toBe(serializePlan(p2));
    // a→c has two 2-hop paths; whichever is chosen, the next hop must itself route to c directly.
    const first = routeOf(p1, 'a', nodeV4(p1, 'c'));
    const hop = first === `${linkAddr(p1, 'b', 'a', 4)} ${devTo(p1, 'a', 'b')}` ? 'b' : 'd';
    expect(routeOf(p1, hop, nodeV4(p1, 'c'))).toBe(`${linkAddr(p1, 'c', hop, 4)} ${devTo(p1, hop, 'c')}`);
  });

  test('hops vs latency changes the path', () => {
    const build = (weight: string) =>
      new TopoBuilder()
        .lab({ routingWeight: weight })
        .nodesNamed('a', 'b', 'd')
        .link('a', 'b', { latencyMs: 1 })
        .link('b', 'd', { latencyMs: 1 })
        .link('a', 'd', { latencyMs: 10 })
        .build();
    const hops = compile(build('hops'));
    expect(routeOf(hops, 'a', nodeV4(hops, 'd'))).toBe(`${linkAddr(hops, 'd', 'a', 4)} ${devTo(hops, 'a', 'd')}`);
    const lat = compile(build('latency'));
    expect(routeOf(lat, 'a', nodeV4(lat, 'd'))).toBe(`${linkAddr(lat, 'b', 'a', 4)} ${devTo(lat, 'a', 'b')}`);
    expect(routeOf(lat, 'a', nodeV6(lat, 'd'))).toBe(`${linkAddr(lat, 'b', 'a', 6)} ${devTo(lat, 'a', 'b')}`);
  });

  test('any numeric link attribute can be the weight; a missing one is an error naming the links', () => {
    const t = new TopoBuilder()
      .lab({ routingWeight: 'cost' })
      .nodesNamed('a', 'b', 'c')
      .link('a', 'b', { weights: { cost: 1, latency: 2 } })
      .link('b', 'c', { weights: { latency: 2 } })
      .link('c', 'a', { weights: { latency: 2, cost: -4 } })
      .build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "2 errors in the topology:
      test.toml:5:1: error[missing-weight]: routing weight "cost" is missing on 1 of 3 links: link #1 (b – c) at test.toml:5:1
        hint: give those links a cost, or pick a weight every link has: hops, latency
      test.toml:6:1: error[negative-weight]: link #2 (c – a) at test.toml:6:1 has routing weight cost = -4; weights must be finite and ≥ 0
        hint: fix the value, or choose another routing weight"
    `);
  });

  test('latency on only some links falls back to hops, with a note', () => {
    const t = new TopoBuilder().lab({ routingWeight: 'latency' }).nodesNamed('a', 'b', 'c').link('a', 'b', { latencyMs: 3 }).link('b', 'c').build();
    const { plan, diagnostics } = compileWithDiagnostics(t);
    expect(diagnostics).toEqual([
      {
        severity: 'note',
        code: 'weight-fallback',
        message: 'routing by latency needs a latency on every link, and 1 of 2 have none (link #1 (b – c) at test.toml:5:1); routing by hop count instead',
        hint: 'give every link a latency, or set the routing weight to "hops" to silence this',
        loc: { file: 'test.toml', line: 5, col: 1 },
      },
    ]);
    expect(plan.stats['routesV4']).toBe(6);
  });

  test('parallel links: the lowest weight wins, ties go to the lowest link index', () => {
    const build = (w0: number, w1: number) =>
      new TopoBuilder()
        .lab({ routingWeight: 'latency' })
        .nodesNamed('a', 'b')
        .link('a', 'b', { latencyMs: w0 })
        .link('a', 'b', { latencyMs: w1 })
        .build();
    const cheaper = compile(build(5, 2));
    expect(routeOf(cheaper, 'a', nodeV4(cheaper, 'b'))).toBe('10.128.0.3 eth1');
    expect(routeOf(cheaper, 'b', nodeV6(cheaper, 'a'))).toBe('fd7a:de00::2 eth1');
    const tie = compile(build(2, 2));
    expect(routeOf(tie, 'a', nodeV4(tie, 'b'))).toBe('10.128.0.1 eth0');
    // Parallel links under hops: link order decides.
    const hops = compile(new TopoBuilder().nodesNamed('a', 'b', 'c').link('a', 'b').link('a', 'b').link('b', 'c').build());
    expect(routeOf(hops, 'c', nodeV4(hops, 'a'))).toBe('10.128.0.4 eth0');
    expect(routeOf(hops, 'a', nodeV4(hops, 'c'))).toBe('10.128.0.1 eth0');
  });

  test('user addresses on lo are destinations too', () => {
    const t = new TopoBuilder().node('a').node('b', { addrs: { lo: ['fc00:1::2', '192.0.2.7/24'] } }).link('a', 'b').build();
    const plan = compile(t);
    expect(routeOf(plan, 'a', 'fc00:1::2/128')).toBe('fd7a:de00::1 eth0');
    expect(routeOf(plan, 'a', '192.0.2.0/24')).toBe('10.128.0.1 eth0');
  });

  test('clients only (NetMirage): routes go to client nodes, from every node', () => {
    const t = new TopoBuilder()
      .lab({ routeTo: 'clients' })
      .node('c1', { client: true })
      .node('core')
      .node('c2', { client: true })
      .chain(['c1', 'core', 'c2'])
      .build();
    const plan = compile(t);
    expect(ops(plan, 'route').map((r) => `${r.ns.split('.')[2]} ${r.dst}`)).toEqual([
      'c1 10.0.0.3/32',
      'c1 fd7a:d0::3/128',
      'core 10.0.0.1/32',
      'core fd7a:d0::1/128',
      'core 10.0.0.3/32',
      'core fd7a:d0::3/128',
      'c2 10.0.0.1/32',
      'c2 fd7a:d0::1/128',
    ]);
  });

  test("a node's own traffic leaves from its loopback (route src), so replies find their way back", () => {
    const plan = compile(new TopoBuilder().nodesNamed('a', 'b', 'c').chain(['a', 'b', 'c']).build());
    expect(ops(plan, 'route').filter((r) => r.ns === 'dune.test.a')).toEqual([
      { op: 'route', ns: 'dune.test.a', dst: '10.0.0.2/32', via: '10.128.0.1', dev: 'eth0', src: '10.0.0.1' },
      { op: 'route', ns: 'dune.test.a', dst: '10.0.0.3/32', via: '10.128.0.1', dev: 'eth0', src: '10.0.0.1' },
      { op: 'route', ns: 'dune.test.a', dst: 'fd7a:d0::2/128', via: 'fd7a:de00::1', dev: 'eth0', src: 'fd7a:d0::1' },
      { op: 'route', ns: 'dune.test.a', dst: 'fd7a:d0::3/128', via: 'fd7a:de00::1', dev: 'eth0', src: 'fd7a:d0::1' },
    ]);
    // In the plan, a table per next hop and family: one op for both destinations, a run of two.
    expect(plan.hosts[0]?.ops.filter((o) => o.op === 'routes' && o.ns === 'dune.test.a')).toEqual([
      { op: 'routes', ns: 'dune.test.a', dst: ['10.0.0.2-10.0.0.3/32'], via: '10.128.0.1', dev: 'eth0', src: '10.0.0.1' },
      { op: 'routes', ns: 'dune.test.a', dst: ['fd7a:d0::2-fd7a:d0::3/128'], via: 'fd7a:de00::1', dev: 'eth0', src: 'fd7a:d0::1' },
    ]);
    // Routing to clients only: a non-client's loopback is not routed, so it is no source.
    const clients = compile(new TopoBuilder().lab({ routeTo: 'clients' }).node('c1', { client: true }).node('core').node('c2', { client: true }).chain(['c1', 'core', 'c2']).build());
    expect(ops(clients, 'route').map((r) => `${r.ns.slice(10)} ${r.dst} ${r.src ?? '-'}`)).toEqual([
      'c1 10.0.0.3/32 10.0.0.1',
      'c1 fd7a:d0::3/128 fd7a:d0::1',
      'core 10.0.0.1/32 -',
      'core fd7a:d0::1/128 -',
      'core 10.0.0.3/32 -',
      'core fd7a:d0::3/128 -',
      'c2 10.0.0.1/32 10.0.0.3',
      'c2 fd7a:d0::1/128 fd7a:d0::3',
    ]);
  });

  test('disconnected parts: one warning listing them, no routes across, counted in stats', () => {
    const b = new TopoBuilder().nodesNamed('a1', 'a2', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'lonely');
    b.link('a1', 'a2').chain(['b1', 'b2', 'b3', 'b4', 'b5', 'b6']);
    const { plan, diagnostics } = compileWithDiagnostics(b.build());
    expect(diagnostics.map((d) => `${d.severity}[${d.code}] ${d.message}`)).toEqual([
      'warning[disconnected] the network falls into 3 disconnected parts; nodes in different parts get no routes to each other: [2 nodes: "a1", "a2"], [6 nodes: "b1", "b2", "b3", "b4", "b5", …], [1 node: "lonely"]',
    ]);
    expect(routeOf(plan, 'a1', nodeV4(plan, 'b1'))).toBeUndefined();
    expect(routeOf(plan, 'a1', nodeV4(plan, 'a2'))).toBe('10.128.0.1 eth0');
    // 9 destinations × 8 others = 72 pairs; routed: 2·1 + 6·5 = 32
    expect(plan.stats).toMatchObject({ components: 3, unroutedPairs: 40, routesV4: 32, warnings: 1 });
  });

  test("routing 'none': addresses and forwarding, no routes", () => {
    const plan = compile(new TopoBuilder().lab({ routing: 'none' }).nodesNamed('a', 'b', 'c').chain(['a', 'b', 'c']).build());
    expect(ops(plan, 'route')).toEqual([]);
    // lo: 2 per node; each of the 4 link ends: 2
    expect(ops(plan, 'addr').length).toBe(3 * 2 + 4 * 2);
    expect(ops(plan, 'sysctl').filter((o) => o.key === 'net.ipv4.ip_forward').length).toBe(3);
    expect(plan.stats).toMatchObject({ routesV4: 0, routesV6: 0 });
  });

  test('router sysctls: forwarding, rp_filter off for all, default and each interface; the user wins', () => {
    const t = new TopoBuilder()
      .node('a', { sysctls: { 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.default.keep_addr_on_down': '1' } })
      .node('b')
      .link('a:wan.100', 'b')
      .build();
    const plan = compile(t);
    expect(ops(plan, 'sysctl').filter((o) => o.ns === 'dune.test.a').map((o) => `${o.key}=${o.value}`)).toEqual([
      'net.ipv6.conf.all.forwarding=1',
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0',
      'net/ipv4/conf/wan.100/rp_filter=0',
      'net.ipv4.ip_forward=0',
      'net.ipv6.conf.default.keep_addr_on_down=1',
    ]);
  });
});
