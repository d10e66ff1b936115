import { describe, expect, it } from 'vitest';
import { formatDiagnostics, parseDuneToml, TopologyError } from '@dune/topology';
import { compile, serializePlan } from '@dune/compiler';

const BASE = `
[topology]
links = [{ endpoints = ["r1", "r2"] }, { endpoints = ["r2", "r3"] }]
`;

describe('the failure schedule in the plan', () => {
  it('carries the events with the interface names the compiler gave', () => {
    const plan = compile(parseDuneToml(`${BASE}
[[topology.events]]
at = "1s"
target = "r2:eth1"
action = "down"
repeat = { count = 2, period = "3s" }
[[topology.events]]
at = "1.5s"
target = "r3"
action = "stop"
`, 'lab.toml'));
    expect(plan.events).toEqual([
      { atMs: 1000, target: 'r2:eth1', node: 'r2', iface: 'eth1', action: 'down', count: 2, periodMs: 3000 },
      { atMs: 1500, target: 'r3', node: 'r3', action: 'stop', count: 1, periodMs: 0 },
    ]);
    expect(JSON.parse(serializePlan(plan)).events).toEqual(plan.events);
  });

  it('a plan without a schedule has no events key (plans of older topologies are unchanged)', () => {
    expect('events' in compile(parseDuneToml(BASE, 'lab.toml'))).toBe(false);
  });

  it('an interface the node does not have is an error at its location, with the nearest', () => {
    let report = '';
    try {
      compile(parseDuneToml(`${BASE}
[[topology.events]]
at = "1s"
target = "r2:eth2"
action = "up"
`, 'lab.toml'));
    } catch (e) {
      if (!(e instanceof TopologyError)) throw e;
      report = formatDiagnostics(e.diagnostics);
    }
    expect(report).toMatchInlineSnapshot(`
      "lab.toml:3:10: note[weight-fallback]: routing by latency needs a latency on every link, and 2 of 2 have none (link #0 (r1 – r2) at lab.toml:3:10; link #1 (r2 – r3) at lab.toml:3:40); routing by hop count instead
        hint: give every link a latency, or set the routing weight to "hops" to silence this
      lab.toml:7:10: error[unknown-interface]: event target "r2:eth2": node r2 has no link interface "eth2"
        hint: did you mean \`eth0\`? Use one of: eth0, eth1"
    `);
  });
});
