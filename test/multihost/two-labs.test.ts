/**
 * Issue 14: two multi-host labs on the same two phynodes at once. Both number their
 * cross-host links from VNI 1000 when compiled; at `up` the second gets VNIs its hosts'
 * journals show free, both carry traffic together, and both come down leaving nothing.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { built, isRoot, REASON, Testbed, type CliRun, type TestPhynode } from './testbed.js';


let tb: Testbed;

const dune = (args: string[]): CliRun => tb.dune(args);

const ph = (n: number): TestPhynode => tb.phynodes[n - 1] as TestPhynode;

/** a (ph1) — b (ph2) — c (ph1): two cross-host links, the path a → c crosses twice. */
function topology(lab: string): string {
  const body = [
    '[topology]', `lab = "${lab}"`, 'routing_weight = "hops"',
    'links = [{ endpoints = ["a:eth0", "b:eth0"] }, { endpoints = ["b:eth1", "c:eth0"] }]',
    '[topology.nodes.a]', 'phynode = "ph1"', '[topology.nodes.b]', 'phynode = "ph2"', '[topology.nodes.c]', 'phynode = "ph1"', '',
  ].join('\n');
  const dir = join(tb.dir, 'topo');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, `${lab}.toml`);
  writeFileSync(f, `${body}\n${tb.infrastructureToml()}`);
  return f;
}

/** VNI of each VXLAN device of the lab on a phynode, `node:dev` → vni. */
function vnis(p: TestPhynode, lab: string): Record<string, number> {
  const out: Record<string, number> = {};
  const nss = tb.inPhynode(p, ['ip', 'netns', 'list']).out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`dune.${lab}.`));
  for (const ns of nss) {
    for (const line of tb.inPhynode(p, ['ip', '-n', ns, '-d', '-o', 'link', 'show', 'type', 'vxlan']).out.split('\n')) {
      const m = /^\d+: ([^@:]+).* vxlan id (\d+) /.exec(line);
      if (m) out[`${ns.slice(`dune.${lab}.`.length)}:${m[1]}`] = Number(m[2]);
    }
  }
  return out;
}

function leftovers(p: TestPhynode, lab: string): string[] {
  const nss = tb.inPhynode(p, ['ip', 'netns', 'list']).out.split('\n').filter((l) => l.startsWith(`dune.${lab}.`));
  const journal = tb.inPhynode(p, ['test', '-e', `/run/dune/${lab}`]).code === 0 ? [`journal of ${lab}`] : [];
  return [...nss, ...journal];
}

describe.skipIf(!isRoot || !built)(`two multi-host labs on the same hosts (${REASON})`, () => {
  let fa = '';
  let fb = '';
  beforeAll(async () => {
    tb = await Testbed.create({ count: 2 });
    fa = topology('mhA');
    fb = topology('mhB');
  }, 120_000);
  afterAll(async () => {
    if (tb) {
      dune(['down', fa]);
      dune(['down', fb]);
      await tb.teardown();
    }
  });

  it('both compile to the same VNIs', () => {
    const va = JSON.parse(dune(['plan', fa, '--json']).out) as { links: { vni?: number }[] };
    const vb = JSON.parse(dune(['plan', fb, '--json']).out) as { links: { vni?: number }[] };
    expect(va.links.map((l) => l.vni)).toEqual([1000, 1001]);
    expect(vb.links.map((l) => l.vni)).toEqual([1000, 1001]);
  });

  it('come up together with VNIs that never clash, and both carry traffic', () => {
    const a = dune(['up', fa]);
    expect(a.code, a.err).toBe(0);
    const b = dune(['up', fb]);
    expect(b.code, b.err).toBe(0);
    const A1 = vnis(ph(1), 'mhA');
    const B1 = vnis(ph(1), 'mhB');
    const A2 = vnis(ph(2), 'mhA');
    const B2 = vnis(ph(2), 'mhB');
    console.log('VNIs', JSON.stringify({ mhA: { ph1: A1, ph2: A2 }, mhB: { ph1: B1, ph2: B2 } }));
    expect(A1).toEqual({ 'a:eth0': 1000, 'c:eth0': 1001 });
    expect(A2).toEqual({ 'b:eth0': 1000, 'b:eth1': 1001 });
    // Lab B: each link the same VNI at both ends, none of lab A's.
    expect(B1).toEqual({ 'a:eth0': 1002, 'c:eth0': 1003 });
    expect(B2).toEqual({ 'b:eth0': 1002, 'b:eth1': 1003 });
    // The journals record what each lab holds, request and VNI.
    const j = JSON.parse(tb.inPhynode(ph(2), ['cat', '/run/dune/mhB/vnis.json']).out) as unknown[];
    expect(j).toEqual([{ lab: 'mhB', port: 4789, vni: 1002, request: 1000 }, { lab: 'mhB', port: 4789, vni: 1003, request: 1001 }]);
    for (const [lab, f] of [['mhA', fa], ['mhB', fb]] as const) {
      const r = dune(['exec', '--lab', lab, 'a', '--', 'ping', '-c', '3', '-i', '0.2', '-W', '2', (JSON.parse(dune(['plan', f, '--json']).out) as { nodes: { node: string; v4?: string }[] }).nodes.find((n) => n.node === 'c')?.v4 as string]);
      expect(r.code, `${f}: ${r.out}${r.err}`).toBe(0);
      expect(r.out).toMatch(/3 received/);
    }
  });

  it('a second up of the second lab keeps its VNIs: nothing changes', () => {
    const r = dune(['up', fb]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/nothing (changed|to do)|unchanged|up to date/i);
    expect(vnis(ph(1), 'mhB')).toEqual({ 'a:eth0': 1002, 'c:eth0': 1003 });
  });

  it('both come down, nothing left on either host', () => {
    expect(dune(['down', fa]).code).toBe(0);
    expect(dune(['down', fb]).code).toBe(0);
    for (const p of tb.phynodes) expect([...leftovers(p, 'mhA'), ...leftovers(p, 'mhB')]).toEqual([]);
  });
});
