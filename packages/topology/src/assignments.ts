/**
 * `key=value` impairment settings, as `dune set r1:eth0 latency=20ms loss=1%` takes them.
 * The keys, units and checks are exactly those of a link in a TOML file (one converter per
 * key, shared with the TOML reader), so a value valid in one place is valid in the other.
 * `key=none` removes a setting.
 */
import { choicesHint, Diagnostics, TopologyError } from './errors.js';
import type { Impairment } from './model.js';
import { IMPAIRMENT_TABLE, impairmentFieldsOf, LIVE_KEYS } from './impairment-keys.js';

const SETTABLE = LIVE_KEYS;

export function parseImpairmentAssignments(args: readonly string[]): { set: Partial<Impairment>; removed: (keyof Impairment)[] } {
  const d = new Diagnostics();
  const set: Partial<Impairment> = {};
  const removed: (keyof Impairment)[] = [];
  args.forEach((arg, i) => {
    const loc = { file: '<command line>', line: 1, col: i + 1 };
    const eq = arg.indexOf('=');
    if (eq <= 0) {
      d.error('bad-setting', `"${arg}" is not key=value`, loc, 'for example latency=20ms or loss=1%');
      return;
    }
    const key = arg.slice(0, eq).trim();
    const raw = arg.slice(eq + 1).trim();
    const convert = (IMPAIRMENT_TABLE as Record<string, { parse: (d: Diagnostics, l: { value: string; path: string[]; loc: typeof loc; keyLoc: typeof loc }) => Partial<Impairment> | undefined }>)[key]?.parse;
    if (convert === undefined || !SETTABLE.includes(key)) {
      d.error('unknown-key', `"${key}" is not an impairment that can be set live`, loc, choicesHint(key, SETTABLE));
      return;
    }
    const fields = impairmentFieldsOf(key);
    if (raw === 'none' || raw === 'off') {
      removed.push(...fields);
      for (const f of fields) delete set[f];
      return;
    }
    const part = convert(d, { value: raw, path: [key], loc, keyLoc: loc });
    if (part === undefined) return;
    for (const f of fields) delete set[f];
    Object.assign(set, part);
  });
  if (d.hasErrors) throw new TopologyError(d.items);
  return { set, removed: removed.filter((k) => !(k in set)) };
}
