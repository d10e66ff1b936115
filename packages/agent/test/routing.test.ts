import { describe, expect, it } from 'vitest';
import { expectedRoutes, parseOspfNeighbours, parseProtocols, parseRouteSources, protocolName } from '../src/index.js';
import type { Plan } from '@dune/compiler';

// Output of birdc (BIRD 2.0.12) in a lab of test/e2e/routing/ring5.toml, as captured.
const PROTOCOLS = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     15:09:39.039  
k4         Kernel     master4    up     15:09:39.039  
e0_4       BGP        ---        up     15:09:39.810  Established   
e4_6       BGP        ---        start  15:09:39.972  Active        Socket: Connection refused
`;
const NEIGHBOURS = `BIRD 2.0.12 ready.
ospf4:
Router ID   \tPri\t     State     \tDTime\tInterface  Router IP
10.0.0.2    \t  1\tFull/PtP  \t 2.587\teth0       10.128.0.1

ospf6:
Router ID   \tPri\t     State     \tDTime\tInterface  Router IP
10.0.0.5    \t  1\tInit/PtP  \t 2.633\teth1       fe80::f444:6cff:fed9:7704
`;
const ROUTES = `BIRD 2.0.12 ready.
Table master4:
10.128.0.4/31        unicast [ospf4 15:09:37.417] * I (150/3) [10.0.0.3]
\tvia 10.128.0.1 on eth0
10.0.0.3/32          unicast [ospf4 15:09:37.417] * I (150/2) [10.0.0.3]
\tvia 10.128.0.1 on eth0
fd7a:d0::5/128       unicast [e4_6 15:09:39.972] * (100) [AS64516i]
\tvia fd7a:de00::8 on eth1
`;

describe('routing daemons: what birdc says', () => {
  it('reads show protocols, show ospf neighbors and show route', () => {
    expect(parseProtocols(PROTOCOLS)).toEqual([
      { name: 'device1', proto: 'Device', table: '---', state: 'up', since: '15:09:39.039', info: '' },
      { name: 'k4', proto: 'Kernel', table: 'master4', state: 'up', since: '15:09:39.039', info: '' },
      { name: 'e0_4', proto: 'BGP', table: '---', state: 'up', since: '15:09:39.810', info: 'Established' },
      { name: 'e4_6', proto: 'BGP', table: '---', state: 'start', since: '15:09:39.972', info: 'Active        Socket: Connection refused' },
    ]);
    expect(parseOspfNeighbours(NEIGHBOURS)).toEqual([
      { routerId: '10.0.0.2', state: 'Full/PtP', iface: 'eth0', address: '10.128.0.1', protocol: 'ospf4' },
      { routerId: '10.0.0.5', state: 'Init/PtP', iface: 'eth1', address: 'fe80::f444:6cff:fed9:7704', protocol: 'ospf6' },
    ]);
    expect([...parseRouteSources(ROUTES)]).toEqual([
      ['10.128.0.4/31', 'ospf4'],
      ['10.0.0.3/32', 'ospf4'],
      ['fd7a:d0::5/128', 'e4_6'],
    ]);
    expect([2, 12, 0x44, 186, 250].map(protocolName)).toEqual(['kernel', 'bird', 'dune', 'bgp', '250']);
  });

  it('expects routes to the loopbacks of the nodes a node is connected to (switches included), not across parts', () => {
    const end = (node: string) => ({ node, ns: `ns.${node}`, dev: 'eth0', phynode: 'local', v4: '', v6: '' });
    const plan = {
      nodes: [
        { node: 'a', ns: 'ns.a', phynode: 'local', v4: '10.0.0.1', v6: 'fd::1', cpus: [] },
        { node: 'sw', ns: 'ns.sw', phynode: 'local', v4: '', v6: '', cpus: [] },
        { node: 'b', ns: 'ns.b', phynode: 'local', v4: '10.0.0.2', v6: 'fd::2', cpus: [] },
        { node: 'c', ns: 'ns.c', phynode: 'local', v4: '10.0.0.3', v6: 'fd::3', cpus: [] },
      ],
      links: [
        { index: 0, a: end('a'), b: end('sw'), kind: 'veth' },
        { index: 1, a: end('sw'), b: end('b'), kind: 'veth' },
      ],
    } as unknown as Plan;
    expect(Object.fromEntries(expectedRoutes(plan))).toEqual({
      'ns.a': ['10.0.0.2/32', 'fd::2/128'],
      'ns.b': ['10.0.0.1/32', 'fd::1/128'],
      'ns.c': [],
    });
  });
});
