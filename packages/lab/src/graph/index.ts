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

/** The format, checked: an unknown one is an error naming the valid ones and the nearest. */
export function graphFormat(format: string): GraphFormat {
  if (!Object.hasOwn(GRAPH_FORMATS, format)) {
    throw new DuneError('bad-format', `"${format}" is not a picture format`, { hint: choicesHint(format, Object.keys(GRAPH_FORMATS)) });
  }
  return format as GraphFormat;
}

export function renderGraph(g: GraphModel, format: string): string {
  return GRAPH_FORMATS[graphFormat(format)](g);
}
