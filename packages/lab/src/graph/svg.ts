/**
 * SVG, drawn here from the layout (no GraphViz, no network service): a box per phynode, a
 * line per link with its impairments, a shape per node by kind (router circle, switch
 * square, hub hexagon). Every node is one `<g class="node" data-node=ID>`, every link one
 * `<g class="link" data-link=INDEX>` (with `cut` when it is), which the live view uses.
 */
import { layoutGraph, type Layout } from './layout.js';
import { linkLabel, type GraphModel, type GraphNode } from './model.js';

/** XML text and attribute values. */
export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const R = 22;

function nodeShape(n: GraphNode, x: number, y: number): string {
  if (n.kind === 'router') return `<circle cx="${x}" cy="${y}" r="${R}"/>`;
  if (n.kind === 'switch') return `<rect x="${x - R}" y="${y - R}" width="${2 * R}" height="${2 * R}" rx="4"/>`;
  if (n.kind === 'hub') {
    const pts = Array.from({ length: 6 }, (_, i) => `${Math.round(x + R * Math.cos((Math.PI / 3) * i))},${Math.round(y + R * Math.sin((Math.PI / 3) * i))}`);
    return `<polygon points="${pts.join(' ')}"/>`;
  }
  return `<rect x="${x - R}" y="${y - R / 1.5}" width="${2 * R}" height="${(4 * R) / 3}" rx="12"/>`;
}

export const SVG_STYLE = `
.host rect { fill: #f6f8fa; stroke: #aab; stroke-dasharray: 6 4; }
.host text { fill: #667; font-size: 12px; }
.link line { stroke: #456; stroke-width: 2; }
.link.vxlan line { stroke-width: 4; }
.link.cut line { stroke: #d22; stroke-dasharray: 8 6; }
.link text { fill: #345; font-size: 10px; }
.link.cut text { fill: #d22; }
.link .hit { stroke: transparent; stroke-width: 14; }
.node circle, .node rect, .node polygon { fill: #e8f0fe; stroke: #246; stroke-width: 2; }
.node.switch rect, .node.hub polygon { fill: #fff4e0; }
.node.stopped circle, .node.stopped rect, .node.stopped polygon { fill: #ddd; stroke: #888; stroke-dasharray: 4 3; }
.node text { font-size: 11px; text-anchor: middle; fill: #123; }
.node text.addr { font-size: 9px; fill: #567; }
text { font-family: Helvetica, Arial, sans-serif; }
`;

export function toSvg(g: GraphModel, layout: Layout = layoutGraph(g)): string {
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${layout.width}" height="${layout.height}" viewBox="0 0 ${layout.width} ${layout.height}" data-lab="${xmlEscape(g.lab)}">`,
    `<title>${xmlEscape(`lab ${g.lab}`)}</title>`,
    `<style>${SVG_STYLE}</style>`,
    '<g class="hosts">',
  ];
  for (const b of layout.hosts) {
    out.push(`<g class="host" data-host="${xmlEscape(b.host)}"><rect x="${b.x}" y="${b.y}" width="${b.width}" height="${b.height}" rx="10"/><text x="${b.x + 8}" y="${b.y + 16}">${xmlEscape(`phynode ${b.host}`)}</text></g>`);
  }
  out.push('</g>', '<g class="links">');
  for (const l of g.links) {
    const a = layout.nodes.get(l.a.node);
    const b = layout.nodes.get(l.b.node);
    if (a === undefined || b === undefined) continue;
    const label = linkLabel(l);
    const mx = Math.round((a.x + b.x) / 2);
    const my = Math.round((a.y + b.y) / 2);
    const cls = ['link', l.kind, l.cut ? 'cut' : ''].filter(Boolean).join(' ');
    const ends = `data-a="${xmlEscape(`${l.a.node}:${l.a.dev}`)}" data-b="${xmlEscape(`${l.b.node}:${l.b.dev}`)}"`;
    out.push(
      `<g class="${xmlEscape(cls)}" data-link="${l.index}" ${ends}>` +
        `<title>${xmlEscape(`${l.a.node}:${l.a.dev} — ${l.b.node}:${l.b.dev}${label ? `\n${label}` : ''}`)}</title>` +
        `<line x1="${a.x}" y1="${a.y}" x2="${b.x}" y2="${b.y}"/>` +
        `<line class="hit" x1="${a.x}" y1="${a.y}" x2="${b.x}" y2="${b.y}"/>` +
        (label ? `<text x="${mx}" y="${my - 4}" text-anchor="middle">${xmlEscape(label)}</text>` : '') +
        '</g>',
    );
  }
  out.push('</g>', '<g class="nodes">');
  for (const n of g.nodes) {
    const p = layout.nodes.get(n.id);
    if (p === undefined) continue;
    const cls = ['node', n.kind, n.stopped ? 'stopped' : '', n.missing ? 'missing' : ''].filter(Boolean).join(' ');
    out.push(
      `<g class="${xmlEscape(cls)}" data-node="${xmlEscape(n.id)}">` +
        `<title>${xmlEscape(`${n.id} (${n.kind}${n.stopped ? ', stopped' : ''}) on ${n.phynode}${n.v4 ? `\n${n.v4}` : ''}${n.v6 ? `\n${n.v6}` : ''}`)}</title>` +
        nodeShape(n, p.x, p.y) +
        `<text x="${p.x}" y="${p.y + 4}">${xmlEscape(n.id)}</text>` +
        (n.v4 ? `<text class="addr" x="${p.x}" y="${p.y + R + 12}">${xmlEscape(n.v4)}</text>` : '') +
        '</g>',
    );
  }
  out.push('</g>', '</svg>');
  return `${out.join('\n')}\n`;
}
