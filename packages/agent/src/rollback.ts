/** Undoing a failed apply from its journal. */
import type { Journal } from './errors.js';
import { deleteNftTable } from './impair/nft.js';
import { NlSocket } from './netlink/socket.js';
import { delLink } from './netlink/link.js';
import { deleteNamespaces, nsPath } from './netns.js';
import { describeAck } from './netlink/socket.js';

/**
 * Deletes what the journal lists: namespaces (and so everything in them), host-side
 * interfaces, and nftables tables in namespaces that survive. Returns what could not be
 * removed; absent objects are not errors.
 */
export async function rollback(j: Journal, opts: { hostNs?: string } = {}): Promise<string[]> {
  const errors: string[] = [];
  for (const f of deleteNamespaces(j.namespaces)) errors.push(`namespace ${f.name}: ${f.message}`);
  if (j.hostInterfaces.length > 0) {
    const s = NlSocket.open<string>(opts.hostNs ? nsPath(opts.hostNs) : null, opts.hostNs ?? 'host');
    try {
      for (const name of j.hostInterfaces) s.queue(name, (w, seq) => delLink(w, seq, { name }));
      s.drain();
      for (const f of s.takeFailures()) if (f.ack.errno !== 19) errors.push(`interface ${f.ref}: ${describeAck(f.ack)}`);
    } finally {
      s.close();
    }
  }
  const gone = new Set(j.namespaces);
  for (const t of j.nftTables) {
    if (gone.has(t.ns)) continue;
    const ns = t.ns === 'host' ? null : t.ns;
    if (!(await deleteNftTable(ns, t.table.replace(/^dune_/, '')))) errors.push(`nft table ${t.table} in ${t.ns}`);
  }
  return errors;
}
