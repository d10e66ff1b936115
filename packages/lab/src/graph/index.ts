/**
 * Pictures of a lab: `dune graph`, the live view (`dune ui`).
 *
 *   plan (+ status) ──graphModel──▶ GraphModel ──▶ dot | mermaid | svg (layoutGraph) | html
 */
import { DuneError, choicesHint } from '@dune/topology';
import { toDot } from './dot.js';
import { toHtml } from './html.js';
import { toMermaid } from './mermaid.js';
import { toSvg } from './svg.js';
import type { GraphModel } from './model.js';

export * from './model.js';
export { toDot, dotShape } from './dot.js';
export { toMermaid } from './mermaid.js';
export { toSvg, xmlEscape } from './svg.js';
export { toHtml } from './html.js';
export { layoutGraph, type Layout, type HostBox, type Point } from './layout.js';

/** The formats, one renderer each. */
export const GRAPH_FORMATS = { dot: toDot, mermaid: toMermaid, svg: (g: GraphModel) => toSvg(g), html: toHtml } as const;
export type GraphFormat = keyof typeof GRAPH_FORMATS;

export function renderGraph(g: GraphModel, format: string): string {
  const render = (GRAPH_FORMATS as Record<string, ((g: GraphModel) => string) | undefined>)[format];
  if (render === undefined) {
    throw new DuneError('bad-format', `"${format}" is not a picture format`, { hint: choicesHint(format, Object.keys(GRAPH_FORMATS)) });
  }
  return render(g);
}
