/**
 * Pictures of a lab: pure functions of a plan (and a status). The DOT and Mermaid texts are
 * snapshotted whole; the SVG is checked to be well-formed XML with one element per node and
 * per link, shapes by kind, boxes per phynode and cut links marked.
 */
import { describe, expect, it } from 'vitest';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { parseDuneToml } from '@dune/topology';
import { compile, type Plan } from '@dune/compiler';
import { graphModel, layoutGraph, renderGraph, toDot, toHtml, toMermaid, toSvg, type LabStatus } from '@dune/lab';

const TOPO = `
[infrastructure.nodes.ph1]
underlay = "198.51.100.1"
[infrastructure.nodes.ph2]
underlay = "198.51.100.2"

[topology]
lab = "pic"
routing_weight = "hops"
links = [
  { endpoints = ["r1:eth0", "sw:p1"], latency = "5ms", bw = "10mbit" },
  { endpoints = ["r2:eth0", "sw:p2"] },
  { endpoints = ["r1:eth1", "hub"], "r1:eth1" = { loss = "1%" } },
  { endpoints = ["r3 \\"quoted\\" <x>", "hub"] },
]

[topology.nodes.r1]
phynode = "ph1"
[topology.nodes.r2]
phynode = "ph2"
[topology.nodes.sw]
kind = "switch"
phynode = "ph1"
[topology.nodes.hub]
kind = "hub"
phynode = "ph2"
[topology.nodes.'r3 "quoted" <x>']
phynode = "ph2"
`;

function plan(): Plan {
  return compile(parseDuneToml(TOPO, 'pic.toml'));
}

/** The plan of a lab whose r2:eth0 was set down (`dune link down` takes its up op out of the journaled plan). */
function cutPlan(): Plan {
  const p = plan();
  const ns = p.nodes.find((n) => n.node === 'r2')?.ns;
  for (const h of p.hosts) h.ops = h.ops.filter((o) => !(o.op === 'up' && o.ns === ns && o.dev === 'eth0'));
  return p;
}

describe('graph model', () => {
  it('kinds from the plan, hosts in order, impairments per direction, cut links from the plan', () => {
    const g = graphModel(cutPlan());
    expect(g.hosts).toEqual(['ph1', 'ph2']);
    expect(g.nodes.map((n) => `${n.id}:${n.kind}@${n.phynode}`)).toEqual(['r1:router@ph1', 'r2:router@ph2', 'sw:switch@ph1', 'hub:hub@ph2', 'r3 "quoted" <x>:router@ph2']);
    expect(g.links.map((l) => l.cut)).toEqual([false, true, false, false]);
    expect(g.links[0]?.a.impairment).toEqual({ delayUs: 5000, rateBitsPerSec: 10e6 });
    expect(g.links[2]?.a.impairment).toEqual({ lossPct: 1 });
    expect(g.links[2]?.b.impairment).toEqual({});
  });

  it('a status overrides: live impairments, link state, stopped nodes', () => {
    const p = plan();
    const status = {
      lab: 'pic', phase: 'up', backend: {}, processes: [],
      nodes: p.nodes.map((n) => ({ node: n.node, ns: n.ns, present: true, stopped: n.node === 'r2', cpus: [] })),
      links: p.links.flatMap((l) => [l.a, l.b].map((e, i) => ({
        link: `${l.index}:${i ? 'b' : 'a'}`, node: e.node, dev: e.dev, peer: '', up: !(l.index === 0 && i === 0), mtu: 1500,
        impairment: l.index === 3 && i === 0 ? { delayUs: 20000 } : {}, rxBytes: 1, txBytes: 2, rxPackets: 3, txPackets: 4, txDropped: 0,
      }))),
    } as LabStatus;
    const g = graphModel(p, status);
    expect(g.nodes.find((n) => n.id === 'r2')?.stopped).toBe(true);
    expect(g.links.map((l) => l.cut)).toEqual([true, false, false, false]);
    expect(g.links[3]?.a.impairment).toEqual({ delayUs: 20000 });
    expect(g.links[0]?.a.txPackets).toBe(4);
  });
});

describe('pictures', () => {
  const g = graphModel(cutPlan());

  it('dot: a cluster per phynode, shapes by kind, labels, the cut link red and dashed', () => {
    expect(toDot(g)).toMatchSnapshot();
  });

  it('mermaid: a subgraph per phynode, shapes by kind, the cut link dotted and red', () => {
    expect(toMermaid(g)).toMatchSnapshot();
  });

  it('svg: well-formed XML, one element per node and per link, a box per phynode, the cut link marked', () => {
    const svg = toSvg(g);
    expect(XMLValidator.validate(svg)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => name === 'g' }).parse(svg) as { svg: { g: { class: string; g: Record<string, string>[] }[] } };
    const groups = Object.fromEntries(doc.svg.g.map((x) => [x.class, x.g]));
    expect(groups['nodes']?.map((x) => x['data-node'])).toEqual(g.nodes.map((n) => n.id));
    expect(groups['nodes']?.map((x) => x['class'])).toEqual(['node router', 'node router', 'node switch', 'node hub', 'node router']);
    expect(groups['links']?.map((x) => x['data-link'])).toEqual(['0', '1', '2', '3']);
    expect(groups['links']?.map((x) => x['class'])).toEqual(['link veth', 'link vxlan cut', 'link vxlan', 'link veth']);
    expect(groups['hosts']?.map((x) => x['data-host'])).toEqual(['ph1', 'ph2']);
    expect(svg).toContain('<circle');
    expect(svg).toContain('<polygon');
  });

  it('layout: deterministic, every node inside its phynode box and inside the picture', () => {
    const l1 = layoutGraph(g);
    expect(layoutGraph(g)).toEqual(l1);
    for (const n of g.nodes) {
      const p = l1.nodes.get(n.id) as { x: number; y: number };
      const box = l1.hosts.find((b) => b.host === n.phynode) as { x: number; y: number; width: number; height: number };
      expect(p.x).toBeGreaterThan(box.x);
      expect(p.x).toBeLessThan(box.x + box.width);
      expect(p.y).toBeGreaterThan(box.y);
      expect(p.y).toBeLessThan(box.y + box.height);
      expect(p.x).toBeLessThan(l1.width);
      expect(p.y).toBeLessThan(l1.height);
    }
    // Nodes do not sit on each other.
    const pts = [...l1.nodes.values()];
    for (let i = 0; i < pts.length; i++) for (let j = i + 1; j < pts.length; j++) expect(Math.hypot((pts[i]?.x ?? 0) - (pts[j]?.x ?? 0), (pts[i]?.y ?? 0) - (pts[j]?.y ?? 0))).toBeGreaterThan(30);
  });

  it('html stands alone: the SVG inside, no script, nothing fetched', () => {
    const html = toHtml(g);
    expect(html).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it('an unknown format names the valid ones and the nearest', () => {
    expect(() => renderGraph(g, 'svgz')).toThrowErrorMatchingInlineSnapshot(`[DuneError: "svgz" is not a picture format]`);
  });
});

describe('device bricks in pictures', () => {
  it('a vtep, a nic, a tap, a vhost and a capture are drawn as themselves, not as switches', () => {
    const plan = compile(parseDuneToml(`
[topology]
lab = "devpic"
links = [
  { endpoints = ["h:eth0", "sw:eth0"] }, { endpoints = ["sw:eth1", "vt"] }, { endpoints = ["sw:eth2", "up"] },
  { endpoints = ["sw:eth3", "vm"] }, { endpoints = ["sw:eth4", "vh"] }, { endpoints = ["h:eth1", "cap:eth0"] }, { endpoints = ["cap:eth1", "h2"] },
]
[topology.nodes.h]
[topology.nodes.h2]
[topology.nodes.sw]
kind = "switch"
[topology.nodes.vt]
kind = "vtep"
vni = 5
remote = "192.0.2.9"
[topology.nodes.up]
kind = "nic"
dev = "enp3s0"
[topology.nodes.vm]
kind = "tap"
[topology.nodes.vh]
kind = "vhost"
[topology.nodes.cap]
kind = "capture"
`, 'devpic.toml'));
    const g = graphModel(plan);
    expect(Object.fromEntries(g.nodes.map((n) => [n.id, n.kind]))).toEqual({ h: 'router', sw: 'switch', vt: 'vtep', up: 'nic', vm: 'tap', vh: 'vhost', cap: 'capture', h2: 'router' });
    const dot = toDot(g);
    expect(dot).toContain('"vt" [shape=cds');
    expect(dot).toContain('"cap" [shape=note');
  });
});
