/**
 * Mermaid flowchart: a subgraph per phynode, shapes by kind (router `(( ))`, switch `[ ]`,
 * hub `{{ }}`), links labelled; a cut link is dotted and red. Node ids are `n0`, `n1`, ...
 * (Mermaid ids cannot hold every character a node id can); names are quoted labels.
 */
import { linkLabel, type GraphModel, type GraphNodeKind } from './model.js';

/** Mermaid label text: `"` and `#` and `<>` as entity codes (Mermaid's own escape). */
export function mermaidText(s: string): string {
  return s.replace(/#/g, '#35;').replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');
}

/** `label` is Mermaid text already (escaped, `<br/>` for new lines). */
function shape(kind: GraphNodeKind, label: string): string {
  const t = `"${label}"`;
  if (kind === 'router') return `((${t}))`;
  if (kind === 'switch') return `[${t}]`;
  if (kind === 'hub') return `{{${t}}}`;
  return `[/${t}/]`;
}

export function toMermaid(g: GraphModel): string {
  const ids = new Map(g.nodes.map((n, i) => [n.id, `n${i}`]));
  const out = ['flowchart LR'];
  g.hosts.forEach((host, i) => {
    const mine = g.nodes.filter((n) => n.phynode === host);
    if (mine.length === 0) return;
    out.push(`  subgraph h${i}["${mermaidText(`phynode ${host}`)}"]`);
    for (const n of mine) {
      const label = [n.id, n.v4, n.stopped ? '(stopped)' : ''].filter((x): x is string => Boolean(x)).map(mermaidText).join('<br/>');
      out.push(`    ${ids.get(n.id)}${shape(n.kind, label)}`);
    }
    out.push('  end');
  });
  const cut: number[] = [];
  g.links.forEach((l, i) => {
    const label = linkLabel(l);
    const text = label ? `|"${mermaidText(label)}"|` : '';
    out.push(`  ${ids.get(l.a.node)} ${l.cut ? '-.-' : '---'}${text} ${ids.get(l.b.node)}`);
    if (l.cut) cut.push(i);
  });
  for (const n of g.nodes) if (n.stopped) out.push(`  style ${ids.get(n.id)} fill:#ddd,stroke-dasharray: 4 3`);
  if (cut.length > 0) out.push(`  linkStyle ${cut.join(',')} stroke:red,color:red`);
  return `${out.join('\n')}\n`;
}
