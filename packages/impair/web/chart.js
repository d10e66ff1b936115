/* global window */
// A small line chart on a canvas: a few series, a shared time axis, autoscaled y, a legend.
// No dependencies; the page must work without network access.
export class LineChart {
  constructor(canvas, { title, unit = '', series, format = (v) => String(Math.round(v)) }) {
    this.canvas = canvas;
    this.title = title;
    this.unit = unit;
    this.series = series.map((s) => ({ ...s, points: [] }));
    this.format = format;
    this.windowSeconds = 120;
    this.draws = 0;
  }

  /** Adds one point per series at time t (ms); values in series order. */
  push(t, values) {
    values.forEach((v, i) => {
      const s = this.series[i];
      s.points.push([t, Number.isFinite(v) ? v : 0]);
      while (s.points.length > 0 && s.points[0][0] < t - this.windowSeconds * 1000) s.points.shift();
    });
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
    const pad = { l: 56, r: 8, t: 22, b: 18 };
    const all = this.series.flatMap((s) => s.points);
    const tMax = all.length ? Math.max(...all.map((p) => p[0])) : Date.now();
    const tMin = tMax - this.windowSeconds * 1000;
    let yMax = Math.max(1e-9, ...all.map((p) => p[1]));
    yMax = niceCeil(yMax);
    const x = (t) => pad.l + ((t - tMin) / (tMax - tMin)) * (w - pad.l - pad.r);
    const y = (v) => h - pad.b - (v / yMax) * (h - pad.t - pad.b);
    g.font = '11px system-ui, sans-serif';
    g.strokeStyle = '#ddd';
    g.fillStyle = '#555';
    g.lineWidth = 1;
    for (let k = 0; k <= 4; k++) {
      const v = (yMax * k) / 4;
      g.beginPath();
      g.moveTo(pad.l, y(v));
      g.lineTo(w - pad.r, y(v));
      g.stroke();
      g.fillText(`${this.format(v)}${this.unit}`, 4, y(v) + 4);
    }
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

function niceCeil(v) {
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * e) return m * e;
  return 10 * e;
}
