/* global window */
// A small line chart on a canvas: a few series, a shared time axis, autoscaled y, a legend.
// No dependencies; the page must work without network access.
//
// Axes: the y ticks are steps of 1, 2 or 5 × 10^k, at least 1 for whole-number series
// (drops, bytes), labelled with an SI prefix and the unit ("250 µs", "1.5 Mbit/s", "64 kB",
// "3 /s"); the x ticks are wall-clock times every 30 s. The last computed ticks are kept in
// `yTicks` / `xTicks` (for tests and the curious).

const PREFIXES = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k'], [1, '']];

/** A tick step of 1, 2 or 5 × 10^k giving about `count` steps up to `max`. */
export function niceStep(max, count, integer) {
  const raw = max / count;
  const e = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * e;
  for (const m of [1, 2, 5]) {
    if (raw <= m * e) {
      step = m * e;
      break;
    }
  }
  return integer ? Math.max(1, Math.round(step)) : step;
}

/** Ticks from 0 to the first step at or above `max` (max ≤ 0: one step). */
export function niceTicks(max, { count = 4, integer = false } = {}) {
  const m = max > 0 && Number.isFinite(max) ? max : integer ? 1 : 1;
  const step = niceStep(m, count, integer);
  const n = Math.max(1, Math.ceil(m / step - 1e-9));
  return Array.from({ length: n + 1 }, (_, i) => round(i * step, step));
}

function round(v, step) {
  const d = decimals(step);
  return Number(v.toFixed(d));
}

function decimals(step) {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

/**
 * Labels for ticks in `unit` with an SI prefix chosen from the largest tick, and as many
 * decimals as the step needs: [0, 0.5, 1, 1.5] Mbit/s, not [0, 1, 1, 2].
 */
export function tickLabels(ticks, unit, { si = true, scale = 1 } = {}) {
  const top = Math.max(...ticks.map(Math.abs)) * scale;
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) * scale : top || 1;
  let [div, prefix] = [1, ''];
  if (si) [div, prefix] = PREFIXES.find(([d]) => top >= d) ?? [1, ''];
  const d = decimals(step / div);
  const sep = unit.startsWith('/') || unit === '' ? (unit === '' ? '' : ' ') : ' ';
  return ticks.map((t) => (t === 0 ? '0' : `${((t * scale) / div).toFixed(d)}${sep}${prefix}${unit}`));
}

/** Durations: µs under 1 ms, ms under 1 s, else s; `v` in ms. */
export function durationLabels(ticksMs) {
  const top = Math.max(...ticksMs);
  const step = ticksMs.length > 1 ? ticksMs[1] - ticksMs[0] : top || 1;
  const [div, unit] = top >= 1000 ? [1000, 's'] : top >= 1 ? [1, 'ms'] : [1e-3, 'µs'];
  const d = decimals(step / div);
  return ticksMs.map((t) => (t === 0 ? '0' : `${(t / div).toFixed(d)} ${unit}`));
}

export class LineChart {
  /**
   * unit: 'ms' (durations: µs/ms/s chosen by the range), or any unit for SI prefixes
   * ('bit/s', 'B', '/s'); integer: the values are whole numbers (ticks step by 1 at least).
   */
  constructor(canvas, { title, unit = '', integer = false, series }) {
    this.canvas = canvas;
    this.title = title;
    this.unit = unit;
    this.integer = integer;
    this.series = series.map((s) => ({ ...s, points: [] }));
    this.windowSeconds = 120;
    this.draws = 0;
    this.yTicks = [];
    this.xTicks = [];
  }

  /** Adds one point per series at time t (ms); values in series order. */
  push(t, values) {
    values.forEach((v, i) => {
      const s = this.series[i];
      s.points.push([t, Number.isFinite(v) ? v : 0]);
      while (s.points.length > 0 && s.points[0][0] < t - this.windowSeconds * 1000) s.points.shift();
    });
  }

  /** The y ticks and their labels for the points held now. */
  axis() {
    const all = this.series.flatMap((s) => s.points.map((p) => p[1]));
    const ticks = niceTicks(all.length ? Math.max(...all) : 0, { integer: this.integer });
    const labels = this.unit === 'ms' ? durationLabels(ticks) : tickLabels(ticks, this.unit);
    return ticks.map((value, i) => ({ value, label: labels[i] }));
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (c.width !== w * dpr || c.height !== h * dpr) {
      c.width = w * dpr;
      c.height = h * dpr;
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const pad = { l: 74, r: 10, t: 22, b: 22 };
    const all = this.series.flatMap((s) => s.points);
    const tMax = all.length ? Math.max(...all.map((p) => p[0])) : Date.now();
    const tMin = tMax - this.windowSeconds * 1000;
    const yTicks = this.axis();
    const yMax = yTicks[yTicks.length - 1].value;
    const x = (t) => pad.l + ((t - tMin) / (tMax - tMin)) * (w - pad.l - pad.r);
    const y = (v) => h - pad.b - (v / yMax) * (h - pad.t - pad.b);
    g.font = '11px system-ui, sans-serif';
    g.strokeStyle = '#ddd';
    g.fillStyle = '#555';
    g.lineWidth = 1;
    g.textAlign = 'right';
    for (const { value, label } of yTicks) {
      g.beginPath();
      g.moveTo(pad.l, y(value));
      g.lineTo(w - pad.r, y(value));
      g.stroke();
      g.fillText(label, pad.l - 6, y(value) + 4);
    }
    // Time ticks every 30 s, at whole half-minutes of the wall clock.
    g.textAlign = 'center';
    const xTicks = [];
    for (let t = Math.ceil(tMin / 30_000) * 30_000; t <= tMax; t += 30_000) {
      const label = new Date(t).toTimeString().slice(0, 8);
      xTicks.push({ value: t, label });
      g.beginPath();
      g.moveTo(x(t), h - pad.b);
      g.lineTo(x(t), h - pad.b + 4);
      g.stroke();
      g.fillText(label, x(t), h - 6);
    }
    g.textAlign = 'left';
    this.yTicks = yTicks;
    this.xTicks = xTicks;
    g.fillStyle = '#222';
    g.font = 'bold 12px system-ui, sans-serif';
    g.fillText(this.title, pad.l, 14);
    let lx = pad.l + g.measureText(this.title).width + 16;
    g.font = '11px system-ui, sans-serif';
    for (const s of this.series) {
      g.fillStyle = s.color;
      g.fillRect(lx, 6, 10, 10);
      g.fillStyle = '#222';
      g.fillText(s.name, lx + 14, 15);
      lx += g.measureText(s.name).width + 30;
      if (s.points.length < 1) continue;
      g.strokeStyle = s.color;
      g.lineWidth = 1.6;
      g.beginPath();
      s.points.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
      g.stroke();
    }
    this.draws += 1;
  }
}
