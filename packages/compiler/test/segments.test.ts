import { describe, expect, test } from 'vitest';
import { parseDuneToml } from '@dune/topology';
import { compile } from '../src/index.js';
import { compileError, ops, routeOf, TopoBuilder } from './helpers.js';

/** h1..h4 on one switch, r on the switch too, h5 behind r on a /31. */
function starWithRouter(): TopoBuilder {
  return new TopoBuilder()
    .node('sw', { kind: 'switch' })
    .nodesNamed('h1', 'h2', 'h3', 'h4', 'r', 'h5')
    .link('h1', 'sw').link('h2', 'sw').link('h3', 'sw').link('h4', 'sw').link('r', 'sw')
    .link('r', 'h5');
}

const addrsOf = (plan: ReturnType<typeof compile>, node: string) => {
  const ns = plan.nodes.find((n) => n.node === node)?.ns;
  return ops(plan, 'addr').filter((o) => o.ns === ns).map((o) => `${o.dev} ${o.cidr}`);
};

describe('node kinds: switch and hub', () => {
  test('a switch: a bridge with every link end enslaved and up; no addresses, forwarding sysctls or routes', () => {
    const plan = compile(starWithRouter().build());
    const ns = 'dune.test.sw';
    expect(ops(plan, 'bridge')).toEqual([{ op: 'bridge', ns, name: 'br0', alias: 'dune:test:sw:br0' }]);
    expect(ops(plan, 'enslave').map((o) => `${o.ns} ${o.dev}→${o.master}`)).toEqual(['eth0', 'eth1', 'eth2', 'eth3', 'eth4'].map((d) => `${ns} ${d}→br0`));
    expect(ops(plan, 'up').filter((o) => o.ns === ns).map((o) => o.dev)).toEqual(['lo', 'br0', 'eth0', 'eth1', 'eth2', 'eth3', 'eth4']);
    expect(addrsOf(plan, 'sw')).toEqual([]);
    expect(ops(plan, 'sysctl').filter((o) => o.ns === ns)).toEqual([]);
    expect(ops(plan, 'route').filter((o) => o.ns === ns)).toEqual([]);
    expect(ops(plan, 'route').some((o) => o.dst === '' || o.via === '')).toBe(false);
    expect(plan.nodes.find((n) => n.node === 'sw')).toMatchObject({ v4: '', v6: '' });
    // The enslave ops come before the ports go up, the bridge before both.
    const kinds = plan.hosts[0]?.ops.map((o) => o.op) ?? [];
    expect(kinds.indexOf('bridge')).toBeLessThan(kinds.indexOf('enslave'));
    expect(kinds.lastIndexOf('enslave')).toBeLessThan(kinds.indexOf('up'));
  });

  test('a hub is a bridge with ageing time 0', () => {
    const plan = compile(new TopoBuilder().node('hub', { kind: 'hub' }).nodesNamed('a', 'b').link('a', 'hub').link('b', 'hub').build());
    expect(ops(plan, 'bridge')).toEqual([{ op: 'bridge', ns: 'dune.test.hub', name: 'br0', alias: 'dune:test:hub:br0', ageingTimeCs: 0 }]);
  });

  test('the bridge name avoids the switch\'s own port names', () => {
    const plan = compile(new TopoBuilder().node('sw', { kind: 'switch' }).nodesNamed('a').link('a', 'sw:br0').build());
    expect(ops(plan, 'bridge')[0]?.name).toBe('br1');
  });

  test('segment addressing: one subnet per segment sized by its members, largest first; direct links keep /31 and /127', () => {
    const t = starWithRouter()
      .node('sw2', { kind: 'switch' }).node('x')
      .link('x', 'sw2').link('r', 'sw2')
      .build();
    const plan = compile(t);
    // 5 routers + network + broadcast: a /29; 2 routers: a /30 after it.
    expect(addrsOf(plan, 'h1')).toEqual(['lo 10.0.0.2/32', 'lo fd7a:d0::2/128', 'eth0 10.64.0.1/29', 'eth0 fd7a:5e00::1/64']);
    expect(addrsOf(plan, 'h4')).toContain('eth0 10.64.0.4/29');
    expect(addrsOf(plan, 'r')).toEqual([
      'lo 10.0.0.6/32', 'lo fd7a:d0::6/128',
      'eth0 10.64.0.5/29', 'eth0 fd7a:5e00::5/64',
      'eth1 10.128.0.0/31', 'eth1 fd7a:de00::/127',
      'eth2 10.64.0.10/30', 'eth2 fd7a:5e00:0:1::2/64',
    ]);
    // x comes first on sw2 (link order).
    expect(addrsOf(plan, 'x')).toContain('eth0 10.64.0.9/30');
    expect(addrsOf(plan, 'h5')).toContain('eth0 10.128.0.1/31');
  });

  test('routing across a segment and a router: next hop = the neighbour\'s segment address, dev = the interface into the segment', () => {
    const plan = compile(starWithRouter().build());
    const lo = (n: string, fam: 4 | 6) => `${plan.nodes.find((x) => x.node === n)?.[fam === 4 ? 'v4' : 'v6']}/${fam === 4 ? 32 : 128}`;
    expect(routeOf(plan, 'h1', lo('h2', 4))).toBe('10.64.0.2 eth0');
    expect(routeOf(plan, 'h1', lo('h2', 6))).toBe('fd7a:5e00::2 eth0');
    expect(routeOf(plan, 'h1', lo('h5', 4))).toBe('10.64.0.5 eth0');
    expect(routeOf(plan, 'h5', lo('h3', 4))).toBe('10.128.0.0 eth0');
    expect(routeOf(plan, 'r', lo('h3', 4))).toBe('10.64.0.3 eth0');
    expect(routeOf(plan, 'r', lo('h5', 6))).toBe('fd7a:de00::1 eth1');
    // No route anywhere to the switch: it has no address.
    expect(plan.stats['routeDestinations']).toBe(6);
    expect(plan.stats['unroutedPairs']).toBe(0);
  });

  test('a segment is one hop between any two members, whatever the switch path; latency sums along it', () => {
    // a – s1 – s2 – s3 – b  (switches), and a – c – b (routers, 10 ms links).
    const chain = () => new TopoBuilder()
      .node('s1', { kind: 'switch' }).node('s2', { kind: 'switch' }).node('s3', { kind: 'switch' })
      .nodesNamed('a', 'b', 'c');
    const build = (swMs: number) => chain()
      .link('a', 's1', { latencyMs: swMs }).link('s1', 's2', { latencyMs: swMs }).link('s2', 's3', { latencyMs: swMs }).link('s3', 'b', { latencyMs: swMs })
      .link('a', 'c', { latencyMs: 10 }).link('c', 'b', { latencyMs: 10 })
      .lab({ routingWeight: 'latency' }).build();
    const via = (plan: ReturnType<typeof compile>) => routeOf(plan, 'a', `${plan.nodes.find((x) => x.node === 'b')?.v4}/32`);
    // 4 × 4 ms = 16 < 20: across the switches; 4 × 6 ms = 24 > 20: through c.
    expect(via(compile(build(4)))).toBe('10.64.0.2 eth0');
    expect(via(compile(build(6)))).toBe('10.128.0.1 eth1');
    const hops = compile(chain().link('a', 's1').link('s1', 's2').link('s2', 's3').link('s3', 'b').link('a', 'c').link('c', 'b').build());
    expect(via(hops)).toBe('10.64.0.2 eth0');
  });

  test('impairments on a switch port are the egress of that port', () => {
    const plan = compile(new TopoBuilder().node('sw', { kind: 'switch' }).nodesNamed('a', 'b')
      .link('a', 'sw', { b: { impairment: { delayUs: 5000 } } }).link('b', 'sw').build());
    expect(ops(plan, 'impair').map((o) => `${o.ns} ${o.dev} ${o.impairment.delayUs}`)).toEqual(['dune.test.sw eth0 5000']);
  });

  test('a switch may run pinned processes', () => {
    const plan = compile(new TopoBuilder().node('sw', { kind: 'switch', exec: [{ text: 'true', argv: ['true'] }] }).nodesNamed('a').link('a', 'sw').build());
    expect(ops(plan, 'exec')).toHaveLength(1);
  });

  test('a ring of switches is refused: with STP off it is a broadcast storm', () => {
    const t = new TopoBuilder()
      .node('s1', { kind: 'switch' }).node('s2', { kind: 'switch' }).node('s3', { kind: 'hub' }).node('h')
      .link('h', 's1').link('s1', 's2').link('s2', 's3').link('s3', 's1').build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "1 error in the topology:
      test.toml:8:1: error[l2-loop]: link #3 (s3 – s1) at test.toml:8:1 closes a loop of switches ("s3" – "s2" – "s1"): with STP off, a loop makes a broadcast storm
        hint: break the loop: remove one link of it, or make one of those nodes a router (kind = "router")"
    `);
  });

  test('parallel switch links, a switch linked to itself, addresses on a switch, a router twice on a segment: clear errors', () => {
    const t = new TopoBuilder()
      .node('s1', { kind: 'switch', addrs: { eth0: ['10.9.0.1/24'] } }).node('s2', { kind: 'switch' }).node('h')
      .link('s1', 's2').link('s1', 's2').link('s2', 's2').link('h', 's1:eth0').link('h', 's2').build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "4 errors in the topology:
      test.toml:1:1: error[l2-addrs]: node "s1" is a switch and cannot have addresses (it has addrs on eth0)
        hint: a switch only carries frames: remove its addrs, or make it kind = "router"
      test.toml:5:1: error[l2-loop]: link #1 (s1 – s2) at test.toml:5:1 closes a loop of switches ("s1" – "s2"): with STP off, a loop makes a broadcast storm
        hint: break the loop: remove one link of it, or make one of those nodes a router (kind = "router")
      test.toml:6:1: error[l2-self-link]: link #2 (s2 – s2) at test.toml:6:1 joins switch "s2" to itself: a loop that floods every broadcast forever
        hint: remove the link
      test.toml:8:1: error[segment-twice]: node "h" has two interfaces on one L2 segment: link #3 (h – s1:eth0) at test.toml:7:1 and link #4 (h – s2) at test.toml:8:1
        hint: keep one of the links; a router needs one interface per segment"
    `);
  });

  test('a segment pool too small for its members', () => {
    const t = starWithRouter().build();
    t.lab.pools = { ...t.lab.pools, segmentV4: '10.64.0.0/30' };
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "1 error in the topology:
      error[pool-exhausted]: the IPv4 segment pool 10.64.0.0/30 is too small for a segment of 5 routers (a /29)
        hint: set a larger segment_v4 under [topology.addressing]"
    `);
  });
});

describe('node kinds in TOML', () => {
  const toml = (body: string) => `[topology]\nlinks = [{endpoints = ["a", "sw"]}, {endpoints = ["b", "sw"]}]\n${body}`;

  test('kind on a node, and in [topology.defaults.nodes] (a node overrides it); default router', () => {
    const t = parseDuneToml(toml('[topology.defaults.nodes]\nkind = "switch"\n[topology.nodes.a]\nkind = "router"\n[topology.nodes.b]\nkind = "router"\n[topology.nodes.sw]\n'), 't.toml');
    expect(t.nodes.map((n) => `${n.id}:${n.kind}`)).toEqual(['a:router', 'b:router', 'sw:switch']);
    const plain = parseDuneToml(toml('[topology.nodes.sw]\nkind = "hub"\n[topology.nodes.a]\n[topology.nodes.b]\n'), 't.toml');
    expect(plain.nodes.map((n) => `${n.id}:${n.kind ?? 'router'}`)).toEqual(['sw:hub', 'a:router', 'b:router']);
  });

  test('an unknown kind lists the known ones and the nearest', () => {
    let msg = '';
    try {
      compile(parseDuneToml(toml('[topology.nodes.sw]\nkind = "swich"\n[topology.nodes.a]\n[topology.nodes.b]\n'), 't.toml'));
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:4:8: error[unknown-kind]: node kind "swich" (node "sw") is not supported; the kinds are router, switch, hub, diode, firewall, antispoof, vtep, nic, tap, vhost, capture
        hint: did you mean \`switch\`? Use one of: router, switch, hub, diode, firewall, antispoof, vtep, nic, tap, vhost, capture"
    `);
  });

  test('segment pools are [topology.addressing] keys', () => {
    const t = parseDuneToml(toml('[topology.addressing]\nsegment_v4 = "172.16.0.0/12"\nsegment_v6 = "fd00:5::/48"\n[topology.nodes.sw]\nkind = "switch"\n[topology.nodes.a]\n[topology.nodes.b]\n'), 't.toml');
    expect(t.lab.pools).toMatchObject({ segmentV4: '172.16.0.0/12', segmentV6: 'fd00:5::/48' });
    const plan = compile(t);
    expect(plan.links.map((l) => l.a.v4)).toEqual(['172.16.0.1', '172.16.0.2']);
  });
});
