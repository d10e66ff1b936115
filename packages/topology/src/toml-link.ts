/**
 * Links of a DUNE TOML file, resolved. Attributes layer in this order, later wins:
 *
 *   [topology.defaults.links]  →  keys of the link  →  the endpoint's own table "node:iface" = {...}
 *
 * A link-level attribute applies to both directions (the egress of each endpoint); an
 * endpoint table applies to that endpoint's egress only, and only to the endpoint whose node
 * *and* interface match (DUNE matched on the interface alone, so `"r1:eth0"` also changed
 * `r0:eth0`). `loss` and `loss_model` fill one slot, as do the two forms of `queue`: a later
 * layer that sets either replaces both.
 */
import { choicesHint, nearest, type Diagnostics, type SourceLoc } from './errors.js';
import { type Endpoint, type GilbertElliott, type Impairment, type Link } from './model.js';
import type { LinkKey, RawDuneFile, RawEndpointTable, RawLink, RawLinkAttrs, RawLossModel } from './toml-raw.js';
import {
  asInt, asString, asUnit, badType, ifnameProblem, IFNAME_HINT, macProblem, pathText, type Located,
} from './toml-values.js';
import { parsePercent } from './units.js';
import { IMPAIRMENT_TABLE, type ImpairmentTomlKey } from './impairment-keys.js';
import { traceFromValue, type LinkTrace } from './traces.js';

/** What one layer (or the merge of layers) says about one direction of a link. */
export type LinkSettings = Impairment & { mtu?: number; metric?: number; mac?: string; trace?: LinkTrace };
type SettingKey = keyof LinkSettings;

interface Layer {
  values: LinkSettings;
  /** Which file key set each value, and where: for messages about the merged result. */
  from: Partial<Record<SettingKey, { key: string; loc: SourceLoc }>>;
  /** Keys that were written but invalid (already reported): nothing is said about their absence. */
  failed: Set<LinkKey>;
}

type Convert = (d: Diagnostics, l: Located) => Partial<LinkSettings> | undefined;

/**
 * One converter per attribute key: the impairment keys from their table (impairment-keys.ts),
 * then the link's own; adding an attribute is one line here and one in LINK_KEYS.
 */
export const LINK_ATTRS: Record<Exclude<LinkKey, 'loss_model'>, Convert> = {
  ...Object.fromEntries(Object.entries(IMPAIRMENT_TABLE).map(([k, spec]) => [k, spec.parse])) as Record<ImpairmentTomlKey, Convert>,
  trace: (d, l) => {
    const trace = traceFromValue(d, l.value, l.loc, pathText(l.path));
    return trace ? { trace } : undefined;
  },
  metric: (d, l) => only('metric', asInt(d, l, 0, Number.MAX_SAFE_INTEGER)),
  mtu: (d, l) => only('mtu', asInt(d, l, 68, 65535)),
  mac: (d, l) => {
    const mac = asString(d, l);
    if (mac === undefined) return undefined;
    const problem = macProblem(mac);
    if (problem) {
      d.error('bad-mac', `${pathText(l.path)}: ${problem}`, l.loc, 'locally administered unicast addresses start with 02, e.g. "02:00:00:00:00:01"');
      return undefined;
    }
    return { mac: mac.toLowerCase() };
  },
};

function only<K extends SettingKey>(key: K, value: LinkSettings[K] | undefined): Partial<LinkSettings> | undefined {
  return value === undefined ? undefined : ({ [key]: value } as Partial<LinkSettings>);
}

/** Weights the routing may use (`routing_weight`), besides `hops`. */
export const LINK_WEIGHTS = ['latency', 'metric', 'jitter', 'loss', 'bw', 'mtu'] as const;

const SLOTS: SettingKey[][] = [['lossPct', 'lossGilbertElliott'], ['queuePackets', 'queueBytes']];

/** No settings: what a layer that says nothing resolves and merges to (never changed). */
const NOTHING: Layer = Object.freeze({ values: Object.freeze({}), from: Object.freeze({}), failed: new Set<LinkKey>() }) as Layer;

const isEmpty = (l: Layer): boolean => l === NOTHING || (l.failed.size === 0 && Object.keys(l.values).length === 0);

function resolveLayer(d: Diagnostics, raw: RawLinkAttrs | undefined): Layer {
  if (!raw || (Object.keys(raw.attrs).length === 0 && !raw.lossModel)) return NOTHING;
  const layer: Layer = { values: {}, from: {}, failed: new Set() };
  for (const [key, located] of Object.entries(raw.attrs) as [Exclude<LinkKey, 'loss_model'>, Located][]) {
    const part = LINK_ATTRS[key](d, located);
    if (!part) {
      layer.failed.add(key);
      continue;
    }
    Object.assign(layer.values, part);
    for (const k of Object.keys(part) as SettingKey[]) layer.from[k] = { key, loc: located.loc };
  }
  if (raw.lossModel) {
    const ge = resolveLossModel(d, raw.lossModel);
    const loss = raw.attrs.loss;
    if (loss) {
      d.error('conflicting-keys', `${pathText(loss.path.slice(0, -1))} sets both loss and loss_model`, loss.keyLoc,
        'keep one: loss = "1%" drops packets independently, loss_model = {p, r} drops them in bursts');
    } else if (ge) {
      layer.values.lossGilbertElliott = ge;
      layer.from.lossGilbertElliott = { key: 'loss_model', loc: raw.lossModel.loc };
    } else layer.failed.add('loss_model');
  }
  return layer;
}

function resolveLossModel(d: Diagnostics, lm: RawLossModel): GilbertElliott | undefined {
  const f = lm.fields;
  const pct = (l: Located | undefined, dflt: number | undefined, name: string): number | undefined => {
    if (l) return asUnit(d, l, 'a percentage', '1%', (v) => parsePercent(v));
    if (dflt === undefined) {
      d.error('missing-key', `${pathText(lm.path)} has no ${name}`, lm.loc, 'write loss_model = {p = "1%", r = "10%"} (p: good→bad, r: bad→good)');
    }
    return dflt;
  };
  const pPct = pct(f.p, undefined, 'p');
  const rPct = pct(f.r, undefined, 'r');
  const oneMinusHPct = pct(f.one_minus_h, 100, 'one_minus_h');
  const oneMinusKPct = pct(f.one_minus_k, 0, 'one_minus_k');
  if (pPct === undefined || rPct === undefined || oneMinusHPct === undefined || oneMinusKPct === undefined) return undefined;
  return { pPct, rPct, oneMinusHPct, oneMinusKPct };
}

function merge(layers: Layer[]): Layer {
  // Most links of a large generated topology set nothing at any layer.
  if (layers.every(isEmpty)) return NOTHING;
  const out: Layer = { values: {}, from: {}, failed: new Set() };
  const values = out.values as Record<string, unknown>;
  for (const layer of layers) {
    for (const k of layer.failed) out.failed.add(k);
    for (const k of Object.keys(layer.values) as SettingKey[]) {
      for (const slot of SLOTS) {
        if (!slot.includes(k)) continue;
        for (const s of slot) {
          delete values[s];
          delete out.from[s];
        }
      }
      values[k] = layer.values[k];
      out.from[k] = layer.from[k];
    }
  }
  return out;
}

/** netem rules checked on the merged settings: each problem reported once, where the key was written. */
class Requirements {
  private readonly problems = new Map<string, { loc: SourceLoc; message: string; hint: string; where: Map<number, string[]> }>();

  check(s: Layer, link: number, endpoint: string): void {
    if (s === NOTHING) return;
    const v = s.values;
    const need = (field: SettingKey, needs: SettingKey, needsKey: LinkKey, what: string, hint: string): void => {
      const from = s.from[field];
      if (v[field] === undefined || v[needs] !== undefined || s.failed.has(needsKey) || !from) return;
      const key = `${from.loc.line}:${from.loc.col}:${field}`;
      const p = this.problems.get(key) ?? { loc: from.loc, message: `${from.key} ${what}`, hint, where: new Map() };
      p.where.set(link, [...(p.where.get(link) ?? []), endpoint]);
      this.problems.set(key, p);
    };
    const latency = 'add latency (it may be "0ms") to the same link or to [topology.defaults.links]';
    need('jitterUs', 'delayUs', 'latency', 'needs latency: netem only varies a delay', latency);
    need('jitterDistribution', 'jitterUs', 'jitter', 'needs jitter: the distribution shapes the jitter', 'add jitter = "1ms", or remove it');
    need('jitterCorrelationPct', 'jitterUs', 'jitter', 'needs jitter: the correlation applies to the jitter', 'add jitter = "1ms", or remove it');
    need('reorderPct', 'delayUs', 'latency', 'needs latency: netem reorders by sending some packets without the delay', latency);
    need('reorderGap', 'reorderPct', 'reorder', 'needs reorder', 'add reorder = "25%", or remove it');
    need('lossCorrelationPct', 'lossPct', 'loss', 'needs loss (loss_model has no correlation)', 'add loss = "1%", or remove it');
  }

  report(d: Diagnostics): void {
    for (const p of this.problems.values()) {
      const items = [...p.where].map(([link, ends]) => `topology.links[${link}]${ends.length === 2 ? '' : ` (${ends.join(', ')})`}`);
      const shown = items.slice(0, 3).join(', ');
      const more = items.length > 3 ? ` and ${items.length - 3} more links` : '';
      d.error('missing-requirement', `${p.message} (on ${shown}${more})`, p.loc, p.hint);
    }
  }
}

export interface ParsedEndpoint {
  node: string;
  iface?: string;
}

/**
 * "node:iface" or "node". Split at the last ":"; what follows is an interface name when it
 * starts with a letter or "_" (so "fc00::1" or "a:1" stay whole node ids). A string that
 * names a declared node is that node, whatever it contains.
 */
export function parseEndpointText(text: string, declared?: ReadonlySet<string>): ParsedEndpoint {
  if (declared?.has(text)) return { node: text };
  const colon = text.lastIndexOf(':');
  if (colon < 0) return { node: text };
  const iface = text.slice(colon + 1);
  if (!/^[\p{L}_]/u.test(iface)) return { node: text };
  return { node: text.slice(0, colon), iface };
}

function endpointLabel(e: ParsedEndpoint): string {
  return e.iface === undefined ? e.node : `${e.node}:${e.iface}`;
}

export interface ResolvedLinks {
  links: Link[];
  /** Nodes the links name that were not declared (only when nodes come from the links), in order of first appearance. */
  implicitNodes: { id: string; loc: SourceLoc }[];
}

/** Resolves every link; `declared` is absent when the file has no [topology.nodes]. */
export function resolveLinks(d: Diagnostics, raw: RawDuneFile, declared: ReadonlySet<string> | undefined): ResolvedLinks {
  const defaults = resolveLayer(d, raw.linkDefaults);
  const required = new Requirements();
  const links: Link[] = [];
  const implicit = new Map<string, SourceLoc>();
  const ifaceOwner = new Map<string, { link: number; loc: SourceLoc }>();
  const macOwner = new Map<string, string>();

  for (const rl of raw.links) {
    const linkLayer = resolveLayer(d, rl.attrs);
    const tableLayers = new Map(rl.endpointTables.map((t) => [t, resolveLayer(d, t.attrs)]));
    const ends = endpointsOf(d, rl, raw, declared);
    if (!ends) continue;
    const tables = matchEndpointTables(d, rl, ends, declared);
    const endLayers = tables.map((t) => (t ? tableLayers.get(t) : undefined) ?? NOTHING);

    const label = `topology.links[${rl.index}]`;
    const endpoints = ends.map((e, i) => {
      const merged = merge([defaults, linkLayer, endLayers[i] as Layer]);
      required.check(merged, rl.index, endpointLabel(e.parsed));
      return toEndpoint(e.parsed, merged.values, e.loc);
    }) as [Endpoint, Endpoint];

    let ok = true;
    ends.forEach((e, i) => {
      if (declared === undefined && !implicit.has(e.parsed.node)) implicit.set(e.parsed.node, e.loc);
      if (e.parsed.iface !== undefined) {
        const key = JSON.stringify([e.parsed.node, e.parsed.iface]);
        const owner = ifaceOwner.get(key);
        if (owner) {
          d.error('duplicate-interface',
            `interface ${endpointLabel(e.parsed)} is used by both topology.links[${owner.link}] (line ${owner.loc.line}) and topology.links[${rl.index}]`, e.loc,
            `give each link its own interface on ${e.parsed.node}, or leave the interface out ("${e.parsed.node}") to have one named for you`);
          ok = false;
        } else ifaceOwner.set(key, { link: rl.index, loc: e.loc });
      }
      const mac = endpoints[i]?.mac;
      if (mac !== undefined) {
        const where = `${label} ${endpointLabel(e.parsed)}`;
        const other = macOwner.get(mac);
        if (other) {
          d.error('duplicate-mac', `MAC address ${mac} is given to both ${other} and ${where}`, tables[i]?.attrs.attrs.mac?.loc ?? e.loc, 'every interface needs its own MAC address');
        } else macOwner.set(mac, where);
      }
    });
    if (!ok) continue;

    const link: Link = { index: rl.index, a: endpoints[0], b: endpoints[1], weights: weightsOf(endpoints), loc: rl.loc };
    // mtu shares no slot with another key: the link's own, else the default.
    const mtu = linkLayer.values.mtu ?? defaults.values.mtu;
    if (mtu !== undefined) {
      link.mtu = mtu;
      link.weights.mtu = mtu;
    }
    links.push(link);
  }
  required.report(d);
  return { links, implicitNodes: [...implicit].map(([id, loc]) => ({ id, loc })) };
}

interface EndpointRef {
  text: string;
  parsed: ParsedEndpoint;
  loc: SourceLoc;
}

function endpointsOf(d: Diagnostics, rl: RawLink, raw: RawDuneFile, declared: ReadonlySet<string> | undefined): [EndpointRef, EndpointRef] | undefined {
  const l = rl.endpoints;
  if (!l) return undefined;
  const example = 'an array of two endpoints such as ["r0:eth0", "r1:eth0"]';
  if (!Array.isArray(l.value)) return badType(d, l, example);
  if (l.value.length !== 2) {
    d.error('bad-value', `${pathText(l.path)} has ${l.value.length} endpoint${l.value.length === 1 ? '' : 's'}; a link has exactly two`, l.loc,
      'write endpoints = ["a:eth0", "b:eth0"]; for more nodes on one segment, use one link per pair');
    return undefined;
  }
  let ok = true;
  const refs = l.value.map((v, i) => {
    const loc = raw.locator.valueLoc([...l.path, i]);
    if (typeof v !== 'string') {
      badType(d, { value: v, path: [...l.path, i], loc, keyLoc: loc }, 'a string "node:iface" or "node"');
      ok = false;
      return undefined;
    }
    const parsed = parseEndpointText(v, declared);
    if (parsed.node === '') {
      d.error('bad-value', `the endpoint "${v}" in ${pathText(l.path)} has no node id`, loc, 'write "node:iface" or "node"');
      ok = false;
    }
    if (parsed.iface !== undefined) {
      const problem = ifnameProblem(parsed.iface);
      if (problem) {
        d.error('bad-ifname', `${problem} (endpoint "${v}" in ${pathText(l.path)})`, loc, IFNAME_HINT);
        ok = false;
      }
    }
    if (declared && parsed.node !== '' && !declared.has(parsed.node)) {
      const near = nearest(parsed.node, [...declared]);
      d.error('unknown-node', `the endpoint "${v}" in ${pathText(l.path)} names node "${parsed.node}", which [topology.nodes] does not declare`, loc,
        `${near === undefined ? '' : `did you mean \`${near}\`? Otherwise `}declare it as [topology.nodes.${pathText([parsed.node])}]`);
      ok = false;
    }
    return { text: v, parsed, loc };
  });
  if (!ok) return undefined;
  const [a, b] = refs as [EndpointRef, EndpointRef];
  if (a.parsed.node === b.parsed.node) {
    d.error('self-link', `${pathText(l.path)} connects node "${a.parsed.node}" to itself`, l.loc,
      'a link joins two different nodes; to give a node more addresses, use addrs');
    return undefined;
  }
  return [a, b];
}

/** The endpoint table that applies to each end, matched on node and interface. */
function matchEndpointTables(d: Diagnostics, rl: RawLink, ends: [EndpointRef, EndpointRef], declared: ReadonlySet<string> | undefined): [RawEndpointTable | undefined, RawEndpointTable | undefined] {
  const out: [RawEndpointTable | undefined, RawEndpointTable | undefined] = [undefined, undefined];
  for (const t of rl.endpointTables) {
    const p = parseEndpointText(t.key, declared);
    const i = ends.findIndex((e) => e.parsed.node === p.node && e.parsed.iface === p.iface);
    if (i >= 0) {
      out[i as 0 | 1] = t;
      continue;
    }
    const texts = ends.map((e) => endpointLabel(e.parsed));
    d.error('unknown-endpoint', `"${t.key}" in topology.links[${rl.index}] is neither endpoint of the link (${texts.join(', ')})`, t.keyLoc,
      `${choicesHint(t.key, texts)}; an endpoint table must match both the node and the interface`);
  }
  return out;
}

function toEndpoint(p: ParsedEndpoint, s: LinkSettings, loc: SourceLoc): Endpoint {
  const { mtu: _mtu, metric, mac, trace, ...impairment } = s;
  const e: Endpoint = { node: p.node, impairment, loc };
  if (trace !== undefined) e.trace = trace;
  if (p.iface !== undefined) e.iface = p.iface;
  if (mac !== undefined) e.mac = mac;
  if (metric !== undefined) e.metric = metric;
  return e;
}

/**
 * Routing weights, each the mean of the two directions: `latency` in ms (an unset direction
 * counts as 0), `jitter` in ms, `loss` in percent, `metric`; `bw` is the smaller rate.
 */
function weightsOf([a, b]: [Endpoint, Endpoint]): Record<string, number> {
  const w: Record<string, number> = {};
  const mean = (x: number | undefined, y: number | undefined, unset: number | undefined): number | undefined => {
    if (x === undefined && y === undefined) return undefined;
    const xs = [x ?? unset, y ?? unset].filter((v): v is number => v !== undefined);
    return xs.reduce((s, v) => s + v, 0) / xs.length;
  };
  const latency = mean(a.impairment.delayUs, b.impairment.delayUs, 0);
  if (latency !== undefined) w.latency = latency / 1000;
  const jitter = mean(a.impairment.jitterUs, b.impairment.jitterUs, 0);
  if (jitter !== undefined) w.jitter = jitter / 1000;
  const loss = mean(a.impairment.lossPct, b.impairment.lossPct, 0);
  if (loss !== undefined) w.loss = loss;
  const metric = mean(a.metric, b.metric, undefined);
  if (metric !== undefined) w.metric = metric;
  const rates = [a.impairment.rateBitsPerSec, b.impairment.rateBitsPerSec].filter((v): v is number => v !== undefined);
  if (rates.length > 0) w.bw = Math.min(...rates);
  return w;
}

