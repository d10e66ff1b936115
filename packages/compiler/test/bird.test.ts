import { describe, expect, it } from 'vitest';
import { compile, compileWithDiagnostics, type Plan } from '../src/index.js';
import { ospfCosts } from '../src/bird.js';
import { compileError, ops, TopoBuilder } from './helpers.js';

const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
const conf = (plan: Plan, node: string) => decode(ops(plan, 'file').find((f) => f.node === node && f.path.endsWith('/bird/bird.conf'))?.contentBase64 ?? '');

describe('routing daemons (BIRD 2)', () => {
  it('ospf: a config and a daemon per router, costs from the weight, no static routes, none for a switch', () => {
    const t = new TopoBuilder('o')
      .lab({ routing: 'ospf', routingWeight: 'latency' })
      .node('a')
      .node('b')
      .node('sw', { kind: 'switch' })
      .node('c')
      .link('a', 'b', { latencyMs: 2.5 })
      .link('b', 'sw', { latencyMs: 0.25 })
      .link('c', 'sw', { latencyMs: 0.25 })
      .build();
    const plan = compile(t);
    expect(ops(plan, 'route')).toEqual([]);
    expect(ops(plan, 'process').map((p) => [p.node, p.name, p.argv.join(' '), p.control?.socket])).toEqual([
      ['a', 'a.bird', 'bird -f -c /etc/netns/dune.o.a/bird/bird.conf -s /etc/netns/dune.o.a/bird/bird.ctl', '/etc/netns/dune.o.a/bird/bird.ctl'],
      ['b', 'b.bird', 'bird -f -c /etc/netns/dune.o.b/bird/bird.conf -s /etc/netns/dune.o.b/bird/bird.ctl', '/etc/netns/dune.o.b/bird/bird.ctl'],
      ['c', 'c.bird', 'bird -f -c /etc/netns/dune.o.c/bird/bird.conf -s /etc/netns/dune.o.c/bird/bird.ctl', '/etc/netns/dune.o.c/bird/bird.ctl'],
    ]);
    expect(conf(plan, 'b')).toMatchInlineSnapshot(`
      "# BIRD 2 configuration of node "b", written by dune (routing = "ospf")
      router id 10.0.0.2;
      log stderr { warning, error, fatal, bug };
      protocol device { scan time 10; }
      protocol kernel k4 { ipv4 { import none; export filter { if source ~ [ RTS_OSPF, RTS_OSPF_IA, RTS_OSPF_EXT1, RTS_OSPF_EXT2, RTS_BGP ] then { krt_prefsrc = 10.0.0.2; accept; } reject; }; }; }
      protocol kernel k6 { ipv6 { import none; export filter { if source ~ [ RTS_OSPF, RTS_OSPF_IA, RTS_OSPF_EXT1, RTS_OSPF_EXT2, RTS_BGP ] then { krt_prefsrc = fd7a:d0::2; accept; } reject; }; }; }
      protocol ospf v2 ospf4 {
        ecmp no;
        ipv4 { import all; export none; };
        area 0 {
          interface "lo" { stub yes; };
          interface "eth0" { type ptp; cost 2500; hello 1; dead 3; retransmit 2; wait 2; };
          interface "eth1" { type broadcast; cost 250; hello 1; dead 3; retransmit 2; wait 2; };
        };
      }
      protocol ospf v3 ospf6 {
        ecmp no;
        ipv6 { import all; export none; };
        area 0 {
          stubnet fd7a:d0::2/128 { cost 0; };
          interface "eth0" { type ptp; cost 2500; hello 1; dead 3; retransmit 2; wait 2; };
          interface "eth1" { type broadcast; cost 250; hello 1; dead 3; retransmit 2; wait 2; };
        };
      }
      "
    `);
  });

  it('bgp: one AS per node, or by asn: eBGP between ASes, iBGP between loopbacks inside with OSPF as the IGP', () => {
    const t = new TopoBuilder('g')
      .lab({ routing: 'bgp' })
      .node('a', { ctx: { asn: 65001 } })
      .node('b', { ctx: { asn: 65001 } })
      .node('c')
      .chain(['a', 'b', 'c'])
      .build();
    const plan = compile(t);
    expect(conf(plan, 'b')).toMatchInlineSnapshot(`
      "# BIRD 2 configuration of node "b", written by dune (routing = "bgp")
      router id 10.0.0.2;
      log stderr { warning, error, fatal, bug };
      protocol device { scan time 10; }
      protocol kernel k4 { ipv4 { import none; export filter { if source ~ [ RTS_OSPF, RTS_OSPF_IA, RTS_OSPF_EXT1, RTS_OSPF_EXT2, RTS_BGP ] then { krt_prefsrc = 10.0.0.2; accept; } reject; }; }; }
      protocol kernel k6 { ipv6 { import none; export filter { if source ~ [ RTS_OSPF, RTS_OSPF_IA, RTS_OSPF_EXT1, RTS_OSPF_EXT2, RTS_BGP ] then { krt_prefsrc = fd7a:d0::2; accept; } reject; }; }; }
      protocol static lo4 { ipv4; route 10.0.0.2/32 blackhole; }
      protocol static lo6 { ipv6; route fd7a:d0::2/128 blackhole; }
      template bgp lab { hold time 3; keepalive time 1; connect delay time 1; connect retry time 2; error wait time 1, 5; }
      protocol bgp e1_4 from lab { description "c over eth1"; local 10.128.0.2 as 65001; neighbor 10.128.0.3 as 64514; ipv4 { import all; export where source ~ [ RTS_STATIC, RTS_BGP ] || net ~ [ 10.0.0.1/32 ]; }; }
      protocol bgp e1_6 from lab { local fd7a:de00::2 as 65001; neighbor fd7a:de00::3 as 64514; ipv6 { import all; export where source ~ [ RTS_STATIC, RTS_BGP ] || net ~ [ fd7a:d0::1/128 ]; }; }
      protocol bgp i0_4 from lab { local 10.0.0.2 as 65001; neighbor 10.0.0.1 as 65001; ipv4 { import all; export where source ~ [ RTS_STATIC, RTS_BGP ]; next hop self; }; }
      protocol bgp i0_6 from lab { local fd7a:d0::2 as 65001; neighbor fd7a:d0::1 as 65001; ipv6 { import all; export where source ~ [ RTS_STATIC, RTS_BGP ]; next hop self; }; }
      protocol ospf v2 ospf4 {
        ecmp no;
        ipv4 { import all; export none; };
        area 0 {
          interface "lo" { stub yes; };
          interface "eth0" { type ptp; cost 1; hello 1; dead 3; retransmit 2; wait 2; };
        };
      }
      protocol ospf v3 ospf6 {
        ecmp no;
        ipv6 { import all; export none; };
        area 0 {
          stubnet fd7a:d0::2/128 { cost 0; };
          interface "eth0" { type ptp; cost 1; hello 1; dead 3; retransmit 2; wait 2; };
        };
      }
      "
    `);
    expect(conf(plan, 'c')).toMatch(/local 10\.128\.0\.3 as 64514; neighbor 10\.128\.0\.2 as 65001;/);
    expect(conf(plan, 'c')).not.toMatch(/protocol ospf/);
  });

  it('refuses an asn that is not an AS number, and BGP across switches', () => {
    const bad = new TopoBuilder('g').lab({ routing: 'bgp' }).node('a', { ctx: { asn: 'x' } }).node('b').node('sw', { kind: 'switch' }).link('a', 'b').link('b', 'sw').build();
    expect(compileError(bad).diagnostics.map((d) => `${d.code}: ${d.message}`)).toEqual([
      'bad-asn: node "a" has asn = "x", which is not an AS number',
      'bgp-segment: routing = "bgp" does not support switches or hubs (L2 segments) yet',
    ]);
  });

  it('OSPF costs keep the weights proportional: integers as they are, latencies in µs, at least 1', () => {
    expect(ospfCosts({ kind: 'hops' }, 3)).toEqual([1, 1, 1]);
    expect(ospfCosts({ kind: 'weight', name: 'metric', perLink: new Float64Array([1, 10, 0]) }, 3)).toEqual([1, 10, 1]);
    expect(ospfCosts({ kind: 'weight', name: 'latency', perLink: new Float64Array([0.556, 12.25, 0.0001]) }, 3)).toEqual([556, 12250, 1]);
    expect(ospfCosts({ kind: 'weight', name: 'latency', perLink: new Float64Array([100.5, 200]) }, 2)).toEqual([32931, 65535]);
  });

  it('the static plan is unchanged by the new modes existing', () => {
    const t = new TopoBuilder('s').node('a').node('b').link('a', 'b').build();
    expect(ops(compileWithDiagnostics(t).plan, 'process')).toEqual([]);
  });
});
