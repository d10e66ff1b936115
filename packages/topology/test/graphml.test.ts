import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DuneError, formatDiagnostics, parseGraphml, seededRandom, TopologyError, type GraphmlOptions, type Link, type Topology } from '../src/index.js';
import { fibreDelayUs, greatCircleKm } from '../src/geo.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURES = 'packages/topology/test/fixtures/graphml';

/** Reads a file of the repository; messages name it by its path from the repository root. */
function read(path: string, opts?: GraphmlOptions): Topology {
  return parseGraphml(readFileSync(ROOT + path, 'utf8'), path, opts);
}

function fixture(name: string, opts?: GraphmlOptions): Topology {
  return read(`${FIXTURES}/${name}.graphml`, opts);
}

/** Every diagnostic of a failed parse, as the CLI would print them. */
function failure(parse: () => unknown): string {
  try {
    parse();
  } catch (e) {
    if (e instanceof TopologyError) return formatDiagnostics(e.diagnostics);
    throw e;
  }
  throw new Error('expected a TopologyError');
}

function text(body: string, keys = ''): string {
  return `<graphml xmlns="http://graphml.graphdrawing.org/xmlns">${keys}<graph edgedefault="undirected">${body}</graph></graphml>`;
}

function linkBetween(t: Topology, a: string, b: string): Link {
  const link = t.links.find((l) => (l.a.node === a && l.b.node === b) || (l.a.node === b && l.b.node === a));
  if (link === undefined) throw new Error(`no link ${a}–${b}`);
  return link;
}

describe('real topologies', () => {
  // Counted in the files themselves (grep '<node ' / '<edge '); parallel edges included.
  const ZOO: Record<string, [nodes: number, links: number]> = {
    'Abilene.graphml': [11, 14],
    'Internet2.graphml': [20, 26],
    'Geant2012.graphml': [40, 61],
    'Garr201201.graphml': [61, 89],
    'Uninett2011.graphml': [69, 98],
    'Cogentco.graphml': [197, 245],
    'Kdl.graphml': [754, 899],
  };

  it('knows every Zoo file there is', () => {
    expect(readdirSync(`${ROOT}topologies/zoo`).filter((f) => f.endsWith('.graphml')).sort()).toEqual(Object.keys(ZOO).sort());
  });

  for (const [file, [nodes, links]] of Object.entries(ZOO)) {
    it(`reads zoo/${file}: ${nodes} nodes, ${links} links, every link with a latency`, () => {
      const t = read(`topologies/zoo/${file}`);
      expect(t.format).toBe('zoo-graphml');
      expect(t.nodes).toHaveLength(nodes);
      expect(t.links).toHaveLength(links);
      expect(t.links.map((l) => l.index)).toEqual([...Array(links).keys()]);
      for (const l of t.links) {
        expect(l.a.impairment.delayUs).toBeGreaterThanOrEqual(10);
        expect(l.b.impairment).toEqual(l.a.impairment);
        expect(l.weights.latency).toBe(l.a.impairment.delayUs! / 1000);
      }
      expect(t.notes.map((n) => n.code)).toContain('latency-derived');
      expect(t.notes.every((n) => n.severity !== 'error')).toBe(true);
      expect(t.lab.name).toBe(file.replace('.graphml', ''));
    });
  }

  it('reads the Shadow example: one client with a self-loop', () => {
    const t = read('topologies/shadow-example.graphml');
    expect(t.format).toBe('netmirage-graphml');
    expect(t.links).toEqual([]);
    expect(t.nodes).toEqual([
      {
        id: 'poi-1',
        sysctls: {},
        templates: [],
        binds: [],
        exec: [],
        pinned: [],
        addrs: {},
        ctx: { asn: 0, type: 'net', geocode: 'US', ip: '0.0.0.0' },
        client: true,
        shaping: { upBitsPerSec: 83_886_080, downBitsPerSec: 83_886_080, selfLink: { delayUs: 50_000 } },
        loc: { file: 'topologies/shadow-example.graphml', line: 13, col: 5 },
      },
    ]);
    expect(t.notes).toEqual([]);
  });

  it('reads Shadow bandwidths in the units asked for (NetMirage ignored --units)', () => {
    const shaping = (units: GraphmlOptions['units']) => read('topologies/shadow-example.graphml', { units }).nodes[0]?.shaping;
    expect(shaping('shadow')?.upBitsPerSec).toBe(10240 * 1024 * 8);
    expect(shaping('KiB')?.downBitsPerSec).toBe(83_886_080);
    expect(shaping('modelnet')?.upBitsPerSec).toBe(10_240_000);
    expect(shaping('Kb')?.downBitsPerSec).toBe(10_240_000);
  });

  it('derives plausible Abilene latencies from coordinates', () => {
    const t = read('topologies/zoo/Abilene.graphml');
    const ny = t.nodes.find((n) => n.ctx.label === 'New York')!;
    const chicago = t.nodes.find((n) => n.ctx.label === 'Chicago')!;
    expect(ny.geo).toEqual({ lat: 40.71427, lon: -74.00597 });
    expect(greatCircleKm(ny.geo!, chicago.geo!)).toBeCloseTo(1145, -1);
    const link = linkBetween(t, ny.id, chicago.id);
    expect(link.a.impairment.delayUs).toBeGreaterThan(5400);
    expect(link.a.impairment.delayUs).toBeLessThan(6000);
    expect(link.weights.latency).toBeCloseTo(link.a.impairment.delayUs! / 1000, 9);
    // The Zoo's own attributes stay in ctx for templates.
    expect(ny.ctx).toMatchObject({ label: 'New York', Country: 'United States', Internal: 1 });
    expect(t.notes.map((n) => n.code)).toEqual(['latency-derived', 'latency-geo']);
  });

  it('keeps parallel Zoo links', () => {
    const t = read('topologies/zoo/Cogentco.graphml');
    const parallel = t.links.filter((l) => [l.a.node, l.b.node].sort().join() === '143,42');
    expect(parallel).toHaveLength(2);
    expect(parallel[0]?.index).not.toBe(parallel[1]?.index);
  });

  it('reads Internet2 (no coordinates at all) as a Zoo file with 1 ms links', () => {
    const t = read('topologies/zoo/Internet2.graphml');
    expect(t.format).toBe('zoo-graphml');
    expect(new Set(t.links.map((l) => l.a.impairment.delayUs))).toEqual(new Set([1000]));
    expect(t.notes.map((n) => n.code)).toEqual(['latency-derived']);
  });
});

describe('NetMirage semantics', () => {
  it('lets edges name nodes declared later, and keys come last', () => {
    const t = fixture('edges-before-nodes');
    expect(t.nodes.map((n) => n.id)).toEqual(['a', 'b', 'c']);
    expect(t.links.map((l) => [l.a.node, l.b.node, l.a.impairment.delayUs, l.weights.latency])).toEqual([
      ['a', 'b', 10_000, 10],
      ['b', 'c', 2500, 2.5],
    ]);
    expect(t.links[1]?.loc).toEqual({ file: `${FIXTURES}/edges-before-nodes.graphml`, line: 5, col: 5 });
  });

  it('honours <default> values (NetMirage ignores them)', () => {
    const t = fixture('defaults');
    const [a, b] = t.nodes;
    expect(a?.shaping).toEqual({ upBitsPerSec: 100 * 8192, downBitsPerSec: 200 * 8192, lossPct: 1 });
    // bandwidthup 0 = unlimited: no rate at all.
    expect(b?.shaping).toEqual({ downBitsPerSec: 200 * 8192, lossPct: 1 });
    expect(a?.ctx).toEqual({ asn: 64512 });
    expect(b?.ctx).toEqual({ asn: 65000 });
    const [l0, l1] = t.links;
    expect(l0?.a.impairment).toEqual({ delayUs: 5000 });
    expect(l0?.weights).toEqual({ latency: 5, queue_len: 0, cost: 1.5 });
    expect(l1?.b.impairment).toEqual({ delayUs: 7250, queuePackets: 50 });
    expect(l1?.weights).toEqual({ latency: 7.25, queue_len: 50, cost: 3 });
  });

  it('keeps parallel edges as separate links, in document order', () => {
    const t = fixture('parallel');
    expect(t.links.map((l) => [l.index, l.a.node, l.b.node, l.weights])).toEqual([
      [0, 'x', 'y', { latency: 1, key: 0 }],
      [1, 'y', 'x', { latency: 3, key: 1 }],
      [2, 'x', 'y', { latency: 2, key: 2 }],
    ]);
  });

  it('applies edge latency, jitter, loss and queue to both directions', () => {
    const t = fixture('clients');
    const l = linkBetween(t, 'app1', 'core');
    const both = { delayUs: 20_000, jitterUs: 2000, lossPct: 0.1, queuePackets: 100 };
    expect(l.a).toEqual({ node: 'app1', impairment: both });
    expect(l.b).toEqual({ node: 'core', impairment: both });
    expect(l.a.impairment).not.toBe(l.b.impairment);
    expect(linkBetween(t, 'core', 'app2').a.impairment).toEqual({ delayUs: 100 });
  });

  it('makes every node a client when no client type is given', () => {
    const t = fixture('clients');
    expect(t.nodes.map((n) => [n.id, n.client])).toEqual([
      ['app1', true],
      ['core', true],
      ['app2', true],
    ]);
    expect(t.nodes[1]?.shaping).toEqual({ upBitsPerSec: 5000 * 8192, selfLink: { delayUs: 1000 } });
    expect(t.links).toHaveLength(2);
  });

  it('makes only nodes of the client type clients; self-loops elsewhere are ignored', () => {
    const t = fixture('clients', { clientType: 'client', units: 'modelnet' });
    expect(t.nodes.map((n) => [n.id, n.client])).toEqual([
      ['app1', true],
      ['core', false],
      ['app2', true],
    ]);
    expect(t.nodes[0]?.shaping).toEqual({
      upBitsPerSec: 1_000_000,
      downBitsPerSec: 2_000_500,
      lossPct: 5,
      selfLink: { delayUs: 1000, lossPct: 50 },
    });
    expect(t.nodes[1]?.shaping).toBeUndefined();
    expect(t.nodes[2]?.shaping).toBeUndefined();
    expect(t.nodes[1]?.ctx).toEqual({ type: 'router' });
    expect(formatDiagnostics(t.notes)).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/clients.graphml:31:5: warning[self-loop-ignored]: the self-loop on "core" is ignored: only client nodes have a self link
        hint: clients are the nodes whose type is "client""
    `);
  });

  it('warns when no node has the client type', () => {
    const t = fixture('clients', { clientType: 'clinet' });
    expect(t.nodes.every((n) => !n.client)).toBe(true);
    expect(formatDiagnostics(t.notes.filter((n) => n.code === 'no-client'))).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/clients.graphml:11:3: warning[no-client]: no node has type "clinet", so no node is a client
        hint: did you mean \`client\`? Use one of: client, router"
    `);
  });

  it('fills the lab settings', () => {
    const t = fixture('parallel');
    expect(t.file).toBe(`${FIXTURES}/parallel.graphml`);
    expect(t.baseDir).toBe(FIXTURES);
    expect(t.lab).toEqual({
      name: 'parallel',
      routing: 'static',
      routingWeight: 'latency',
      routeTo: 'all-nodes',
      pools: {
        linkV4: '10.128.0.0/9',
        linkV6: 'fd7a:de00::/32',
        nodeV4: '10.0.0.0/10',
        nodeV6: 'fd7a:d0::/32',
        linkV4Len: 31,
        linkV6Len: 127,
      },
      impairmentBackend: 'auto',
      vxlanPort: 4789,
    });
    expect(t.phynodes).toEqual([{ name: 'local', binds: [], extra: {} }]);
    expect(fixture('parallel', { lab: 'mine', weight: 'key' }).lab).toMatchObject({ name: 'mine', routingWeight: 'key' });
  });
});

describe('routing weights', () => {
  const keys =
    '<key id="lat" for="edge" attr.name="latency" attr.type="double"/>' +
    '<key id="cost" for="edge" attr.name="cost" attr.type="int"/>' +
    '<key id="name" for="edge" attr.name="name" attr.type="string"/>';
  const body = (cost: string) =>
    `<node id="a"/><node id="b"/><edge source="a" target="b"><data key="lat">1</data>${cost}</edge>` +
    '<edge source="a" target="b"><data key="lat">2</data></edge>';

  it('accepts an integer weight key and says which links lack it', () => {
    const t = parseGraphml(text(body('<data key="cost">4</data>'), keys), 'w.graphml', { weight: 'cost' });
    expect(t.links.map((l) => l.weights)).toEqual([{ latency: 1, cost: 4 }, { latency: 2 }]);
    expect(formatDiagnostics(t.notes)).toMatchInlineSnapshot(`
      "w.graphml:1:388: warning[missing-weight]: 1 of 2 links has no \`cost\` and so no routing weight (the first at line 1)
        hint: give every edge a \`cost\`, or a <default> in key "cost""
    `);
  });

  it('refuses an unknown, non-numeric or negative weight', () => {
    expect(failure(() => parseGraphml(text(body(''), keys), 'w.graphml', { weight: 'cots' }))).toMatchInlineSnapshot(`
      "w.graphml:1:244: error[unknown-weight]: the routing weight \`cots\` is not an edge attribute of this file
        hint: did you mean \`cost\`? Use one of: latency, cost, hops"
    `);
    expect(failure(() => parseGraphml(text(body(''), keys), 'w.graphml', { weight: 'name' }))).toMatchInlineSnapshot(`
      "w.graphml:1:181: error[bad-key-type]: the routing weight \`name\` must be numeric, but key "name" declares attr.type="string"
        hint: declare it with attr.type int, long, float or double"
    `);
    expect(failure(() => parseGraphml(text(body('<data key="cost">-1</data>'), keys), 'w.graphml', { weight: 'cost' }))).toMatchInlineSnapshot(`
      "w.graphml:1:356: error[out-of-range]: the routing weight \`cost\` -1 is negative
        hint: shortest paths need weights of 0 or more"
    `);
  });

  it('needs no attribute to route by hops', () => {
    const t = parseGraphml(text(body(''), keys), 'w.graphml', { weight: 'hops' });
    expect(t.lab.routingWeight).toBe('hops');
    expect(t.notes).toEqual([]);
  });

  it('warns when links carry no latency at all', () => {
    const t = parseGraphml(text('<node id="a"/><node id="b"/><edge source="a" target="b"/>'), 'w.graphml');
    expect(t.links[0]?.weights).toEqual({});
    expect(formatDiagnostics(t.notes)).toMatchInlineSnapshot(`
      "w.graphml:1:56: warning[missing-weight]: no edge key is named \`latency\`: links have neither a delay nor a routing weight
        hint: declare <key id="lat" for="edge" attr.name="latency" attr.type="double"/> and give edges a latency in ms, or route by hops"
    `);
  });
});

describe('Topology Zoo', () => {
  it('derives latencies, with a floor for co-located nodes and the median for ends without coordinates', () => {
    const t = fixture('zoo-partial');
    expect(t.format).toBe('zoo-graphml');
    const oslo = t.nodes[0]!.geo!;
    const bergen = t.nodes[2]!.geo!;
    const trondheim = t.nodes[3]!.geo!;
    const osloBergen = fibreDelayUs(greatCircleKm(oslo, bergen));
    const osloTrondheim = fibreDelayUs(greatCircleKm(oslo, trondheim));
    expect(osloBergen).toBeGreaterThan(1500); // ≈ 305 km
    expect(osloBergen).toBeLessThan(1600);
    expect(t.links.map((l) => l.a.impairment.delayUs)).toEqual([
      10, // co-located: the floor
      osloBergen,
      osloTrondheim,
      osloBergen, // Somewhere has no coordinates: the median of 10, osloBergen, osloTrondheim
    ]);
    // Zoo link speeds are kept as a weight, never applied as a rate.
    expect(t.links[0]?.weights).toEqual({ LinkSpeedRaw: 1e10, latency: 0.01 });
    expect(t.links[0]?.a.impairment.rateBitsPerSec).toBeUndefined();
    expect(t.nodes[4]?.geo).toBeUndefined();
    // A node without edges is kept: the compiler reports the disconnected part.
    expect(t.nodes[5]?.ctx).toEqual({ label: 'Island', Latitude: 78.22, Longitude: 15.65 });
    expect(t.links.some((l) => l.a.node === '5' || l.b.node === '5')).toBe(false);
    expect(formatDiagnostics(t.notes)).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/zoo-partial.graphml:8:3: note[latency-derived]: 4 of 4 links had no latency and got a derived one: 3 from the great-circle distance between their ends, 1 the median of those (1.523ms) because an end has no coordinates: "2"–"4" (line 18)
        hint: give those nodes Latitude and Longitude, or give the edges a \`latency\` (ms)
      packages/topology/test/fixtures/graphml/zoo-partial.graphml:8:3: note[latency-geo]: latencies were derived from great-circle distances at 5 µs per km (light in fibre, at least 10 µs): 3 links, from 10us to 1.958ms one way"
    `);
  });

  it('lists at most ten links that fell back to the median', () => {
    const keys =
      '<key attr.name="Latitude" attr.type="double" for="node" id="y"/><key attr.name="Longitude" attr.type="double" for="node" id="x"/>';
    let body = '<node id="p"><data key="y">0</data><data key="x">0</data></node><node id="q"><data key="y">0</data><data key="x">1</data></node>';
    body += '<edge source="p" target="q"/>';
    for (let i = 0; i < 13; i++) body += `<node id="n${i}"/><edge source="p" target="n${i}"/>`;
    const t = parseGraphml(text(body, keys), 'many.graphml');
    expect(new Set(t.links.map((l) => l.a.impairment.delayUs))).toEqual(new Set([fibreDelayUs(greatCircleKm({ lat: 0, lon: 0 }, { lat: 0, lon: 1 }))]));
    expect(formatDiagnostics(t.notes)).toMatchInlineSnapshot(`
      "many.graphml:1:185: note[latency-derived]: 14 of 14 links had no latency and got a derived one: 1 from the great-circle distance between their ends, 13 the median of those (556us) because an end has no coordinates: "p"–"n0" (line 1), "p"–"n1" (line 1), "p"–"n2" (line 1), "p"–"n3" (line 1), "p"–"n4" (line 1), "p"–"n5" (line 1), "p"–"n6" (line 1), "p"–"n7" (line 1), "p"–"n8" (line 1), "p"–"n9" (line 1), and 3 more
        hint: give those nodes Latitude and Longitude, or give the edges a \`latency\` (ms)
      many.graphml:1:185: note[latency-geo]: latencies were derived from great-circle distances at 5 µs per km (light in fibre, at least 10 µs): 1 link, 556us one way"
    `);
  });

  it('refuses coordinates off the globe', () => {
    const keys =
      '<key attr.name="Latitude" attr.type="double" for="node" id="y"/><key attr.name="Longitude" attr.type="double" for="node" id="x"/>';
    expect(failure(() => parseGraphml(text('<node id="p"><data key="y">91</data><data key="x">0</data></node>', keys), 'geo.graphml'))).toMatchInlineSnapshot(`
      "geo.graphml:1:230: error[out-of-range]: node "p" has Latitude 91, Longitude 0: outside the globe
        hint: Latitude is -90..90 and Longitude -180..180 degrees"
    `);
  });
});

describe('error messages', () => {
  it('unknown node in an edge, with a suggestion', () => {
    expect(failure(() => fixture('unknown-node'))).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/unknown-node.graphml:8:5: error[unknown-node]: the edge's target "ruoter-2" is not a declared node
        hint: did you mean "router-2"?
      packages/topology/test/fixtures/graphml/unknown-node.graphml:9:5: error[unknown-node]: the edge's source "server" is not a declared node
        hint: declare it with <node id="server"/> or fix the source"
    `);
  });

  it('directed edge', () => {
    expect(failure(() => fixture('directed-edge'))).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/directed-edge.graphml:7:5: error[directed-edge]: the edge "a" → "b" is directed (directed="true")
        hint: links carry traffic both ways: write directed="false", or leave it out in a <graph edgedefault="undirected">"
    `);
  });

  it('directed graph: one error for all the edges it makes directed', () => {
    expect(failure(() => fixture('directed-graph'))).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/directed-graph.graphml:4:3: error[directed-edge]: the graph is directed (edgedefault="directed") and 2 edges (the first at line 8) do not say directed="false"
        hint: links carry traffic both ways: write <graph edgedefault="undirected">"
    `);
  });

  it('negative latency', () => {
    expect(failure(() => fixture('negative-latency'))).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/negative-latency.graphml:8:7: error[out-of-range]: the latency -2.5 ms is negative
        hint: the latency is a one-way delay in ms: 0 or more"
    `);
  });

  it('non-numeric values', () => {
    expect(failure(() => fixture('non-numeric'))).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/non-numeric.graphml:6:18: error[bad-value]: the value "10 KiB" of \`bandwidthup\` (key "up", int) is not an integer
        hint: write a whole number such as 100
      packages/topology/test/fixtures/graphml/non-numeric.graphml:9:7: error[bad-value]: the value "fast" of \`latency\` (key "lat", double) is not a number
        hint: write a decimal number such as 12.5"
    `);
  });

  it('duplicate node id', () => {
    expect(failure(() => fixture('duplicate-node'))).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/duplicate-node.graphml:6:5: error[duplicate-node]: node "a" is declared twice; the first is at packages/topology/test/fixtures/graphml/duplicate-node.graphml:4:5
        hint: node ids must be unique: rename one of them"
    `);
  });

  it('XML syntax error', () => {
    expect(failure(() => fixture('xml-syntax'))).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/xml-syntax.graphml:6:3: error[xml-syntax]: XML syntax: Expected closing tag 'node' (opened in line 4, col 5) instead of closing tag 'graph'.
        hint: a GraphML file must be well-formed XML; fix the markup at that position"
    `);
  });

  it('a truncated file: the error is where the text ends, naming what is still open', () => {
    const abilene = readFileSync(ROOT + 'topologies/zoo/Abilene.graphml', 'utf8');
    const cut = abilene.indexOf('<data key="d32">', abilene.indexOf('<node id="5"'));
    expect(failure(() => parseGraphml(abilene.slice(0, cut), 'Abilene.graphml'))).toMatchInlineSnapshot(`
      "Abilene.graphml:114:7: error[xml-syntax]: XML syntax: the file ends inside <node>, opened at 109:5; also still open: <graph> (40:3), <graphml> (1:39)
        hint: the file is truncated or an element is never closed: get the whole file again, or close the element"
    `);
    expect(failure(() => parseGraphml('<graphml>\n  <graph>\n    <node id="a"/>\n    <node id="b', 'cut.graphml'))).toMatchInlineSnapshot(`
      "cut.graphml:4:10: error[xml-syntax]: XML syntax: Attributes for 'node' have open quote.
        hint: a GraphML file must be well-formed XML; fix the markup at that position"
    `);
    expect(failure(() => parseGraphml('<graphml>\n<graph>\n<!-- a comment that never ends\n', 'comment.graphml'))).toMatchInlineSnapshot(`
      "comment.graphml:4:1: error[xml-syntax]: XML syntax: the file ends inside a comment begun at 3:1 (no "-->")
        hint: the file is truncated or an element is never closed: get the whole file again, or close the element"
    `);
    expect(failure(() => parseGraphml('<graphml>\n  <graph>\n    <node id="a"/>\n  </graph>\n', 'root.graphml'))).toMatchInlineSnapshot(`
      "root.graphml:5:1: error[xml-syntax]: XML syntax: the file ends inside <graphml>, opened at 1:1
        hint: the file is truncated or an element is never closed: get the whole file again, or close the element"
    `);
  });

  it('a malformed file: the error is where the markup breaks', () => {
    expect(failure(() => parseGraphml('<graphml>\n<graph>\n  <node id="a" id="b"/>\n</graph>\n</graphml>\n', 'attr.graphml'))).toMatchInlineSnapshot(`
      "attr.graphml:3:16: error[xml-syntax]: XML syntax: Attribute 'id' is repeated.
        hint: a GraphML file must be well-formed XML; fix the markup at that position"
    `);
    expect(failure(() => parseGraphml('<graphml>\n<graph>\n  <node id="a"/>\n</grap>\n</graphml>\n', 'end.graphml'))).toMatchInlineSnapshot(`
      "end.graphml:4:1: error[xml-syntax]: XML syntax: Expected closing tag 'graph' (opened in line 2, col 1) instead of closing tag 'grap'.
        hint: a GraphML file must be well-formed XML; fix the markup at that position"
    `);
  });

  it('reads common non-GraphML key types (integer, number, bool, ...) as their obvious type, with a note', () => {
    const keys =
      '\n<key id="c" for="edge" attr.name="cost" attr.type="integer"/>' +
      '\n<key id="l" for="edge" attr.name="latency" attr.type="Double"/>' +
      '\n<key id="u" for="node" attr.name="up" attr.type="bool"/>' +
      '\n<key id="x" for="node" attr.name="x" attr.type="number"/>';
    const t = parseGraphml(
      text('\n<node id="a"><data key="u">true</data><data key="x">1.5</data></node><node id="b"/>\n<edge source="a" target="b"><data key="c">7</data><data key="l">2.5</data></edge>', keys),
      'types.graphml',
      { weight: 'cost' },
    );
    expect(t.links[0]?.weights).toEqual({ cost: 7, latency: 2.5 });
    expect(t.nodes.find((n) => n.id === 'a')?.ctx).toEqual({ up: true, x: 1.5 });
    expect(formatDiagnostics((t.notes ?? []).filter((d) => d.code === 'key-type-alias'))).toMatchInlineSnapshot(`
      "types.graphml:2:1: note[key-type-alias]: key "c" (\`cost\`) has attr.type="integer", which GraphML does not define; read as long
        hint: GraphML's types are int, long, float, double, boolean, string: write attr.type="long"
      types.graphml:3:1: note[key-type-alias]: key "l" (\`latency\`) has attr.type="Double", which GraphML does not define; read as double
        hint: GraphML's types are int, long, float, double, boolean, string: write attr.type="double"
      types.graphml:4:1: note[key-type-alias]: key "u" (\`up\`) has attr.type="bool", which GraphML does not define; read as boolean
        hint: GraphML's types are int, long, float, double, boolean, string: write attr.type="boolean"
      types.graphml:5:1: note[key-type-alias]: key "x" (\`x\`) has attr.type="number", which GraphML does not define; read as double
        hint: GraphML's types are int, long, float, double, boolean, string: write attr.type="double""
    `);
    expect(failure(() => parseGraphml(text('<node id="a"><data key="n">1</data></node>', '<key id="n" for="node" attr.name="n" attr.type="integr"/>'), 'typo.graphml'))).toMatchInlineSnapshot(`
      "typo.graphml:1:56: error[bad-key-type]: key "n" (\`n\`) has attr.type="integr"
        hint: did you mean \`long\`? Use one of: int, long, float, double, boolean, string"
    `);
  });

  it('several errors in one file, all reported', () => {
    expect(failure(() => fixture('many-errors'))).toMatchInlineSnapshot(`
      "packages/topology/test/fixtures/graphml/many-errors.graphml:5:3: error[bad-key-type]: the edge attribute \`queue_len\` must be an integer, but key "q" declares attr.type="double"
        hint: declare it with attr.type int or long
      packages/topology/test/fixtures/graphml/many-errors.graphml:7:3: error[bad-key-type]: key "bw" (\`bandwidthup\`) has attr.type="unsigned"
        hint: use one of: int, long, float, double, boolean, string
      packages/topology/test/fixtures/graphml/many-errors.graphml:8:3: warning[incomplete-key]: <key id="note"> is ignored: it has no \`attr.type\`
        hint: a key needs id, for, attr.name and attr.type, e.g. <key id="d0" for="edge" attr.name="latency" attr.type="double"/>
      packages/topology/test/fixtures/graphml/many-errors.graphml:10:18: error[out-of-range]: the value "99999999999999999999" of \`asn\` (key "asn", long) is beyond ±2^53 and cannot be held exactly
        hint: use a smaller integer, or declare the key double
      packages/topology/test/fixtures/graphml/many-errors.graphml:11:18: warning[unknown-key]: <data key="bogus"> is ignored: no <key> has that id
        hint: declare it with <key id="bogus" for="node" attr.name="..." attr.type="...">
      packages/topology/test/fixtures/graphml/many-errors.graphml:12:5: error[duplicate-node]: node "b" is declared twice; the first is at packages/topology/test/fixtures/graphml/many-errors.graphml:11:5
        hint: node ids must be unique: rename one of them
      packages/topology/test/fixtures/graphml/many-errors.graphml:13:33: error[bad-value]: the value "NaN" of \`latency\` (key "lat", double) is not a number
        hint: write a decimal number such as 12.5
      packages/topology/test/fixtures/graphml/many-errors.graphml:14:33: error[out-of-range]: the value "1e400" of \`latency\` (key "lat", double) is too large
        hint: use a number within ±1e308
      packages/topology/test/fixtures/graphml/many-errors.graphml:15:33: error[out-of-range]: packetloss 1.5 is not a fraction between 0 and 1
        hint: packetloss is a probability: 0.01 is 1 % loss
      packages/topology/test/fixtures/graphml/many-errors.graphml:16:5: error[missing-endpoint]: an <edge> without a target
        hint: write <edge source="a" target="b"> naming two declared nodes
      packages/topology/test/fixtures/graphml/many-errors.graphml:17:5: error[directed-edge]: the edge "a" → "c" is directed (directed="true")
        hint: links carry traffic both ways: write directed="false", or leave it out in a <graph edgedefault="undirected">
      packages/topology/test/fixtures/graphml/many-errors.graphml:17:5: error[unknown-node]: the edge's target "c" is not a declared node
        hint: did you mean "a"?"
    `);
  });

  it('the TopologyError message counts and lists the errors only', () => {
    try {
      fixture('negative-latency');
    } catch (e) {
      expect((e as Error).message).toMatchInlineSnapshot(`
        "1 error in the topology:
        packages/topology/test/fixtures/graphml/negative-latency.graphml:8:7: error[out-of-range]: the latency -2.5 ms is negative
          hint: the latency is a one-way delay in ms: 0 or more"
      `);
    }
  });

  it('not GraphML, wrong namespace, no graph, bad option', () => {
    expect(failure(() => parseGraphml('<svg/>', 'a.graphml'))).toMatchInlineSnapshot(`
      "a.graphml:1:1: error[not-graphml]: the root element is <svg>, not <graphml>
        hint: a GraphML topology starts with <graphml xmlns="http://graphml.graphdrawing.org/xmlns">"
    `);
    expect(failure(() => parseGraphml('<graphml xmlns="http://example.com/"><graph edgedefault="undirected"/></graphml>', 'b.graphml'))).toMatchInlineSnapshot(`
      "b.graphml:1:1: error[bad-namespace]: the <graphml> namespace is "http://example.com/", not "http://graphml.graphdrawing.org/xmlns"
        hint: write xmlns="http://graphml.graphdrawing.org/xmlns" or leave xmlns out"
    `);
    expect(failure(() => parseGraphml('<graphml>\n  <key id="d0"/>\n</graphml>', 'c.graphml'))).toMatchInlineSnapshot(`
      "c.graphml:1:1: error[no-graph]: the file has no <graph> element
        hint: put the nodes and edges inside <graph edgedefault="undirected">
      c.graphml:2:3: warning[incomplete-key]: <key id="d0"> is ignored: it has no \`for\`, \`attr.name\`, \`attr.type\`
        hint: a key needs id, for, attr.name and attr.type, e.g. <key id="d0" for="edge" attr.name="latency" attr.type="double"/>"
    `);
    expect(failure(() => parseGraphml(text(''), 'd.graphml', { units: 'Mbit' as never }))).toMatchInlineSnapshot(`
      "error[bad-option]: the bandwidth units "Mbit" are not known
        hint: use one of: shadow, KiB, modelnet, Kb"
    `);
  });

  it('GraphML-level warnings: unknown data keys, incomplete keys, several graphs', () => {
    const t = parseGraphml(
      [
        '<graphml>',
        '  <key id="lat" for="edge" attr.name="latency" attr.type="double"/>',
        '  <key id="k1" for="node" attr.type="string"/>',
        '  <key id="g" for="graph" attr.name="Creator" attr.type="string"/>',
        '  <graph edgedefault="undirected">',
        '    <node id="a"><data key="la">1</data><data key="lat">2</data></node>',
        '    <node id="b"/>',
        '    <edge source="a" target="b"><data key="lat">1</data><data key="lat">2</data></edge>',
        '  </graph>',
        '  <graph/>',
        '</graphml>',
      ].join('\n'),
      'warn.graphml',
    );
    expect(t.links[0]?.weights).toEqual({ latency: 2 });
    expect(formatDiagnostics(t.notes)).toMatchInlineSnapshot(`
      "warn.graphml:3:3: warning[incomplete-key]: <key id="k1"> is ignored: it has no \`attr.name\`
        hint: a key needs id, for, attr.name and attr.type, e.g. <key id="d0" for="edge" attr.name="latency" attr.type="double"/>
      warn.graphml:6:18: warning[unknown-key]: <data key="la"> is ignored: no <key> has that id
        hint: did you mean "lat"?
      warn.graphml:6:41: warning[key-domain-mismatch]: key "lat" (\`latency\`) is declared for="edge" but used on a node; ignored
        hint: declare it for="node" or for="all"
      warn.graphml:8:57: warning[duplicate-data]: \`latency\` is given twice on this edge (first at 8:33); the last value is used
      warn.graphml:10:3: warning[extra-graph]: only the first <graph> (line 5) is read; this one is ignored"
    `);
  });
});

describe('XML details', () => {
  it('decodes entities, character references, CDATA and DOCTYPE entities', () => {
    const t = parseGraphml(
      '<?xml version="1.0"?>\n<!DOCTYPE graphml [ <!ENTITY city "Montr&#233;al"> ]>\n' +
        text('<node id="a&amp;b &#x3b1;"><data key="l">&city; &lt;QC&gt;</data></node><node id="c"><data key="l"><![CDATA[<raw> & ]]></data></node>',
          '<key id="l" for="node" attr.name="label" attr.type="string"/>'),
      'ent.graphml',
    );
    expect(t.nodes.map((n) => [n.id, n.ctx.label])).toEqual([
      ['a&b α', 'Montréal <QC>'],
      ['c', '<raw> & '],
    ]);
  });

  it('refuses undeclared entities, with their position', () => {
    expect(failure(() => parseGraphml('<graphml>\n  <graph edgedefault="undirected">\n    <node id="&nbsp;"/>\n  </graph>\n</graphml>', 'e.graphml'))).toMatchInlineSnapshot(`
      "e.graphml:3:15: error[xml-syntax]: XML syntax: the entity &nbsp; is not declared
        hint: XML predefines only &lt; &gt; &amp; &quot; &apos;: write the character itself, or declare the entity in the DOCTYPE"
    `);
  });

  it('stops a billion laughs', () => {
    let decl = '<!ENTITY a0 "haha">';
    for (let i = 1; i <= 12; i++) decl += `<!ENTITY a${i} "${`&a${i - 1};`.repeat(10)}">`;
    expect(failure(() => parseGraphml(`<!DOCTYPE graphml [${decl}]>\n<graphml/>`, 'lol.graphml'))).toMatch(/error\[xml-syntax\]: XML syntax: entities expand to more than 1000000 characters/);
  });

  it('counts lines and columns through CRLF, comments, CDATA, a BOM and wide characters', () => {
    const src = [
      '\uFEFF<?xml version="1.0"?>',
      '<graphml><!-- <edge source="x" target="y"/> -->',
      '  <key id="l" for="edge" attr.name="latency" attr.type="double"/><graph edgedefault="undirected"><![CDATA[<edge>]]>',
      '  <node id="😀"/><node id="b"/><edge source="😀" target="b"><data key="l">-1</data></edge>',
      '</graph></graphml>',
    ].join('\r\n');
    expect(failure(() => parseGraphml(src, 'pos.graphml'))).toMatchInlineSnapshot(`
      "pos.graphml:4:59: error[out-of-range]: the latency -1 ms is negative
        hint: the latency is a one-way delay in ms: 0 or more"
    `);
  });

  it('keeps attribute names such as __proto__ out of the prototype', () => {
    const t = parseGraphml(text('<node id="a"><data key="p">x</data></node>', '<key id="p" for="node" attr.name="__proto__" attr.type="string"/>'), 'p.graphml');
    expect(Object.getPrototypeOf(t.nodes[0]?.ctx)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(t.nodes[0]?.ctx, '__proto__')?.value).toBe('x');
  });
});

describe('robustness', () => {
  /** Seeded, so a failing case can be replayed. */
  const rng = seededRandom;
  const NOISE = ['<', '>', '/', '"', "'", '=', '&', ';', ' ', '\n', '-', '.', '0', '9', 'e', 'x', '!', '?', '[', ']', '#', '\u00e9', '\uD83D'];

  function survives(source: string, file: string, cases: () => string[]): void {
    const odd: string[] = [];
    for (const input of cases()) {
      try {
        parseGraphml(input, file);
      } catch (e) {
        if (!(e instanceof TopologyError || e instanceof DuneError)) odd.push(`${String(e)} for ${JSON.stringify(input.slice(0, 200))}`);
      }
    }
    expect(odd).toEqual([]);
  }

  for (const [path, seed] of [
    ['topologies/shadow-example.graphml', 1],
    ['topologies/zoo/Abilene.graphml', 2],
  ] as const) {
    const source = readFileSync(ROOT + path, 'utf8');

    it(`${path}: 300 truncations either parse or fail with a TopologyError`, () => {
      const r = rng(seed);
      survives(source, path, () => Array.from({ length: 300 }, () => source.slice(0, Math.floor(r() * source.length))));
    });

    it(`${path}: 300 mutations either parse or fail with a TopologyError`, () => {
      const r = rng(seed + 100);
      survives(source, path, () =>
        Array.from({ length: 300 }, () => {
          let s = source;
          for (let n = 1 + Math.floor(r() * 4); n > 0; n--) {
            const at = Math.floor(r() * s.length);
            const noise = NOISE[Math.floor(r() * NOISE.length)]!;
            const op = r();
            s = op < 0.4 ? s.slice(0, at) + noise + s.slice(at + 1) : op < 0.7 ? s.slice(0, at) + noise + s.slice(at) : s.slice(0, at) + s.slice(at + 1);
          }
          return s;
        }),
      );
    });
  }

  it('parses a synthetic 5,000-node, 10,000-edge file', () => {
    const parts = ['<graphml><key id="l" for="edge" attr.name="latency" attr.type="double"/><graph edgedefault="undirected">'];
    for (let i = 0; i < 5000; i++) parts.push(`<node id="n${i}"/>`);
    for (let i = 0; i < 10_000; i++) parts.push(`<edge source="n${i % 5000}" target="n${(i * 7 + 1) % 5000}"><data key="l">${(i % 50) / 10}</data></edge>`);
    parts.push('</graph></graphml>');
    const t = parseGraphml(parts.join('\n'), 'big.graphml');
    expect(t.nodes).toHaveLength(5000);
    // (i*7+1) % 5000 === i % 5000 never holds for these i, so no self-loops.
    expect(t.links).toHaveLength(10_000);
  });
});
