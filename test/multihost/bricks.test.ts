/**
 * Bricks across hosts: a firewall on ph1 whose second port is a VXLAN link to a server on
 * ph2, and a diode on ph2 between two hosts there. Built, counted (`dune status` merges the
 * hosts' counters) and changed live (`dune firewall`) by fresh CLI processes over SSH.
 *
 *   ph1: client ── fw ══════ server :ph2          ph2: a ── d ── b  (diode, from a)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { built, isRoot, REASON, Testbed, type CliRun, type TestPhynode } from './testbed.js';


let tb: Testbed;

const dune = (args: string[]): CliRun => tb.dune(args);

const LAB = 'mhbricks';

function topology(): string {
  const body = [
    '[topology]', `lab = "${LAB}"`, 'routing_weight = "hops"',
    'links = [',
    '  { endpoints = ["client:eth0", "fw:eth0"] }, { endpoints = ["fw:eth1", "server:eth0"] },',
    '  { endpoints = ["a:eth0", "d:eth0"], "a:eth0" = { mac = "02:00:00:00:0a:01" } },',
    '  { endpoints = ["d:eth1", "b:eth0"], "b:eth0" = { mac = "02:00:00:00:0b:01" } },',
    ']',
    '[topology.nodes.client]', 'phynode = "ph1"',
    '[topology.nodes.fw]', 'phynode = "ph1"', 'kind = "firewall"', 'rules = [{ action = "allow", proto = "icmp", from = "client" }]',
    '[topology.nodes.server]', 'phynode = "ph2"',
    '[topology.nodes.a]', 'phynode = "ph2"', '[topology.nodes.b]', 'phynode = "ph2"',
    '[topology.nodes.d]', 'phynode = "ph2"', 'kind = "diode"', 'from = "a"', '',
  ].join('\n');
  const dir = join(tb.dir, 'topo');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, `${LAB}.toml`);
  writeFileSync(f, `${body}\n${tb.infrastructureToml()}`);
  return f;
}

function leftovers(p: TestPhynode): string[] {
  const nss = tb.inPhynode(p, ['ip', 'netns', 'list']).out.split('\n').filter((l) => l.startsWith(`dune.${LAB}.`));
  const journal = tb.inPhynode(p, ['test', '-e', `/run/dune/${LAB}`]).code === 0 ? [`journal of ${LAB}`] : [];
  return [...nss, ...journal];
}

function addrOf(node: string): { v4: string; mac: string } {
  const r = dune(['exec', '--lab', LAB, node, '--', 'ip', '-j', 'addr', 'show', 'dev', 'eth0']);
  const [j] = JSON.parse(r.out) as { address: string; addr_info: { family: string; local: string }[] }[];
  return { v4: j?.addr_info.find((a) => a.family === 'inet')?.local ?? '', mac: j?.address ?? '' };
}

const ping = (from: string, to: string) => dune(['exec', '--lab', LAB, from, '--', 'ping', '-c', '2', '-i', '0.2', '-W', '1', to]).code === 0;

function counters(): Map<string, number> {
  const s = JSON.parse(dune(['status', '--lab', LAB, '--json']).out) as { counters?: { node: string; name: string; packets: number | null }[] };
  return new Map((s.counters ?? []).map((c) => [`${c.node} ${c.name}`, c.packets ?? -1]));
}

describe.skipIf(!isRoot || !built)(`bricks across two phynodes (${REASON})`, () => {
  let file = '';
  beforeAll(async () => {
    tb = await Testbed.create({ count: 2 });
    file = topology();
  }, 120_000);
  afterAll(async () => {
    if (tb) {
      dune(['down', file]);
      await tb.teardown();
    }
  });

  it('a firewall with a port over VXLAN filters, counts on its host, and takes new rules from a fresh CLI', () => {
    const up = dune(['up', file]);
    expect(up.code, up.err).toBe(0);
    const server = addrOf('server').v4;
    const client = addrOf('client').v4;
    expect(ping('client', server)).toBe(true);
    expect(ping('server', client)).toBe(false);
    let c = counters();
    expect(c.get('fw rule0')).toBeGreaterThanOrEqual(1);
    expect(c.get('fw unmatched')).toBeGreaterThanOrEqual(2);

    // The other way round: pings from the server only (their replies pass as a stateful rule's).
    const set = dune(['firewall', '--lab', LAB, 'fw', '--rule', 'action=allow proto=icmp from=server', '--policy', 'deny']);
    expect(set.code, set.err).toBe(0);
    expect(ping('client', server)).toBe(false);
    expect(ping('server', client)).toBe(true);
    c = counters();
    // The rule counts a connection's first packet; the rest are counted as its later packets.
    expect(c.get('fw rule0')).toBeGreaterThanOrEqual(1);
    expect(c.get('fw replies')).toBeGreaterThanOrEqual(3);
  });

  it('a diode on the other host drops the reverse direction and its counters reach the controller', () => {
    const b = addrOf('b');
    expect(dune(['exec', '--lab', LAB, 'a', '--', 'ip', 'neigh', 'replace', b.v4, 'lladdr', b.mac, 'dev', 'eth0', 'nud', 'permanent']).code).toBe(0);
    // a → b: the echo requests cross (counted as passed); the replies do not (dropped).
    expect(ping('a', b.v4)).toBe(false);
    const c = counters();
    expect(c.get('d passed')).toBeGreaterThanOrEqual(2);
    expect(c.get('d dropped')).toBeGreaterThanOrEqual(2);
  });

  it('comes down, nothing left on either host', () => {
    expect(dune(['down', file]).code).toBe(0);
    for (const p of tb.phynodes) expect(leftovers(p)).toEqual([]);
  });
});
