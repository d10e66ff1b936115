import { createNamespaces, deleteNamespaces } from '@dune/agent';
import { closeSync } from 'node:fs';
const N = 1000;
for (const t of [2, 4, 2, 4, 2, 4, 8, 8]) {
  const names = Array.from({ length: N }, (_, i) => `zzns.${i}`);
  const t0 = performance.now();
  const r = createNamespaces(names, t, [['/proc/sys/net/ipv6/conf/default/accept_dad', '0']], names.map((n) => `dune zz ${n}`));
  const t1 = performance.now();
  for (const c of r.created) { if (c.nlFd >= 0) closeSync(c.nlFd); if (c.nsFd >= 0) closeSync(c.nsFd); }
  deleteNamespaces(names);
  console.log(`threads ${t}: create ${(t1 - t0).toFixed(0)} ms, failed ${r.failed.length}`);
  await new Promise((r) => setTimeout(r, 6000));
}
