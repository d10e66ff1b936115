import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { readTopology, type Topology } from '@dune/topology';
import { compile, compileWithDiagnostics, serializePlan, serializePlanChunks, summarizePlan, type CompileOptions, type OpKind } from '../src/index.js';
import { cmd, pinned, TopoBuilder } from './helpers.js';
import { syntheticInternet } from '../src/synthetic.js';

const FILES: Record<string, string> = {
  '/topo/bird.conf.j2': 'router id {{ ctx.rid }};\n{% for name, i in ifaces | dictsort %}interface "{{ name }}" { cost {{ i.metric }}; }; # peer {{ i.peer }}\n{% endfor %}',
};
const readFile: CompileOptions['readFile'] = (p) => {
  const text = FILES[p];
  if (text === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  return Buffer.from(text);
};

/** A small lab that touches every op kind: two phynodes, VXLAN, impairments, templates, cores. */
function smallLab(): Topology {
  const common = { templates: [{ src: 'bird.conf.j2', dst: '/tmp/{{node}}/bird.conf' }] };
  return new TopoBuilder('small')
    .phynode('ph1', { cores: [[1, 2, 3]], underlay: '198.51.100.1' })
    .phynode('ph2', { cores: [[1, 2]], underlay: '198.51.100.2', host: '192.0.2.20', user: 'lab' })
    .node('r1', { ...common, ctx: { rid: '0.0.0.1' }, phynode: 'ph1', pinned: [pinned('bird -f -c /tmp/{{node}}/bird.conf', { CORE: '{{core_1}}' })] })
    .node('r2', { ...common, ctx: { rid: '0.0.0.2' }, phynode: 'ph2', sysctls: { 'net.ipv6.conf.all.accept_dad': '0' } })
    .node('h1', { phynode: 'ph1', addrs: { lo: ['fc00:1::1'] }, exec: [cmd('ping -c 1 {{ ifaces.eth0.peer }}')] })
    .link('h1:eth0', 'r1:eth0', { mtu: 9000, a: { impairment: { rateBitsPerSec: 1e8 }, metric: 1 }, b: { metric: 1 } })
    .link('r1:eth1', 'r2:eth0', { latencyMs: 10, a: { metric: 5 }, b: { metric: 5 } })
    .build();
}

const KIND_ORDER: OpKind[] = ['netns', 'veth', 'vxlan', 'addr', 'up', 'sysctl', 'impair', 'route', 'file', 'exec', 'process'];

describe('the plan', () => {
  test('is byte-identical across runs', () => {
    const a = serializePlan(compile(smallLab(), { readFile }));
    const b = serializePlan(compile(smallLab(), { readFile }));
    expect(a).toBe(b);
    const s1 = serializePlan(compile(syntheticInternet({ nodes: 300, clients: 30, seed: 7 })));
    const s2 = serializePlan(compile(syntheticInternet({ nodes: 300, clients: 30, seed: 7 })));
    expect(s1).toBe(s2);
    // Two phynodes and a refinement pass do not change that.
    const multi = () => {
      const t = syntheticInternet({ nodes: 200, clients: 20, seed: 3 });
      t.phynodes = [
        { name: 'a', binds: [], extra: {}, underlay: '198.51.100.1' },
        { name: 'b', binds: [], extra: {}, underlay: '198.51.100.2' },
        { name: 'c', binds: [], extra: {}, underlay: '198.51.100.3' },
      ];
      return serializePlan(compile(t));
    };
    expect(multi()).toBe(multi());
  });

  test('ops come in kind order on every host', () => {
    const plan = compile(smallLab(), { readFile });
    for (const h of plan.hosts) {
      const ranks = h.ops.map((o) => (o.op === 'vxlan' ? KIND_ORDER.indexOf('veth') : KIND_ORDER.indexOf(o.op === 'routes' ? 'route' : o.op)));
      expect(ranks).toEqual([...ranks].sort((x, y) => x - y));
    }
  });

  test('carries its source: file, format, and a hash (the file text hash when given)', () => {
    const plan = compile(smallLab(), { readFile });
    expect(plan.source.file).toBe('test.toml');
    expect(plan.source.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(compile(smallLab(), { readFile, sourceSha256: 'ab'.repeat(32) }).source.sha256).toBe('ab'.repeat(32));
    const other = smallLab();
    other.nodes[0]!.ctx = { rid: '9.9.9.9' };
    expect(compile(other, { readFile }).source.sha256).not.toBe(plan.source.sha256);
  });

  test('the lab name can be overridden, and is made safe', () => {
    const plan = compile(smallLab(), { readFile, lab: 'exp #1' });
    expect(plan.lab).toMatch(/^exp_1-[0-9a-f]{6}$/);
    expect(plan.nsPrefix).toBe(`dune.${plan.lab}.`);
  });

  test("carries the userspace engine's settings only where they are not the default", () => {
    const withLab = (lab: Partial<Topology['lab']>) => compile(new TopoBuilder().lab(lab).node('a').node('b').link('a:eth0', 'b:eth0', { latencyMs: 1 }).build());
    expect(withLab({})).not.toHaveProperty('impairmentEngine');
    expect(withLab({ impairmentEngineThreads: 4 }).impairmentEngine).toEqual({ threads: 4 });
    expect(withLab({ impairmentEngineThreads: 'auto', impairmentEngineFailOpen: true }).impairmentEngine).toEqual({ threads: 'auto', failOpen: true });
    expect(withLab({ impairmentEngineFailOpen: true }).impairmentEngine).toEqual({ failOpen: true });
    // The defaults spelled out: the same plan as without them.
    expect(withLab({ impairmentEngineThreads: 1, impairmentEngineFailOpen: false })).not.toHaveProperty('impairmentEngine');
  });

  test('NetMirage client shaping is reported, not silently dropped', () => {
    const t = new TopoBuilder().node('c', { client: true, shaping: { upBitsPerSec: 1e6 } }).build();
    expect(compileWithDiagnostics(t).diagnostics.map((d) => d.code)).toEqual(['shaping-not-applied']);
  });

  test('whole small plan (snapshot)', () => {
    expect(serializePlan(compile(smallLab(), { readFile }), 2)).toMatchSnapshot();
  });

  test('summary', () => {
    expect(summarizePlan(compile(smallLab(), { readFile }))).toMatchInlineSnapshot(`
      "lab small: 3 nodes, 2 links on 2 phynodes (from test.toml, dune-toml, sha256 9d91ea2b6ed8)
      namespaces: dune.small.<node>

      phynode ph1 (this machine, underlay 198.51.100.1): 2 nodes, 44 ops, 2 cpus pinned
        r1 [cpus 1,2], h1

      phynode ph2 (lab@192.0.2.20, underlay 198.51.100.2): 1 node, 19 ops
        r2

      links: 2 (1 veth, 1 vxlan (VNI 1000))
      addresses: 7 IPv4, 8 IPv6
      routes: 6 IPv4, 8 IPv6, to 3 destinations
      impairments: 3 interfaces (delay 10ms ×2; rate 100mbit ×1)
      processes: 1; files: 5; commands: 1; sysctls: 17
      "
    `);
  });
});

describe('the DUNE example file (topologies/dune-example.toml)', () => {
  test('every problem in one report: its templates are absent and it over-commits its cores', () => {
    const file = fileURLToPath(new URL('../../../topologies/dune-example.toml', import.meta.url));
    const topo = readTopology(file);
    topo.file = 'dune-example.toml';
    let message = '';
    try {
      compile(topo, { readFile: (p) => readFileSync(p) });
    } catch (e) {
      message = (e as Error).message.replaceAll(dirname(file), '<dir>').replaceAll(file, 'dune-example.toml');
    }
    expect(message).toMatchSnapshot();
  });
});

describe('serializePlanChunks', () => {
  test('concatenates to exactly serializePlan, with and without indentation', () => {
    const plans = [compile(smallLab(), { readFile }), compile(new TopoBuilder().build()), compile(syntheticInternet({ nodes: 60, clients: 6 }))];
    for (const plan of plans) {
      for (const indent of [0, 2, 4]) {
        expect([...serializePlanChunks(plan, indent, 7)].join('')).toBe(serializePlan(plan, indent));
      }
    }
  });
});
