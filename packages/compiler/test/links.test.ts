import { describe, expect, test } from 'vitest';
import { compile, compileWithDiagnostics } from '../src/index.js';
import { compileError, ops, TopoBuilder } from './helpers.js';

function twoHosts() {
  return new TopoBuilder()
    .phynode('ph1', { underlay: '198.51.100.1', iface: 'eth9' })
    .phynode('ph2', { underlay: '198.51.100.2', host: 'ph2.example', user: 'lab' })
    .node('a', { phynode: 'ph1' })
    .node('b', { phynode: 'ph1' })
    .node('c', { phynode: 'ph2' })
    .node('d', { phynode: 'ph2' });
}

describe('links: veth on one phynode, VXLAN across', () => {
  test('veth pairs are created once, from the a end, with MTU and MACs', () => {
    const t = new TopoBuilder()
      .nodesNamed('a', 'b')
      .link('a', 'b', { mtu: 9000, a: { mac: '02:00:00:00:00:0a' }, b: { mac: '02:00:00:00:00:0b' } })
      .build();
    expect(ops(compile(t), 'veth')).toEqual([
      {
        op: 'veth',
        ns: 'dune.test.a',
        name: 'eth0',
        peerNs: 'dune.test.b',
        peerName: 'eth0',
        mtu: 9000,
        mac: '02:00:00:00:00:0a',
        peerMac: '02:00:00:00:00:0b',
        alias: 'dune:test:a:eth0',
        peerAlias: 'dune:test:b:eth0',
      },
    ]);
  });

  test('cross-phynode links: one vxlan op per side, same VNI, sequential from 1000 in link order', () => {
    const t = twoHosts().link('a', 'b').link('b', 'c').link('a', 'd', { mtu: 1400 }).link('c', 'd').build();
    const { plan, diagnostics } = compileWithDiagnostics(t);
    expect(ops(plan, 'veth', 'ph1').map((o) => `${o.ns}:${o.name}-${o.peerNs}:${o.peerName}`)).toEqual(['dune.test.a:eth0-dune.test.b:eth0']);
    expect(ops(plan, 'vxlan', 'ph1')).toEqual([
      { op: 'vxlan', ns: 'dune.test.b', name: 'eth1', vni: 1000, local: '198.51.100.1', remote: '198.51.100.2', port: 4789, underlayDev: 'eth9', mtu: 1450, alias: 'dune:test:b:eth1' },
      { op: 'vxlan', ns: 'dune.test.a', name: 'eth1', vni: 1001, local: '198.51.100.1', remote: '198.51.100.2', port: 4789, underlayDev: 'eth9', mtu: 1400, alias: 'dune:test:a:eth1' },
    ]);
    expect(ops(plan, 'vxlan', 'ph2')).toEqual([
      { op: 'vxlan', ns: 'dune.test.c', name: 'eth0', vni: 1000, local: '198.51.100.2', remote: '198.51.100.1', port: 4789, mtu: 1450, alias: 'dune:test:c:eth0' },
      { op: 'vxlan', ns: 'dune.test.d', name: 'eth0', vni: 1001, local: '198.51.100.2', remote: '198.51.100.1', port: 4789, mtu: 1400, alias: 'dune:test:d:eth0' },
    ]);
    expect(plan.links.map((l) => [l.kind, l.vni])).toEqual([['veth', undefined], ['vxlan', 1000], ['vxlan', 1001], ['veth', undefined]]);
    expect(plan.hosts.map((h) => h.target)).toEqual([{ underlay: '198.51.100.1' }, { host: 'ph2.example', user: 'lab', underlay: '198.51.100.2' }]);
    expect(diagnostics.map((d) => d.code)).toEqual(['vxlan-mtu']);
    expect(plan.stats).toMatchObject({ vxlanLinks: 2, vethLinks: 2 });
    // Routes across phynodes go through the tunnel like any other link.
    const r = ops(plan, 'route', 'ph1').find((o) => o.ns === 'dune.test.b' && o.dst === '10.0.0.3/32');
    expect(r).toEqual({ op: 'route', ns: 'dune.test.b', dst: '10.0.0.3/32', via: '10.128.0.3', dev: 'eth1', src: '10.0.0.2' });
  });

  test('a phynode with cross-host links needs an underlay address', () => {
    const t = new TopoBuilder()
      .phynode('ph1', { underlay: '198.51.100.1' })
      .phynode('ph2')
      .phynode('ph3', { underlay: 'ph3.example' })
      .node('a', { phynode: 'ph1' })
      .node('b', { phynode: 'ph2' })
      .node('c', { phynode: 'ph3' })
      .chain(['a', 'b', 'c', 'a'])
      .build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "2 errors in the topology:
      test.toml:2:1: error[missing-underlay]: phynode ph2 carries links to other phynodes over VXLAN (link #0 (a – b) at test.toml:7:1; link #1 (b – c) at test.toml:8:1), but has no underlay address
        hint: set underlay = "<this host's address facing the other phynodes>" under [infrastructure.nodes.ph2]
      test.toml:3:1: error[invalid-underlay]: phynode ph3: underlay "ph3.example" is not an IPv4 or IPv6 address
        hint: write the address itself, not a host name"
    `);
  });

  test('each end: addresses, up (lo first), impair with the link and direction', () => {
    const t = new TopoBuilder()
      .nodesNamed('a', 'b')
      .link('a', 'b', {
        a: { impairment: { delayUs: 5000, jitterUs: 1000, jitterDistribution: 'normal' } },
        b: { impairment: { rateBitsPerSec: 1e8, lossPct: 1 } },
      })
      .link('a', 'b')
      .build();
    const plan = compile(t);
    expect(ops(plan, 'up').map((o) => `${o.ns.slice(10)}:${o.dev}`)).toEqual(['a:lo', 'a:eth0', 'a:eth1', 'b:lo', 'b:eth0', 'b:eth1']);
    expect(ops(plan, 'impair')).toEqual([
      { op: 'impair', ns: 'dune.test.a', dev: 'eth0', link: '0:a', impairment: { delayUs: 5000, jitterUs: 1000, jitterDistribution: 'normal' }, mtu: 1500 },
      { op: 'impair', ns: 'dune.test.b', dev: 'eth0', link: '0:b', impairment: { lossPct: 1, rateBitsPerSec: 1e8 }, mtu: 1500 },
    ]);
  });
});
