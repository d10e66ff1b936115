/**
 * Kernel names from arbitrary user ids (unicode, spaces, `;`, `$(...)`, 200 characters).
 *
 * - A lab name is `[A-Za-z0-9_-]{1,24}`; anything else is folded to `_` and a short hash is
 *   appended, so two different labs never share a name.
 * - A node key (the node's part of kernel names) is `[A-Za-z0-9_-]{1,32}`, made the same way.
 * - A namespace is `dune.<lab>.<node-key>`: the dots cannot occur in a lab name or key, so
 *   `dune.<lab>.` is an unambiguous prefix for teardown.
 * - Interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL).
 * - Aliases (IFLA_IFALIAS, up to 255 bytes) are `dune:<lab>:<node-key>:<iface>`.
 */
import { createHash } from 'node:crypto';

export const NS_PREFIX = 'dune.';
export const ALIAS_PREFIX = 'dune:';
export const IFNAMSIZ_MAX = 15;

const SAFE = /^[A-Za-z0-9_-]+$/;

export function shortHash(s: string, hexChars = 6): string {
  return createHash('sha256').update(s, 'utf8').digest('hex').slice(0, hexChars);
}

function safeName(id: string, max: number): string {
  if (id.length > 0 && id.length <= max && SAFE.test(id)) return id;
  const folded = id.normalize('NFKD').replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '');
  const hash = shortHash(id);
  const room = max - hash.length - 1;
  const head = folded.slice(0, room);
  return head.length > 0 ? `${head}-${hash}` : `n-${hash}`;
}

export function labName(name: string): string {
  return safeName(name, 24);
}

export function nodeKey(id: string): string {
  return safeName(id, 32);
}

/**
 * Node keys for every id, unique even when two ids fold to the same key (`a b` and `a_b`):
 * a colliding key gets the id's hash appended.
 */
export function nodeKeys(ids: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const used = new Map<string, string>();
  for (const id of ids) {
    let key = nodeKey(id);
    const owner = used.get(key);
    if (owner !== undefined && owner !== id) key = `${key.slice(0, 24)}-${shortHash(id, 7)}`;
    used.set(key, id);
    out.set(id, key);
  }
  return out;
}

export function nsName(lab: string, key: string): string {
  return `${NS_PREFIX}${lab}.${key}`;
}

export function nsPrefix(lab: string): string {
  return `${NS_PREFIX}${lab}.`;
}

export function ifAlias(lab: string, key: string, iface: string): string {
  return `${ALIAS_PREFIX}${lab}:${key}:${iface}`;
}

/** Whether `name` can be used as-is as an interface name. */
export function validIfName(name: string): boolean {
  return (
    Buffer.byteLength(name, 'utf8') <= IFNAMSIZ_MAX &&
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    /^[A-Za-z0-9_.@+-]+$/.test(name) &&
    !/^\d+$/.test(name)
  );
}

/** A host-namespace interface name for a lab object: `d<hash>` of the given identity, 15 bytes max. */
export function hostIfName(kind: 'vx' | 'br' | 'v', identity: string): string {
  return `${kind}${shortHash(identity, IFNAMSIZ_MAX - kind.length - 1)}`.slice(0, IFNAMSIZ_MAX);
}
