/**
 * Where to draw each node: a force-directed layout (Fruchterman and Reingold, 1991) with
 * one extra force pulling each node toward its phynode's centre, so that a host's nodes
 * stay together and its box (drawn around them) does not swallow another host's. Fully
 * deterministic: same model, same picture (initial places on circles, no randomness).
 *
 * Repulsion is all pairs, O(n²) per round: the rounds are cut so that a large lab still
 * lays out in well under a second (a 1,000-node lab gets 30 rounds, which is rough but
 * readable; the pictures are for labs a person looks at).
 */
import type { GraphModel } from './model.js';

export interface Point {
  x: number;
  y: number;
}

export interface HostBox {
  host: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Layout {
  width: number;
  height: number;
  nodes: Map<string, Point>;
  hosts: HostBox[];
}

const NODE_GAP = 110;
const MARGIN = 60;

export function layoutGraph(g: GraphModel): Layout {
  const n = g.nodes.length;
  const index = new Map(g.nodes.map((x, i) => [x.id, i]));
  const hostOf = g.nodes.map((x) => Math.max(0, g.hosts.indexOf(x.phynode)));
  const hostCount = Math.max(1, g.hosts.length);
  const k = NODE_GAP;
  const side = Math.max(1, Math.ceil(Math.sqrt(n))) * k;
  // Host centres on a row, nodes of a host on a circle (or a spiral for many) around it.
  const centre = (h: number): Point => ({ x: (h + 0.5) * side, y: side / 2 });
  const perHost = new Map<number, number>();
  const pos: Point[] = g.nodes.map((_, i) => {
    const h = hostOf[i] as number;
    const j = perHost.get(h) ?? 0;
    perHost.set(h, j + 1);
    const total = hostOf.filter((x) => x === h).length;
    const angle = (2 * Math.PI * j) / Math.max(1, total);
    const r = total === 1 ? 0 : (side / 3) * (0.6 + 0.4 * ((j % 3) / 2));
    const c = centre(h);
    return { x: c.x + r * Math.cos(angle), y: c.y + r * Math.sin(angle) };
  });
  const edges = g.links.flatMap((l) => {
    const a = index.get(l.a.node);
    const b = index.get(l.b.node);
    return a === undefined || b === undefined || a === b ? [] : [[a, b] as const];
  });

  const rounds = n <= 1 ? 0 : Math.max(30, Math.min(300, Math.floor(3e7 / (n * n))));
  let temp = side / 8;
  const cool = temp / Math.max(1, rounds);
  for (let round = 0; round < rounds; round++) {
    const disp = pos.map(() => ({ x: 0, y: 0 }));
    for (let i = 0; i < n; i++) {
      const pi = pos[i] as Point;
      for (let j = i + 1; j < n; j++) {
        const pj = pos[j] as Point;
        let dx = pi.x - pj.x;
        let dy = pi.y - pj.y;
        let d2 = dx * dx + dy * dy;
        if (d2 < 0.01) {
          // Two nodes on one spot: part them along a fixed direction.
          dx = 0.1 * ((i % 7) + 1);
          dy = 0.1 * ((j % 5) + 1);
          d2 = dx * dx + dy * dy;
        }
        // Nodes of other hosts push harder: the boxes stay apart.
        const f = ((k * k) / d2) * (hostOf[i] === hostOf[j] ? 1 : 2);
        const di = disp[i] as Point;
        const dj = disp[j] as Point;
        di.x += dx * f;
        di.y += dy * f;
        dj.x -= dx * f;
        dj.y -= dy * f;
      }
    }
    for (const [a, b] of edges) {
      const pa = pos[a] as Point;
      const pb = pos[b] as Point;
      const dx = pa.x - pb.x;
      const dy = pa.y - pb.y;
      const d = Math.sqrt(dx * dx + dy * dy) || 0.01;
      const f = d / k;
      (disp[a] as Point).x -= dx * f;
      (disp[a] as Point).y -= dy * f;
      (disp[b] as Point).x += dx * f;
      (disp[b] as Point).y += dy * f;
    }
    for (let i = 0; i < n; i++) {
      const p = pos[i] as Point;
      const c = centre(hostOf[i] as number);
      const di = disp[i] as Point;
      if (hostCount > 1) {
        di.x += (c.x - p.x) * 0.3;
        di.y += (c.y - p.y) * 0.3;
      }
      const len = Math.sqrt(di.x * di.x + di.y * di.y) || 1;
      const step = Math.min(len, temp);
      p.x += (di.x / len) * step;
      p.y += (di.y / len) * step;
    }
    temp = Math.max(1, temp - cool);
  }

  // Into the picture's frame.
  const minX = Math.min(...pos.map((p) => p.x), 0);
  const minY = Math.min(...pos.map((p) => p.y), 0);
  for (const p of pos) {
    p.x = Math.round(p.x - minX + MARGIN + 20);
    p.y = Math.round(p.y - minY + MARGIN + 20);
  }
  const nodes = new Map(g.nodes.map((x, i) => [x.id, pos[i] as Point]));
  const hosts: HostBox[] = [];
  g.hosts.forEach((host, h) => {
    const mine = pos.filter((_, i) => hostOf[i] === h);
    if (mine.length === 0) return;
    const x0 = Math.min(...mine.map((p) => p.x)) - 50;
    const y0 = Math.min(...mine.map((p) => p.y)) - 50;
    const x1 = Math.max(...mine.map((p) => p.x)) + 50;
    const y1 = Math.max(...mine.map((p) => p.y)) + 50;
    hosts.push({ host, x: x0, y: y0, width: x1 - x0, height: y1 - y0 });
  });
  const width = Math.max(200, ...pos.map((p) => p.x + MARGIN + 20), ...hosts.map((b) => b.x + b.width + 10));
  const height = Math.max(120, ...pos.map((p) => p.y + MARGIN + 20), ...hosts.map((b) => b.y + b.height + 10));
  return { width: Math.round(width), height: Math.round(height), nodes, hosts };
}
