import { describe, expect, test } from 'vitest';
import { compile, type Plan } from '../src/index.js';
import { compileError, ops, TopoBuilder } from './helpers.js';

const NASTY = [
  'router one',
  'r;rm -rf /',
  '$(rm -rf /)',
  '`reboot`',
  'Zürich–Genève',
  '東京',
  '🙂',
  'a'.repeat(200),
  '../../etc/passwd',
  'x'.repeat(32),
  'a b',
  'a_b',
  '-',
  '',
];

const NS = /^dune\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function nastyPlan(): Plan {
  const b = new TopoBuilder('my lab; $(whoami)');
  for (const id of NASTY) b.node(id);
  // A ring through every node, ifaces named by the user in nasty ways too.
  NASTY.forEach((id, i) => {
    const next = NASTY[(i + 1) % NASTY.length] as string;
    b.link({ node: id, iface: i % 2 === 0 ? 'eth0' : `weird iface ${i}` }, { node: next });
  });
  return compile(b.build());
}

describe('kernel names from arbitrary ids', () => {
  test('namespaces are safe, distinct and carry the lab prefix', () => {
    const plan = nastyPlan();
    expect(plan.lab).toMatch(/^[A-Za-z0-9_-]{1,24}$/);
    expect(plan.nsPrefix).toBe(`dune.${plan.lab}.`);
    const names = plan.nodes.map((n) => n.ns);
    for (const ns of names) {
      expect(ns).toMatch(NS);
      expect(ns.startsWith(plan.nsPrefix)).toBe(true);
    }
    expect(new Set(names).size).toBe(NASTY.length);
    // "a b" and "a_b" fold to the same text and must still differ.
    const ab = plan.nodes.filter((n) => n.node === 'a b' || n.node === 'a_b').map((n) => n.ns);
    expect(ab[0]).not.toBe(ab[1]);
  });

  test('interface names are at most 15 bytes, aliases name lab, node key and interface', () => {
    const plan = nastyPlan();
    const devs = [...ops(plan, 'veth').flatMap((o) => [o.name, o.peerName]), ...ops(plan, 'addr').map((o) => o.dev)];
    for (const d of devs) {
      expect(Buffer.byteLength(d)).toBeLessThanOrEqual(15);
      expect(d).toMatch(/^[A-Za-z0-9_.@+-]+$/);
    }
    for (const o of ops(plan, 'veth')) {
      expect(o.alias).toMatch(new RegExp(`^dune:${plan.lab}:[A-Za-z0-9_-]+:${o.name}$`));
      expect(o.peerAlias).toMatch(new RegExp(`^dune:${plan.lab}:[A-Za-z0-9_-]+:${o.peerName}$`));
    }
    for (const o of ops(plan, 'netns')) expect(o.alias).toMatch(/:lo$/);
  });

  test('no shell-special character reaches any kernel name (node ids stay as data in `node` only)', () => {
    const plan = nastyPlan();
    const json = JSON.stringify(plan.hosts.map((h) => h.ops.map((o) => ({ ...o, node: undefined }))));
    expect(json.match(/[$;` ()'\\]|\.\.\//g)).toBeNull();
  });
});

describe('interface names', () => {
  test('user names kept; missing or invalid ones get the smallest free eth<N>, in link order', () => {
    const plan = compile(
      new TopoBuilder()
        .nodesNamed('r0', 'r1', 'r2', 'r3')
        .link('r0', 'r1:eth0') // r0 gets eth1: eth0 is the user's, on a later link
        .link('r0:eth0', 'r2')
        .link('r0:a name with spaces', 'r3:wan.100')
        .link('r0:15-bytes-name!', 'r1:this-is-16-bytes')
        .build(),
    );
    expect(plan.links.map((l) => `${l.a.node}:${l.a.dev} ${l.b.node}:${l.b.dev}`)).toEqual([
      'r0:eth1 r1:eth0',
      'r0:eth0 r2:eth0',
      'r0:eth2 r3:wan.100',
      'r0:eth3 r1:eth1',
    ]);
  });

  test('the same name given twice on a node names both links', () => {
    const t = new TopoBuilder().nodesNamed('r0', 'r1', 'r2').link('r0:eth0', 'r1:eth0').link('r2:eth0', 'r0:eth0').link('r1:lo', 'r2:eth1').build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "2 errors in the topology:
      test.toml:5:1: error[duplicate-interface]: node "r0" is given interface "eth0" twice: by link #0 (r0:eth0 – r1:eth0) at test.toml:4:1 and by link #1 (r2:eth0 – r0:eth0) at test.toml:5:1
        hint: each interface of a node needs its own name: rename one end, or leave its name out to get eth<N>
      test.toml:6:1: error[reserved-interface]: node "r1": "lo" is the loopback interface and cannot be a link end (link #2 (r1:lo – r2:eth1) at test.toml:6:1)
        hint: name the link end differently, or leave the name out to get eth<N>"
    `);
  });

  test('a link to an undeclared node is an error with a suggestion', () => {
    const t = new TopoBuilder().nodesNamed('router1', 'router2').link('router1', 'ruoter2').build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "1 error in the topology:
      test.toml:3:1: error[unknown-node]: link #0 (router1 – ruoter2) at test.toml:3:1 ends at node "ruoter2", which is not declared
        hint: did you mean \`router2\`? Use one of: router1, router2"
    `);
  });
});
