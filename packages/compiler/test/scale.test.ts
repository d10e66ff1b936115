/**
 * Size, not speed: these check that big inputs compile to the right number of routes within
 * generous bounds (the brief's: Kdl with all routes < 2 s; 5,000 nodes with 500 client
 * destinations < 10 s and < 1 GiB). Figures for comparison belong to the benches.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { readTopology } from '@dune/topology';
import { compile } from '../src/index.js';
import { syntheticInternet } from '../src/synthetic.js';

const KDL = fileURLToPath(new URL('../../../topologies/zoo/Kdl.graphml', import.meta.url));

describe('scale', () => {
  test('Kdl (754 nodes, 899 links): every node routed to every node', () => {
    const topo = readTopology(KDL);
    expect(topo.nodes.length).toBe(754);
    topo.lab.routeTo = 'all-nodes';
    const t0 = performance.now();
    const plan = compile(topo);
    const ms = performance.now() - t0;
    const pairs = plan.stats['routeDestinations']! * (plan.stats['nodes']! - 1) - plan.stats['unroutedPairs']!;
    expect(plan.stats['routesV4']).toBe(pairs);
    expect(plan.stats['routesV6']).toBe(pairs);
    console.log(`Kdl: ${plan.stats['routesV4']! + plan.stats['routesV6']!} routes in ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(2000);
  });

  test('synthetic Internet, 5,000 nodes, 500 client destinations', () => {
    const topo = syntheticInternet({ nodes: 5000, clients: 500, seed: 1 });
    const heapBefore = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const plan = compile(topo);
    const ms = performance.now() - t0;
    const heapMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    expect(plan.stats).toMatchObject({ nodes: 5000, routeDestinations: 500, routesV4: 500 * 4999, routesV6: 500 * 4999, components: 1 });
    console.log(`synthetic 5000/500: ${plan.stats['ops']} ops in ${ms.toFixed(0)} ms, heap +${heapMiB.toFixed(0)} MiB`);
    expect(ms).toBeLessThan(10_000);
    expect(heapMiB).toBeLessThan(1024);
  });
});
