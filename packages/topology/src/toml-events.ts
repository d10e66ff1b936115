/**
 * `[[topology.events]]`: a failure schedule run against a live lab (`dune events run`,
 * `lab.runEvents()`). Resolved here: times in ms, the target split into node and
 * interface, the action checked against the target it applies to (EVENT_ACTIONS).
 * Whether an interface exists is the compiler's to check (it names them).
 *
 *   [[topology.events]]
 *   at = "5s"                 # after `dune events run` starts
 *   target = "r1:eth0"        # NODE:IFACE for down/up, NODE for stop/start/restart
 *   action = "down"
 *   repeat = { count = 3, period = "10s" }   # optional: 3 times, 10 s apart
 */
import { choicesHint, nearest, type Diagnostics } from './errors.js';
import { EVENT_ACTIONS, type EventAction, type Node, type ScheduledEvent } from './model.js';
import type { RawEvent } from './toml-raw.js';
import { asInt, asString, asUnit, badValue, pathText } from './toml-values.js';
import { parseDurationUs } from './units.js';

const ACTIONS = Object.keys(EVENT_ACTIONS) as EventAction[];

export function resolveEvents(d: Diagnostics, raw: readonly RawEvent[], nodes: readonly Node[]): ScheduledEvent[] {
  const ids = nodes.map((n) => n.id);
  const known = new Set(ids);
  const out: ScheduledEvent[] = [];
  for (const e of raw) {
    const f = e.fields;
    const atUs = f.at ? asUnit(d, f.at, 'a time after the start', '5s', (v) => parseDurationUs(v)) : undefined;
    const target = f.target ? asString(d, f.target, 'write target = "node" or "node:iface"') : undefined;
    const actionText = f.action ? asString(d, f.action) : undefined;
    let count = 1;
    let periodMs = 0;
    if (e.repeat) {
      const r = e.repeat.fields;
      if (r.count) count = asInt(d, r.count, 1, 1_000_000) ?? 1;
      else d.error('missing-key', `${pathText([...e.path, 'repeat'])} has no count`, e.repeat.loc, 'write repeat = { count = 3, period = "10s" }');
      if (r.period) {
        const us = asUnit(d, r.period, 'a period', '10s', (v) => parseDurationUs(v));
        if (us !== undefined) {
          periodMs = us / 1000;
          if (periodMs <= 0 && count > 1) badValue(d, r.period, `${pathText(r.period.path)} must be longer than 0 when count is ${count}`, 'write a period such as "10s"');
        }
      } else if (count > 1) d.error('missing-key', `${pathText([...e.path, 'repeat'])} has count = ${count} and no period`, e.repeat.loc, `write repeat = { count = ${count}, period = "10s" }`);
    }
    if (target === undefined || f.target === undefined) continue;
    const colon = target.indexOf(':');
    const node = colon < 0 ? target : target.slice(0, colon);
    const iface = colon < 0 ? undefined : target.slice(colon + 1);
    let ok = true;
    if (!known.has(node)) {
      const near = nearest(node, ids);
      badValue(d, f.target, `${pathText(f.target.path)}: no node "${node}" in the topology`, near ? `did you mean \`${near}\`?` : `nodes: ${ids.slice(0, 20).join(', ')}`);
      ok = false;
    } else if (iface === '') {
      badValue(d, f.target, `${pathText(f.target.path)}: "${target}" names no interface after ":"`, `write "${node}" for the node, or "${node}:eth0" for one of its interfaces`);
      ok = false;
    }
    if (actionText === undefined || f.action === undefined) continue;
    if (!(ACTIONS as string[]).includes(actionText)) {
      badValue(d, f.action, `${pathText(f.action.path)} is "${actionText}", which is not an action`, choicesHint(actionText, ACTIONS));
      continue;
    }
    const action = actionText as EventAction;
    const wants = EVENT_ACTIONS[action];
    if (wants === 'interface' && iface === undefined) {
      badValue(d, f.action, `${pathText(f.action.path)}: ${action} applies to an interface, and target "${target}" is a node`,
        `write target = "${node}:eth0" (one of its interfaces), or action = "${action === 'down' ? 'stop' : 'start'}" for the whole node`);
      continue;
    }
    if (wants === 'node' && iface !== undefined) {
      badValue(d, f.action, `${pathText(f.action.path)}: ${action} applies to a node, and target "${target}" is an interface`,
        `write target = "${node}", or ${action === 'restart' ? 'two events, action = "down" then "up",' : `action = "${action === 'stop' ? 'down' : 'up'}"`} for the interface`);
      continue;
    }
    if (!ok || atUs === undefined) continue;
    out.push({ atMs: atUs / 1000, node, ...(iface !== undefined ? { iface } : {}), action, count, periodMs, loc: f.target.loc });
  }
  return out;
}
