/**
 * Stage 1 of the DUNE TOML reader: the table smol-toml returns, plus the locator, → the raw
 * topology. The raw shape says which keys exist where (unknown and misplaced keys are
 * reported here) and keeps every leaf as written, with its location; it converts nothing.
 * Units, defaults, references and every other value check belong to resolve (toml-resolve.ts).
 *
 * Tables keyed by user names (nodes, phynodes, sysctls, ...) keep source order, which is
 * not JavaScript's key order for names such as "1" or "42".
 */
import { choicesHint, editDistance, type Diagnostics, type SourceLoc } from './errors.js';
import type { TomlLocator, TomlPath } from './toml-locate.js';
import { describeValue, isTable, pathText, type Located, type TomlTable, type TomlValue } from './toml-values.js';

export const TOP_KEYS = ['infrastructure', 'topology'] as const;

export const PHYNODE_KEYS = ['cores', 'binds', 'mpf', 'host', 'port', 'user', 'identity', 'underlay', 'iface'] as const;
export type PhynodeKey = Exclude<(typeof PHYNODE_KEYS)[number], 'binds'>;

export const TOPOLOGY_KEYS = [
  'defaults', 'nodes', 'links', 'lab', 'routing', 'routing_weight', 'route_to', 'impairment_backend', 'impairment_engine_threads', 'impairment_engine_fail', 'vxlan_port', 'addressing', 'events', 'schedule',
] as const;
export type TopologySettingKey = Exclude<(typeof TOPOLOGY_KEYS)[number], 'defaults' | 'nodes' | 'links' | 'addressing' | 'events' | 'schedule'>;

export const EVENT_KEYS = ['at', 'target', 'action', 'repeat'] as const;
export type EventKey = Exclude<(typeof EVENT_KEYS)[number], 'repeat'>;
export const REPEAT_KEYS = ['count', 'period'] as const;
export type RepeatKey = (typeof REPEAT_KEYS)[number];

export const ADDRESSING_KEYS = ['link_v4', 'link_v6', 'node_v4', 'node_v6', 'link_v4_len', 'link_v6_len', 'segment_v4', 'segment_v6'] as const;
export type AddressingKey = (typeof ADDRESSING_KEYS)[number];

export const DEFAULTS_KEYS = ['links', 'nodes'] as const;

/** Link attributes, in the order the docs list them; `where` says at which level each is allowed. */
export const LINK_KEYS = {
  latency: 'any',
  jitter: 'any',
  jitter_distribution: 'any',
  jitter_correlation: 'any',
  loss: 'any',
  loss_correlation: 'any',
  loss_model: 'any',
  duplicate: 'any',
  corrupt: 'any',
  reorder: 'any',
  reorder_gap: 'any',
  bw: 'any',
  queue: 'any',
  trace: 'any',
  metric: 'any',
  mtu: 'link',
  mac: 'endpoint',
} as const satisfies Record<string, 'any' | 'link' | 'endpoint'>;
export type LinkKey = keyof typeof LINK_KEYS;
export type LinkLevel = 'defaults' | 'link' | 'endpoint';

export const LOSS_MODEL_KEYS = ['p', 'r', 'one_minus_h', 'one_minus_k'] as const;
export type LossModelKey = (typeof LOSS_MODEL_KEYS)[number];

export const NODE_KEYS = ['kind', 'sysctls', 'templates', 'binds', 'exec', 'pinned', 'addrs', 'phynode'] as const;
/** Keys only a node (not `topology.defaults.nodes`) may have. */
const NODE_ONLY_KEYS = ['addrs', 'phynode'] as const;

export const PINNED_KEYS = ['cmd', 'environ', 'down', 'pre_down', 'post_up'] as const;
export type PinnedKey = Exclude<(typeof PINNED_KEYS)[number], 'environ'>;

export const BIND_KEYS = ['src', 'dst', 'exec'] as const;
export type BindKey = (typeof BIND_KEYS)[number];

export type RawFields<K extends string> = Partial<Record<K, Located>>;

/** An entry of a table keyed by user names. */
export interface RawEntry extends Located {
  key: string;
}

export interface RawMap {
  loc: SourceLoc;
  entries: RawEntry[];
}

export interface RawBind {
  loc: SourceLoc;
  fields: RawFields<BindKey>;
}

export interface RawPhynode {
  name: string;
  loc: SourceLoc;
  fields: RawFields<PhynodeKey>;
  binds: RawBind[];
  /** Keys DUNE keeps without using them. */
  extra: RawEntry[];
}

export interface RawLossModel {
  path: TomlPath;
  loc: SourceLoc;
  fields: RawFields<LossModelKey>;
}

export interface RawLinkAttrs {
  level: LinkLevel;
  loc: SourceLoc;
  attrs: RawFields<Exclude<LinkKey, 'loss_model'>>;
  lossModel?: RawLossModel;
}

export interface RawEndpointTable {
  /** As written: `"r1:eth1"`. */
  key: string;
  keyLoc: SourceLoc;
  attrs: RawLinkAttrs;
}

export interface RawLink {
  index: number;
  loc: SourceLoc;
  endpoints?: Located;
  attrs: RawLinkAttrs;
  endpointTables: RawEndpointTable[];
}

export interface RawPinned {
  loc: SourceLoc;
  fields: RawFields<PinnedKey>;
  environ?: RawMap;
}

export interface RawNodeBody {
  loc: SourceLoc;
  /** `router` (default), `switch`, `hub`, ...: the compiler's kind table (compiler/src/kinds/nodes). */
  kind?: Located;
  sysctls?: RawMap;
  templates?: RawMap;
  binds?: RawBind[];
  exec?: Located;
  pinned?: RawPinned[];
  /** Node only. */
  addrs?: RawMap;
  /** Node only. */
  phynode?: Located;
  /** Every other key: the template context (`rid`, `quic.ca`, ...). */
  ctx: RawEntry[];
}

/** One `[[topology.events]]` table. */
export interface RawEvent {
  path: TomlPath;
  loc: SourceLoc;
  fields: RawFields<EventKey>;
  repeat?: { loc: SourceLoc; fields: RawFields<RepeatKey> };
}

export interface RawNode extends RawNodeBody {
  id: string;
}

export interface RawDuneFile {
  file: string;
  /** For locations inside leaves kept whole (lists, inline tables). */
  locator: TomlLocator;
  /** Absent: no `[infrastructure.nodes]`. */
  phynodes?: RawPhynode[];
  settings: RawFields<TopologySettingKey>;
  addressing?: RawFields<AddressingKey>;
  linkDefaults?: RawLinkAttrs;
  nodeDefaults?: RawNodeBody;
  /** Absent: no `[topology.nodes]`, nodes come from the links. */
  nodes?: RawNode[];
  links: RawLink[];
  linksLoc?: SourceLoc;
  /** `[[topology.events]]`, in file order. */
  events?: RawEvent[];
  /** `[[topology.schedule]]`, in file order, as written (toml-schedule.ts reads them). */
  schedule?: { path: TomlPath; loc: SourceLoc; item: TomlTable }[];
}

/** Reads the raw topology from a parsed TOML document. Problems go to `d`. */
export function readRawDune(doc: TomlTable, locator: TomlLocator, d: Diagnostics): RawDuneFile {
  return new RawReader(locator, d).file(doc);
}

class RawReader {
  constructor(
    private readonly locator: TomlLocator,
    private readonly d: Diagnostics,
  ) {}

  file(doc: TomlTable): RawDuneFile {
    const raw: RawDuneFile = { file: this.locator.file, locator: this.locator, settings: {}, links: [] };
    for (const key of this.keys(doc, [])) {
      if (!(TOP_KEYS as readonly string[]).includes(key)) this.unknownKey(key, [], TOP_KEYS);
    }
    const infra = this.table(doc, ['infrastructure']);
    if (infra) this.infrastructure(infra, raw);
    const topo = this.table(doc, ['topology']);
    if (topo) this.topology(topo, raw);
    return raw;
  }

  private infrastructure(t: TomlTable, raw: RawDuneFile): void {
    const base = ['infrastructure'];
    for (const key of this.keys(t, base)) {
      if (key !== 'nodes' && key !== 'mpf') this.maybeTypo(key, [...base, key], ['nodes', 'mpf'], 'kept as DUNE does, unused');
    }
    const nodes = this.table(t, [...base, 'nodes']);
    if (!nodes) return;
    raw.phynodes = [];
    for (const name of this.keys(nodes, [...base, 'nodes'])) {
      const path = [...base, 'nodes', name];
      if (name === '') this.d.error('bad-value', 'a phynode name cannot be empty', this.locator.keyLoc(path), 'name the host, e.g. [infrastructure.nodes.server1]');
      const body = this.table(nodes, path, `write it as [infrastructure.nodes.${pathText([name])}] with its settings`);
      if (!body) continue;
      const p: RawPhynode = { name, loc: this.locator.keyLoc(path), fields: {}, binds: [], extra: [] };
      for (const key of this.keys(body, path)) {
        const kpath = [...path, key];
        if (key === 'binds') p.binds = this.binds(body, kpath);
        else if ((PHYNODE_KEYS as readonly string[]).includes(key)) p.fields[key as PhynodeKey] = this.leaf(body, kpath);
        else {
          this.maybeTypo(key, kpath, PHYNODE_KEYS, 'kept as an extra phynode key');
          p.extra.push({ key, ...this.leaf(body, kpath) });
        }
      }
      raw.phynodes.push(p);
    }
  }

  private topology(t: TomlTable, raw: RawDuneFile): void {
    const base = ['topology'];
    for (const key of this.keys(t, base)) {
      const kpath = [...base, key];
      switch (key) {
        case 'defaults':
          this.defaults(t, raw);
          break;
        case 'nodes': {
          const nodes = this.table(t, kpath);
          if (!nodes) break;
          raw.nodes = [];
          for (const id of this.keys(nodes, kpath)) {
            if (id === '') this.d.error('bad-value', 'a node id cannot be empty', this.locator.keyLoc([...kpath, id]), 'name the node, e.g. [topology.nodes.r0]');
            const body = this.table(nodes, [...kpath, id], `write it as [topology.nodes.${pathText([id])}] with its settings`);
            if (body) raw.nodes.push({ id, ...this.nodeBody(body, [...kpath, id], false) });
          }
          break;
        }
        case 'links':
          raw.linksLoc = this.locator.keyLoc(kpath);
          raw.links = this.links(t, kpath);
          break;
        case 'addressing': {
          const a = this.table(t, kpath);
          if (a) raw.addressing = this.fields(a, kpath, ADDRESSING_KEYS);
          break;
        }
        case 'events':
          raw.events = this.events(t, kpath);
          break;
        case 'schedule':
          raw.schedule = this.arrayOfTables(t, kpath, 'an array of tables such as [[topology.schedule]] at = "5s", link = "r1:eth0", settings = { bw = "2mbit" }')
            .map(([item, ipath]) => ({ path: ipath, loc: this.locator.valueLoc(ipath), item }));
          break;
        default:
          if ((TOPOLOGY_KEYS as readonly string[]).includes(key)) raw.settings[key as TopologySettingKey] = this.leaf(t, kpath);
          else this.unknownKey(key, base, TOPOLOGY_KEYS);
      }
    }
  }

  private defaults(topo: TomlTable, raw: RawDuneFile): void {
    const base = ['topology', 'defaults'];
    const t = this.table(topo, base);
    if (!t) return;
    for (const key of this.keys(t, base)) {
      if (!(DEFAULTS_KEYS as readonly string[]).includes(key)) this.unknownKey(key, base, DEFAULTS_KEYS);
    }
    const links = this.table(t, [...base, 'links']);
    if (links) raw.linkDefaults = this.linkAttrs(links, [...base, 'links'], 'defaults', () => false);
    const nodes = this.table(t, [...base, 'nodes']);
    if (nodes) raw.nodeDefaults = this.nodeBody(nodes, [...base, 'nodes'], true);
  }

  private links(topo: TomlTable, path: TomlPath): RawLink[] {
    const list = topo.links;
    if (!Array.isArray(list)) {
      this.badType(path, list, 'an array of links such as [{endpoints = ["r0:eth0", "r1:eth0"]}]');
      return [];
    }
    const out: RawLink[] = [];
    list.forEach((item, index) => {
      const lpath = [...path, index];
      if (!isTable(item)) {
        this.badType(lpath, item, 'a table such as {endpoints = ["r0:eth0", "r1:eth0"]}');
        return;
      }
      const endpointTables: RawEndpointTable[] = [];
      // An endpoint table is any other key whose value is a table (`"r1:eth1" = {...}`),
      // unless it is a misspelt loss_model (the only link attribute that is a table).
      const written = Array.isArray(item.endpoints) ? item.endpoints : [];
      const isEndpointKey = (key: string): boolean =>
        key !== 'loss_model' && key !== 'trace' && isTable(item[key]) && (written.includes(key) || key.includes(':') || editDistance(key, 'loss_model') > 3);
      const attrs = this.linkAttrs(item, lpath, 'link', (key) => key === 'endpoints' || isEndpointKey(key));
      for (const key of this.keys(item, lpath)) {
        if (!isEndpointKey(key)) continue;
        const epath = [...lpath, key];
        endpointTables.push({
          key,
          keyLoc: this.locator.keyLoc(epath),
          attrs: this.linkAttrs(item[key] as TomlTable, epath, 'endpoint', () => false),
        });
      }
      const link: RawLink = { index, loc: this.locator.valueLoc(lpath), attrs, endpointTables };
      if (item.endpoints !== undefined) link.endpoints = this.leaf(item, [...lpath, 'endpoints']);
      else this.d.error('missing-key', `${pathText(lpath)} has no endpoints`, link.loc, 'add endpoints = ["node:iface", "node:iface"]');
      out.push(link);
    });
    return out;
  }

  /** Link attributes at one level; `skip` says which other keys the caller handles. */
  private linkAttrs(t: TomlTable, path: TomlPath, level: LinkLevel, skip: (key: string) => boolean): RawLinkAttrs {
    const out: RawLinkAttrs = { level, loc: this.locator.valueLoc(path), attrs: {} };
    const known = Object.keys(LINK_KEYS);
    for (const key of this.keys(t, path)) {
      if (skip(key)) continue;
      const kpath = [...path, key];
      if (!Object.hasOwn(LINK_KEYS, key)) {
        this.unknownKey(key, path, level === 'link' ? ['endpoints', ...known] : known);
        continue;
      }
      const where = LINK_KEYS[key as LinkKey];
      if (where === 'link' && level === 'endpoint') {
        this.d.error('misplaced-key', `${key} belongs to the whole link, not to one endpoint (${pathText(kpath)})`, this.locator.keyLoc(kpath),
          `move it next to endpoints: {endpoints = [...], ${key} = ${JSON.stringify(t[key])}}`);
        continue;
      }
      if (where === 'endpoint' && level !== 'endpoint') {
        this.d.error('misplaced-key', `${key} would give both ends of a link the same address (${pathText(kpath)})`, this.locator.keyLoc(kpath),
          `set it on one endpoint: {endpoints = ["a:eth0", "b:eth0"], "a:eth0" = {${key} = ${JSON.stringify(t[key])}}}`);
        continue;
      }
      if (key === 'loss_model') {
        const lm = this.table(t, kpath, 'write it as loss_model = {p = "1%", r = "10%"}');
        if (lm) out.lossModel = { path: kpath, loc: this.locator.valueLoc(kpath), fields: this.fields(lm, kpath, LOSS_MODEL_KEYS, lossModelHint) };
        continue;
      }
      out.attrs[key as Exclude<LinkKey, 'loss_model'>] = this.leaf(t, kpath);
    }
    return out;
  }

  private nodeBody(t: TomlTable, path: TomlPath, isDefaults: boolean): RawNodeBody {
    const body: RawNodeBody = { loc: this.locator.keyLoc(path), ctx: [] };
    for (const key of this.keys(t, path)) {
      const kpath = [...path, key];
      if (isDefaults && (NODE_ONLY_KEYS as readonly string[]).includes(key)) {
        this.d.error('misplaced-key', `${key} is set per node, not in ${pathText(path)}`, this.locator.keyLoc(kpath),
          `move it to each node: [topology.nodes.<id>] ${key} = ...`);
        continue;
      }
      switch (key) {
        case 'kind':
          body.kind = this.leaf(t, kpath);
          break;
        case 'sysctls':
          body.sysctls = this.map(t, kpath, true);
          break;
        case 'templates':
          body.templates = this.map(t, kpath, false);
          break;
        case 'addrs':
          body.addrs = this.map(t, kpath, false);
          break;
        case 'binds':
          body.binds = this.binds(t, kpath);
          break;
        case 'exec':
          body.exec = this.leaf(t, kpath);
          break;
        case 'phynode':
          body.phynode = this.leaf(t, kpath);
          break;
        case 'pinned':
          body.pinned = this.pinned(t, kpath);
          break;
        default:
          // `kind` is two edits from DUNE's own `rid`: only one edit away counts as its typo.
          this.maybeTypo(key, kpath, editDistance(key.toLowerCase(), 'kind') === 1 ? ['kind']
            : NODE_KEYS.filter((k) => k !== 'kind' && !(isDefaults && (NODE_ONLY_KEYS as readonly string[]).includes(k))),
          'kept as template context, ctx');
          body.ctx.push({ key, ...this.leaf(t, kpath) });
      }
    }
    return body;
  }

  private pinned(t: TomlTable, path: TomlPath): RawPinned[] {
    const list = this.arrayOfTables(t, path, 'an array of tables such as [{cmd = "./server"}]');
    return list.map(([item, ipath]) => {
      const p: RawPinned = { loc: this.locator.valueLoc(ipath), fields: {} };
      for (const key of this.keys(item, ipath)) {
        const kpath = [...ipath, key];
        if (key === 'environ') p.environ = this.map(item, kpath, false);
        else if ((PINNED_KEYS as readonly string[]).includes(key)) p.fields[key as PinnedKey] = this.leaf(item, kpath);
        else this.unknownKey(key, ipath, PINNED_KEYS);
      }
      if (p.fields.cmd === undefined) {
        this.d.error('missing-key', `${pathText(ipath)} has no cmd`, p.loc, 'every pinned process needs cmd = "program args..."');
      }
      return p;
    });
  }

  private events(t: TomlTable, path: TomlPath): RawEvent[] {
    const list = this.arrayOfTables(t, path, 'an array of tables such as [[topology.events]] at = "5s", target = "r1:eth0", action = "down"');
    return list.map(([item, ipath]) => {
      const e: RawEvent = { path: ipath, loc: this.locator.valueLoc(ipath), fields: {} };
      for (const key of this.keys(item, ipath)) {
        const kpath = [...ipath, key];
        if (key === 'repeat') {
          const r = this.table(item, kpath, 'write it as repeat = { count = 3, period = "10s" }');
          if (r) e.repeat = { loc: this.locator.valueLoc(kpath), fields: this.fields(r, kpath, REPEAT_KEYS) };
        } else if ((EVENT_KEYS as readonly string[]).includes(key)) e.fields[key as EventKey] = this.leaf(item, kpath);
        else this.unknownKey(key, ipath, EVENT_KEYS);
      }
      for (const k of ['at', 'target', 'action'] as const) {
        if (e.fields[k] === undefined) this.d.error('missing-key', `${pathText(ipath)} has no ${k}`, e.loc, 'an event needs at (e.g. "5s"), target ("node" or "node:iface") and action (down, up, stop, start, restart)');
      }
      return e;
    });
  }

  private binds(t: TomlTable, path: TomlPath): RawBind[] {
    const list = this.arrayOfTables(t, path, 'an array of tables such as [{src = "./file", dst = "/tmp/file"}]');
    return list.map(([item, ipath]) => {
      const b: RawBind = { loc: this.locator.valueLoc(ipath), fields: this.fields(item, ipath, BIND_KEYS) };
      for (const k of ['src', 'dst'] as const) {
        if (b.fields[k] === undefined) this.d.error('missing-key', `${pathText(ipath)} has no ${k}`, b.loc, 'a bind needs src (a file here) and dst (its path in the node)');
      }
      return b;
    });
  }

  /** A table keyed by user names; `flatten` turns nested tables into dotted keys (sysctls). */
  private map(t: TomlTable, path: TomlPath, flatten: boolean): RawMap | undefined {
    const m = this.table(t, path);
    if (!m) return undefined;
    const out: RawMap = { loc: this.locator.valueLoc(path), entries: [] };
    const walk = (table: TomlTable, tpath: TomlPath, prefix: string): void => {
      for (const key of this.keys(table, tpath)) {
        const kpath = [...tpath, key];
        const v = table[key] as TomlValue;
        if (flatten && isTable(v)) walk(v, kpath, `${prefix}${key}.`);
        else out.entries.push({ key: `${prefix}${key}`, ...this.leaf(table, kpath) });
      }
    };
    walk(m, path, '');
    return out;
  }

  private arrayOfTables(t: TomlTable, path: TomlPath, expected: string): [TomlTable, TomlPath][] {
    const list = t[path[path.length - 1] as string];
    if (!Array.isArray(list)) {
      this.badType(path, list, expected);
      return [];
    }
    const out: [TomlTable, TomlPath][] = [];
    list.forEach((item, i) => {
      if (isTable(item)) out.push([item, [...path, i]]);
      else this.badType([...path, i], item, 'a table');
    });
    return out;
  }

  private fields<K extends string>(t: TomlTable, path: TomlPath, known: readonly K[], hintFor?: (key: string) => string | undefined): RawFields<K> {
    const out: RawFields<K> = {};
    for (const key of this.keys(t, path)) {
      if ((known as readonly string[]).includes(key)) out[key as K] = this.leaf(t, [...path, key]);
      else this.unknownKey(key, path, known, hintFor?.(key));
    }
    return out;
  }

  /** The table at `path` (last element a key of `parent`), or undefined with a `bad-type` when it is something else. */
  private table(parent: TomlTable, path: TomlPath, hint?: string): TomlTable | undefined {
    const v = parent[path[path.length - 1] as string];
    if (v === undefined) return undefined;
    if (isTable(v)) return v;
    this.badType(path, v, 'a table', hint);
    return undefined;
  }

  private leaf(parent: TomlTable, path: TomlPath): Located {
    return {
      value: parent[path[path.length - 1] as string] as TomlValue,
      path,
      loc: this.locator.valueLoc(path),
      keyLoc: this.locator.keyLoc(path),
    };
  }

  /** Own keys in source order (JavaScript puts integer-like keys first). */
  private keys(t: TomlTable, path: TomlPath): string[] {
    const keys = Object.keys(t);
    const order = new Map(keys.map((k, i) => [k, [this.locator.order([...path, k]), i] as const]));
    return keys.sort((a, b) => {
      const [oa, ia] = order.get(a) as readonly [number, number];
      const [ob, ib] = order.get(b) as readonly [number, number];
      return oa !== ob ? (oa < ob ? -1 : 1) : ia - ib;
    });
  }

  private badType(path: TomlPath, value: unknown, expected: string, hint?: string): void {
    this.d.error('bad-type', `${pathText(path)} must be ${expected}, got ${describeValue(value)}`, this.locator.valueLoc(path), hint);
  }

  private unknownKey(key: string, table: TomlPath, known: readonly string[], hint?: string): void {
    const where = table.length === 0 ? 'at the top level' : `in ${pathText(table)}`;
    this.d.error('unknown-key', `unknown key "${key}" ${where}`, this.locator.keyLoc([...table, key]), hint ?? choicesHint(key, known));
  }

  /** A key kept as free data that is one or two edits away from a known key: probably a typo. */
  private maybeTypo(key: string, path: TomlPath, known: readonly string[], fate: string): void {
    let best: string | undefined;
    let bestD = Infinity;
    for (const k of known) {
      const dist = editDistance(key.toLowerCase(), k);
      if (dist < bestD) [best, bestD] = [k, dist];
    }
    if (best === undefined || bestD > 2 || bestD >= key.length) return;
    this.d.warning('possible-typo', `"${key}" in ${pathText(path.slice(0, -1))} is not a known key (${fate})`, this.locator.keyLoc(path),
      `did you mean \`${best}\`?`);
  }
}

function lossModelHint(key: string): string | undefined {
  if (key === 'h') return 'netem takes 1-h, the loss probability in the bad state: write one_minus_h = "<100% minus h>"';
  if (key === 'k') return 'netem takes 1-k, the loss probability in the good state: write one_minus_k = "<100% minus k>"';
  return undefined;
}
