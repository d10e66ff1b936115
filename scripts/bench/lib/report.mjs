// Printing for the benchmarks: aligned tables, ratios and goals.

/** Prints rows (arrays of cells) under `head`, each column as wide as its widest cell. */
export function table(head, rows) {
  const all = [head, ...rows].map((r) => r.map((c) => String(c ?? '')));
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i]?.length ?? 0)));
  const fmt = (r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  console.log(fmt(all[0]));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of all.slice(1)) console.log(fmt(r));
}

export const s2 = (ms) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);

/** `base` / `ours` as "N.N× faster" (how many times faster ours is), or "N.N× slower" when it is not. */
export function ratio(base, ours) {
  if (base === undefined || ours === undefined || ours <= 0 || base <= 0) return '-';
  return base >= ours ? `${(base / ours).toFixed(1)}× faster` : `${(ours / base).toFixed(1)}× slower`;
}

export function goal(label, met, value) {
  console.log(`  goal ${label}: ${value} → ${met ? 'met' : 'NOT met'}`);
}
