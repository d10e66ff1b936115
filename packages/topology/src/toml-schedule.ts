/**
 * `[[topology.schedule]]`: step changes of link directions during a run, followed with the
 * links' traces (`dune trace run`, `lab.followTraces()`):
 *
 *   [[topology.schedule]]
 *   at = "10s"                          # after the follower starts
 *   link = "r1:eth0"                    # r1's egress on eth0; a list for several
 *   settings = { bw = "2mbit", latency = "40ms" }   # the impairment keys, "none" removes one
 *
 * Whether the interface exists is the compiler's to check (it names interfaces).
 */
import { choicesHint, nearest, type Diagnostics, type SourceLoc } from './errors.js';
import { IMPAIRMENT_TABLE, impairmentFieldsOf, LIVE_KEYS, type ImpairmentKeySpec } from './impairment-keys.js';
import type { Impairment, Node } from './model.js';
import type { TomlPath } from './toml-locate.js';
import { asUnit, pathText, type TomlTable } from './toml-values.js';
import type { TomlLocator } from './toml-locate.js';
import { parseDurationUs } from './units.js';

export interface ScheduledChange {
  atMs: number;
  node: string;
  iface: string;
  set: Partial<Impairment>;
  removed: (keyof Impairment)[];
  loc: SourceLoc;
}

const KEYS = ['at', 'link', 'settings'];

export function resolveSchedule(d: Diagnostics, raw: readonly { path: TomlPath; loc: SourceLoc; item: TomlTable }[], nodes: readonly Node[], locator: TomlLocator): ScheduledChange[] {
  const ids = nodes.map((n) => n.id);
  const out: ScheduledChange[] = [];
  for (const { path, loc, item } of raw) {
    const at = (k: string): { value: never; path: TomlPath; loc: SourceLoc; keyLoc: SourceLoc } =>
      ({ value: item[k] as never, path: [...path, k], loc: locator.valueLoc([...path, k]), keyLoc: locator.keyLoc([...path, k]) });
    for (const k of Object.keys(item)) {
      if (!KEYS.includes(k)) d.error('unknown-key', `${pathText([...path, k])} is not a schedule setting`, at(k).keyLoc, choicesHint(k, KEYS));
    }
    for (const k of KEYS) {
      if (item[k] === undefined) d.error('missing-key', `${pathText(path)} has no ${k}`, loc, 'a schedule entry needs at = "10s", link = "node:iface" and settings = { bw = "2mbit" }');
    }
    if (KEYS.some((k) => item[k] === undefined)) continue;
    const atUs = asUnit(d, at('at'), 'a time after the start', '10s', (v) => parseDurationUs(v));
    const links = Array.isArray(item.link) ? item.link : [item.link];
    const targets: { node: string; iface: string }[] = [];
    for (const t of links) {
      const colon = typeof t === 'string' ? t.lastIndexOf(':') : -1;
      if (typeof t !== 'string' || colon <= 0 || colon === t.length - 1) {
        d.error('bad-value', `${pathText([...path, 'link'])}: ${JSON.stringify(t)} is not "node:iface"`, at('link').loc,
          'name the direction by the interface it leaves through: link = "r1:eth0" (a list for several)');
        continue;
      }
      const node = t.slice(0, colon);
      if (!ids.includes(node)) {
        const near = nearest(node, ids);
        d.error('unknown-node', `${pathText([...path, 'link'])}: no node "${node}" in the topology`, at('link').loc, near ? `did you mean \`${near}\`?` : `nodes: ${ids.slice(0, 20).join(', ')}`);
        continue;
      }
      targets.push({ node, iface: t.slice(colon + 1) });
    }
    const settings = item.settings;
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
      d.error('bad-type', `${pathText([...path, 'settings'])} must be a table`, at('settings').loc, 'write settings = { bw = "2mbit", latency = "20ms" }');
      continue;
    }
    const set: Partial<Impairment> = {};
    const removed: (keyof Impairment)[] = [];
    let ok = true;
    for (const [k, v] of Object.entries(settings as TomlTable)) {
      const spath = [...path, 'settings', k];
      const l = { value: v, path: spath, loc: locator.valueLoc(spath), keyLoc: locator.keyLoc(spath) };
      if (!LIVE_KEYS.includes(k)) {
        d.error('unknown-key', `${pathText(spath)} is not an impairment key`, l.keyLoc, choicesHint(k, LIVE_KEYS));
        ok = false;
        continue;
      }
      if (v === 'none') {
        removed.push(...impairmentFieldsOf(k));
        continue;
      }
      const part = ((IMPAIRMENT_TABLE as Record<string, ImpairmentKeySpec>)[k] as ImpairmentKeySpec).parse(d, l);
      if (part) Object.assign(set, part);
      else ok = false;
    }
    if (!ok || atUs === undefined) continue;
    for (const t of targets) out.push({ atMs: atUs / 1000, ...t, set, removed, loc });
  }
  return out;
}
