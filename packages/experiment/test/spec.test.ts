import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TopologyError, formatDiagnostics } from '@dune/topology';
import { parseExperiment, parseTarget, placeholders, planRuns, readExperiment, substitute, topologyFor, combinations } from '@dune/experiment';

const INLINE = `
[experiment]
name = "demo"
repetitions = 2
seed = 3

[variables]
bw = { values = ["5mbit", "10mbit"], set = "a--b.bw" }
delay = { from = 1, to = 5, step = 2, unit = "ms", set = ["a:eth0.latency"] }
streams = [1, 4]
cc = { values = ["cubic", "reno"], set = "a.sysctls.net.ipv4.tcp_congestion_control" }

[[roles]]
name = "srv"
node = "b"
run = "iperf3 -s"
server = true
ready = { port = 5201 }

[[roles]]
name = "cli"
node = "a"
run = "iperf3 -c {addr:b} -P {streams} -J -T {{x}}"

[metrics]
goodput = { role = "cli", parse = "iperf3", field = "bps" }
custom = { role = "cli", parse = "regex", pattern = "x=([0-9]+)", take = "mean", unit = "ms" }

[topology]
links = [{ endpoints = ["a:eth0", "b:eth0"] }]
[topology.nodes.a]
[topology.nodes.b]
`;

function errors(text: string, file = 'exp.toml'): string {
  try {
    parseExperiment(text, file);
  } catch (e) {
    if (e instanceof TopologyError) return formatDiagnostics(e.diagnostics);
    throw e;
  }
  throw new Error('no error');
}

describe('experiment files', () => {
  it('reads an inline topology, variables (lists, ranges, targets), roles and metrics', () => {
    const e = parseExperiment(INLINE, '/x/demo.toml');
    expect(e.name).toBe('demo');
    expect(e.lab).toBe('exp-demo');
    expect(e.topologySource).toBe('inline');
    expect(e.topology.nodes.map((n) => n.id)).toEqual(['a', 'b']);
    expect(e.variables.map((v) => [v.name, v.values])).toEqual([
      ['bw', ['5mbit', '10mbit']],
      ['delay', ['1ms', '3ms', '5ms']],
      ['streams', [1, 4]],
      ['cc', ['cubic', 'reno']],
    ]);
    expect(e.variables[0]?.targets).toEqual([{ kind: 'link', a: 'a', b: 'b', key: 'bw', live: true, text: 'a--b.bw' }]);
    expect(e.variables[3]?.targets).toEqual([{ kind: 'node', node: 'a', path: ['sysctls', 'net.ipv4.tcp_congestion_control'], text: 'a.sysctls.net.ipv4.tcp_congestion_control' }]);
    expect(e.roles.map((r) => [r.name, r.server, r.ready])).toEqual([['srv', true, { kind: 'port', port: 5201, timeoutMs: 10_000 }], ['cli', false, undefined]]);
    expect(e.metrics.map((m) => [m.name, m.parser, m.unit, m.take])).toEqual([['goodput', 'iperf3', 'bit/s', 'first'], ['custom', 'regex', 'ms', 'mean']]);
    expect(planRuns(e)).toHaveLength(2 * 3 * 2 * 2 * 2);
  });

  it('a node setting makes a new topology; impairments do not', () => {
    const e = parseExperiment(INLINE, '/x/demo.toml');
    const t = topologyFor(e, { bw: '5mbit', delay: '1ms', streams: 1, cc: 'reno' });
    expect(t.nodes.find((n) => n.id === 'a')?.sysctls).toMatchObject({ 'net.ipv4.tcp_congestion_control': 'reno' });
    expect(e.topology.nodes.find((n) => n.id === 'a')?.sysctls ?? {}).not.toHaveProperty('net.ipv4.tcp_congestion_control');
  });

  it('reads a topology file relative to the experiment file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'exp-'));
    writeFileSync(join(dir, 'topo.toml'), '[topology]\nlinks = [{ endpoints = ["x", "y"] }]\n');
    writeFileSync(join(dir, 'e.toml'), '[experiment]\ntopology = "topo.toml"\n[[roles]]\nnode = "x"\nrun = "true"\n');
    const e = readExperiment(join(dir, 'e.toml'));
    expect(e.topology.nodes.map((n) => n.id)).toEqual(['x', 'y']);
    expect(e.lab).toBe('exp-e');
    expect(planRuns(e)).toEqual([{ combination: 0, repetition: 1, values: {}, key: '#1' }]);
  });

  it('reports every problem with file:line:col, what is wrong and a hint', () => {
    const text = `[experiment]
repetitons = 2
order = "random"

[variables]
bw = { values = ["5mbit", "fast"], set = "a--b.bw" }
lat = { values = ["1ms"], set = "a--c.latency" }
x = []

[[roles]]
node = "q"
run = "ping -c 1 {addr:b} {nope} | head"

[[roles]]
node = "a"
run = "ping {lat"

[metrics]
m = { role = "role9", parse = "iperf4" }
p = { role = "role1", parse = "ping", field = "median" }

[topology]
links = [{ endpoints = ["a", "b"] }]
`;
    expect(errors(text)).toMatchSnapshot();
  });

  it('a topology error of an inline topology points into the experiment file', () => {
    expect(errors('[[roles]]\nnode = "a"\nrun = "true"\n\n[topology]\nlinks = [{ endpoints = ["a", "b"], latency = "fast" }]\n')).toMatch(/^exp\.toml:6:\d+: error\[bad-unit\]/);
  });

  it('targets, placeholders and substitution', () => {
    expect(parseTarget('r1:eth0.latency')).toEqual({ kind: 'egress', node: 'r1', dev: 'eth0', key: 'latency', text: 'r1:eth0.latency' });
    expect(parseTarget('a:e1--b:e2.mtu')).toEqual({ kind: 'link', a: 'a', aDev: 'e1', b: 'b', bDev: 'e2', key: 'mtu', live: false, text: 'a:e1--b:e2.mtu' });
    expect(parseTarget('r1:eth0.mtu')).toEqual({ problem: 'mtu is a link-wide setting' });
    expect(parseTarget('r1')).toEqual({ problem: 'no ".KEY"' });
    expect(placeholders('{a}-{addr:b:eth0}{{lit}}')).toEqual({ names: ['a', 'addr:b:eth0'] });
    expect(placeholders('x}').problem).toMatch(/without "\{"/);
    expect(substitute('-P{n}{{x}}', (n) => (n === 'n' ? '4' : '?'))).toBe('-P4{x}');
  });

  it('the run list: the product in declaration order, shuffled by the seed, the same every time', () => {
    expect(combinations([{ name: 'a', values: [1, 2] }, { name: 'b', values: ['x', 'y'] }])).toEqual([{ a: 1, b: 'x' }, { a: 1, b: 'y' }, { a: 2, b: 'x' }, { a: 2, b: 'y' }]);
    const vars = [{ name: 'a', values: [1, 2, 3], targets: [], loc: { file: '', line: 1, col: 1 } }];
    const s1 = planRuns({ variables: vars, repetitions: 3, seed: 1, order: 'shuffled' }).map((r) => r.key);
    const s2 = planRuns({ variables: vars, repetitions: 3, seed: 1, order: 'shuffled' }).map((r) => r.key);
    const s3 = planRuns({ variables: vars, repetitions: 3, seed: 2, order: 'shuffled' }).map((r) => r.key);
    const seq = planRuns({ variables: vars, repetitions: 3, seed: 1, order: 'sequential' }).map((r) => r.key);
    expect(s1).toEqual(s2);
    expect(s1).not.toEqual(s3);
    expect(seq).toEqual(['a=1#1', 'a=2#1', 'a=3#1', 'a=1#2', 'a=2#2', 'a=3#2', 'a=1#3', 'a=2#3', 'a=3#3']);
    expect([...s1].sort()).toEqual([...seq].sort());
  });
});

describe('the README', () => {
  it("its translation of DUNE's mpf example is a valid experiment of 2 × 2 × 5 runs", () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### From mpf'));
    const toml = /```toml\n([\s\S]*?)```/.exec(section)?.[1] as string;
    const e = parseExperiment(toml, '/x/mpf-demo.toml');
    expect(e.variables.map((v) => [v.name, v.values])).toEqual([['streams', [1, 4]], ['cc', ['cubic', 'bbr']]]);
    expect(e.roles.map((r) => [r.name, r.node, r.server])).toEqual([['server', 'srv', true], ['client', 'cli', false]]);
    expect(planRuns(e)).toHaveLength(20);
  });
});
