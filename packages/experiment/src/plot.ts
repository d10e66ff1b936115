/**
 * SVG line plots of one metric against one variable, written by hand (no plotting service,
 * no dependency): one line per combination of the other variables' values, each point the
 * mean over the repetitions with its 95 % confidence interval as an error bar; axes with
 * "nice" ticks (1, 2, 5 × 10^k), units on both axes, a legend.
 *
 * The x axis is numeric when every value of the variable is a number with one shared unit
 * ("5mbit", "10mbit", "20mbit" → 5, 10, 20 in mbit); otherwise the values are categories,
 * evenly spaced in declaration order. Rates in bit/s or B/s are shown with an SI prefix
 * chosen from the largest value (Mbit/s rather than 12000000 bit/s).
 */
import type { TomlValue } from '@dune/topology';
import type { CombinationSummary } from './results.js';
import type { Metric, Variable } from './spec.js';

export interface PlotInput {
  title: string;
  metric: Pick<Metric, 'name' | 'unit'>;
  x: Pick<Variable, 'name' | 'values'>;
  /** The other variables: one line per combination of their values. */
  others: Pick<Variable, 'name' | 'values'>[];
  summary: readonly CombinationSummary[];
}

export interface PlotPoint {
  x: number;
  mean: number;
  ci95: number;
}

export interface PlotSeries {
  label: string;
  points: PlotPoint[];
}

const W = 760;
const H = 460;
const M = { left: 86, right: 200, top: 46, bottom: 64 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** Numbers and the shared unit of a variable's values, or undefined when they are not all numbers of one unit. */
export function numericAxis(values: readonly TomlValue[]): { numbers: number[]; unit: string } | undefined {
  const numbers: number[] = [];
  let unit: string | undefined;
  for (const v of values) {
    if (typeof v === 'number') {
      numbers.push(v);
      if (unit !== undefined && unit !== '') return undefined;
      unit = '';
      continue;
    }
    if (typeof v !== 'string') return undefined;
    const m = /^\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*([A-Za-z%/]*)\s*$/.exec(v);
    if (!m) return undefined;
    if (unit !== undefined && unit !== m[2]) return undefined;
    unit = m[2] as string;
    numbers.push(Number(m[1]));
  }
  return { numbers, unit: unit ?? '' };
}

/** 1, 2 or 5 × 10^k steps covering [lo, hi] with about `count` ticks. */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi === lo) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, count - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag) as number;
  // The axis ends on ticks: the first at or below lo, the last at or above hi.
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.max(first + 1, Math.ceil(hi / step - 1e-9));
  const out: number[] = [];
  for (let i = first; i <= last; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

/** An SI prefix for rates and sizes: the factor to divide by and the unit to show. */
export function scaleUnit(unit: string, maxAbs: number): { factor: number; unit: string } {
  if (!['bit/s', 'B/s', 'bit', 'B'].includes(unit)) return { factor: 1, unit };
  for (const [f, p] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) if (maxAbs >= f) return { factor: f, unit: `${p}${unit}` };
  return { factor: 1, unit };
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(6)));
}

/** The lines of a plot: one per combination of the other variables, points in x order. */
export function plotSeries(p: PlotInput): { series: PlotSeries[]; xNumeric: boolean; xUnit: string; xLabels: string[] } {
  const axis = numericAxis(p.x.values);
  const xOf = (v: TomlValue): number => {
    const i = p.x.values.findIndex((x) => String(x) === String(v));
    return axis ? (axis.numbers[i] as number) : i;
  };
  const groups = new Map<string, PlotSeries>();
  for (const s of p.summary) {
    const label = p.others.length === 0 ? p.metric.name : p.others.map((o) => `${o.name}=${String(s.variables[o.name])}`).join(', ');
    const m = s.metrics[p.metric.name];
    if (!m || m.n === 0) continue;
    const g = groups.get(label) ?? { label, points: [] };
    g.points.push({ x: xOf(s.variables[p.x.name] as TomlValue), mean: m.mean, ci95: Number.isFinite(m.ci95) ? m.ci95 : 0 });
    groups.set(label, g);
  }
  // Series in the declaration order of the other variables' values (summary order), points by x.
  const series = [...groups.values()];
  for (const s of series) s.points.sort((a, b) => a.x - b.x);
  return { series, xNumeric: axis !== undefined, xUnit: axis?.unit ?? '', xLabels: p.x.values.map(String) };
}

export function renderPlot(p: PlotInput): string {
  const { series, xNumeric, xUnit, xLabels } = plotSeries(p);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const all = series.flatMap((s) => s.points);
  const yMaxRaw = Math.max(0, ...all.map((q) => q.mean + q.ci95));
  const yMinRaw = Math.min(0, ...all.map((q) => q.mean - q.ci95));
  const { factor, unit: yUnit } = scaleUnit(p.metric.unit, Math.max(Math.abs(yMaxRaw), Math.abs(yMinRaw)));
  const yTicks = niceTicks(yMinRaw / factor, (yMaxRaw / factor) * 1.02 || 1);
  const y0 = yTicks[0] as number;
  const y1 = yTicks[yTicks.length - 1] as number;
  let xTicks: number[];
  let x0: number;
  let x1: number;
  if (xNumeric) {
    const xs = numericAxis(p.x.values)?.numbers ?? [0];
    xTicks = niceTicks(Math.min(0, ...xs), Math.max(...xs));
    x0 = xTicks[0] as number;
    x1 = xTicks[xTicks.length - 1] as number;
  } else {
    xTicks = xLabels.map((_, i) => i);
    x0 = -0.5;
    x1 = xLabels.length - 0.5;
  }
  const sx = (x: number) => M.left + ((x - x0) / (x1 - x0 || 1)) * pw;
  const sy = (y: number) => M.top + ph - ((y - y0) / (y1 - y0 || 1)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${esc(p.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${M.top - 18}" text-anchor="middle" font-size="15">${esc(p.title)}</text>`);
  // grid and ticks
  out.push('<g class="y-axis">');
  for (const t of yTicks) {
    const y = sy(t).toFixed(1);
    out.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + pw}" y2="${y}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${M.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(fmt(t))}</text>`);
  }
  out.push('</g><g class="x-axis">');
  xTicks.forEach((t, i) => {
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${M.top + ph}" x2="${x}" y2="${M.top + ph + 5}" stroke="black"/>`);
    out.push(`<text x="${x}" y="${M.top + ph + 18}" text-anchor="middle">${esc(xNumeric ? fmt(t) : (xLabels[i] as string))}</text>`);
  });
  out.push('</g>');
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
  const xLabel = xNumeric && xUnit ? `${p.x.name} (${xUnit})` : p.x.name;
  const yLabel = yUnit ? `${p.metric.name} (${yUnit})` : p.metric.name;
  out.push(`<text class="x-label" x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle" font-size="13">${esc(xLabel)}</text>`);
  out.push(`<text class="y-label" transform="translate(22 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="13">${esc(yLabel)}</text>`);
  // series
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length] as string;
    out.push(`<g class="series" data-label="${esc(s.label)}" stroke="${c}" fill="${c}">`);
    const path = s.points.map((q, j) => `${j === 0 ? 'M' : 'L'}${sx(q.x).toFixed(1)},${sy(q.mean / factor).toFixed(1)}`).join(' ');
    out.push(`<path d="${path}" fill="none" stroke-width="2"/>`);
    for (const q of s.points) {
      const x = sx(q.x).toFixed(1);
      const ym = sy(q.mean / factor).toFixed(1);
      if (q.ci95 > 0) {
        const ya = sy((q.mean - q.ci95) / factor).toFixed(1);
        const yb = sy((q.mean + q.ci95) / factor).toFixed(1);
        out.push(`<path d="M${x},${ya} L${x},${yb} M${Number(x) - 4},${ya} L${Number(x) + 4},${ya} M${Number(x) - 4},${yb} L${Number(x) + 4},${yb}" fill="none" stroke-width="1"/>`);
      }
      out.push(`<circle cx="${x}" cy="${ym}" r="3.5" data-x="${q.x}" data-mean="${q.mean}" data-ci95="${q.ci95}"/>`);
    }
    out.push('</g>');
  });
  // legend
  const lx = M.left + pw + 16;
  out.push(`<g class="legend"><text x="${lx}" y="${M.top + 4}" font-weight="bold">${esc(p.others.map((o) => o.name).join(', ') || 'mean ± 95 % CI')}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length] as string;
    const y = M.top + 24 + i * 20;
    out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 22}" y2="${y}" stroke="${c}" stroke-width="2"/><circle cx="${lx + 11}" cy="${y}" r="3.5" fill="${c}"/>`);
    out.push(`<text x="${lx + 30}" y="${y}" dominant-baseline="middle">${esc(s.label)}</text>`);
  });
  out.push(`<text x="${lx}" y="${M.top + 24 + series.length * 20 + 8}" fill="#555" font-size="11">bars: 95 % CI (Student t)</text>`);
  out.push('</g></svg>');
  return `${out.join('\n')}\n`;
}
