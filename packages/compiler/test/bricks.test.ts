import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { parseDuneToml, TopologyError } from '@dune/topology';
import { compile, compileWithDiagnostics, firewallOp, readFirewall, type NftOp } from '../src/index.js';
import { ops } from './helpers.js';

const BRICKS = new URL('../../../test/e2e/bricks/', import.meta.url);
const fromFile = (name: string) => {
  const path = new URL(`${name}.toml`, BRICKS);
  return parseDuneToml(readFileSync(path, 'utf8'), `${name}.toml`);
};
const two = (kind: string, body: string) => parseDuneToml(
  `[topology]\nlinks = [{endpoints = ["a:eth0", "x:eth0"]}, {endpoints = ["x:eth1", "b:eth0"]}]\n[topology.nodes.a]\n[topology.nodes.b]\n[topology.nodes.x]\nkind = "${kind}"\n${body}`, 't.toml');
const errorOf = (t: ReturnType<typeof two>) => {
  try {
    compile(t);
  } catch (e) {
    if (e instanceof TopologyError) return e.message;
    throw e;
  }
  throw new Error('expected the compile to fail');
};
const nftOf = (plan: ReturnType<typeof compile>) => ops(plan, 'nft') as NftOp[];

describe('diode', () => {
  test('a bridge, and one nft op: frames from `from` pass, the reverse is dropped and counted', () => {
    const plan = compile(fromFile('diode'));
    expect(ops(plan, 'bridge').map((o) => `${o.ns} ${o.name}`)).toEqual(['dune.diode.d br0']);
    expect(ops(plan, 'addr').filter((o) => o.ns === 'dune.diode.d')).toEqual([]);
    const [op] = nftOf(plan);
    expect(op?.script).toMatchInlineSnapshot(`
      "table bridge dune_brick {
        counter passed { }
        counter dropped { }
        chain diode {
          type filter hook forward priority 0; policy accept;
          iifname "eth0" oifname "eth1" counter name "passed" accept
          iifname "eth1" counter name "dropped" drop
        }
      }
      "
    `);
    expect(op?.counters.map((c) => c.label)).toEqual(['a → b: passed', 'b → a: dropped']);
    // The two hosts share one segment through it.
    expect(plan.links.map((l) => [l.a.v4, l.b.v4])).toEqual([['10.64.0.1', ''], ['', '10.64.0.2']]);
  });

  test('from is required, must name a neighbour (located, nearest named), and a diode has two ports', () => {
    expect(errorOf(two('diode', ''))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:6:8: error[missing-key]: node "x" is a diode and needs from: the neighbour whose frames pass
        hint: add from = "a" (frames from it pass; frames towards it are dropped)"
    `);
    expect(errorOf(two('diode', 'from = "aa"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:7:8: error[bad-value]: from = "aa" of node "x" is not one of its neighbours (a, b)
        hint: did you mean \`a\`? Use one of: a, b"
    `);
    const three = parseDuneToml('[topology]\nlinks = [{endpoints = ["a", "x"]}, {endpoints = ["b", "x"]}, {endpoints = ["c", "x"]}]\n[topology.nodes.x]\nkind = "diode"\nfrom = "a"\n[topology.nodes.a]\n[topology.nodes.b]\n[topology.nodes.c]\n', 't.toml');
    expect(errorOf(three)).toContain('error[kind-ports]: node "x" is a diode and needs exactly 2 links; it has 3');
  });

  test('a misspelt key of the kind is a warning naming the right one', () => {
    const r = compileWithDiagnostics(two('diode', 'from = "a"\nfrm = "b"'));
    expect(r.diagnostics.filter((d) => d.code === 'possible-typo').map((d) => `${d.message} / ${d.hint}`)).toEqual([
      '"frm" in node "x" is not a key of a diode (kept as template context) / did you mean `from`?',
    ]);
  });
});

describe('firewall', () => {
  test('rules in order, each with its counter; the port a frame came in by as a mark; br_netfilter on in the node', () => {
    const plan = compile(fromFile('firewall'));
    const [op] = nftOf(plan);
    expect(op?.tables).toEqual(['bridge dune_brick', 'inet dune_brick']);
    expect(op?.script).toMatchSnapshot();
    expect(op?.counters.map((c) => c.label)).toEqual([
      'rule 1: web',
      'rule 2: allow icmp from client (stateful)',
      'rule 3: udp 5xxx',
      'later packets of allowed connections, both ways (stateful)',
      'no rule matched: deny',
    ]);
    expect(ops(plan, 'sysctl').filter((o) => o.ns === 'dune.firewall.fw').map((o) => `${o.key}=${o.value}`)).toEqual([
      'net.bridge.bridge-nf-call-iptables=1',
      'net.bridge.bridge-nf-call-ip6tables=1',
    ]);
  });

  test('stateless rules and an allow policy: no connection marks', () => {
    const spec = readFirewall({ policy: 'allow', stateful: false, rules: [{ action: 'deny', proto: 'tcp', src: ['10.0.0.1', '10.1.0.0/16'], dport: [22, '6000-6010'] }] }, ['a', 'b'], () => {
      throw new Error('no problem expected');
    });
    const op = firewallOp(spec, [{ name: 'eth0', peer: 'a' }, { name: 'eth1', peer: 'b' }], 'ns', 'fw');
    expect(op.script).not.toContain('ct ');
    expect(op.script).toContain('ip saddr { 10.0.0.1/32, 10.1.0.0/16 } meta l4proto tcp tcp dport { 22, 6000-6010 } counter name "rule0" drop');
    expect(op.script).toContain('counter name "unmatched" accept');
  });

  test('every problem in the rules, each where it was written', () => {
    const msg = errorOf(two('firewall', [
      'policy = "reject"',
      'rules = [',
      '  { action = "alow", proto = "tcp" },',
      '  { action = "allow", dport = 80 },',
      '  { action = "deny", src = ["10.0.0.0/8", "fd00::/8"] },',
      '  { action = "deny", from = "c", prto = "udp" },',
      ']',
    ].join('\n')));
    expect(msg).toMatchInlineSnapshot(`
      "6 errors in the topology:
      t.toml:7:10: error[bad-firewall]: node "x": policy = "reject" is not a policy
        hint: use one of: allow, deny
      t.toml:9:14: error[bad-firewall]: node "x": rules.0.action = "alow" is not an action
        hint: did you mean \`allow\`? Use one of: allow, deny
      t.toml:10:31: error[bad-firewall]: node "x": rules.1 has dport but proto = "any": ports belong to tcp and udp
        hint: add proto = "tcp" or proto = "udp" to rules.1
      t.toml:11:43: error[bad-firewall]: node "x": rules.2.src.1: fd00::/8 is IPv6, but rules.2 already matches IPv4
        hint: one rule matches one family: write a rule per family
      t.toml:12:29: error[bad-firewall]: node "x": rules.3.from = "c" is not a neighbour of the firewall (a, b)
        hint: did you mean \`a\`? Use one of: a, b
      t.toml:12:41: error[bad-firewall]: node "x": unknown key "prto" in rules.3
        hint: did you mean \`proto\`? Use one of: action, proto, from, src, dst, sport, dport, stateful, name"
    `);
  });
});

describe('antispoof', () => {
  test('each router port admits its MAC (given, or a fixed one) and its addresses; ARP and NA checked', () => {
    const plan = compile(fromFile('antispoof'));
    const veths = ops(plan, 'veth');
    const h1Mac = veths.find((v) => v.ns === 'dune.antispoof.h1')?.mac;
    expect(h1Mac).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(veths.find((v) => v.ns === 'dune.antispoof.h2')?.mac).toBe('02:00:00:00:02:02');
    const [op] = nftOf(plan);
    const script = op?.script ?? '';
    expect(script).toContain('set p0_v4 { type ipv4_addr; elements = { 10.64.0.1, 10.0.0.1, 0.0.0.0 } }');
    expect(script).toContain('set p1_v6 { type ipv6_addr; elements = { fd7a:5e00::2, fd7a:d0::2, fe80::ff:fe00:202, :: } }');
    expect(script).toContain(`ether saddr != ${h1Mac} counter name "p0_mac" drop`);
    expect(script).toContain('arp saddr ip != @p1_v4 counter name "p1_arp" drop');
    expect(script).toContain('icmpv6 type nd-neighbor-advert @th,64,128 != { 0xfd7a5e00000000000000000000000002, 0xfd7a00d0000000000000000000000002, 0xfe80000000000000000000fffe000202 }');
    expect(op?.counters).toHaveLength(10);
  });

  test('guard picks ports; a switch behind a port cannot be guarded', () => {
    const t = parseDuneToml('[topology]\nlinks = [{endpoints = ["h1", "as"]}, {endpoints = ["h2", "as"]}, {endpoints = ["sw", "as"]}, {endpoints = ["sw", "h3"]}]\n[topology.nodes.as]\nkind = "antispoof"\nguard = ["h2"]\n[topology.nodes.sw]\nkind = "switch"\n[topology.nodes.h1]\n[topology.nodes.h2]\n[topology.nodes.h3]\n', 't.toml');
    const script = nftOf(compile(t))[0]?.script ?? '';
    expect(script).toContain('iifname "eth1" jump p0');
    expect(script).not.toContain('p1');
    const bad = parseDuneToml('[topology]\nlinks = [{endpoints = ["h1", "as"]}, {endpoints = ["sw", "as"]}, {endpoints = ["sw", "h3"]}]\n[topology.nodes.as]\nkind = "antispoof"\nguard = ["sw"]\n[topology.nodes.sw]\nkind = "switch"\n[topology.nodes.h1]\n[topology.nodes.h3]\n', 't.toml');
    expect(errorOf(bad)).toContain('t.toml:5:10: error[bad-value]: guard.0 = "sw" of node "as" is a switch: only a router\'s port has addresses to guard');
  });
});
