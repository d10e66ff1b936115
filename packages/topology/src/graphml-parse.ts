/**
 * GraphML text → RawGraph: the GraphML layer only. Keys are declared, data values are typed
 * by their key's `attr.type` and every value keeps its location. Nothing here knows what
 * `latency` or `bandwidthup` mean: that is graphml-resolve.ts.
 */
import { choicesHint, formatLoc, nearest, type Diagnostics, type SourceLoc } from './errors.js';
import { parseXml, type XmlElement } from './graphml-xml.js';

export const GRAPHML_NAMESPACE = 'http://graphml.graphdrawing.org/xmlns';

/** GraphML `attr.type` → the kind of value it holds. */
export const GRAPHML_TYPES = {
  int: 'integer',
  long: 'integer',
  float: 'number',
  double: 'number',
  boolean: 'boolean',
  string: 'string',
} as const;
export type GraphmlType = keyof typeof GRAPHML_TYPES;
const TYPE_NAMES = Object.keys(GRAPHML_TYPES) as GraphmlType[];

/**
 * `attr.type` values outside GraphML 1.0 that published files use (hand-written files,
 * older exporters): each read as the GraphML type it obviously means, with a note. Compared
 * in lower case, as are the GraphML names themselves (`Double`, `STRING`).
 */
export const GRAPHML_TYPE_ALIASES: Readonly<Record<string, GraphmlType>> = {
  integer: 'long',
  short: 'int',
  byte: 'int',
  number: 'double',
  real: 'double',
  decimal: 'double',
  bool: 'boolean',
  str: 'string',
  text: 'string',
};

/** What a key's `for` may say (GraphML 1.0). Only node, edge, graph and all are read. */
export const KEY_DOMAINS = ['node', 'edge', 'graph', 'all', 'graphml', 'hyperedge', 'port', 'endpoint'] as const;
export type KeyDomain = (typeof KEY_DOMAINS)[number];
/** The domains a value can be looked up in. */
export type DataDomain = 'node' | 'edge' | 'graph';

export type RawValue = number | boolean | string;

export interface RawKey {
  id: string;
  /** `attr.name`: what the value means. */
  name: string;
  domain: KeyDomain;
  type: GraphmlType;
  /** The `<default>` child: applies to every element of the domain that has no value. */
  default?: RawDatum;
  loc: SourceLoc;
}

export interface RawDatum {
  key: RawKey;
  value: RawValue;
  loc: SourceLoc;
}

/** Values of one element by `attr.name` (not by key id). */
export type RawData = Map<string, RawDatum>;

export interface RawNode {
  id: string;
  data: RawData;
  loc: SourceLoc;
}

export interface RawEdge {
  source?: string;
  target?: string;
  /** The `directed` attribute, when written. */
  directed?: boolean;
  data: RawData;
  loc: SourceLoc;
}

export interface RawGraph {
  file: string;
  /** `edgedefault`, when written. */
  edgeDefault?: 'directed' | 'undirected';
  /** Keys that apply to each domain, by `attr.name`. */
  keys: Record<DataDomain, Map<string, RawKey>>;
  data: RawData;
  nodes: RawNode[];
  edges: RawEdge[];
  loc: SourceLoc;
}

/** Parses GraphML text. Returns undefined when nothing can be read (XML syntax, no graph). */
export function parseGraphmlRaw(text: string, file: string, diags: Diagnostics): RawGraph | undefined {
  const root = parseXml(text, file, diags);
  if (root === undefined) return undefined;

  if (root.name !== 'graphml') {
    diags.error(
      'not-graphml',
      `the root element is <${root.name}>, not <graphml>`,
      root.loc,
      'a GraphML topology starts with <graphml xmlns="http://graphml.graphdrawing.org/xmlns">',
    );
    return undefined;
  }
  const ns = root.attrs.get('xmlns');
  if (ns !== undefined && ns !== GRAPHML_NAMESPACE) {
    diags.error(
      'bad-namespace',
      `the <graphml> namespace is "${ns}", not "${GRAPHML_NAMESPACE}"`,
      root.loc,
      `write xmlns="${GRAPHML_NAMESPACE}" or leave xmlns out`,
    );
  }

  // Keys first, wherever they are: GraphML wants them before the graph, but a key declared
  // late is still unambiguous.
  const keys = readKeys(root.children.filter((c) => c.name === 'key'), diags);

  const graphs = root.children.filter((c) => c.name === 'graph');
  const graph = graphs[0];
  if (graph === undefined) {
    diags.error('no-graph', 'the file has no <graph> element', root.loc, 'put the nodes and edges inside <graph edgedefault="undirected">');
    return undefined;
  }
  for (const other of graphs.slice(1)) {
    diags.warning('extra-graph', `only the first <graph> (line ${graph.loc.line}) is read; this one is ignored`, other.loc);
  }
  return readGraph(graph, keys, file, diags);
}

/** Key id → key, and the keys of each domain by attr.name. */
interface KeyTable {
  byId: Map<string, RawKey>;
  /** Ids of keys that were ignored (already warned about): their data is skipped quietly. */
  ignored: Set<string>;
  byName: Record<DataDomain, Map<string, RawKey>>;
}

function readKeys(elements: XmlElement[], diags: Diagnostics): KeyTable {
  const table: KeyTable = { byId: new Map(), ignored: new Set(), byName: { node: new Map(), edge: new Map(), graph: new Map() } };
  for (const el of elements) {
    const id = el.attrs.get('id');
    const missing = ['id', 'for', 'attr.name', 'attr.type'].filter((a) => el.attrs.get(a) === undefined);
    if (id !== undefined && table.byId.has(id)) {
      diags.error('duplicate-key', `key id "${id}" is declared twice; the first is at ${formatLoc(table.byId.get(id)!.loc)}`, el.loc, 'give each <key> its own id');
      continue;
    }
    if (missing.length > 0) {
      if (id !== undefined) table.ignored.add(id);
      // yEd's graphics keys (yfiles.type) carry no attr.name by design: nothing to say.
      if (el.attrs.has('yfiles.type')) continue;
      const what = id === undefined ? '<key>' : `<key id="${id}">`;
      diags.warning(
        'incomplete-key',
        `${what} is ignored: it has no ${missing.map((m) => `\`${m}\``).join(', ')}`,
        el.loc,
        'a key needs id, for, attr.name and attr.type, e.g. <key id="d0" for="edge" attr.name="latency" attr.type="double"/>',
      );
      continue;
    }
    const domain = el.attrs.get('for')!;
    const type = el.attrs.get('attr.type')!;
    const name = el.attrs.get('attr.name')!;
    const keyId = id!;
    if (!(KEY_DOMAINS as readonly string[]).includes(domain)) {
      table.ignored.add(keyId);
      diags.error('bad-key-domain', `key "${keyId}" has for="${domain}"`, el.loc, choicesHint(domain, KEY_DOMAINS));
      continue;
    }
    const graphmlType = graphmlTypeOf(type);
    if (graphmlType === undefined) {
      table.ignored.add(keyId);
      const alias = nearest(type, Object.keys(GRAPHML_TYPE_ALIASES));
      const near = alias !== undefined ? GRAPHML_TYPE_ALIASES[alias] : nearest(type, TYPE_NAMES);
      const hint = near !== undefined ? `did you mean \`${near}\`? Use one of: ${TYPE_NAMES.join(', ')}` : choicesHint(type, TYPE_NAMES);
      diags.error('bad-key-type', `key "${keyId}" (\`${name}\`) has attr.type="${type}"`, el.loc, hint);
      continue;
    }
    if (graphmlType !== type) {
      diags.note(
        'key-type-alias',
        `key "${keyId}" (\`${name}\`) has attr.type="${type}", which GraphML does not define; read as ${graphmlType}`,
        el.loc,
        `GraphML's types are ${TYPE_NAMES.join(', ')}: write attr.type="${graphmlType}"`,
      );
    }
    const key: RawKey = { id: keyId, name, domain: domain as KeyDomain, type: graphmlType, loc: el.loc };
    const def = el.children.find((c) => c.name === 'default');
    if (def !== undefined) {
      const value = typedValue(def.text, key, def.loc, diags);
      if (value !== undefined) key.default = { key, value, loc: def.loc };
    }
    table.byId.set(keyId, key);
    for (const d of domainsOf(key.domain)) {
      const first = table.byName[d].get(name);
      if (first !== undefined) {
        diags.warning(
          'duplicate-key-name',
          `key "${keyId}" is a second ${d} key named \`${name}\` (the first is "${first.id}" at line ${first.loc.line}); its values are ignored`,
          el.loc,
          'declare each attribute name once per element kind',
        );
        continue;
      }
      table.byName[d].set(name, key);
    }
  }
  return table;
}

/** A GraphML type name, or the one a common non-standard name obviously means. */
function graphmlTypeOf(type: string): GraphmlType | undefined {
  const lower = type.trim().toLowerCase();
  if ((TYPE_NAMES as string[]).includes(lower)) return lower as GraphmlType;
  return Object.hasOwn(GRAPHML_TYPE_ALIASES, lower) ? GRAPHML_TYPE_ALIASES[lower] : undefined;
}

function domainsOf(domain: KeyDomain): DataDomain[] {
  if (domain === 'all') return ['node', 'edge', 'graph'];
  if (domain === 'node' || domain === 'edge' || domain === 'graph') return [domain];
  return [];
}

function readGraph(graph: XmlElement, keys: KeyTable, file: string, diags: Diagnostics): RawGraph {
  const raw: RawGraph = { file, keys: keys.byName, data: new Map(), nodes: [], edges: [], loc: graph.loc };
  const edgeDefault = graph.attrs.get('edgedefault');
  if (edgeDefault === 'directed' || edgeDefault === 'undirected') raw.edgeDefault = edgeDefault;
  else if (edgeDefault !== undefined) {
    diags.error('bad-attribute', `edgedefault="${edgeDefault}" is neither "undirected" nor "directed"`, graph.loc, 'write <graph edgedefault="undirected">');
  }

  let hyperedges = 0;
  for (const el of graph.children) {
    switch (el.name) {
      case 'node': {
        const id = el.attrs.get('id');
        if (id === undefined || id === '') {
          diags.error('missing-id', `a <node> without ${id === undefined ? 'an id' : 'a non-empty id'}`, el.loc, 'give every node a unique id, e.g. <node id="r1">');
          break;
        }
        if (el.children.some((c) => c.name === 'graph')) {
          diags.warning('nested-graph', `node "${id}" holds a nested <graph>; nested graphs are not supported and it is ignored`, el.loc);
        }
        raw.nodes.push({ id, data: readData(el, 'node', keys, diags), loc: el.loc });
        break;
      }
      case 'edge': {
        const edge: RawEdge = { data: readData(el, 'edge', keys, diags), loc: el.loc };
        const source = el.attrs.get('source');
        const target = el.attrs.get('target');
        if (source !== undefined) edge.source = source;
        if (target !== undefined) edge.target = target;
        const directed = el.attrs.get('directed');
        if (directed === 'true' || directed === 'false') edge.directed = directed === 'true';
        else if (directed !== undefined) {
          diags.error('bad-attribute', `directed="${directed}" is neither "false" nor "true"`, el.loc, 'write directed="false" or leave it out');
        }
        raw.edges.push(edge);
        break;
      }
      case 'data':
        readDatum(el, 'graph', keys, raw.data, diags);
        break;
      case 'hyperedge':
        if (hyperedges++ === 0) diags.warning('unsupported-element', 'hyperedges are not supported; every <hyperedge> is ignored', el.loc);
        break;
      default:
        // <desc>, <port> and extensions: nothing to read.
        break;
    }
  }
  return raw;
}

function readData(el: XmlElement, domain: DataDomain, keys: KeyTable, diags: Diagnostics): RawData {
  const data: RawData = new Map();
  for (const child of el.children) if (child.name === 'data') readDatum(child, domain, keys, data, diags);
  return data;
}

function readDatum(el: XmlElement, domain: DataDomain, keys: KeyTable, into: RawData, diags: Diagnostics): void {
  const id = el.attrs.get('key');
  if (id === undefined) {
    diags.warning('unknown-key', 'a <data> without a key attribute is ignored', el.loc, 'write <data key="..."> naming a declared <key>');
    return;
  }
  if (keys.ignored.has(id)) return;
  const key = keys.byId.get(id);
  if (key === undefined) {
    const near = nearest(id, [...keys.byId.keys()]);
    diags.warning(
      'unknown-key',
      `<data key="${id}"> is ignored: no <key> has that id`,
      el.loc,
      near === undefined ? `declare it with <key id="${id}" for="${domain}" attr.name="..." attr.type="...">` : `did you mean "${near}"?`,
    );
    return;
  }
  if (!domainsOf(key.domain).includes(domain)) {
    diags.warning('key-domain-mismatch', `key "${id}" (\`${key.name}\`) is declared for="${key.domain}" but used on a ${domain}; ignored`, el.loc, `declare it for="${domain}" or for="all"`);
    return;
  }
  if (keys.byName[domain].get(key.name) !== key) return; // a duplicate name, warned at the key
  const value = typedValue(el.text, key, el.loc, diags);
  if (value === undefined) return;
  const previous = into.get(key.name);
  if (previous !== undefined) {
    diags.warning('duplicate-data', `\`${key.name}\` is given twice on this ${domain} (first at ${previous.loc.line}:${previous.loc.col}); the last value is used`, el.loc);
  }
  into.set(key.name, { key, value, loc: el.loc });
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Types a value by its key; records an error and returns undefined when it does not fit. */
function typedValue(text: string, key: RawKey, loc: SourceLoc, diags: Diagnostics): RawValue | undefined {
  const kind = GRAPHML_TYPES[key.type];
  if (kind === 'string') return text;
  const t = text.trim();
  const what = `the value ${quote(t)} of \`${key.name}\` (key "${key.id}", ${key.type})`;
  if (kind === 'boolean') {
    const b = { true: true, false: false, '1': true, '0': false }[t.toLowerCase()];
    if (b === undefined) diags.error('bad-value', `${what} is not a boolean`, loc, 'write true or false');
    return b;
  }
  const pattern = kind === 'integer' ? INTEGER : DECIMAL;
  if (!pattern.test(t)) {
    const hint = kind === 'integer' ? 'write a whole number such as 100' : 'write a decimal number such as 12.5';
    diags.error('bad-value', `${what} is not ${kind === 'integer' ? 'an integer' : 'a number'}`, loc, hint);
    return undefined;
  }
  const n = Number(t);
  if (kind === 'integer' && !Number.isSafeInteger(n)) {
    diags.error('out-of-range', `${what} is beyond ±2^53 and cannot be held exactly`, loc, 'use a smaller integer, or declare the key double');
    return undefined;
  }
  if (!Number.isFinite(n)) {
    diags.error('out-of-range', `${what} is too large`, loc, 'use a number within ±1e308');
    return undefined;
  }
  return n;
}

/** Quotes a value for a message, cut short when long. */
export function quote(s: string): string {
  const short = s.length > 40 ? `${s.slice(0, 37)}...` : s;
  return JSON.stringify(short);
}
