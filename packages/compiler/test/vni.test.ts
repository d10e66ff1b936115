import { describe, expect, test } from 'vitest';
import { allocateVnis, compile, serializePlan, vniUses, type Plan, type VniUse, type VxlanOp } from '../src/index.js';
import { TopoBuilder } from './helpers.js';

/** Three hosts; a-d cross ph1-ph2 twice, e on ph3 crosses ph2-ph3 once. */
function lab(name: string): Plan {
  const t = new TopoBuilder(name)
    .phynode('ph1', { underlay: '198.51.100.1' })
    .phynode('ph2', { underlay: '198.51.100.2' })
    .phynode('ph3', { underlay: '198.51.100.3' })
    .node('a', { phynode: 'ph1' })
    .node('b', { phynode: 'ph2' })
    .node('c', { phynode: 'ph1' })
    .node('e', { phynode: 'ph3' })
    .link('a', 'b').link('b', 'c').link('b', 'e')
    .build();
  return compile(t);
}

const vxlans = (p: Plan, phynode: string): VxlanOp[] => (p.hosts.find((h) => h.phynode === phynode)?.ops ?? []).filter((o): o is VxlanOp => o.op === 'vxlan');
const hostsOf = (uses: VniUse[], ...phynodes: string[]): Map<string, VniUse[]> => new Map(phynodes.map((ph) => [ph, uses]));

describe('VNI allocation at up', () => {
  test('nothing held on the hosts: the plan is the compiled one, unchanged', () => {
    const p = lab('one');
    expect(allocateVnis(p, hostsOf([], 'ph1', 'ph2', 'ph3'))).toBe(p);
    expect(p.links.filter((l) => l.kind === 'vxlan').map((l) => l.vni)).toEqual([1000, 1001, 1002]);
  });

  test('a second lab on the same hosts gets VNIs free on both ends of each link, recorded with the request', () => {
    const first = lab('one');
    const held = new Map(first.hosts.map((h) => [h.phynode, vniUses({ ...first, hosts: [h] })]));
    const second = allocateVnis(lab('two'), held);
    // ph1-ph2 links: 1000 and 1001 are lab one's on both hosts; ph2-ph3: 1002 is one's on ph2 and ph3.
    expect(second.links.filter((l) => l.kind === 'vxlan').map((l) => l.vni)).toEqual([1003, 1004, 1005]);
    expect(vxlans(second, 'ph1').map((o) => [o.vni, o.vniRequest])).toEqual([[1003, 1000], [1004, 1001]]);
    expect(vxlans(second, 'ph2').map((o) => [o.vni, o.vniRequest])).toEqual([[1003, 1000], [1004, 1001], [1005, 1002]]);
    // No VNI of lab two equals one of lab one on a host they share.
    for (const ph of ['ph1', 'ph2', 'ph3']) {
      const a = new Set(vxlans(first, ph).map((o) => o.vni));
      for (const o of vxlans(second, ph)) expect(a.has(o.vni)).toBe(false);
    }
  });

  test('per host pair: a VNI held on other hosts only is free', () => {
    // Another lab holds 1002 on ph1 only: the ph2-ph3 link keeps its request.
    const other: VniUse = { lab: 'other', port: 4789, vni: 1002, request: 1000 };
    const p = allocateVnis(lab('two'), new Map([['ph1', [other]], ['ph2', []], ['ph3', []]]));
    expect(p.links.filter((l) => l.kind === 'vxlan').map((l) => l.vni)).toEqual([1000, 1001, 1002]);
    // Another port does not clash.
    const q = allocateVnis(lab('two'), hostsOf([{ lab: 'other', port: 8472, vni: 1000, request: 1000 }], 'ph1', 'ph2', 'ph3'));
    expect(q.links.filter((l) => l.kind === 'vxlan').map((l) => l.vni)).toEqual([1000, 1001, 1002]);
  });

  test('a second up of the same lab keeps its VNIs, and plans are deterministic', () => {
    const first = lab('one');
    const held = new Map(first.hosts.map((h) => [h.phynode, vniUses({ ...first, hosts: [h] })]));
    const second = allocateVnis(lab('two'), held);
    // Lab one has gone meanwhile; two's journal holds what it got: it keeps it.
    const own = new Map(second.hosts.map((h) => [h.phynode, vniUses({ ...second, hosts: [h] })]));
    const again = allocateVnis(lab('two'), own);
    expect(serializePlan(again)).toBe(serializePlan(second));
    expect(serializePlan(allocateVnis(lab('two'), held))).toBe(serializePlan(second));
  });
});
