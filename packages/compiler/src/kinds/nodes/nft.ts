/** What the bricks (diode, firewall, antispoof) share: their nftables table, quoting, port lookup. */
import { choicesHint, editDistance } from '@dune/topology';
import type { NftCounter, NftOp } from '../../plan.js';
import type { KindCheck, KindPort } from './types.js';

/** The bridge-family table of a brick, in its own namespace. */
export const BRICK_TABLE = 'bridge dune_brick';
/** The inet-family table of a firewall (bridged IP through br_netfilter, with conntrack). */
export const BRICK_INET_TABLE = 'inet dune_brick';

/** A string in nft's syntax (interface names are kernel names: no quote or backslash, but be strict anyway). */
export function nftString(s: string): string {
  return JSON.stringify(s);
}

/** A brick's nft op; `n` is the kind's node (its namespace, id and kind). */
export function brickOp(n: { ns: string; node: { id: string; kind?: string } }, tables: string[], script: string[], counters: NftCounter[]): NftOp {
  return { op: 'nft', ns: n.ns, node: n.node.id, kind: n.node.kind ?? 'router', tables, script: script.join('\n') + '\n', counters };
}

/** `counter NAME { }` lines for a table, one per counter. */
export function counterDecls(counters: readonly NftCounter[], table: string): string[] {
  return counters.filter((c) => c.table === table).map((c) => `  counter ${c.name} { }`);
}

/**
 * The port facing node `peer`, from a kind's key (`from = "h1"`); reports an error at the
 * key listing the neighbours when it names none of them.
 */
export function portFacing(c: KindCheck, key: string, peer: unknown): KindPort | undefined {
  const names = c.ports.map((p) => p.peer);
  if (typeof peer !== 'string') {
    c.diags.error('bad-type', `${key} of node "${c.node.id}" must be the id of a node it is linked to, got ${JSON.stringify(peer)}`, c.loc(key), `write ${key} = "${names[0] ?? 'node'}"`);
    return undefined;
  }
  const p = c.ports.find((x) => x.peer === peer);
  if (p === undefined) {
    c.diags.error('bad-value', `${key} = "${peer}" of node "${c.node.id}" is not one of its neighbours (${names.join(', ') || 'none'})`, c.loc(key), choicesHint(peer, names));
  }
  return p;
}

/** Keys of a node table that belong to no one: warn when one is near a kind's own key (a typo). */
export function unknownKindKeys(c: KindCheck, keys: readonly string[]): void {
  for (const k of Object.keys(c.ctx)) {
    if (keys.includes(k)) continue;
    const near = keys.find((x) => editDistance(x, k.toLowerCase()) <= (x.length > 4 ? 2 : 1));
    if (near !== undefined) c.diags.warning('possible-typo', `"${k}" in node "${c.node.id}" is not a key of a ${c.node.kind} (kept as template context)`, c.loc(k), `did you mean \`${near}\`?`);
  }
}
