/**
 * Links that change over time, carried in the plan for whoever follows them against the live
 * lab (`dune trace run`, `lab.followTraces()`): each traced link direction (`trace = "FILE"`)
 * and the `[[topology.schedule]]` steps, gathered per direction, named by node and device.
 */
import { choicesHint, type Diagnostics, type LinkTrace, type Topology, type TraceStep } from '@dune/topology';
import type { LinkInfo } from './plan.js';

export interface PlanTrace extends LinkTrace {
  node: string;
  dev: string;
}

export function planTraces(topo: Topology, links: readonly LinkInfo[], d: Diagnostics): PlanTrace[] {
  const out: PlanTrace[] = [];
  const byIndex = new Map(links.map((l) => [l.index, l]));
  for (const l of topo.links) {
    const info = byIndex.get(l.index);
    if (!info) continue;
    for (const [end, e] of [[l.a, info.a], [l.b, info.b]] as const) {
      if (end.trace) out.push({ node: e.node, dev: e.dev, ...end.trace });
    }
  }
  const schedule = new Map<string, { node: string; dev: string; steps: TraceStep[] }>();
  for (const c of topo.schedule ?? []) {
    const devs = links.flatMap((x) => [x.a, x.b]).filter((x) => x.node === c.node).map((x) => x.dev);
    if (!devs.includes(c.iface)) {
      d.error('unknown-interface', `schedule link "${c.node}:${c.iface}": node ${c.node} has no link interface "${c.iface}"`, c.loc,
        devs.length > 0 ? choicesHint(c.iface, devs) : `node ${c.node} has no links`);
      continue;
    }
    const key = `${c.node}\0${c.iface}`;
    const s = schedule.get(key) ?? { node: c.node, dev: c.iface, steps: [] };
    s.steps.push({ atMs: c.atMs, set: c.set, ...(c.removed.length > 0 ? { removed: c.removed } : {}) });
    schedule.set(key, s);
  }
  for (const s of schedule.values()) {
    s.steps.sort((a, b) => a.atMs - b.atMs);
    out.push({ node: s.node, dev: s.dev, file: topo.file, format: 'steps', loop: false, steps: s.steps, periodMs: (s.steps[s.steps.length - 1] as TraceStep).atMs });
  }
  return out;
}
