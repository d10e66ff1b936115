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

const one = (kind: string, body: string) => parseDuneToml(
  `[topology]\nlinks = [{endpoints = ["a:eth0", "x:eth0"]}]\n[topology.nodes.a]\n[topology.nodes.x]\nkind = "${kind}"\n${body}`, 't.toml');

describe('vtep', () => {
  test('a bridge with the links and one learning VXLAN device created from the host (fixed VNI, port, underlay)', () => {
    const plan = compile(fromFile('vtep'));
    const ns = 'dune.vtep.fabric';
    expect(ops(plan, 'vtep')).toEqual([{ op: 'vtep', ns, node: 'fabric', name: 'vtep0', vni: 4242, remote: '198.51.100.2', local: '198.51.100.1', port: 4799, underlayDev: 'dvtep0', alias: 'dune:vtep:fabric:vtep0' }]);
    expect(ops(plan, 'enslave').filter((o) => o.ns === ns).map((o) => o.dev)).toEqual(['eth0', 'vtep0']);
    expect(ops(plan, 'up').filter((o) => o.ns === ns).map((o) => o.dev)).toEqual(['lo', 'br0', 'eth0', 'vtep0']);
    // Not a lab link: no VNI of the lab's is spent on it.
    expect(ops(plan, 'vxlan')).toEqual([]);
  });

  test('a multicast group with its device; port defaults to 4789', () => {
    const [op] = ops(compile(one('vtep', 'vni = 7\ngroup = "239.1.1.1"\ndev = "eth9"')), 'vtep');
    expect(op).toMatchObject({ vni: 7, remote: '239.1.1.1', underlayDev: 'eth9', port: 4789 });
    const [v6] = ops(compile(one('vtep', 'vni = 7\nremote = "2001:db8::7"\nlocal = "2001:db8::1"\nttl = 8')), 'vtep');
    expect(v6).toMatchObject({ remote: '2001:db8::7', local: '2001:db8::1', ttl: 8 });
  });

  test('bad input: located, with a hint; an unknown key names the valid ones', () => {
    expect(errorOf(one('vtep', 'vni = 1\nremote = "192.0.2.7"\nremot = "x"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:8:9: error[unknown-key]: "remot" is not a key of a vtep (node "x"); its keys are vni, remote, group, port, local, dev, ttl, mtu
        hint: did you mean \`remote\`? Use one of: vni, remote, group, port, local, dev, ttl, mtu"
    `);
    expect(errorOf(one('vtep', 'remote = "192.0.2.7"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:5:8: error[missing-key]: node "x" is a vtep and needs vni: the VXLAN network's identifier
        hint: add vni = 4242 (the VNI of the network to join, 0 to 16777215)"
    `);
    expect(errorOf(one('vtep', 'vni = 16777216\nremote = "192.0.2.7"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:6:7: error[bad-value]: vni of node "x" must be an integer from 0 to 16777215, got 16777216
        hint: write vni = 4242"
    `);
    expect(errorOf(one('vtep', 'vni = 1'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:5:8: error[missing-key]: node "x" is a vtep and needs remote (the peer VTEP's address) or group (a multicast group)
        hint: add remote = "<the peer VTEP's underlay address>""
    `);
    expect(errorOf(one('vtep', 'vni = 1\nremote = "239.1.1.1"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:7:10: error[bad-value]: remote = "239.1.1.1" of node "x" is a multicast address
        hint: write group = "239.1.1.1" (and dev = "<underlay interface>")"
    `);
    expect(errorOf(one('vtep', 'vni = 1\ngroup = "239.1.1.1"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:7:9: error[missing-key]: node "x" joins multicast group 239.1.1.1 and needs dev: the host interface to join it on
        hint: add dev = "<the underlay interface>""
    `);
    expect(errorOf(one('vtep', 'vni = 1\nremote = "192.0.2.7/24"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:7:10: error[bad-value]: remote = "192.0.2.7/24" of node "x" is not an IPv4 or IPv6 address
        hint: write the address itself, e.g. remote = "192.0.2.7""
    `);
    expect(errorOf(one('vtep', 'vni = 1\nremote = "192.0.2.7"\nlocal = "2001:db8::1"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:8:9: error[bad-value]: local = "2001:db8::1" of node "x" is IPv6 but its remote is IPv4
        hint: use one address family for the underlay"
    `);
    expect(errorOf(one('vtep', 'vni = 1\nremote = "192.0.2.7"\nport = 0'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:8:8: error[bad-value]: port of node "x" must be an integer from 1 to 65535, got 0
        hint: write port = 4789"
    `);
  });
});

describe('nic', () => {
  test('the host interface adopted bare (renamed inside) and made a port of the bridge; nothing saved at compile time', () => {
    const plan = compile(fromFile('nic'));
    const ns = 'dune.nic.up';
    expect(ops(plan, 'adopt')).toEqual([{ op: 'adopt', ns, dev: 'dnic0', name: 'wan0', bare: true, node: 'up' }]);
    expect(ops(plan, 'enslave').filter((o) => o.ns === ns).map((o) => o.dev)).toEqual(['eth0', 'wan0']);
    expect(ops(plan, 'up').filter((o) => o.ns === ns).map((o) => o.dev)).toEqual(['lo', 'br0', 'eth0', 'wan0']);
    // Without name, it keeps its own.
    expect(ops(compile(one('nic', 'dev = "enp3s0"')), 'adopt')).toEqual([{ op: 'adopt', ns: 'dune.t.x', dev: 'enp3s0', bare: true, node: 'x' }]);
  });

  test('bad input: missing dev, a bad name, a name its links use, an unknown key', () => {
    expect(errorOf(one('nic', ''))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:5:8: error[missing-key]: node "x" is a nic and needs dev: the host interface it takes
        hint: add dev = "<a host interface>" (\`ip link\` lists them)"
    `);
    expect(errorOf(one('nic', 'dev = "a/b"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:6:7: error[bad-value]: dev = "a/b" of node "x" is not an interface name (1 to 15 characters, no "/", ":" or spaces)
        hint: write dev = "eth1""
    `);
    expect(errorOf(one('nic', 'dev = "eth0"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:6:7: error[name-taken]: dev = "eth0" of node "x" has the name of its interface towards a
        hint: rename it inside the brick: name = "wan0""
    `);
    expect(errorOf(one('nic', 'dev = "enp3s0"\nname = "eth0"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:7:8: error[name-taken]: name = "eth0" of node "x" is already its interface towards a
        hint: give it another name: name = "eth9""
    `);
    expect(errorOf(one('nic', 'dev = "enp3s0"\nrename = "wan0"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:7:10: error[unknown-key]: "rename" is not a key of a nic (node "x"); its keys are dev, name
        hint: did you mean \`name\`? Use one of: dev, name"
    `);
  });
});

describe('nic: one host interface, one brick', () => {
  test('two nics taking the same interface are refused at the second, naming both', () => {
    const t = parseDuneToml('[topology]\nlinks = [{endpoints = ["a", "n1"]}, {endpoints = ["a", "n2"]}]\n[topology.nodes.a]\n[topology.nodes.n1]\nkind = "nic"\ndev = "enp3s0"\n[topology.nodes.n2]\nkind = "nic"\ndev = "enp3s0"\n', 't.toml');
    expect(errorOf(t)).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:9:7: error[nic-taken]: nodes "n1" and "n2" both take host interface "enp3s0": an interface can be moved into one brick only
        hint: give each nic its own interface, or pin them to different hosts (phynode = "…") if each host has a "enp3s0""
    `);
    const ok = parseDuneToml('[topology]\nlinks = [{endpoints = ["a", "n1"]}, {endpoints = ["a", "n2"]}]\n[topology.nodes.a]\n[topology.nodes.n1]\nkind = "nic"\ndev = "enp3s0"\n[topology.nodes.n2]\nkind = "nic"\ndev = "enp4s0"\n', 't.toml');
    expect(ops(compile(ok), 'adopt').map((o) => o.dev)).toEqual(['enp3s0', 'enp4s0']);
  });
});

describe('tap and vhost', () => {
  test('a tap op on the bridge: plain for tap, IFF_VNET_HDR for vhost', () => {
    const plan = compile(fromFile('tap'));
    expect(ops(plan, 'tap')).toEqual([
      { op: 'tap', ns: 'dune.tap.vm', node: 'vm', name: 'tap0', vnetHdr: false, multiQueue: false, alias: 'dune:tap:vm:tap0', master: 'br0' },
      { op: 'tap', ns: 'dune.tap.vh', node: 'vh', name: 'vhost0', vnetHdr: true, multiQueue: false, alias: 'dune:tap:vh:vhost0', master: 'br0' },
    ]);
    const [o] = ops(compile(one('tap', 'owner = "qemu"\ngroup = "kvm"\nmulti_queue = true\nmtu = 9000')), 'tap');
    expect(o).toMatchObject({ owner: 'qemu', group: 'kvm', multiQueue: true, mtu: 9000 });
  });

  test('bad input: located, with a hint', () => {
    expect(errorOf(one('tap', 'multi_queue = "yes"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:6:15: error[bad-type]: multi_queue of node "x" must be true or false, got "yes"
        hint: write multi_queue = false"
    `);
    expect(errorOf(one('vhost', 'name = "eth0"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:6:8: error[name-taken]: name = "eth0" of node "x" is already its interface towards a
        hint: give it another name: name = "eth9""
    `);
    expect(errorOf(one('tap', 'vnet_hdr = true'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:6:12: error[unknown-key]: "vnet_hdr" is not a key of a tap (node "x"); its keys are name, owner, group, multi_queue, mtu
        hint: use one of: name, owner, group, multi_queue, mtu"
    `);
    expect(errorOf(one('tap', 'name = "a-very-long-tap-name"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:6:8: error[bad-value]: name = "a-very-long-tap-name" of node "x" is not an interface name (1 to 15 characters, no "/", ":" or spaces)
        hint: write name = "tap0""
    `);
  });
});

describe('capture', () => {
  test('a bridge between its two links and a tcpdump process on its first port; values are argv, never script', () => {
    const plan = compile(fromFile('capture'));
    const [p] = ops(plan, 'process');
    expect(p).toMatchObject({ ns: 'dune.capture.cap', node: 'cap', name: 'cap.capture' });
    expect(p?.argv.slice(3)).toEqual(['dune-capture', '/var/tmp/dune-e2e-capture', 'eth0', '262144', '1', '2', 'cap.pcap']);
    // up goes on once tcpdump has opened its first file (it is capturing).
    expect(p?.postUp.map((a) => a.slice(3))).toEqual([['dune-capture-wait', '/var/tmp/dune-e2e-capture', 'cap.pcap']]);
    const [f] = ops(compile(two('capture', 'filter = "icmp and host $(reboot)"')), 'process');
    expect(f?.argv[2]).not.toContain('reboot');
    expect(f?.argv.at(-1)).toBe('icmp and host $(reboot)');
    expect(f?.argv[4]).toBe('/var/tmp/dune-captures/t');
  });

  test('bad input: a relative dir, a bad size, one port only, an unknown key', () => {
    expect(errorOf(two('capture', 'dir = "caps"'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:7:7: error[bad-value]: dir = "caps" of node "x" is not an absolute path (the capture runs in the lab's node, not where dune was started)
        hint: write dir = "/var/tmp/caps""
    `);
    expect(errorOf(two('capture', 'size_mb = 0'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:7:11: error[bad-value]: size_mb of node "x" must be an integer from 1 to 100000, got 0
        hint: write size_mb = 10"
    `);
    expect(errorOf(one('capture', ''))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:5:8: error[kind-ports]: node "x" is a capture and needs exactly 2 links; it has 1 (link #0 (a:eth0 – x:eth0) at t.toml:2:10)
        hint: a capture has 2 ports: link it to exactly 2 nodes"
    `);
    expect(errorOf(two('capture', 'file = 3'))).toMatchInlineSnapshot(`
      "1 error in the topology:
      t.toml:7:8: error[unknown-key]: "file" is not a key of a capture (node "x"); its keys are dir, size_mb, files, filter, snaplen
        hint: did you mean \`files\`? Use one of: dir, size_mb, files, filter, snaplen"
    `);
  });
});
