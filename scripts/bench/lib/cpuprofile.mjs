// A .cpuprofile (node --cpu-prof) summed up: where the time went, by function, self and
// inclusive (a function counted once per sample however deep it recurses).
import { readFileSync } from 'node:fs';

export function summarizeProfile(file, top = 15) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (n) => {
    const f = n.callFrame;
    const where = f.url ? ` ${f.url.replace(/^file:\/\//, '').split('/').slice(-3).join('/')}:${f.lineNumber + 1}` : '';
    return `${f.functionName || '(anonymous)'}${where}`;
  };
  const self = new Map();
  const incl = new Map();
  let total = 0;
  p.samples.forEach((id, i) => {
    const d = (p.timeDeltas[i] ?? 0) / 1000;
    total += d;
    const n = byId.get(id);
    self.set(name(n), (self.get(name(n)) ?? 0) + d);
    const seen = new Set();
    for (let x = id; x !== undefined; x = parent.get(x)) {
      const k = name(byId.get(x));
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + d);
    }
  });
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => ({ fn: k, ms: v, pct: (100 * v) / total }));
  return { totalMs: total, self: sorted(self), inclusive: sorted(incl) };
}
