import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { DuneError, formatDiagnostics, parseDuneToml, seededRandom, TopologyError, type Topology } from '@dune/topology';
import { CommandSyntaxError, joinCommand, splitCommand } from '../src/command.js';
import { locateToml } from '../src/toml-locate.js';

const here = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));
const DUNE_EXAMPLE = here('../../../topologies/dune-example.toml');
const FIXTURES = ['full', 'implicit', 'odd-ids', 'many-errors'].map((n) => `fixtures/toml/${n}.toml`);

/** Parses a fixture, labelled with its path relative to this directory so snapshots do not depend on the checkout. */
function fixture(rel: string): Topology {
  return parseDuneToml(readFileSync(here(rel), 'utf8'), rel);
}

/** The whole error report of a file that must not parse. */
function errors(text: string, file = 'lab.toml'): string {
  try {
    parseDuneToml(text, file);
  } catch (e) {
    if (e instanceof TopologyError) return formatDiagnostics(e.diagnostics);
    throw e;
  }
  throw new Error('expected a TopologyError');
}

describe('DUNE example topology', () => {
  const topo = parseDuneToml(readFileSync(DUNE_EXAMPLE, 'utf8'), 'topologies/dune-example.toml');

  it('has the five nodes in declaration order and the two links', () => {
    expect(topo.format).toBe('dune-toml');
    expect(topo.lab.name).toBe('dune-example');
    expect(topo.baseDir).toBe('topologies');
    expect(topo.nodes.map((n) => n.id)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(topo.links.map((l) => [`${l.a.node}:${l.a.iface}`, `${l.b.node}:${l.b.iface}`])).toEqual([
      ['r0:eth0', 'r1:eth0'],
      ['r0:eth1', 'r2:eth0'],
    ]);
  });

  it('applies the link defaults to both directions', () => {
    const l = topo.links[0];
    expect(l?.mtu).toBe(9000);
    expect(l?.a.impairment).toEqual({ delayUs: 5000, rateBitsPerSec: 100e9 });
    expect(l?.b.impairment).toEqual({ delayUs: 5000, rateBitsPerSec: 100e9 });
    expect(l?.a.metric).toBe(1);
    expect(l?.weights).toMatchObject({ latency: 5, metric: 1 });
  });

  it('merges node defaults into every node and keeps free keys as ctx', () => {
    const r2 = topo.nodes.find((n) => n.id === 'r2');
    expect(r2?.ctx).toEqual({ rid: '0.0.0.3', quic: { ca: 'test' } });
    expect(r2?.addrs).toEqual({ lo: ['fc00:1::2/128'] });
    for (const n of topo.nodes) {
      expect(n.sysctls).toEqual({
        'net.ipv6.conf.default.forwarding': '1',
        'net.ipv6.conf.all.forwarding': '1',
        'net.ipv6.conf.default.keep_addr_on_down': '1',
      });
      expect(n.templates.map((t) => [t.src, t.dst])).toEqual([
        ['ospf.cfg', '/tmp/{{node}}.ospf.cfg'],
        ['holod.toml', '/tmp/{{node}}.holod.toml'],
      ]);
      // A command line runs through sh -c, as in DUNE.
      expect(n.exec.map((c) => c.argv)).toEqual([['sh', '-c', '~/holo/target/debug/holo-cli --file /tmp/{{node}}.ospf.cfg']]);
    }
  });

  it('runs the pinned command through sh, without its trailing "&", exec-ing the program, and reserves its cores', () => {
    const pinned = topo.nodes[0]?.pinned[0];
    expect(pinned?.cmd.argv).toEqual(['sh', '-c', 'exec ~/holo/target/debug/holod -c /tmp/holod.toml']);
    expect(pinned?.environ).toEqual({ IO_QUIC_CORE_ID: '{{core_1}}' });
    expect(pinned?.coreSlots).toEqual(['core_0', 'core_1']);
    expect(formatDiagnostics(topo.notes)).toMatchInlineSnapshot(`
      "topologies/dune-example.toml:26:7: note[background-dropped]: the trailing "&" of topology.defaults.nodes.pinned[0].cmd is dropped: every process the lab starts runs in the background"
    `);
  });

  it('reads the phynode with its cores and its extra key', () => {
    expect(topo.phynodes).toEqual([
      { name: 'rukkileib', cores: [[1, 2, 3]], iface: 'test', binds: [], extra: {}, loc: { file: 'topologies/dune-example.toml', line: 1, col: 23 } },
    ]);
  });
});

describe('valid fixtures', () => {
  it('reads every key of the format (full.toml)', () => {
    expect(fixture('fixtures/toml/full.toml')).toMatchSnapshot();
  });

  it('creates nodes from the links when [topology.nodes] is absent, in order of first appearance', () => {
    const topo = fixture('fixtures/toml/implicit.toml');
    expect(topo.nodes.map((n) => n.id)).toEqual(['spoke-2', 'hub', 'spoke-1', 'spoke-3']);
    expect(topo.nodes.every((n) => n.sysctls['net.ipv4.ip_forward'] === '1')).toBe(true);
    expect(topo.links[1]?.a).toMatchObject({ node: 'spoke-1', impairment: { delayUs: 1000 } });
    expect(topo.links[1]?.a.iface).toBeUndefined();
    expect(topo.phynodes).toEqual([{ name: 'local', binds: [], extra: {} }]);
    expect(formatDiagnostics(topo.notes)).toMatchInlineSnapshot(`"note[default-phynode]: no [infrastructure.nodes]: every node runs on this machine, as phynode "local""`);
  });

  it('accepts any string as a node id: unicode, spaces, ";", "$(...)", colons, integers', () => {
    const topo = fixture('fixtures/toml/odd-ids.toml');
    expect(topo.nodes.map((n) => n.id)).toEqual(['routeur à Liège', 'a b; rm -rf /', '$(reboot)', 'fc00::1', '1', '0']);
    expect(topo.links.map((l) => [l.a.node, l.a.iface, l.b.node, l.b.iface])).toEqual([
      ['routeur à Liège', 'eth0', 'a b; rm -rf /', 'eth0'],
      ['$(reboot)', undefined, 'fc00::1', undefined],
      ['1', 'x', '0', 'x'],
    ]);
    expect(topo.links[2]?.a.impairment).toEqual({ delayUs: 3000 });
    expect(topo.links[2]?.b.impairment).toEqual({});
  });

  it('accepts a 200-character node id', () => {
    const id = 'n'.repeat(100) + ' ü;$(x)'.repeat(14) + 'z'.repeat(2);
    expect([...id].length).toBe(200);
    const topo = parseDuneToml(`[topology]\nlinks = [{endpoints = [${JSON.stringify(`${id}:eth0`)}, "b:eth0"]}]\n`, 'long.toml');
    expect(topo.nodes.map((n) => n.id)).toEqual([id, 'b']);
  });

  it('needs none of [topology.defaults], [topology.nodes] and [topology] links', () => {
    const topo = parseDuneToml('[topology.nodes.solo]\nrid = "1"\n', 'solo.toml');
    expect(topo.nodes.map((n) => n.id)).toEqual(['solo']);
    expect(topo.links).toEqual([]);
    expect(parseDuneToml('', 'empty.toml').nodes).toEqual([]);
  });

  it('reads the userspace engine settings: threads (a count or "auto"), fail closed or open; absent, neither is set', () => {
    const lab = (text: string) => parseDuneToml(`[topology]\n${text}`, 'lab.toml').lab;
    expect(lab('impairment_engine_threads = 4\nimpairment_engine_fail = "open"\n')).toMatchObject({ impairmentEngineThreads: 4, impairmentEngineFailOpen: true });
    expect(lab('impairment_engine_threads = "auto"\nimpairment_engine_fail = "closed"\n')).toMatchObject({ impairmentEngineThreads: 'auto', impairmentEngineFailOpen: false });
    expect(lab('impairment_engine_threads = 1\n').impairmentEngineThreads).toBe(1);
    expect(lab('impairment_engine_threads = 256\n').impairmentEngineThreads).toBe(256);
    const none = lab('impairment_backend = "userspace"\n');
    expect('impairmentEngineThreads' in none || 'impairmentEngineFailOpen' in none).toBe(false);
  });

  it('takes the lab name from the option, then [topology] lab, then the file name', () => {
    const text = '[topology]\nlab = "from-file"\n';
    expect(parseDuneToml(text, 'x/a.toml', { lab: 'from-option' }).lab.name).toBe('from-option');
    expect(parseDuneToml(text, 'x/a.toml').lab.name).toBe('from-file');
    expect(parseDuneToml('', 'x/my topo.v2.toml').lab.name).toBe('my-topo.v2');
  });

  it('applies an endpoint table only to the endpoint whose node and interface match (DUNE matched the interface only)', () => {
    const topo = parseDuneToml(
      `[topology]
links = [{endpoints = ["r0:eth0", "r1:eth0"], latency = "10ms", "r1:eth0" = {latency = "50ms", loss = "2%"}}]
`, 'bug.toml');
    const link = topo.links[0];
    expect(link?.a.impairment).toEqual({ delayUs: 10_000 });
    expect(link?.b.impairment).toEqual({ delayUs: 50_000, lossPct: 2 });
    expect(link?.weights.latency).toBe(30);
  });

  it('lets a later layer replace loss with loss_model and the other way round', () => {
    const topo = parseDuneToml(
      `[topology.defaults.links]
loss_model = {p = "1%", r = "20%"}
[topology]
links = [{endpoints = ["a:e", "b:e"], "a:e" = {loss = "3%"}}]
`, 'loss.toml');
    expect(topo.links[0]?.a.impairment).toEqual({ lossPct: 3 });
    expect(topo.links[0]?.b.impairment).toEqual({ lossGilbertElliott: { pPct: 1, rPct: 20, oneMinusHPct: 100, oneMinusKPct: 0 } });
  });
});

describe('errors, each reported with its location', () => {
  it('unknown key, with the nearest known key', () => {
    expect(errors(`[topology.defaults.links]
latncy = "5ms"
`)).toMatchInlineSnapshot(`
  "lab.toml:2:1: error[unknown-key]: unknown key "latncy" in topology.defaults.links
    hint: did you mean \`latency\`? Use one of: latency, jitter, jitter_distribution, jitter_correlation, loss, loss_correlation, loss_model, duplicate, corrupt, reorder, reorder_gap, bw, queue, trace, metric, mtu, mac"
`);
  });

  it('unknown key in a table header', () => {
    expect(errors(`[topolgy.nodes.a]
`)).toMatchInlineSnapshot(`
  "lab.toml:1:2: error[unknown-key]: unknown key "topolgy" at the top level
    hint: did you mean \`topology\`? Use one of: infrastructure, topology"
`);
  });

  it('bad unit', () => {
    expect(errors(`[topology]
links = [{endpoints = ["a", "b"], bw = "10 megabits"}]
`)).toMatchInlineSnapshot(`
  "lab.toml:2:40: error[bad-unit]: topology.links[0].bw: "megabits" in "10 megabits" is not a unit of rate
    hint: write a rate such as "100mbit"; accepted units: bit, kbit, mbit, gbit, tbit, kibit, mibit, gibit, bps, kbps, Mbps, Gbps, Tbps, B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s"
`);
  });

  it('bare percentage', () => {
    expect(errors(`[topology.defaults.links]
loss = 0.1
`)).toMatchInlineSnapshot(`
  "lab.toml:2:8: error[bad-unit]: topology.defaults.links.loss: the percentage 0.1 has no unit; write it as "0.1%" (bare numbers are ambiguous)
    hint: write a percentage such as "1%"; accepted units: %"
`);
  });

  it('wrong type', () => {
    expect(errors(`[topology.nodes.a]
exec = "ip link"
[topology.nodes.b]
sysctls = { "net.ipv4.ip_forward" = true }
`)).toMatchInlineSnapshot(`
  "lab.toml:2:8: error[bad-type]: topology.nodes.a.exec must be an array of commands, got the string "ip link"
    hint: write ["ip link"]
  lab.toml:4:37: error[bad-type]: topology.nodes.b.sysctls."net.ipv4.ip_forward" must be a string or a number, got the boolean true
    hint: write "1""
`);
  });

  it('endpoint table that matches neither endpoint', () => {
    expect(errors(`[topology]
links = [
  {endpoints = ["r0:eth0", "r1:eth0"]},
  {endpoints = ["r1:eth1", "r2:eth1"], "r1:eth0" = {latency = "25ms"}},
]
`)).toMatchInlineSnapshot(`
  "lab.toml:4:40: error[unknown-endpoint]: "r1:eth0" in topology.links[1] is neither endpoint of the link (r1:eth1, r2:eth1)
    hint: did you mean \`r1:eth1\`? Use one of: r1:eth1, r2:eth1; an endpoint table must match both the node and the interface"
`);
  });

  it('endpoint naming an undeclared node', () => {
    expect(errors(`[topology.nodes.router1]
[topology.nodes.router2]
[topology]
links = [{endpoints = ["router1:eth0", "routr2:eth0"]}]
`)).toMatchInlineSnapshot(`
  "lab.toml:4:40: error[unknown-node]: the endpoint "routr2:eth0" in topology.links[0].endpoints names node "routr2", which [topology.nodes] does not declare
    hint: did you mean \`router2\`? Otherwise declare it as [topology.nodes.routr2]"
`);
  });

  it('one interface used by two links', () => {
    expect(errors(`[topology]
links = [
  {endpoints = ["r0:eth0", "r1:eth0"]},
  {endpoints = ["r0:eth1", "r2:eth0"]},
  {endpoints = ["r0:eth0", "r3:eth0"]},
]
`)).toMatchInlineSnapshot(`
  "lab.toml:5:17: error[duplicate-interface]: interface r0:eth0 is used by both topology.links[0] (line 3) and topology.links[2]
    hint: give each link its own interface on r0, or leave the interface out ("r0") to have one named for you"
`);
  });

  it('mtu in an endpoint table, mac at link level', () => {
    expect(errors(`[topology]
links = [{endpoints = ["a:eth0", "b:eth0"], mac = "02:00:00:00:00:01", "b:eth0" = {mtu = 1500}}]
`)).toMatchInlineSnapshot(`
  "lab.toml:2:45: error[misplaced-key]: mac would give both ends of a link the same address (topology.links[0].mac)
    hint: set it on one endpoint: {endpoints = ["a:eth0", "b:eth0"], "a:eth0" = {mac = "02:00:00:00:00:01"}}
  lab.toml:2:84: error[misplaced-key]: mtu belongs to the whole link, not to one endpoint (topology.links[0]."b:eth0".mtu)
    hint: move it next to endpoints: {endpoints = [...], mtu = 1500}"
`);
  });

  it('shell syntax in exec and pinned commands runs through sh -c, as in DUNE', () => {
    const t = parseDuneToml(`[topology.defaults.nodes]
exec = ["ip link > /tmp/links", "echo $(hostname)", "cd /tmp && ./run", ["printf", "%s", "a && b"]]
pinned = [{cmd = "server --name $HOSTNAME"}, {cmd = "a & b &"}, {cmd = "plain -x 1 &"}]
[topology.nodes.n]
`, 'lab.toml');
    const n = t.nodes[0];
    expect(n?.exec.map((c) => [c.argv, c.shell])).toEqual([
      [['sh', '-c', 'ip link > /tmp/links'], true],
      [['sh', '-c', 'echo $(hostname)'], true],
      [['sh', '-c', 'cd /tmp && ./run'], true],
      [['printf', '%s', 'a && b'], undefined],
    ]);
    expect(n?.pinned.map((p) => p.cmd.argv)).toEqual([
      ['sh', '-c', 'server --name $HOSTNAME'],
      ['sh', '-c', 'a & b'],
      ['sh', '-c', 'exec plain -x 1'],
    ]);
  });

  it('netem requirements, reported once for a default that reaches many links', () => {
    expect(errors(`[topology.defaults.links]
jitter = "2ms"
[topology]
links = [
  {endpoints = ["a", "b"]},
  {endpoints = ["b", "c"], latency = "1ms"},
  {endpoints = ["c", "d"], "c" = {latency = "1ms"}, reorder = "5%"},
]
`)).toMatchInlineSnapshot(`
  "lab.toml:2:10: error[missing-requirement]: jitter needs latency: netem only varies a delay (on topology.links[0], topology.links[2] (d))
    hint: add latency (it may be "0ms") to the same link or to [topology.defaults.links]
  lab.toml:7:63: error[missing-requirement]: reorder needs latency: netem reorders by sending some packets without the delay (on topology.links[2] (d))
    hint: add latency (it may be "0ms") to the same link or to [topology.defaults.links]"
`);
  });

  it('userspace engine settings out of range, of the wrong type, or misspelt', () => {
    expect(errors(`[topology]
impairment_engine_threads = 0
`)).toMatchInlineSnapshot(`
  "lab.toml:2:29: error[bad-value]: topology.impairment_engine_threads is 0; it must be from 1 to 256, or "auto"
    hint: write a number of threads from 1 to 256, such as 4, or "auto" for one per core of the host"
`);
    expect(errors(`[topology]
impairment_engine_threads = 257
`)).toMatchInlineSnapshot(`
  "lab.toml:2:29: error[bad-value]: topology.impairment_engine_threads is 257; it must be from 1 to 256, or "auto"
    hint: write a number of threads from 1 to 256, such as 4, or "auto" for one per core of the host"
`);
    expect(errors(`[topology]
impairment_engine_threads = "all"
`)).toMatchInlineSnapshot(`
  "lab.toml:2:29: error[bad-value]: topology.impairment_engine_threads is "all", which is neither a number of threads nor "auto"
    hint: write a number of threads from 1 to 256, such as 4, or "auto" for one per core of the host"
`);
    expect(errors(`[topology]
impairment_engine_threads = 2.5
`)).toMatchInlineSnapshot(`
  "lab.toml:2:29: error[bad-type]: topology.impairment_engine_threads must be an integer from 1 to 256 or "auto", got the float 2.5
    hint: write a number of threads from 1 to 256, such as 4, or "auto" for one per core of the host"
`);
    expect(errors(`[topology]
impairment_engine_fail = "opne"
`)).toMatchInlineSnapshot(`
  "lab.toml:2:26: error[bad-value]: topology.impairment_engine_fail is "opne", which is not a known value
    hint: did you mean \`open\`? Use one of: closed, open"
`);
    expect(errors(`[topology]
impairment_engine_fail = true
`)).toMatchInlineSnapshot(`"lab.toml:2:26: error[bad-type]: topology.impairment_engine_fail must be one of "closed", "open", got the boolean true"`);
  });

  it('reports every error of a file in one run', () => {
    const file = 'fixtures/toml/many-errors.toml';
    expect(errors(readFileSync(here(file), 'utf8'), file)).toMatchInlineSnapshot(`
      "fixtures/toml/many-errors.toml:2:19: error[duplicate-core]: core 2 is listed twice, at infrastructure.nodes.h1.cores[0][1] and infrastructure.nodes.h1.cores[1][0]
        hint: list each core in one group only
      fixtures/toml/many-errors.toml:3:8: error[bad-value]: infrastructure.nodes.h1.port is 70000; it must be from 1 to 65535
      fixtures/toml/many-errors.toml:4:12: error[bad-address]: infrastructure.nodes.h1.underlay: "10.0.0.300" is not an IPv4 or IPv6 address
        hint: write the address VXLAN uses on this host, e.g. "192.0.2.10"
      fixtures/toml/many-errors.toml:7:11: error[bad-value]: topology.routing is "rip", which is not a known value
        hint: did you mean \`bgp\`? Use one of: static, ospf, bgp, none
      fixtures/toml/many-errors.toml:10:11: error[bad-unit]: topology.defaults.links.latency: "lightyears" in "5 lightyears" is not a unit of time
        hint: write a duration such as "5ms"; accepted units: ns, us, µs, usec, ms, msec, s, sec, secs, m, min
      fixtures/toml/many-errors.toml:11:8: error[bad-unit]: topology.defaults.links.loss: the percentage 0.1 has no unit; write it as "0.1%" (bare numbers are ambiguous)
        hint: write a percentage such as "1%"; accepted units: %
      fixtures/toml/many-errors.toml:12:1: error[misplaced-key]: mac would give both ends of a link the same address (topology.defaults.links.mac)
        hint: set it on one endpoint: {endpoints = ["a:eth0", "b:eth0"], "a:eth0" = {mac = "02:00:00:00:00:01"}}
      fixtures/toml/many-errors.toml:15:11: error[unknown-phynode]: node "r0" is placed on phynode "h2", which [infrastructure.nodes] does not declare
        hint: did you mean \`h1\`? Use one of: h1
      fixtures/toml/many-errors.toml:17:13: error[bad-sysctl]: "net..bad" in topology.nodes.r0.sysctls is not a sysctl name
        hint: write it dotted, as \`sysctl\` prints it, e.g. "net.ipv4.ip_forward"
      fixtures/toml/many-errors.toml:20:19: error[bad-address]: topology.nodes.r1.addrs.eth0[0]: "33" in "10.0.0.1/33" is not a prefix length (0 to 32 for IPv4)
        hint: write an address with its prefix length, e.g. "10.0.0.1/24" or "fc00::1/64"
      fixtures/toml/many-errors.toml:25:15: error[misplaced-key]: mtu belongs to the whole link, not to one endpoint (topology.links[0]."r1:eth0".mtu)
        hint: move it next to endpoints: {endpoints = [...], mtu = 1500}
      fixtures/toml/many-errors.toml:28:25: error[unknown-node]: the endpoint "r2:eth0" in topology.links[1].endpoints names node "r2", which [topology.nodes] does not declare
        hint: did you mean \`r0\`? Otherwise declare it as [topology.nodes.r2]"
    `);
  });

  it('TOML syntax error, located in code points', () => {
    expect(errors(`[topology.nodes."café"]
rid = "0.0.0.1"
quic = { ca = "x" ; }
`)).toMatchInlineSnapshot(`
  "lab.toml:3:19: error[toml-syntax]: invalid TOML: expected comma or end of structure
    hint: see https://toml.io for the syntax; strings need quotes, and a key may be defined only once"
`);
    expect(errors(`[topology.nodes.é]\nx = 1\n`)).toMatchInlineSnapshot(`
      "lab.toml:1:17: error[toml-syntax]: invalid TOML: illegal character in key
        hint: see https://toml.io for the syntax; strings need quotes, and a key may be defined only once"
    `);
  });

  it('warns about a kept key one typo away from a known one', () => {
    const topo = parseDuneToml(`[infrastructure]
node = {}
[infrastructure.nodes.h]
cors = [[1]]
[topology.nodes.a]
sysctl = {"net.ipv4.ip_forward" = "1"}
`, 'lab.toml');
    expect(topo.phynodes[0]?.extra).toEqual({ cors: [[1]] });
    expect(formatDiagnostics(topo.notes)).toMatchInlineSnapshot(`
      "lab.toml:2:1: warning[possible-typo]: "node" in infrastructure is not a known key (kept as DUNE does, unused)
        hint: did you mean \`nodes\`?
      lab.toml:4:1: warning[possible-typo]: "cors" in infrastructure.nodes.h is not a known key (kept as an extra phynode key)
        hint: did you mean \`cores\`?
      lab.toml:6:1: warning[possible-typo]: "sysctl" in topology.nodes.a is not a known key (kept as template context, ctx)
        hint: did you mean \`sysctls\`?"
    `);
  });

  it('interface names, self-links, addresses and phynode references', () => {
    expect(errors(`[infrastructure.nodes.main]
[topology.nodes.a]
phynode = "mian"
addrs = { eth9 = ["10.0.0.1/24"], "bad if" = ["10.0.0.2"] }
[topology.nodes.b]
[topology]
links = [
  {endpoints = ["a:averyveryverylongname", "b:eth0"]},
  {endpoints = ["a:eth0", "a:eth1"]},
  {endpoints = ["a:eth1", "b:eth1"]},
]
`)).toMatchInlineSnapshot(`
  "lab.toml:3:11: error[unknown-phynode]: node "a" is placed on phynode "mian", which [infrastructure.nodes] does not declare
    hint: did you mean \`main\`? Use one of: main
  lab.toml:4:11: error[unknown-interface]: node "a" has addresses for interface "eth9", but no link gives it that interface
    hint: did you mean \`eth1\`? Use one of: lo, eth1
  lab.toml:4:35: error[bad-ifname]: the interface name "bad if" contains " ", which Linux refuses (topology.nodes.a.addrs."bad if")
    hint: interface names are at most 15 bytes, without "/", ":" or whitespace, e.g. "eth0" or "to-r2"
  lab.toml:8:17: error[bad-ifname]: the interface name "averyveryverylongname" is 21 bytes long; Linux allows at most 15 (endpoint "a:averyveryverylongname" in topology.links[0].endpoints)
    hint: interface names are at most 15 bytes, without "/", ":" or whitespace, e.g. "eth0" or "to-r2"
  lab.toml:9:16: error[self-link]: topology.links[1].endpoints connects node "a" to itself
    hint: a link joins two different nodes; to give a node more addresses, use addrs"
`);
  });

  it('a misspelt loss_model is an unknown key, not an endpoint table', () => {
    expect(errors(`[topology]
links = [{endpoints = ["a", "b"], lossmodel = {p = "1%", r = "5%"}, loss_model = {p = "1%", h = "90%"}}]
`)).toMatchInlineSnapshot(`
  "lab.toml:2:35: error[unknown-key]: unknown key "lossmodel" in topology.links[0]
    hint: did you mean \`loss_model\`? Use one of: endpoints, latency, jitter, jitter_distribution, jitter_correlation, loss, loss_correlation, loss_model, duplicate, corrupt, reorder, reorder_gap, bw, queue, trace, metric, mtu, mac
  lab.toml:2:82: error[missing-key]: topology.links[0].loss_model has no r
    hint: write loss_model = {p = "1%", r = "10%"} (p: good→bad, r: bad→good)
  lab.toml:2:93: error[unknown-key]: unknown key "h" in topology.links[0].loss_model
    hint: netem takes 1-h, the loss probability in the bad state: write one_minus_h = "<100% minus h>""
`);
  });

  it('keys such as __proto__ and constructor are ordinary names', () => {
    const topo = parseDuneToml(`[topology.defaults.nodes]
constructor = 2
[topology.nodes.__proto__]
__proto__ = {y = 2}
sysctls = {"__proto__.x" = 1}
[topology.nodes.constructor]
[topology]
links = [{endpoints = ["__proto__:eth0", "constructor:eth0"], "__proto__:eth0" = {latency = "1ms"}}]
`, 'proto.toml');
    expect(topo.nodes.map((n) => n.id)).toEqual(['__proto__', 'constructor']);
    const n = topo.nodes[0];
    expect(Object.getPrototypeOf(n?.ctx)).toBe(Object.prototype);
    expect(Object.getOwnPropertyNames(n?.ctx)).toEqual(['constructor', '__proto__']);
    expect(n?.sysctls).toEqual({ '__proto__.x': '1' });
    expect(topo.links[0]?.a.impairment).toEqual({ delayUs: 1000 });
    expect(() => parseDuneToml('[topology]\nlinks = [{endpoints = ["a", "b"], constructor = "x"}]', 'p.toml')).toThrow(/unknown key "constructor"/);
  });
});

describe('command splitting (command.ts)', () => {
  it.each([
    ['./server -p 80', ['./server', '-p', '80']],
    [`echo 'a  b' "c \\"d\\" \\$e" f\\ g`, ['echo', 'a  b', 'c "d" $e', 'f g']],
    ['~/bin/x --dir ~/data', ['~/bin/x', '--dir', '~/data']],
    ['prog {{node}} {{ core_1 }}', ['prog', '{{node}}', '{{', 'core_1', '}}']],
    ['a \\\n  b # a comment', ['a', 'b']],
    ['glob *.txt [ab] ?', ['glob', '*.txt', '[ab]', '?']],
    ['price 5$ "$"', ['price', '5$', '$']],
    ["'it'\\''s'", ["it's"]],
  ])('%j', (text, argv) => {
    expect(splitCommand(text)).toEqual({ argv, background: false });
  });

  it('drops a trailing "&" and says so', () => {
    expect(splitCommand('holod -c x &')).toEqual({ argv: ['holod', '-c', 'x'], background: true });
    expect(splitCommand('holod&')).toEqual({ argv: ['holod'], background: true });
  });

  it.each([
    'a | b', 'a; b', 'a & b', 'a && b', 'a || b', 'a > f', 'a < f', 'a 2>&1', 'echo `id`', 'echo $(id)', 'echo "$(id)"',
    'echo $HOME', 'echo "${x}"', '(a)', 'a\nb', "'open", '"open', 'a \\', '', '   ', '&',
  ])('refuses %j', (text) => {
    expect(() => splitCommand(text)).toThrow(CommandSyntaxError);
  });

  it('joinCommand quotes so that splitting gives the words back', () => {
    const argv = ['sh', '-c', 'echo "$HOME" | wc -c', "it's", '', '#x', '{{node}}', 'ü'];
    expect(splitCommand(joinCommand(argv)).argv).toEqual(argv);
  });
});

describe('locator (toml-locate.ts)', () => {
  const text = `# c
[a.b]
x = 1
"q.k" = { y = [1, {z = "s"}] }

[[arr]]
n = 1
[[arr]]
n = 2
[arr.sub]
m = "ü"
links = [
  {endpoints = ["a", "b"], "r1:eth1" = {latency = "25ms"}},
  {endpoints = ["c", "d"], "r2:eth1" = {latency = "5ms"}}
]
k.l.m = 3
`;
  const loc = locateToml(text, 'f.toml');
  const at = (path: (string | number)[]): string => {
    const k = loc.keyLoc(path);
    const v = loc.valueLoc(path);
    return `${k.line}:${k.col} ${v.line}:${v.col}`;
  };

  it('finds headers, dotted and quoted keys, inline tables, arrays and arrays of tables', () => {
    expect(at(['a'])).toBe('2:2 2:2');
    expect(at(['a', 'b'])).toBe('2:4 2:1');
    expect(at(['a', 'b', 'x'])).toBe('3:1 3:5');
    expect(at(['a', 'b', 'q.k', 'y', 1, 'z'])).toBe('4:20 4:24');
    expect(at(['arr', 0, 'n'])).toBe('7:1 7:5');
    expect(at(['arr', 1, 'n'])).toBe('9:1 9:5');
    expect(at(['arr', 1, 'sub', 'm'])).toBe('11:1 11:5');
    expect(at(['arr', 1, 'sub', 'links', 1, 'r2:eth1', 'latency'])).toBe('14:41 14:51');
    expect(at(['arr', 1, 'sub', 'k', 'l', 'm'])).toBe('16:5 16:9');
  });

  it('locates every key path smol-toml returns, at its key', () => {
    for (const [name, source] of [['dune-example.toml', readFileSync(DUNE_EXAMPLE, 'utf8')], ...FIXTURES.map((f) => [f, readFileSync(here(f), 'utf8')])]) {
      const located = locateToml(source as string, name as string);
      const lines = (source as string).split('\n');
      const walk = (v: unknown, path: (string | number)[]): void => {
        const children: [string | number, unknown][] = Array.isArray(v)
          ? v.map((x, i) => [i, x])
          : v !== null && typeof v === 'object' && !(v instanceof Date) ? Object.entries(v) : [];
        for (const [k, child] of children) {
          const p = [...path, k];
          expect(located.has(p), `${name}: ${JSON.stringify(p)}`).toBe(true);
          if (typeof k === 'string') {
            const { line, col } = located.keyLoc(p);
            const rest = [...(lines[line - 1] ?? '')].slice(col - 1).join('');
            expect(rest.startsWith(k) || rest.startsWith('"') || rest.startsWith("'"), `${name}: ${JSON.stringify(p)} at ${line}:${col}`).toBe(true);
          }
          walk(child, p);
        }
      };
      walk(parse(source as string), []);
    }
  });

  it('falls back to the nearest located ancestor', () => {
    expect(at(['arr', 1, 'sub', 'links', 0, 'missing', 'deeper'])).toBe('13:3 13:3');
    expect(at(['nothing'])).toBe('1:1 1:1');
  });
});

describe('robustness', () => {
  /** Deterministic, so a failing case can be replayed. */
  const prng = seededRandom;
  const sources: [string, string][] = [
    ['dune-example.toml', readFileSync(DUNE_EXAMPLE, 'utf8')],
    ...FIXTURES.map((f): [string, string] => [f, readFileSync(here(f), 'utf8')]),
  ];
  const alphabet = ['"', "'", '[', ']', '{', '}', '=', ',', '.', ':', '\n', '#', '\\', ' ', 'a', '1', '%', 'é', '&', '|', '$(', '[[', '"""'];

  it.each(sources)('%s: 300 truncations and mutations parse or fail with a TopologyError', (name, text) => {
    const rand = prng(name.length * 7919 + text.length);
    const pick = (n: number): number => Math.floor(rand() * n);
    for (let i = 0; i < 300; i++) {
      let mutated: string;
      if (i % 3 === 0) {
        mutated = text.slice(0, pick(text.length + 1));
      } else {
        const chars = [...text];
        for (let k = 1 + pick(4); k > 0; k--) {
          const at = pick(chars.length + 1);
          const r = rand();
          if (r < 0.4) chars.splice(at, 1);
          else if (r < 0.8) chars.splice(at, 0, alphabet[pick(alphabet.length)] as string);
          else chars.splice(at, 1, String.fromCharCode(pick(128)));
        }
        mutated = chars.join('');
      }
      try {
        parseDuneToml(mutated, name);
      } catch (e) {
        if (!(e instanceof TopologyError || e instanceof DuneError)) {
          throw new Error(`mutation ${i} of ${name} threw ${String(e)}\n--- input ---\n${mutated}`, { cause: e });
        }
      }
    }
  });
});
