/**
 * NetMirage mode in the compiler: edges, vsubnets, clients, the plan's ops and the edge
 * commands. Pure: no root, no kernel.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseGraphml, TopologyError, type Topology } from '@dune/topology';
import { clientsPerEdge, compileNetmirage, formatEdgeCommand, serializePlan, splitEvenly, type NetmirageSettings, type Op, cidr } from '@dune/compiler';

const root = new URL('../../', import.meta.url).pathname;
const twelve = () => parseGraphml(readFileSync(`${root}test/netmirage/twelve.graphml`, 'utf8'), 'test/netmirage/twelve.graphml', { clientType: 'client' });

const settings = (over: Partial<NetmirageSettings> = {}): NetmirageSettings => ({
  prefix: 'nm-',
  vsubnet: '10.0.0.0/8',
  edges: [
    { ip: '198.51.100.2', iface: 'nic1', rdev: 'eth1', rapps: '12' },
    { ip: '198.51.100.6', iface: 'nic2' },
  ],
  rootNs: 'custom',
  switch: 'linux',
  ...over,
});

function errorsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof TopologyError) return e.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code}: ${d.message}`);
    throw e;
  }
  return [];
}

describe('NetMirage arithmetic', () => {
  it('shares clients among edges with round(c/E·(i+1)) − round(c/E·i)', () => {
    expect(clientsPerEdge(12, 2)).toEqual([6, 6]);
    expect(clientsPerEdge(11, 2)).toEqual([6, 5]);
    expect(clientsPerEdge(10, 3)).toEqual([3, 4, 3]);
    expect(clientsPerEdge(1, 1)).toEqual([1]);
  });

  it('splits a subnet into the next power of two of equal parts', () => {
    const p = cidr.parsePrefix('10.0.0.0/9') as cidr.Prefix;
    expect(splitEvenly(p, 6)?.map(cidr.formatNetwork)).toEqual(['10.0.0.0/12', '10.16.0.0/12', '10.32.0.0/12', '10.48.0.0/12', '10.64.0.0/12', '10.80.0.0/12']);
    expect(splitEvenly(cidr.parsePrefix('10.0.0.0/31') as cidr.Prefix, 3)).toBeUndefined();
  });
});

describe('compileNetmirage', () => {
  it('builds twelve clients behind two edges', () => {
    const nm = compileNetmirage(twelve(), settings());
    expect(nm.lab).toBe('netmirage-nm-');
    expect(nm.rootNs).toBe('nm-root');
    expect(nm.edges.map((e) => [e.vsubnet, e.clients, e.clientSubnets.length])).toEqual([
      ['10.0.0.0/9', 6, 6],
      ['10.128.0.0/9', 6, 6],
    ]);
    expect(nm.clients.map((c) => `${c.node} ${c.subnet} ${c.rootDev}`)).toMatchSnapshot();
    expect(nm.edges.map((e) => formatEdgeCommand(e.command))).toEqual([
      'netmirage-edge -e 10.128.0.0/9 -c 6 eth1 <core-ip> 10.0.0.0/9 12',
      'netmirage-edge -e 10.0.0.0/9 -c 6 <iface> <core-ip> 10.128.0.0/9 <applications>',
    ]);
    // Internal addresses stay clear of the vsubnets and the edges.
    expect(nm.pools).toEqual({ nodeV4: '100.64.0.0/11', linkV4: '100.96.0.0/11' });
  });

  it('names namespaces <prefix><node> and marks each lo for teardown', () => {
    const nm = compileNetmirage(twelve(), settings({ prefix: 'x_' }));
    const netns = nm.plan.hosts[0]?.ops.filter((o): o is Extract<Op, { op: 'netns' }> => o.op === 'netns') ?? [];
    expect(netns.map((o) => o.ns)).toEqual(['x_r0', 'x_r1', 'x_r2', 'x_r3', ...Array.from({ length: 12 }, (_, i) => `x_c${i}`), 'x_root']);
    expect(netns.every((o) => o.alias.startsWith(`dune:${nm.lab}:`))).toBe(true);
    expect(nm.plan.nsPrefix).toBe('x_');
  });

  it('is IPv4 only and routes to client subnets, never configuring them', () => {
    const ops = compileNetmirage(twelve(), settings()).plan.hosts[0]?.ops ?? [];
    expect(ops.filter((o) => (o.op === 'addr' && o.cidr.includes(':')) || (o.op === 'route' && o.dst.includes(':')))).toEqual([]);
    expect(ops.filter((o) => o.op === 'addr' && o.cidr.startsWith('10.'))).toEqual([]);
    const routesIn = (ns: string) => ops.filter((o): o is Extract<Op, { op: 'route' }> => o.op === 'route' && o.ns === ns).map((o) => `${o.dst} ${o.via ?? ''} ${o.dev}`);
    // A relay knows every client subnet; a client its root's address and its own subnet via root.
    expect(routesIn('nm-r0')).toHaveLength(12);
    expect(routesIn('nm-c0')).toContain('100.95.255.254/32  root');
    expect(routesIn('nm-c0')).toContain('10.0.0.0/12 100.95.255.254 root');
  });

  it('puts client shaping on the client↔root link and the self-loop on self', () => {
    const ops = compileNetmirage(twelve(), settings()).plan.hosts[0]?.ops ?? [];
    const imp = (ns: string, dev: string) => ops.find((o): o is Extract<Op, { op: 'impair' }> => o.op === 'impair' && o.ns === ns && o.dev === dev)?.impairment;
    expect(imp('nm-c5', 'root')).toEqual({ rateBitsPerSec: 1250 * 8192 });
    expect(imp('nm-root', 'node-5')).toEqual({ rateBitsPerSec: 12500 * 8192 });
    expect(imp('nm-c0', 'self')).toEqual({ delayUs: 2000 });
    expect(imp('nm-c7', 'self')).toBeUndefined();
    expect(imp('nm-r0', 'eth0')).toEqual({ delayUs: 1000 });
  });

  it('drops delay and jitter only when asked', () => {
    const ops = compileNetmirage(twelve(), settings({ withoutDelay: true })).plan.hosts[0]?.ops ?? [];
    expect(ops.filter((o) => o.op === 'impair' && (o.impairment.delayUs !== undefined || o.impairment.jitterUs !== undefined))).toEqual([]);
    expect(ops.filter((o) => o.op === 'impair').length).toBeGreaterThan(0);
  });

  it('carves edge vsubnets around an explicit one', () => {
    const nm = compileNetmirage(twelve(), settings({ edges: [{ ip: '198.51.100.2', iface: 'nic1' }, { ip: '198.51.100.6', iface: 'nic1', vsubnet: '10.0.0.0/10' }, { ip: '198.51.100.10', iface: 'nic1' }] }));
    expect(nm.edges.map((e) => e.vsubnet)).toEqual(['10.64.0.0/10', '10.0.0.0/10', '10.128.0.0/10']);
    expect(nm.edges.map((e) => e.clients)).toEqual([4, 4, 4]);
    expect(nm.ifaces).toEqual(['nic1']);
  });

  it('reports every problem with the edges at once', () => {
    expect(
      errorsOf(() =>
        compileNetmirage(twelve(), settings({ prefix: 'a b', edges: [{ ip: '300.1.1.1', iface: 'nic1' }, { ip: '10.0.0.5', vsubnet: '10.0.0.0/24' }] })),
      ),
    ).toMatchSnapshot();
    expect(errorsOf(() => compileNetmirage(twelve(), settings({ edges: [{ ip: '192.0.2.1', iface: 'n', vsubnet: '10.0.0.0/9' }, { ip: '192.0.2.2', iface: 'n', vsubnet: '10.0.0.0/10' }] })))).toMatchSnapshot();
    expect(errorsOf(() => compileNetmirage(twelve(), settings({ edges: Array.from({ length: 13 }, (_, i) => ({ ip: `192.0.2.${i + 1}`, iface: 'n' })) })))).toMatchSnapshot();
  });
});

/** Two clients (one with a self-loop and a slow downlink) on one relay, Shadow units. */
const SMALL = `<?xml version="1.0" encoding="utf-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key attr.name="latency" attr.type="double" for="edge" id="l" />
  <key attr.name="jitter" attr.type="double" for="edge" id="j" />
  <key attr.name="type" attr.type="string" for="node" id="t" />
  <key attr.name="bandwidthdown" attr.type="int" for="node" id="bd" />
  <key attr.name="bandwidthup" attr.type="int" for="node" id="bu" />
  <graph edgedefault="undirected">
    <node id="relay"><data key="t">relay</data></node>
    <node id="a"><data key="t">client</data><data key="bd">1250</data><data key="bu">12500</data></node>
    <node id="b"><data key="t">client</data></node>
    <edge source="a" target="relay"><data key="l">3.0</data><data key="j">0.5</data></edge>
    <edge source="b" target="relay"><data key="l">7.0</data></edge>
    <edge source="a" target="a"><data key="l">2.0</data></edge>
  </graph>
</graphml>
`;

describe('the plan of a NetMirage build', () => {
  const nics = [
    { name: 'nic1', saved: { mtu: 1500, up: true, addrs: ['198.51.100.1/30'], routes: [{ family: 'inet' as const, table: 254, dst: '203.0.113.0/24', via: '198.51.100.2', type: 1, scope: 0, protocol: 3 }] } },
    { name: 'nic2', saved: { mtu: 1500, up: true, addrs: ['198.51.100.5/30'], routes: [] } },
  ];
  const small = () => parseGraphml(SMALL, 'small.graphml', { clientType: 'client' });

  it('is one plain-JSON plan: NICs adopted with what they had, the root switch and self links as rules and routes in tables', () => {
    const nm = compileNetmirage(small(), settings({ nics }));
    expect(serializePlan(nm.plan, 2)).toMatchSnapshot();
  });

  it('with the Open vSwitch root switch: one `ovs` op (daemons, bridge, ports, flows) instead of the rules, the root not forwarding', () => {
    const nm = compileNetmirage(small(), settings({ nics, switch: 'ovs', ovs: { dir: '/tmp/nm-ovs', schema: '/usr/share/openvswitch/vswitch.ovsschema' } }));
    expect(serializePlan(nm.plan, 2)).toMatchSnapshot();
    const ops = nm.plan.hosts[0]?.ops ?? [];
    const sw = ops.filter((o) => o.op === 'ovs');
    expect(sw).toHaveLength(1);
    const op = sw[0];
    if (op?.op !== 'ovs') throw new Error('no ovs op');
    expect(op.ns).toBe('nm-root');
    expect(op.dir).toBe('/tmp/nm-ovs');
    expect(op.ports).toEqual([{ dev: 'nic1', ofport: 1 }, { dev: 'nic2', ofport: 2 }, { dev: 'node-0', ofport: 1000 }, { dev: 'self-0', ofport: 1001 }, { dev: 'node-1', ofport: 1002 }, { dev: 'self-1', ofport: 1003 }]);
    // Edges without a MAC are learnt by ARP on their NIC; the NICs' MACs are read where the op runs.
    expect(op.learn.map((l) => `${l.ip}@${l.dev}`)).toEqual(settings().edges.map((e) => `${e.ip}@${e.iface}`));
    expect(op.flows.filter((f) => f.startsWith('priority=128,')).every((f) => /mod_dl_src:\{mac:nic\d\},mod_dl_dst:\{mac:[\d.]+\}/.test(f))).toBe(true);
    expect(op.flows.filter((f) => f.startsWith('priority=32668,'))).toHaveLength(3);
    // The switch is the last of the kernel ops: after every device it takes as a port.
    expect(ops.findIndex((o) => o.op === 'ovs')).toBeGreaterThan(ops.findLastIndex((o) => o.op === 'veth' || o.op === 'adopt' || o.op === 'route'));
    expect(ops.filter((o) => o.op === 'sysctl' && o.ns === 'nm-root' && o.key === 'net.ipv4.ip_forward').map((o) => (o.op === 'sysctl' ? o.value : ''))).toEqual(['0']);
    const linux = compileNetmirage(small(), settings({ nics })).plan.hosts[0]?.ops ?? [];
    expect(linux.filter((o) => o.op === 'ovs')).toEqual([]);
  });

  it('adopts each NIC first and keeps the root switch out of `-r init` namespaces it does not own', () => {
    const ops = compileNetmirage(small(), settings({ nics })).plan.hosts[0]?.ops ?? [];
    expect(ops.findIndex((o) => o.op === 'adopt')).toBeLessThan(ops.findIndex((o) => o.op === 'veth'));
    expect(ops.filter((o) => o.op === 'adopt').map((o) => (o.op === 'adopt' ? `${o.dev}>${o.ns}` : ''))).toEqual(['nic1>nm-root', 'nic2>nm-root']);
    expect(ops.filter((o) => o.op === 'rule').map((o) => (o.op === 'rule' ? `${o.ns} ${o.priority} ${o.src ?? ''}>${o.dst ?? ''} ${o.iif} ${o.table}` : ''))).toEqual([
      'nm-root 1000 10.0.0.0/9> nic1 10000',
      'nm-root 1000 10.128.0.0/9> nic2 10001',
      'nm-a 9999 >10.0.0.0/9 self 120',
      'nm-b 9999 >10.128.0.0/9 self 120',
    ]);
    const init = compileNetmirage(small(), settings({ nics, rootNs: 'init' })).plan.hosts[0]?.ops ?? [];
    expect(init.filter((o) => o.op === 'adopt')).toEqual([]);
    expect(init.filter((o) => o.op === 'rule' && o.ns === '')).toHaveLength(2);
    const ovs = compileNetmirage(small(), settings({ nics, switch: 'ovs' })).plan.hosts[0]?.ops ?? [];
    expect(ovs.filter((o) => o.op === 'rule' && o.ns === 'nm-root')).toEqual([]);
  });
});

describe('every shipped GraphML file compiles in NetMirage mode', () => {
  const files = ['topologies/shadow-example.graphml', ...readdirSync(`${root}topologies/zoo`).filter((f) => f.endsWith('.graphml')).map((f) => `topologies/zoo/${f}`)];
  for (const file of files) {
    it(file, () => {
      const topo: Topology = parseGraphml(readFileSync(`${root}${file}`, 'utf8'), file);
      const edges = topo.nodes.length >= 2 ? settings().edges : [{ ip: '198.51.100.2', iface: 'nic1' }];
      const t0 = performance.now();
      const nm = compileNetmirage(topo, settings({ edges }));
      const ms = performance.now() - t0;
      expect(nm.clients).toHaveLength(topo.nodes.length);
      const routes = nm.plan.stats['routesV4'] ?? 0;
      // Every node routes to every other client's subnet.
      const connected = nm.plan.stats['components'] === 1;
      if (connected) expect(routes).toBe(topo.nodes.length * (topo.nodes.length - 1) + 2 * topo.nodes.length);
      expect(ms).toBeLessThan(30_000);
    });
  }
});
