/** A plan in a few readable lines, for `dune plan` without --json. */
import { IMPAIRMENT_SPECS } from '@dune/topology';
import type { HostPlan, ImpairOp, Plan } from './plan.js';

const NODES_SHOWN = 12;

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

function describeTarget(h: HostPlan): string {
  const t = h.target;
  const where = t.host === undefined || t.host === 'localhost' ? 'this machine' : `${t.user ? `${t.user}@` : ''}${t.host}${t.port ? `:${t.port}` : ''}`;
  return t.underlay ? `${where}, underlay ${t.underlay}` : where;
}

function cpuList(cpus: number[]): string {
  // 1,2,3,5 → 1-3,5
  const parts: string[] = [];
  for (let i = 0; i < cpus.length; ) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === (cpus[j] as number) + 1) j++;
    parts.push(j > i + 1 ? `${cpus[i]}-${cpus[j]}` : cpus.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return parts.join(',');
}

export function summarizePlan(plan: Plan): string {
  const s = (k: string) => plan.stats[k] ?? 0;
  const lines: string[] = [];
  lines.push(
    `lab ${plan.lab}: ${plural(s('nodes'), 'node')}, ${plural(s('links'), 'link')} on ${plural(plan.hosts.length, 'phynode')} ` +
      `(from ${plan.source.file}, ${plan.source.format}, sha256 ${plan.source.sha256.slice(0, 12)})`,
  );
  lines.push(`namespaces: ${plan.nsPrefix}<node>`);

  for (const h of plan.hosts) {
    const pinned = h.nodes.reduce((a, n) => a + n.cpus.length, 0);
    lines.push('');
    lines.push(`phynode ${h.phynode} (${describeTarget(h)}): ${plural(h.nodes.length, 'node')}, ${plural(h.ops.length, 'op')}${pinned > 0 ? `, ${plural(pinned, 'cpu')} pinned` : ''}`);
    const shown = h.nodes.slice(0, NODES_SHOWN).map((n) => (n.cpus.length > 0 ? `${n.node} [cpus ${cpuList(n.cpus)}]` : n.node));
    if (shown.length > 0) lines.push(`  ${shown.join(', ')}${h.nodes.length > NODES_SHOWN ? `, … ${h.nodes.length - NODES_SHOWN} more` : ''}`);
  }

  lines.push('');
  const vnis = plan.links.filter((l) => l.vni !== undefined).map((l) => l.vni as number);
  const vniRange = vnis.length === 0 ? '' : ` (VNI ${Math.min(...vnis)}${vnis.length > 1 ? `-${Math.max(...vnis)}` : ''})`;
  lines.push(`links: ${s('links')} (${s('vethLinks')} veth, ${s('vxlanLinks')} vxlan${vniRange})`);
  lines.push(`addresses: ${s('addrsV4')} IPv4, ${s('addrsV6')} IPv6`);
  if (s('routeDestinations') > 0 || s('routesV4') > 0) {
    lines.push(`routes: ${s('routesV4')} IPv4, ${s('routesV6')} IPv6, to ${plural(s('routeDestinations'), 'destination')}`);
    if (s('unroutedPairs') > 0) lines.push(`  no path: ${plural(s('unroutedPairs'), 'node-destination pair')} (${s('components')} disconnected parts)`);
  } else {
    lines.push('routes: none');
  }
  lines.push(`impairments: ${describeImpairments(plan)}`);
  lines.push(`processes: ${s('processes')}; files: ${s('files')}; commands: ${s('execs')}; sysctls: ${s('sysctls')}`);
  return lines.join('\n') + '\n';
}

function describeImpairments(plan: Plan): string {
  let count = 0;
  const byKind = new Map<string, Map<string, number>>();
  const note = (kind: string, value: string) => {
    const m = byKind.get(kind) ?? new Map<string, number>();
    m.set(value, (m.get(value) ?? 0) + 1);
    byKind.set(kind, m);
  };
  for (const h of plan.hosts) {
    for (const op of h.ops) {
      if (op.op !== 'impair') continue;
      count++;
      const i = (op as ImpairOp).impairment;
      // Each key's words in `dune status` (the impairment key table): `delay 5ms` → delay, 5ms.
      for (const spec of Object.values(IMPAIRMENT_SPECS)) {
        const text = spec.status(i);
        if (text === undefined) continue;
        const space = text.indexOf(' ');
        note(text.slice(0, space), text.slice(space + 1));
      }
    }
  }
  if (count === 0) return 'none';
  const parts = [...byKind].map(([kind, values]) => {
    const top = [...values].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const shown = top.slice(0, 3).map(([v, n]) => `${v} ×${n}`).join(', ');
    return `${kind} ${shown}${top.length > 3 ? `, … ${top.length} values` : ''}`;
  });
  return `${plural(count, 'interface')} (${parts.join('; ')})`;
}
