import { describe, expect, test } from 'vitest';
import { formatDiagnostics } from '@dune/topology';
import { compile, compileWithDiagnostics, type Plan } from '../src/index.js';
import { compileError, ops, pinned, TopoBuilder } from './helpers.js';

const hostOf = (plan: Plan, node: string) => plan.nodes.find((n) => n.node === node)?.phynode;
const cpusOf = (plan: Plan, node: string) => plan.nodes.find((n) => n.node === node)?.cpus;

describe('placement and cores', () => {
  test('single phynode: lowest free cores first, in node order; core_N maps to the N-th allocated core', () => {
    const t = new TopoBuilder()
      .phynode('rukkileib', { cores: [[3, 1, 2, 4, 5, 6, 7]] })
      .node('r0', { pinned: [pinned('holod -c /tmp/{{node}}.toml', { IO_QUIC_CORE_ID: '{{core_1}}' })] })
      .node('r1', { pinned: [pinned('holod', { A: '{{core_1}}', B: '{{core_2}}' }), pinned('sleeper')] })
      .node('h')
      .chain(['r0', 'r1', 'h'])
      .build();
    const plan = compile(t);
    expect(plan.hosts.map((h) => h.nodes)).toEqual([
      [
        { node: 'r0', ns: 'dune.test.r0', cpus: [1, 2] },
        { node: 'r1', ns: 'dune.test.r1', cpus: [3, 4, 5, 6] },
        { node: 'h', ns: 'dune.test.h', cpus: [] },
      ],
    ]);
    const procs = ops(plan, 'process');
    expect(procs.map((p) => [p.name, p.cpus, p.env, p.argv])).toEqual([
      ['r0.0', [1, 2], { IO_QUIC_CORE_ID: '2' }, ['holod', '-c', '/tmp/r0.toml']],
      ['r1.0', [3, 4, 5], { A: '4', B: '5' }, ['holod']],
      ['r1.1', [6], {}, ['sleeper']],
    ]);
    expect(cpusOf(plan, 'r1')).toEqual([3, 4, 5, 6]);
  });

  test('a phynode without cores pins nothing, and that is fine unless core_N is used', () => {
    const plan = compile(new TopoBuilder().node('a', { pinned: [pinned('sleep 1')] }).node('b').link('a', 'b').build());
    expect(plan.hosts.map((h) => h.phynode)).toEqual(['local']);
    expect(ops(plan, 'process')[0]?.cpus).toEqual([]);
  });

  test('each process takes its cores from one NUMA group; a node may span groups', () => {
    const t = new TopoBuilder()
      .phynode('p', { cores: [[1, 2], [3, 4, 5]] })
      .node('a', { pinned: [pinned('x', { A: '{{core_1}}', B: '{{core_2}}' }), pinned('y', { A: '{{core_1}}' })] })
      .build();
    const plan = compile(t);
    expect(ops(plan, 'process').map((p) => p.cpus)).toEqual([[3, 4, 5], [1, 2]]);
  });

  test('two phynodes with cores: filled in proportion to cores, nobody over capacity', () => {
    const b = new TopoBuilder().phynode('small', { cores: [[1, 2]], underlay: '198.51.100.1' }).phynode('big', { cores: [[1, 2, 3, 4, 5, 6]], underlay: '198.51.100.2' });
    const ids = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'];
    for (const id of ids) b.node(id, { pinned: [pinned('app')] });
    b.chain(ids);
    const plan = compile(b.build());
    const counts = plan.hosts.map((h) => [h.phynode, h.nodes.length]);
    expect(counts).toEqual([
      ['small', 2],
      ['big', 6],
    ]);
    for (const h of plan.hosts) {
      const all = h.nodes.flatMap((n) => n.cpus);
      expect(new Set(all).size).toBe(all.length);
    }
    // A chain split in two contiguous runs: one link crosses.
    expect(plan.stats['vxlanLinks']).toBe(1);
  });

  test('over-commitment says by how much (DUNE example: 5 nodes × 2 cores on 3)', () => {
    const b = new TopoBuilder().phynode('rukkileib', { cores: [[1, 2, 3]] });
    for (const id of ['r0', 'r1', 'r2', 'r3', 'r4']) b.node(id, { pinned: [pinned('holod -c /tmp/holod.toml', { IO_QUIC_CORE_ID: '{{core_1}}' })] });
    expect(compileError(b.link('r0:eth0', 'r1:eth0').build()).message).toMatchInlineSnapshot(`
      "1 error in the topology:
      test.toml:1:1: error[cores-overcommitted]: the nodes' pinned processes need 10 cores, phynodes offer 3 (rukkileib: 3 in 1 group); 7 short. Needs: "r0": 2, "r1": 2, "r2": 2, "r3": 2, "r4": 2
        hint: declare more cores (cores = [[1,2,3],[4,5,6,7]] under [infrastructure.nodes.<phynode>]), add a phynode, or use fewer {{core_N}} per process (each process takes core_0 plus one core per core_N it uses)"
    `);
  });

  test('--overcommit: the same lab is placed, processes sharing cores, each process on distinct cores, with a warning', () => {
    const b = new TopoBuilder().phynode('rukkileib', { cores: [[1, 2, 3]] });
    for (const id of ['r0', 'r1', 'r2', 'r3', 'r4']) b.node(id, { pinned: [pinned('holod -c /tmp/holod.toml', { IO_QUIC_CORE_ID: '{{core_1}}' })] });
    const r = compileWithDiagnostics(b.link('r0:eth0', 'r1:eth0').build(), { overcommit: true });
    expect(r.plan.nodes.map((n) => `${n.node}:${n.cpus.join(',')}`)).toEqual(['r0:1,2', 'r1:3,1', 'r2:2,3', 'r3:1,2', 'r4:3,1']);
    expect(ops(r.plan, 'process').map((p) => p.env['IO_QUIC_CORE_ID'])).toEqual(['2', '1', '3', '2', '1']);
    expect(formatDiagnostics(r.diagnostics.filter((d) => d.code === 'cores-shared'))).toMatchInlineSnapshot(`
      "test.toml:1:1: warning[cores-shared]: --overcommit: the pinned processes need 10 cores and the phynodes offer 3: processes share cores, up to 4 on each, and run slower than their pinning promises
        hint: declare more cores or phynodes to give every process its own"
    `);
    // Enough cores: --overcommit changes nothing and says nothing.
    const fits = new TopoBuilder().phynode('p', { cores: [[1, 2]] }).node('a', { pinned: [pinned('x')] }).node('b', { pinned: [pinned('y')] }).build();
    const f = compileWithDiagnostics(fits, { overcommit: true });
    expect(f.plan).toEqual(compile(fits));
    expect(f.diagnostics.filter((d) => d.code === 'cores-shared')).toEqual([]);
  });

  test('fragmentation: enough cores in total, but not in whole groups', () => {
    const b = new TopoBuilder().phynode('p', { cores: [[1, 2, 3], [4, 5, 6]] });
    for (const id of ['a', 'b', 'c']) b.node(id, { pinned: [pinned('app', { X: '{{core_1}}' })] });
    expect(compileError(b.build()).message).toMatchInlineSnapshot(`
      "1 error in the topology:
      test.toml:4:1: error[cores-fragmented]: the pinned processes need 6 cores and the phynodes offer 6, but they do not fit the NUMA groups (each process takes all its cores from one group). Not placed: "c": 2. Free cores left: p: group 0 1 of 3, group 1 1 of 3
        hint: declare larger NUMA groups, or use fewer {{core_N}} per process"
    `);
  });

  test('a process larger than every NUMA group', () => {
    const t = new TopoBuilder()
      .phynode('p', { cores: [[1, 2], [3, 4]] })
      .node('big', { pinned: [pinned('app', { X: '{{core_1}}', Y: '{{core_2}}' })] })
      .build();
    expect(compileError(t).diagnostics.map((d) => d.message)).toEqual([
      'a pinned process takes all its cores from one NUMA group, and the largest group has 2 cores: "big" process 0 (app) needs 3',
    ]);
  });

  test('fixed nodes stay on their phynode; an unknown phynode is an error with a suggestion', () => {
    const b = new TopoBuilder()
      .phynode('alpha', { underlay: '198.51.100.1' })
      .phynode('beta', { underlay: '198.51.100.2' })
      .node('a', { phynode: 'beta' })
      .node('b', { phynode: 'beta' })
      .node('c', { phynode: 'beta' })
      .node('d')
      .chain(['a', 'b', 'c', 'd']);
    const plan = compile(b.build());
    expect(['a', 'b', 'c', 'd'].map((n) => hostOf(plan, n))).toEqual(['beta', 'beta', 'beta', 'alpha']);

    const bad = new TopoBuilder().phynode('alpha').node('a', { phynode: 'alhpa' }).build();
    expect(compileError(bad).message).toMatchInlineSnapshot(`
      "1 error in the topology:
      test.toml:2:1: error[unknown-phynode]: node "a" is placed on phynode "alhpa", which is not declared
        hint: did you mean \`alpha\`? Use one of: alpha"
    `);
  });

  test('fixed nodes over their phynode capacity', () => {
    const t = new TopoBuilder()
      .phynode('alpha', { cores: [[1]] })
      .phynode('beta', { cores: [[1, 2, 3, 4]] })
      .node('a', { phynode: 'alpha', pinned: [pinned('x')] })
      .node('b', { phynode: 'alpha', pinned: [pinned('x')] })
      .build();
    expect(compileError(t).diagnostics.map((d) => d.message)).toEqual([
      'phynode "alpha": the nodes placed on it ("a": 1, "b": 1) need 2 cores, it offers 1 (alpha: 1 in 1 group); 1 short; not placed: "b"',
    ]);
  });

  test('two cliques joined by one link land on two phynodes with only that link cut', () => {
    // Interleaved ids and the bridge listed first, so the greedy fill alone gets it wrong.
    const A = ['a1', 'a2', 'a3', 'a4'];
    const B = ['b1', 'b2', 'b3', 'b4'];
    const b = new TopoBuilder().phynode('one', { underlay: '198.51.100.1' }).phynode('two', { underlay: '198.51.100.2' });
    for (let i = 0; i < 4; i++) b.node(A[i] as string).node(B[i] as string);
    b.link('a1', 'b1');
    for (const clique of [A, B]) for (let i = 0; i < 4; i++) for (let j = i + 1; j < 4; j++) b.link(clique[i] as string, clique[j] as string);
    const plan = compile(b.build());
    const where = Object.fromEntries(plan.nodes.map((n) => [n.node, n.phynode]));
    expect(new Set(A.map((n) => where[n])).size).toBe(1);
    expect(new Set(B.map((n) => where[n])).size).toBe(1);
    expect(where['a1']).not.toBe(where['b1']);
    expect(plan.stats['vxlanLinks']).toBe(1);
    expect(plan.links.filter((l) => l.kind === 'vxlan').map((l) => `${l.a.node}-${l.b.node}`)).toEqual(['a1-b1']);
  });

  test('the cut prefers to cross rate-limited links', () => {
    // A ring of 6: two links must be cut. The two 1 Mbit/s links are the cheap ones.
    const ids = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'];
    const b = new TopoBuilder().phynode('one', { underlay: '198.51.100.1' }).phynode('two', { underlay: '198.51.100.2' });
    for (const id of ids) b.node(id);
    const slow = { a: { impairment: { rateBitsPerSec: 1e6 } }, b: { impairment: { rateBitsPerSec: 1e6 } } };
    ids.forEach((id, i) => b.link(id, ids[(i + 1) % 6] as string, i === 1 || i === 4 ? slow : {}));
    const plan = compile(b.build());
    expect(plan.links.filter((l) => l.kind === 'vxlan').map((l) => l.index)).toEqual([1, 4]);
  });
});
