/**
 * Reading a device brick's own keys (vtep, nic, tap, vhost, capture): each key typed and
 * checked where it was written, and a key the brick does not have is an error naming the
 * ones it has (these bricks take no template context).
 */
import { choicesHint } from '@dune/topology';
import { parseAddr } from '../../cidr.js';
import type { KindCheck, KindPort } from './types.js';

/** Every key of the node's table must be one of `keys`. False when one is not. */
export function onlyKeys(c: KindCheck, keys: readonly string[]): boolean {
  let ok = true;
  for (const k of Object.keys(c.ctx)) {
    if (keys.includes(k)) continue;
    c.diags.error('unknown-key', `"${k}" is not a key of a ${c.node.kind} (node "${c.node.id}"); its keys are ${keys.join(', ')}`, c.loc(k), choicesHint(k, keys));
    ok = false;
  }
  return ok;
}

/** A string key; undefined when absent or wrong (reported). */
export function strKey(c: KindCheck, key: string, example: string): string | undefined {
  const v = c.ctx[key];
  if (v === undefined) return undefined;
  if (typeof v === 'string' && v !== '') return v;
  c.diags.error('bad-type', `${key} of node "${c.node.id}" must be a non-empty string, got ${JSON.stringify(v)}`, c.loc(key), `write ${key} = "${example}"`);
  return undefined;
}

/** An integer key in [min, max]; `dflt` when absent, undefined when wrong (reported). */
export function intKey(c: KindCheck, key: string, min: number, max: number, dflt?: number, example?: number): number | undefined {
  const v = c.ctx[key];
  if (v === undefined) return dflt;
  if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
  c.diags.error('bad-value', `${key} of node "${c.node.id}" must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`, c.loc(key), `write ${key} = ${example ?? dflt ?? min}`);
  return undefined;
}

/** A boolean key; `dflt` when absent. */
export function boolKey(c: KindCheck, key: string, dflt: boolean): boolean {
  const v = c.ctx[key];
  if (v === undefined) return dflt;
  if (typeof v === 'boolean') return v;
  c.diags.error('bad-type', `${key} of node "${c.node.id}" must be true or false, got ${JSON.stringify(v)}`, c.loc(key), `write ${key} = ${String(dflt)}`);
  return dflt;
}

/** An IPv4 or IPv6 address key (no prefix). */
export function addrKey(c: KindCheck, key: string, example: string): { text: string; family: 4 | 6; multicast: boolean } | undefined {
  const s = strKey(c, key, example);
  if (s === undefined) return undefined;
  const a = s.includes('/') ? undefined : parseAddr(s);
  if (a === undefined) {
    c.diags.error('bad-value', `${key} = "${s}" of node "${c.node.id}" is not an IPv4 or IPv6 address`, c.loc(key), `write the address itself, e.g. ${key} = "${example}"`);
    return undefined;
  }
  const multicast = a.family === 4 ? a.addr >> 28n === 0xen : a.addr >> 120n === 0xffn;
  return { text: s, family: a.family as 4 | 6, multicast };
}

/** A Linux interface name: 1 to 15 bytes, no `/`, `:` or white space, not `.` or `..`. */
export function isIfName(s: string): boolean {
  return s.length >= 1 && s.length <= 15 && !/[/:\s]/.test(s) && s !== '.' && s !== '..';
}

/** An interface name key, checked as the kernel would and against the node's own devices. */
export function ifNameKey(c: KindCheck, key: string, example: string, taken: { ports: readonly KindPort[]; others?: readonly string[] }): string | undefined {
  const s = strKey(c, key, example);
  if (s === undefined) return undefined;
  if (!isIfName(s)) {
    c.diags.error('bad-value', `${key} = "${s}" of node "${c.node.id}" is not an interface name (1 to 15 characters, no "/", ":" or spaces)`, c.loc(key), `write ${key} = "${example}"`);
    return undefined;
  }
  return checkFree(c, key, s, taken) ? s : undefined;
}

/** Whether the node's own devices (its link ends, lo, its bridge) leave `name` free; reports it when not. */
export function checkFree(c: KindCheck, key: string, name: string, taken: { ports: readonly KindPort[]; others?: readonly string[] }): boolean {
  const port = taken.ports.find((p) => p.name === name);
  if (port === undefined && name !== 'lo' && !(taken.others ?? []).includes(name)) return true;
  c.diags.error('name-taken', `${key} = "${name}" of node "${c.node.id}" is already ${port ? `its interface towards ${port.peer}` : 'one of its own devices'}`, c.loc(key),
    `give it another name: ${key} = "${name === 'lo' ? 'ext0' : `${name.replace(/\d+$/, '')}9`}"`);
  return false;
}
