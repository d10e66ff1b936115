/** GraphViz DOT: a cluster per phynode, shapes by kind, links labelled; cut links red and dashed. */
import { linkLabel, type GraphModel, type GraphNodeKind } from './model.js';

export const DOT_SHAPES: Record<string, string> = { router: 'ellipse', switch: 'box', hub: 'hexagon', diode: 'rarrow', firewall: 'doubleoctagon', antispoof: 'box3d', vtep: 'cds', nic: 'house', tap: 'invhouse', vhost: 'invhouse', capture: 'note' };

export function dotShape(kind: GraphNodeKind): string {
  return DOT_SHAPES[kind] ?? 'octagon';
}

/** A DOT string: quotes and backslashes escaped, newlines as `\n`. */
export function dotString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, '\\n')}"`;
}

export function toDot(g: GraphModel): string {
  const out: string[] = [`graph ${dotString(g.lab)} {`, '  graph [overlap=false, splines=true, fontname="Helvetica"];', '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];'];
  g.hosts.forEach((host, i) => {
    const mine = g.nodes.filter((n) => n.phynode === host);
    if (mine.length === 0) return;
    out.push(`  subgraph ${dotString(`cluster_${i}`)} {`, `    label=${dotString(`phynode ${host}`)};`, '    style=rounded; color=gray;');
    for (const n of mine) {
      const label = [n.id, n.v4, n.stopped ? '(stopped)' : '', n.missing ? '(missing)' : ''].filter(Boolean).join('\n');
      const style = n.stopped || n.missing ? ', style="filled,dashed", fillcolor=lightgray' : '';
      out.push(`    ${dotString(n.id)} [shape=${dotShape(n.kind)}, label=${dotString(label)}${style}];`);
    }
    out.push('  }');
  });
  for (const l of g.links) {
    const attrs = [`label=${dotString(linkLabel(l))}`, `taillabel=${dotString(l.a.dev)}`, `headlabel=${dotString(l.b.dev)}`];
    if (l.kind === 'vxlan') attrs.push('penwidth=2');
    if (l.cut) attrs.push('color=red', 'fontcolor=red', 'style=dashed');
    out.push(`  ${dotString(l.a.node)} -- ${dotString(l.b.node)} [${attrs.join(', ')}];`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
