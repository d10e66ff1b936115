import { describe, expect, it } from 'vitest';
import { formatDiagnostics, parseDuneToml, TopologyError } from '@dune/topology';

const LINKS = `
[topology]
links = [{ endpoints = ["r1:eth0", "r2:eth0"] }, { endpoints = ["r2:eth1", "sw"] }]
[topology.nodes.r1]
[topology.nodes.r2]
[topology.nodes.sw]
kind = "switch"
`;

function errors(text: string): string {
  try {
    parseDuneToml(text, 'lab.toml');
  } catch (e) {
    if (e instanceof TopologyError) return formatDiagnostics(e.diagnostics);
    throw e;
  }
  throw new Error('expected a TopologyError');
}

describe('[[topology.events]]', () => {
  it('reads a schedule: times in ms, targets split, repeat as count and period', () => {
    const topo = parseDuneToml(`${LINKS}
[[topology.events]]
at = "2s"
target = "r1:eth0"
action = "down"
repeat = { count = 3, period = "4s" }

[[topology.events]]
at = "500ms"
target = "r2"
action = "restart"
`, 'lab.toml');
    expect(topo.events?.map(({ loc: _loc, ...e }) => e)).toEqual([
      { atMs: 2000, node: 'r1', iface: 'eth0', action: 'down', count: 3, periodMs: 4000 },
      { atMs: 500, node: 'r2', action: 'restart', count: 1, periodMs: 0 },
    ]);
    expect(topo.events?.[0]?.loc).toEqual({ file: 'lab.toml', line: 11, col: 10 });
  });

  it('a topology without events has none', () => {
    expect(parseDuneToml(LINKS, 'lab.toml').events).toBeUndefined();
  });

  it('reports every bad entry with its location, the nearest action and what to write', () => {
    expect(errors(`${LINKS}
[[topology.events]]
at = "2s"
target = "r1:eth0"
action = "dwon"

[[topology.events]]
at = "2"
target = "r9"
action = "stop"

[[topology.events]]
at = "1s"
target = "r1"
action = "down"

[[topology.events]]
at = "1s"
target = "r1:eth0"
action = "restart"

[[topology.events]]
target = "r1"
action = "stop"
when = "now"
repeat = { count = 2 }
`)).toMatchInlineSnapshot(`
  "lab.toml:12:10: error[bad-value]: topology.events[0].action is "dwon", which is not an action
    hint: did you mean \`down\`? Use one of: down, up, stop, start, restart
  lab.toml:15:6: error[bad-unit]: topology.events[1].at: the duration "2" has no unit; write it as "2ms"
    hint: write a time after the start such as "5s"; accepted units: ns, us, µs, usec, ms, msec, s, sec, secs, m, min
  lab.toml:16:10: error[bad-value]: topology.events[1].target: no node "r9" in the topology
    hint: did you mean \`r1\`?
  lab.toml:22:10: error[bad-value]: topology.events[2].action: down applies to an interface, and target "r1" is a node
    hint: write target = "r1:eth0" (one of its interfaces), or action = "stop" for the whole node
  lab.toml:27:10: error[bad-value]: topology.events[3].action: restart applies to a node, and target "r1:eth0" is an interface
    hint: write target = "r1", or two events, action = "down" then "up", for the interface
  lab.toml:29:1: error[missing-key]: topology.events[4] has no at
    hint: an event needs at (e.g. "5s"), target ("node" or "node:iface") and action (down, up, stop, start, restart)
  lab.toml:32:1: error[unknown-key]: unknown key "when" in topology.events[4]
    hint: use one of: at, target, action, repeat
  lab.toml:33:10: error[missing-key]: topology.events[4].repeat has count = 2 and no period
    hint: write repeat = { count = 2, period = "10s" }"
`);
  });
});
