/** A page that stands alone (no script, no network): the SVG and a legend. */
import { toSvg, xmlEscape } from './svg.js';
import type { GraphModel } from './model.js';

export const LEGEND = 'circle: router · square: switch · hexagon: hub · dashed box: phynode · red dashed link: cut · grey node: stopped';

export function toHtml(g: GraphModel): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${xmlEscape(`lab ${g.lab}`)}</title>
<style>body { font-family: Helvetica, Arial, sans-serif; margin: 1em; } .legend { color: #555; font-size: 12px; }</style></head>
<body>
<h1>lab ${xmlEscape(g.lab)}</h1>
<p class="legend">${xmlEscape(LEGEND)}</p>
${toSvg(g)}</body>
</html>
`;
}
