import { describe, expect, test } from 'vitest';
import { compile, compileWithDiagnostics } from '../src/index.js';
import { ops, TopoBuilder } from './helpers.js';

describe('edge cases', () => {
  test('an empty topology compiles to an empty plan on one local host', () => {
    const plan = compile(new TopoBuilder().build());
    expect(plan.hosts.map((h) => [h.phynode, h.ops.length])).toEqual([['local', 0]]);
    expect(plan.stats).toMatchObject({ nodes: 0, links: 0, routesV4: 0 });
  });

  test('a lone node gets its namespace, loopbacks and sysctls, and no warning', () => {
    const { plan, diagnostics } = compileWithDiagnostics(new TopoBuilder().node('solo').build());
    expect(ops(plan, 'addr').map((o) => o.cidr)).toEqual(['10.0.0.1/32', 'fd7a:d0::1/128']);
    expect(diagnostics).toEqual([]);
  });

  test('a link from a node to itself is a veth inside one namespace, left out of routing', () => {
    const plan = compile(new TopoBuilder().nodesNamed('a', 'b').link('a', 'a').link('a', 'b').build());
    expect(ops(plan, 'veth').map((o) => `${o.ns}:${o.name}-${o.peerNs}:${o.peerName}`)).toEqual(['dune.test.a:eth0-dune.test.a:eth1', 'dune.test.a:eth2-dune.test.b:eth0']);
    expect(ops(plan, 'route').filter((r) => r.ns === 'dune.test.a').map((r) => r.dev)).toEqual(['eth2', 'eth2']);
  });

  test('phynodes declared but unused still get a (empty) host plan', () => {
    const plan = compile(new TopoBuilder().phynode('one').phynode('two').phynode('three').node('a').build());
    expect(plan.hosts.map((h) => [h.phynode, h.nodes.length])).toEqual([['one', 1], ['two', 0], ['three', 0]]);
  });
});
