/**
 * RawGraph → Topology: what NetMirage/Shadow and Topology Zoo attributes mean.
 *
 * NetMirage semantics (reference/netmirage.md §4.3), with its bugs fixed: node bandwidths
 * really are read in the chosen units, `<default>` values count, edges may come before the
 * nodes they name. Topology Zoo files carry coordinates instead of latencies; a link
 * without a latency gets the propagation delay of a fibre along the great circle.
 */
import { basename, dirname, extname } from 'node:path';
import { choicesHint, formatLoc, nearest, type Diagnostics } from './errors.js';
import { fibreDelayUs, FIBRE_US_PER_KM, greatCircleKm, isValidLatLon, MIN_FIBRE_DELAY_US } from './geo.js';
import { GRAPHML_TYPES, quote, type DataDomain, type RawData, type RawDatum, type RawEdge, type RawGraph, type RawNode } from './graphml-parse.js';
import { DEFAULT_POOLS, type ClientShaping, type Impairment, type Link, type Node, type Topology } from './model.js';
import { formatDurationUs } from './units.js';
import { IMPAIRMENT_SPECS, type ImpairmentTomlKey } from './impairment-keys.js';

/** Options after validation (graphml.ts checks them). */
export interface GraphmlSettings {
  lab?: string;
  /** bit/s per unit of node bandwidthup/bandwidthdown. */
  bitsPerSecPerUnit: number;
  /** The unit's name, for messages. */
  unitName: string;
  clientType?: string;
  weight: string;
  /** `label`: nodes are named by their (kernel-safe, unique) `label`; the id stays an alias. */
  names?: NodeNames;
}

/** How GraphML nodes are named: by their `id` (default), or by their `label` (Topology Zoo). */
export const NODE_NAMES = ['id', 'label'] as const;
export type NodeNames = (typeof NODE_NAMES)[number];

/** The weight that needs no attribute: every link costs 1. */
export const HOPS_WEIGHT = 'hops';

/**
 * NetMirage's numeric edge attributes, in its units, by the impairment key they set; every key
 * of the table is also read by its TOML name as a string attribute in TOML's units.
 */
const NETMIRAGE_EDGE: Partial<Record<ImpairmentTomlKey, { attr: string; need: 'numeric' | 'integer'; read(this: Resolver, d: RawDatum & { value: number }): Partial<Impairment> | null }>> = {
  latency: { attr: 'latency', need: 'numeric', read(d) { return this.latencyOf(d); } },
  jitter: { attr: 'jitter', need: 'numeric', read(d) { return this.jitterOf(d); } },
  loss: { attr: 'packetloss', need: 'numeric', read(d) { return this.lossOf(d); } },
  queue: { attr: 'queue_len', need: 'integer', read(d) { return this.queueOf(d); } },
};

/** Attributes with a meaning, and the kind of value they need. Others are free (ctx, weights). */
const MEANINGFUL: Record<DataDomain, Record<string, 'numeric' | 'integer'>> = {
  node: { packetloss: 'numeric', bandwidthup: 'numeric', bandwidthdown: 'numeric', Latitude: 'numeric', Longitude: 'numeric' },
  edge: Object.fromEntries(Object.values(NETMIRAGE_EDGE).map((a) => [a.attr, a.need])),
  graph: {},
};

/** Node attributes turned into client shaping rather than kept in ctx. */
const SHAPING_KEYS = new Set(['packetloss', 'bandwidthup', 'bandwidthdown']);

/** The fallback latency of a Zoo link whose ends lack coordinates, when no link has any. */
const FALLBACK_DELAY_US = 1000;

/** How many links a note lists before "and N more". */
const LIST_MAX = 10;

/** Unknown-node errors get a "did you mean" only this many times (it costs a scan of all ids). */
const SUGGESTIONS_MAX = 50;

export function resolveGraphml(raw: RawGraph, settings: GraphmlSettings, diags: Diagnostics): Topology {
  const r = new Resolver(raw, settings, diags);
  const zoo = isZoo(raw);
  r.checkKeyKinds();
  const nodes = r.resolveNodes();
  const links = r.resolveEdges(nodes);
  if (zoo) r.deriveLatencies(nodes, links);
  r.checkWeights(links, zoo);
  if (settings.names === 'label') nameByLabel(nodes, links, diags);

  const file = raw.file;
  return {
    format: zoo ? 'zoo-graphml' : 'netmirage-graphml',
    file,
    baseDir: dirname(file),
    lab: {
      name: settings.lab ?? basename(file, extname(file)),
      routing: 'static',
      routingWeight: settings.weight,
      routeTo: 'all-nodes',
      pools: { ...DEFAULT_POOLS },
      impairmentBackend: 'auto',
      vxlanPort: 4789,
    },
    phynodes: [{ name: 'local', binds: [], extra: {} }],
    nodes: [...nodes.values()],
    links,
    notes: [],
  };
}

/**
 * A Zoo file: nodes carry Latitude/Longitude keys, or the graph says the Zoo toolset made it
 * (Internet2.graphml has no coordinates at all, and still needs latencies to route by).
 */
export function isZoo(raw: RawGraph): boolean {
  if (raw.keys.node.has('Latitude') && raw.keys.node.has('Longitude')) return true;
  const creator = raw.data.get('Creator')?.value;
  return typeof creator === 'string' && creator.includes('Topology Zoo');
}

class Resolver {
  /** Values already reported: a bad <default> is reported once, not once per element using it. */
  private readonly reported = new Set<RawDatum>();
  /** Meaningful keys declared with the wrong type: reported at the key, their values unused. */
  private readonly unusable = new Set<string>();
  private suggestions = 0;

  constructor(
    private readonly raw: RawGraph,
    private readonly s: GraphmlSettings,
    private readonly diags: Diagnostics,
  ) {}

  checkKeyKinds(): void {
    for (const domain of ['node', 'edge'] as const) {
      for (const [name, need] of Object.entries(MEANINGFUL[domain])) {
        const key = this.raw.keys[domain].get(name);
        if (key === undefined || fits(key.type, need)) continue;
        this.unusable.add(`${domain}:${name}`);
        const types = need === 'integer' ? 'int or long' : 'int, long, float or double';
        this.diags.error(
          'bad-key-type',
          `the ${domain} attribute \`${name}\` must be ${need === 'integer' ? 'an integer' : 'numeric'}, but key "${key.id}" declares attr.type="${key.type}"`,
          key.loc,
          `declare it with attr.type ${types}`,
        );
      }
    }
  }

  resolveNodes(): Map<string, Node> {
    const nodes = new Map<string, Node>();
    let clients = 0;
    const types = new Set<string>();
    for (const rn of this.raw.nodes) {
      const first = nodes.get(rn.id);
      if (first !== undefined) {
        this.diags.error(
          'duplicate-node',
          `node ${quote(rn.id)} is declared twice; the first is at ${first.loc ? formatLoc(first.loc) : 'an earlier line'}`,
          rn.loc,
          'node ids must be unique: rename one of them',
        );
        continue;
      }
      const type = this.value(rn.data, 'node', 'type');
      if (type !== undefined) types.add(String(type.value));
      const client = this.s.clientType === undefined || (type !== undefined && String(type.value) === this.s.clientType);
      if (client) clients++;
      const node: Node = {
        id: rn.id,
        sysctls: {},
        templates: [],
        binds: [],
        exec: [],
        pinned: [],
        addrs: {},
        ctx: this.ctxOf(rn),
        client,
        loc: rn.loc,
      };
      const geo = this.geoOf(rn);
      if (geo !== undefined) node.geo = geo;
      if (client) {
        const shaping = this.shapingOf(rn);
        if (Object.keys(shaping).length > 0) node.shaping = shaping;
      }
      nodes.set(rn.id, node);
    }
    if (this.s.clientType !== undefined && clients === 0 && nodes.size > 0) {
      const known = [...types].sort();
      this.diags.warning(
        'no-client',
        `no node has type ${quote(this.s.clientType)}, so no node is a client`,
        this.raw.loc,
        known.length === 0 ? 'no node has a `type` attribute: leave the client type unset to make every node a client' : choicesHint(this.s.clientType, known),
      );
    }
    return nodes;
  }

  resolveEdges(nodes: Map<string, Node>): Link[] {
    const links: Link[] = [];
    const byDefault: RawEdge[] = [];
    let undeclaredDirection = 0;
    for (const e of this.raw.edges) {
      let ok = this.checkEnds(e, nodes);
      if (e.directed === true) {
        ok = false;
        this.diags.error(
          'directed-edge',
          `the edge ${ends(e)} is directed (directed="true")`,
          e.loc,
          'links carry traffic both ways: write directed="false", or leave it out in a <graph edgedefault="undirected">',
        );
      } else if (e.directed === undefined) {
        if (this.raw.edgeDefault === 'directed') {
          ok = false;
          byDefault.push(e);
        } else if (this.raw.edgeDefault === undefined) undeclaredDirection++;
      }
      const impairment = this.edgeImpairment(e);
      const weights = this.weightsOf(e.data);
      if (!ok || impairment === undefined) continue;
      const a = e.source!;
      const b = e.target!;
      if (a === b) {
        this.selfLoop(nodes.get(a)!, impairment, e);
        continue;
      }
      links.push({
        index: links.length,
        a: { node: a, impairment: { ...impairment } },
        b: { node: b, impairment: { ...impairment } },
        weights,
        loc: e.loc,
      });
    }
    const first = byDefault[0];
    if (first !== undefined) {
      this.diags.error(
        'directed-edge',
        `the graph is directed (edgedefault="directed") and ${count(byDefault.length, 'edge')} (the first at line ${first.loc.line}) do not say directed="false"`,
        this.raw.loc,
        'links carry traffic both ways: write <graph edgedefault="undirected">',
      );
    }
    if (undeclaredDirection > 0) {
      this.diags.warning('missing-edgedefault', 'the <graph> has no edgedefault; its edges are read as undirected', this.raw.loc, 'write <graph edgedefault="undirected">');
    }
    return links;
  }

  /** Zoo links without a latency get the fibre delay along the great circle between their ends. */
  deriveLatencies(nodes: Map<string, Node>, links: Link[]): void {
    const fromGeo: number[] = [];
    const orphans: Link[] = [];
    for (const link of links) {
      if (link.weights.latency !== undefined) continue;
      const a = nodes.get(link.a.node)?.geo;
      const b = nodes.get(link.b.node)?.geo;
      if (a === undefined || b === undefined) {
        orphans.push(link);
        continue;
      }
      const us = fibreDelayUs(greatCircleKm(a, b));
      fromGeo.push(us);
      setLatency(link, us);
    }
    const median = fromGeo.length === 0 ? FALLBACK_DELAY_US : medianUs(fromGeo);
    for (const link of orphans) setLatency(link, median);
    const derived = fromGeo.length + orphans.length;
    if (derived === 0) return;

    let message = `${derived} of ${count(links.length, 'link')} had no latency and got a derived one`;
    if (fromGeo.length > 0) message += `: ${fromGeo.length} from the great-circle distance between their ends`;
    if (orphans.length > 0) {
      const list = orphans.slice(0, LIST_MAX).map((l) => `${quote(l.a.node)}–${quote(l.b.node)} (line ${l.loc?.line ?? '?'})`);
      if (orphans.length > LIST_MAX) list.push(`and ${orphans.length - LIST_MAX} more`);
      message +=
        fromGeo.length > 0
          ? `, ${orphans.length} the median of those (${formatDurationUs(median)}) because an end has no coordinates: `
          : `: ${formatDurationUs(median)} each, because no link has coordinates at both ends: `;
      message += list.join(', ');
    }
    this.diags.note(
      'latency-derived',
      message,
      this.raw.loc,
      orphans.length > 0 ? 'give those nodes Latitude and Longitude, or give the edges a `latency` (ms)' : undefined,
    );
    if (fromGeo.length > 0) {
      const lo = formatDurationUs(fromGeo.reduce((x, y) => Math.min(x, y)));
      const hi = formatDurationUs(fromGeo.reduce((x, y) => Math.max(x, y)));
      this.diags.note(
        'latency-geo',
        `latencies were derived from great-circle distances at ${FIBRE_US_PER_KM} µs per km (light in fibre, at least ${MIN_FIBRE_DELAY_US} µs): ` +
          `${count(fromGeo.length, 'link')}, ${lo === hi ? lo : `from ${lo} to ${hi}`} one way`,
        this.raw.loc,
      );
    }
  }

  checkWeights(links: Link[], zoo: boolean): void {
    const w = this.s.weight;
    if (w === HOPS_WEIGHT) return;
    const key = this.raw.keys.edge.get(w);
    if (key === undefined) {
      if (w === 'latency') {
        if (!zoo && links.length > 0) {
          this.diags.warning(
            'missing-weight',
            'no edge key is named `latency`: links have neither a delay nor a routing weight',
            this.raw.loc,
            'declare <key id="lat" for="edge" attr.name="latency" attr.type="double"/> and give edges a latency in ms, or route by hops',
          );
        }
        return;
      }
      const numeric = [...this.raw.keys.edge.values()].filter((k) => GRAPHML_TYPES[k.type] === 'integer' || GRAPHML_TYPES[k.type] === 'number').map((k) => k.name);
      if (zoo && !numeric.includes('latency')) numeric.push('latency');
      this.diags.error('unknown-weight', `the routing weight \`${w}\` is not an edge attribute of this file`, this.raw.loc, choicesHint(w, [...numeric, HOPS_WEIGHT]));
      return;
    }
    if (!fits(key.type, 'numeric')) {
      if (MEANINGFUL.edge[w] === undefined) {
        this.diags.error(
          'bad-key-type',
          `the routing weight \`${w}\` must be numeric, but key "${key.id}" declares attr.type="${key.type}"`,
          key.loc,
          'declare it with attr.type int, long, float or double',
        );
      }
      return;
    }
    const missing = links.filter((l) => l.weights[w] === undefined);
    const first = missing[0];
    // After an error a value may be missing only because it was invalid: fix those first.
    if (first !== undefined && !this.diags.hasErrors) {
      this.diags.warning(
        'missing-weight',
        `${missing.length} of ${count(links.length, 'link')} ${missing.length === 1 ? 'has' : 'have'} no \`${w}\` and so no routing weight (the first at line ${first.loc?.line ?? '?'})`,
        first.loc,
        `give every edge a \`${w}\`, or a <default> in key "${key.id}"`,
      );
    }
  }

  private checkEnds(e: RawEdge, nodes: Map<string, Node>): boolean {
    let ok = true;
    for (const end of ['source', 'target'] as const) {
      const id = e[end];
      if (id === undefined) {
        ok = false;
        this.diags.error('missing-endpoint', `an <edge> without a ${end}`, e.loc, 'write <edge source="a" target="b"> naming two declared nodes');
        continue;
      }
      if (nodes.has(id)) continue;
      ok = false;
      const near = this.suggestions++ < SUGGESTIONS_MAX ? nearest(id, [...nodes.keys()]) : undefined;
      this.diags.error(
        'unknown-node',
        `the edge's ${end} ${quote(id)} is not a declared node`,
        e.loc,
        near === undefined ? `declare it with <node id=${quote(id)}/> or fix the ${end}` : `did you mean ${quote(near)}?`,
      );
    }
    return ok;
  }

  /**
   * The same impairment for both ends: NetMirage applies edge attributes on both egresses.
   * Every key of the impairment key table is read: NetMirage's numeric attributes in its units
   * (NETMIRAGE_EDGE), and any key by its TOML name in TOML's units (`duplicate` = "1%", `reorder_gap` = 3).
   */
  private edgeImpairment(e: RawEdge): Impairment | undefined {
    const imp: Impairment = {};
    let ok = true;
    for (const key of Object.keys(IMPAIRMENT_SPECS) as ImpairmentTomlKey[]) {
      const nm = NETMIRAGE_EDGE[key];
      if (nm !== undefined) {
        const d = this.number(e.data, 'edge', nm.attr);
        if (d !== undefined) {
          const part = nm.read.call(this, d);
          if (part === null) ok = false;
          else Object.assign(imp, part);
        }
      }
      // By its TOML name, as TOML writes it: a string with a unit, an int for a count (a NetMirage
      // attribute of the same name is NetMirage's).
      const d = this.raw.keys.edge.has(key) && nm?.attr !== key ? this.value(e.data, 'edge', key) : undefined;
      if (d === undefined || this.reported.has(d)) continue;
      const before = this.diags.items.length;
      const part = IMPAIRMENT_SPECS[key].parse(this.diags, { value: d.value, path: [key], loc: d.loc, keyLoc: d.loc });
      if (part === undefined) {
        if (this.diags.items.length > before) this.reported.add(d);
        ok = false;
        continue;
      }
      for (const f of IMPAIRMENT_SPECS[key].fields) delete imp[f];
      Object.assign(imp, part);
    }
    return ok ? imp : undefined;
  }

  /** NetMirage's edge `latency` (ms). */
  latencyOf(d: RawDatum & { value: number }): Partial<Impairment> | null {
    if (!this.nonNegative(d, 'latency', ' ms', 'the latency is a one-way delay in ms: 0 or more') || !this.finiteUs(d, 'latency')) return null;
    return d.value > 0 ? { delayUs: msToUs(d.value) } : {};
  }

  /** NetMirage's edge `jitter` (ms). */
  jitterOf(d: RawDatum & { value: number }): Partial<Impairment> | null {
    if (!this.nonNegative(d, 'jitter', ' ms', 'the jitter is in ms: 0 or more') || !this.finiteUs(d, 'jitter')) return null;
    return d.value > 0 ? { jitterUs: msToUs(d.value) } : {};
  }

  /** NetMirage's edge `packetloss` (a fraction). */
  lossOf(d: RawDatum & { value: number }): Partial<Impairment> | null {
    const loss = this.fractionOf(d);
    return loss === null ? null : loss > 0 ? { lossPct: loss } : {};
  }

  /** NetMirage's edge `queue_len` (packets). */
  queueOf(d: RawDatum & { value: number }): Partial<Impairment> | null {
    if (!this.nonNegative(d, 'queue_len', ' packets', 'queue_len is a number of packets; 0 keeps the default')) return null;
    return d.value > 0 ? { queuePackets: d.value } : {};
  }

  /** Every numeric edge attribute, by name: what shortest paths can be computed over. */
  private weightsOf(data: RawData): Record<string, number> {
    const weights: Record<string, number> = {};
    for (const [name, key] of this.raw.keys.edge) {
      if (!fits(key.type, 'numeric')) continue;
      const d = data.get(name) ?? key.default;
      if (d === undefined || typeof d.value !== 'number') continue;
      setOwn(weights, name, d.value);
      if (name === this.s.weight && name !== 'latency' && d.value < 0 && !this.reported.has(d)) {
        this.reported.add(d);
        this.diags.error('out-of-range', `the routing weight \`${name}\` ${d.value} is negative`, d.loc, 'shortest paths need weights of 0 or more');
      }
    }
    return weights;
  }

  private selfLoop(node: Node, impairment: Impairment, e: RawEdge): void {
    if (!node.client) {
      this.diags.warning(
        'self-loop-ignored',
        `the self-loop on ${quote(node.id)} is ignored: only client nodes have a self link`,
        e.loc,
        `clients are the nodes whose type is ${quote(this.s.clientType ?? '')}`,
      );
      return;
    }
    const shaping = node.shaping ?? {};
    if (shaping.selfLink !== undefined) {
      this.diags.warning('duplicate-self-loop', `${quote(node.id)} has more than one self-loop; the last one is used`, e.loc);
    }
    shaping.selfLink = impairment;
    node.shaping = shaping;
  }

  private ctxOf(rn: RawNode): Record<string, unknown> {
    const ctx: Record<string, unknown> = {};
    for (const [name, key] of this.raw.keys.node) {
      if (SHAPING_KEYS.has(name)) continue;
      const d = rn.data.get(name) ?? key.default;
      if (d !== undefined) setOwn(ctx, name, d.value);
    }
    return ctx;
  }

  private geoOf(rn: RawNode): { lat: number; lon: number } | undefined {
    const lat = this.number(rn.data, 'node', 'Latitude');
    const lon = this.number(rn.data, 'node', 'Longitude');
    if (lat === undefined || lon === undefined) return undefined;
    const geo = { lat: lat.value, lon: lon.value };
    if (isValidLatLon(geo)) return geo;
    const bad = Math.abs(geo.lat) > 90 ? lat : lon;
    if (!this.reported.has(bad)) {
      this.reported.add(bad);
      this.diags.error(
        'out-of-range',
        `node ${quote(rn.id)} has Latitude ${geo.lat}, Longitude ${geo.lon}: outside the globe`,
        bad.loc,
        'Latitude is -90..90 and Longitude -180..180 degrees',
      );
    }
    return undefined;
  }

  private shapingOf(rn: RawNode): ClientShaping {
    const shaping: ClientShaping = {};
    const loss = this.fraction(rn.data, 'node');
    if (loss !== undefined && loss !== null && loss > 0) shaping.lossPct = loss;
    for (const [name, field] of [['bandwidthup', 'upBitsPerSec'], ['bandwidthdown', 'downBitsPerSec']] as const) {
      const d = this.number(rn.data, 'node', name);
      if (d === undefined || !this.nonNegative(d, name, ` ${this.s.unitName}`, `${name} is a rate in ${this.s.unitName}; 0 means unlimited`)) continue;
      const bits = Math.round(d.value * this.s.bitsPerSecPerUnit);
      if (!Number.isSafeInteger(bits)) {
        this.once(d, 'out-of-range', `${name} ${d.value} ${this.s.unitName} is too large a rate`, 'rates above 2^53 bit/s cannot be applied');
        continue;
      }
      if (bits > 0) shaping[field] = bits; // 0 = unlimited: no rate at all
    }
    return shaping;
  }

  /** `packetloss` as a fraction 0..1 → percent. null: invalid (reported). */
  private fraction(data: RawData, domain: 'node' | 'edge'): number | undefined | null {
    const d = this.number(data, domain, 'packetloss');
    return d === undefined ? undefined : this.fractionOf(d);
  }

  private fractionOf(d: RawDatum & { value: number }): number | null {
    if (d.value < 0 || d.value > 1) {
      this.once(d, 'out-of-range', `packetloss ${d.value} is not a fraction between 0 and 1`, 'packetloss is a probability: 0.01 is 1 % loss');
      return null;
    }
    return round6(d.value * 100);
  }

  private nonNegative(d: RawDatum & { value: number }, what: string, unit: string, hint: string): boolean {
    if (d.value >= 0) return true;
    this.once(d, 'out-of-range', `the ${what} ${d.value}${unit} is negative`, hint);
    return false;
  }

  /** ms values so large that they overflow once in µs. */
  private finiteUs(d: RawDatum & { value: number }, what: string): boolean {
    if (Number.isFinite(msToUs(d.value))) return true;
    this.once(d, 'out-of-range', `the ${what} ${d.value} ms is too large`, `give the ${what} in ms, e.g. 12.5`);
    return false;
  }

  private once(d: RawDatum, code: string, message: string, hint: string): void {
    if (this.reported.has(d)) return;
    this.reported.add(d);
    this.diags.error(code, message, d.loc, hint);
  }

  /** An element's value of a meaningful attribute, its key's <default> when it has none. */
  private value(data: RawData, domain: DataDomain, name: string): RawDatum | undefined {
    return data.get(name) ?? this.raw.keys[domain].get(name)?.default;
  }

  private number(data: RawData, domain: DataDomain, name: string): (RawDatum & { value: number }) | undefined {
    if (this.unusable.has(`${domain}:${name}`)) return undefined;
    const d = this.value(data, domain, name);
    return d !== undefined && typeof d.value === 'number' ? (d as RawDatum & { value: number }) : undefined;
  }
}

function fits(type: keyof typeof GRAPHML_TYPES, need: 'numeric' | 'integer'): boolean {
  const kind = GRAPHML_TYPES[type];
  return need === 'integer' ? kind === 'integer' : kind === 'integer' || kind === 'number';
}

function setLatency(link: Link, us: number): void {
  link.a.impairment.delayUs = us;
  link.b.impairment.delayUs = us;
  link.weights.latency = us / 1000;
}

function medianUs(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  const m = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return Math.round(m);
}

function msToUs(ms: number): number {
  return round6(ms * 1000);
}

/** Rounds away float noise (0.1 * 1000 = 100.00000000000001); huge values are left alone. */
function round6(v: number): number {
  const scaled = v * 1e6;
  return Number.isFinite(scaled) ? Math.round(scaled) / 1e6 : v;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function ends(e: RawEdge): string {
  return `${quote(e.source ?? '?')} → ${quote(e.target ?? '?')}`;
}

/** Assigns without letting a key such as `__proto__` reach the prototype. */
function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** A label as a node name: letters, digits, `_` and `-` (accents folded), at most 32. */
function labelName(label: string): string {
  return label
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 32);
}

/**
 * `--names label`: each node is named by its `label`, made kernel-safe (so the name is also
 * its namespace's part), its id kept as an alias. A node without a usable label keeps its
 * id; a name another node already has, or that is another node's id, gets `-<id>` appended:
 * a name must say one node, whichever way it is looked up.
 */
function nameByLabel(nodes: Map<string, Node>, links: Link[], diags: Diagnostics): void {
  const ids = new Set(nodes.keys());
  const taken = new Set<string>();
  const renamed = new Map<string, string>();
  const unlabelled: string[] = [];
  const clashes: string[] = [];
  let first: Node | undefined;
  for (const node of nodes.values()) {
    const label = node.ctx['label'];
    let name = typeof label === 'string' ? labelName(label) : '';
    if (name === '') {
      unlabelled.push(node.id);
      name = node.id;
    } else if (taken.has(name) || (ids.has(name) && name !== node.id)) {
      clashes.push(`${quote(String(label))} (node ${quote(node.id)})`);
      name = `${name}-${node.id}`;
    }
    // The appended id cannot clash with a plain label name and ids are unique, but a label
    // may already read `X-<id>`: count until free.
    for (let k = 2; taken.has(name); k++) name = `${node.id}-${k}`;
    taken.add(name);
    first ??= node;
    if (name === node.id) continue;
    renamed.set(node.id, name);
    node.aliases = [node.id];
    node.id = name;
  }
  for (const link of links) {
    for (const end of [link.a, link.b]) end.node = renamed.get(end.node) ?? end.node;
  }
  const loc = first?.loc;
  if (unlabelled.length > 0) {
    const list = unlabelled.slice(0, LIST_MAX).map(quote).join(', ') + (unlabelled.length > LIST_MAX ? `, and ${unlabelled.length - LIST_MAX} more` : '');
    const keep = unlabelled.length === 1 ? 'keeps its' : 'keep their';
    diags.note('no-label', `${count(unlabelled.length, 'node')} without a usable \`label\` ${keep} id: ${list}`, loc, 'give those nodes a `label` of letters and digits');
  }
  if (clashes.length > 0) {
    const list = clashes.slice(0, LIST_MAX).join(', ') + (clashes.length > LIST_MAX ? `, and ${clashes.length - LIST_MAX} more` : '');
    diags.note('label-clash', `${count(clashes.length, 'node')} whose label names another node too ${clashes.length === 1 ? 'gets its' : 'get their'} id appended: ${list}`, loc, 'make the labels unique to get plain names');
  }
}
