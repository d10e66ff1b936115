/**
 * The failure schedule of the topology (`[[topology.events]]`), carried in the plan for
 * whoever runs it against the live lab (`dune events run`, `lab.runEvents()`). Interfaces
 * are named here, so a `node:iface` target is checked here against the node's link ends.
 */
import { choicesHint, type Diagnostics, type EventAction, type Topology } from '@dune/topology';
import type { LinkInfo } from './plan.js';

export interface PlanEvent {
  atMs: number;
  /** `node` or `node:iface`, as written. */
  target: string;
  node: string;
  iface?: string;
  action: EventAction;
  count: number;
  periodMs: number;
}

export function planEvents(topo: Topology, links: readonly LinkInfo[], d: Diagnostics): PlanEvent[] {
  const out: PlanEvent[] = [];
  for (const e of topo.events ?? []) {
    if (e.iface !== undefined) {
      const devs = links.flatMap((l) => [l.a, l.b]).filter((x) => x.node === e.node).map((x) => x.dev);
      if (!devs.includes(e.iface)) {
        d.error('unknown-interface', `event target "${e.node}:${e.iface}": node ${e.node} has no link interface "${e.iface}"`, e.loc,
          devs.length > 0 ? choicesHint(e.iface, devs) : `node ${e.node} has no links`);
        continue;
      }
    }
    out.push({
      atMs: e.atMs,
      target: e.iface !== undefined ? `${e.node}:${e.iface}` : e.node,
      node: e.node,
      ...(e.iface !== undefined ? { iface: e.iface } : {}),
      action: e.action,
      count: e.count,
      periodMs: e.periodMs,
    });
  }
  return out;
}
