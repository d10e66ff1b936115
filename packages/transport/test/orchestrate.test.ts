import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseTopology } from '@dune/topology';
import { compile } from '@dune/compiler';
import { hasRemoteHosts, hostView, isRemoteTarget, locationOfPlan } from '../src/orchestrate.js';
import { recordFromPlan } from '../src/lab-record.js';

const infra = [1, 2, 3].map((i) => `[infrastructure.nodes.ph${i}]\nhost = "198.51.100.1${i}"\nport = 22\nuser = "root"\nunderlay = "198.51.100.1${i}"\n`).join('\n');
const text = readFileSync(new URL('../../../test/multihost/fixtures/three-hosts.toml', import.meta.url), 'utf8') + '\n' + infra;
const plan = compile(parseTopology(text, 'three.toml', {}), { readFile: () => Buffer.alloc(0) });

describe('a plan split per host', () => {
  it('knows which hosts are remote', () => {
    expect(hasRemoteHosts(plan)).toBe(true);
    expect(isRemoteTarget({})).toBe(false);
    expect(isRemoteTarget({ host: 'localhost' })).toBe(false);
    expect(isRemoteTarget({ host: '198.51.100.11' })).toBe(true);
  });

  it('gives each host its nodes, the links touching them, its ops, and no SSH details', () => {
    const v = hostView(plan, ['ph2']);
    expect(v.hosts.map((h) => h.phynode)).toEqual(['ph2']);
    expect(v.hosts[0]?.target).toEqual({ underlay: '198.51.100.12' });
    expect(v.nodes.map((n) => n.node).sort()).toEqual(['h2', 'r2']);
    expect(v.links.map((l) => `${l.a.node}-${l.b.node}:${l.kind}`).sort()).toEqual(['r1-r2:vxlan', 'r2-h2:veth', 'r2-r3:vxlan']);
    const vx = v.hosts[0]?.ops.filter((o) => o.op === 'vxlan') ?? [];
    expect(vx.map((o) => (o.op === 'vxlan' ? `${o.local}->${o.remote} vni ${o.vni} mtu ${o.mtu}` : '')).sort()).toEqual([
      '198.51.100.12->198.51.100.11 vni 1000 mtu 1450',
      '198.51.100.12->198.51.100.13 vni 1001 mtu 1450',
    ]);
    // Every op of the plan is in exactly one host's view.
    const total = plan.hosts.reduce((a, h) => a + h.ops.length, 0);
    expect(['ph1', 'ph2', 'ph3'].reduce((a, p) => a + (hostView(plan, [p]).hosts[0]?.ops.length ?? 0), 0)).toBe(total);
  });

  it('records where each node is', () => {
    const loc = locationOfPlan(plan);
    expect(loc.hosts.map((h) => `${h.phynode}@${h.target.host}`)).toEqual(['ph1@198.51.100.11', 'ph2@198.51.100.12', 'ph3@198.51.100.13']);
    expect(loc.nodes['h3']).toEqual(['ph3', 'dune.mh3.h3']);
    const rec = recordFromPlan(plan, 'three.toml');
    expect(rec.file?.endsWith('/three.toml')).toBe(true);
    expect(rec.hosts.map((h) => h.nodes)).toEqual([2, 2, 2]);
  });
});
