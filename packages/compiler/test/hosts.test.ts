import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseGraphml } from '@dune/topology';
import { compile, fileContentBase64, findNode, hostNames } from '../src/index.js';
import { ops, TopoBuilder } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');

describe('hosts files: names resolve inside nodes', () => {
  it('every node gets /etc/netns/<ns>/hosts listing every addressed node by id and key, v4 and v6', () => {
    const t = new TopoBuilder('names').node('r1').node('a b; $(reboot)').node('7').node('sw', { kind: 'switch' }).link('r1', 'sw').link('a b; $(reboot)', 'sw').link('7', 'r1').build();
    const plan = compile(t);
    const files = ops(plan, 'file');
    expect(files.map((f) => [f.node, f.path, f.mode])).toEqual([
      ['r1', '/etc/netns/dune.names.r1/hosts', 0o644],
      ['a b; $(reboot)', '/etc/netns/dune.names.a_b_reboot-4cb1a6/hosts', 0o644],
      ['7', '/etc/netns/dune.names.7/hosts', 0o644],
      ['sw', '/etc/netns/dune.names.sw/hosts', 0o644],
    ]);
    // One text for all; a name the resolver would read as an address (`7`) is left out, an id
    // a hosts file cannot hold is listed by its kernel-safe key, a switch has no address.
    expect(new Set(files.map((f) => fileContentBase64(plan, f))).size).toBe(1);
    // ... and in the plan once: every node's op names the same blob.
    expect(new Set(files.map((f) => f.blob)).size).toBe(1);
    expect(Object.keys(plan.blobs ?? {})).toEqual([files[0]?.blob]);
    expect(decode(fileContentBase64(plan, files[0]!))).toMatchInlineSnapshot(`
      "# written by dune for lab names; removed by dune down
      127.0.0.1	localhost
      ::1	localhost ip6-localhost ip6-loopback
      10.0.0.1	r1
      10.0.0.2	a_b_reboot-4cb1a6
      fd7a:d0::1	r1
      fd7a:d0::2	a_b_reboot-4cb1a6
      "
    `);
  });

  it("a node's own template for its hosts path wins", () => {
    const t = new TopoBuilder('own').node('a', { templates: [{ src: 'h.tmpl', dst: '/etc/netns/dune.own.{{node}}/hosts' }] }).node('b').link('a', 'b').build();
    const plan = compile(t, { readFile: () => Buffer.from('10.9.9.9 mine\n') });
    expect(ops(plan, 'file').map((f) => [f.path, decode(fileContentBase64(plan, f)).split('\n')[0]])).toEqual([
      ['/etc/netns/dune.own.a/hosts', '10.9.9.9 mine'],
      ['/etc/netns/dune.own.b/hosts', '# written by dune for lab own; removed by dune down'],
    ]);
  });

  it('hostNames: id, aliases, key, without what a resolver would misread', () => {
    expect(hostNames('New_York', ['3'], 'New_York')).toEqual(['New_York']);
    expect(hostNames('r1', ['router-1'], 'r1')).toEqual(['r1', 'router-1']);
    expect(hostNames('a b', [], 'a_b-123456')).toEqual(['a_b-123456']);
    expect(hostNames('0x1f', ['1.2', '#x', 'ok.example'], '0x1f')).toEqual(['ok.example']);
  });
});

describe('--names label (Topology Zoo)', () => {
  const abilene = readFileSync(ROOT + 'topologies/zoo/Abilene.graphml', 'utf8');

  it('names Abilene nodes by their labels; ids stay aliases in the plan and in hosts files', () => {
    const plan = compile(parseGraphml(abilene, 'Abilene.graphml', { names: 'label' }));
    expect(plan.nodes.map((n) => `${n.node}=${n.aliases?.join(',')}`)).toMatchInlineSnapshot(`
      [
        "New_York=0",
        "Chicago=1",
        "Washington_DC=2",
        "Seattle=3",
        "Sunnyvale=4",
        "Los_Angeles=5",
        "Denver=6",
        "Kansas_City=7",
        "Houston=8",
        "Atlanta=9",
        "Indianapolis=10",
      ]
    `);
    expect(plan.nodes.map((n) => n.ns)).toContain('dune.Abilene.Kansas_City');
    expect(findNode(plan, 'Kansas_City')?.node).toBe('Kansas_City');
    expect(findNode(plan, plan.nodes.find((n) => n.node === 'Kansas_City')?.aliases?.[0] ?? '')?.node).toBe('Kansas_City');
    expect(findNode(plan, 'Gotham')).toBeUndefined();
    const hosts = decode(fileContentBase64(plan, ops(plan, 'file')[0]!));
    expect(hosts).toMatch(/^10\.0\.0\.\d+\tKansas_City$/m);
    // Links follow the renamed nodes.
    expect(plan.links.some((l) => l.a.node === 'New_York' || l.b.node === 'New_York')).toBe(true);
  });

  it('by id by default; labels that clash or are missing keep the id, with notes', () => {
    const keys = '<key id="l" for="node" attr.name="label" attr.type="string"/>';
    const g = (names?: 'label') =>
      parseGraphml(
        `<graphml>${keys}<graph edgedefault="undirected">` +
          '<node id="0"><data key="l">Zürich HB</data></node><node id="1"><data key="l">Zurich-HB</data></node>' +
          '<node id="2"><data key="l">Zurich HB</data></node><node id="3"/><node id="4"><data key="l">$(x)</data></node>' +
          '<edge source="0" target="1"/><edge source="1" target="2"/><edge source="2" target="3"/><edge source="3" target="4"/></graph></graphml>',
        'clash.graphml',
        names === undefined ? {} : { names },
      );
    expect(g().nodes.map((n) => n.id)).toEqual(['0', '1', '2', '3', '4']);
    const t = g('label');
    expect(t.nodes.map((n) => [n.id, n.aliases])).toEqual([
      ['Zurich_HB', ['0']],
      ['Zurich-HB', ['1']],
      ['Zurich_HB-2', ['2']],
      ['3', undefined],
      ['x', ['4']],
    ]);
    expect(t.links.map((l) => `${l.a.node}-${l.b.node}`)).toEqual(['Zurich_HB-Zurich-HB', 'Zurich-HB-Zurich_HB-2', 'Zurich_HB-2-3', '3-x']);
    expect(t.notes.filter((d) => d.code === 'no-label' || d.code === 'label-clash').map((d) => d.message)).toMatchInlineSnapshot(`
      [
        "1 node whose label names another node too gets its id appended: "Zurich HB" (node "2")",
        "1 node without a usable \`label\` keeps its id: "3"",
      ]
    `);
    expect(() => parseGraphml('<graphml><graph/></graphml>', 'x.graphml', { names: 'name' as 'label' })).toThrowErrorMatchingInlineSnapshot(`
      [TopologyError: 1 error in the topology:
      error[bad-option]: nodes cannot be named by "name"
        hint: use one of: id, label]
    `);
  });
});
