/**
 * A topology built from API calls. Each `lab.node()` / `lab.link()` is written as the TOML
 * a user would have written (DUNE's format, our keys and units) and read by the same reader
 * as a file, so the API validates exactly as `dune validate` does. A diagnostic about a
 * generated line is moved to the call that produced it (file:line:col of the user's script).
 *
 * On top of a topology read from a file (`Lab.fromFile`), the calls are read as additions:
 * the file's nodes are declared as stubs so links may name them, then the stubs are dropped
 * and the additions appended after the file's nodes and links.
 */
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { DuneError, TopologyError, parseDuneToml, type Diagnostic, type SourceLoc, type Topology } from '@dune/topology';

/** A TOML value as the API takes it: strings (units: "5ms"), numbers, booleans, arrays, tables. */
export type TomlLike = string | number | boolean | readonly TomlLike[] | { readonly [k: string]: TomlLike | undefined };

export interface NodeDecl {
  id: string;
  /** TOML node keys (kind, sysctls, addrs, exec, pinned, phynode, templates, binds). */
  keys: Record<string, TomlLike | undefined>;
  site: SourceLoc | undefined;
}

export interface LinkDecl {
  /** TOML endpoints: `node` or `node:iface`. */
  endpoints: [string, string];
  /** TOML link keys, and endpoint overrides under `node:iface` keys. */
  keys: Record<string, TomlLike | undefined>;
  site: SourceLoc | undefined;
}

export interface LabSettingsDecl {
  name: string;
  /** `[topology]` keys: routing, routing_weight, impairment_backend, vxlan_port, ... */
  topology: Record<string, TomlLike | undefined>;
  addressing: Record<string, TomlLike | undefined>;
  defaults: { links?: Record<string, TomlLike | undefined>; nodes?: Record<string, TomlLike | undefined> };
  /** `[infrastructure.nodes.NAME]` keys per phynode. */
  phynodes: Record<string, Record<string, TomlLike | undefined>>;
}

const HERE = dirname(fileURLToPath(import.meta.url));

/** Where the user's code called into this package: the first stack frame outside it. */
export function callSite(): SourceLoc | undefined {
  const frames = (new Error().stack ?? '').split('\n').slice(1);
  for (const f of frames) {
    const m = /\(?((?:file:\/\/)?[^\s()]+):(\d+):(\d+)\)?\s*$/.exec(f);
    if (!m) continue;
    let file = m[1] as string;
    if (file.startsWith('file://')) file = fileURLToPath(file);
    if (file.startsWith(HERE) || file.startsWith('node:') || !file.startsWith('/')) continue;
    return { file, line: Number(m[2]), col: Number(m[3]) };
  }
  return undefined;
}

/** One TOML value, inline (strings as JSON strings: a subset of TOML's basic strings). */
export function tomlInline(v: TomlLike, where: string): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new DuneError('bad-value', `${where}: ${v} is not a number a topology can hold`, { hint: 'give a finite number, or a string with a unit such as "5ms"' });
    return String(v);
  }
  if (Array.isArray(v)) return `[${(v as TomlLike[]).map((x, i) => tomlInline(x, `${where}[${i}]`)).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    const parts = Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => `${JSON.stringify(k)} = ${tomlInline(x as TomlLike, `${where}.${k}`)}`);
    return `{ ${parts.join(', ')} }`;
  }
  throw new DuneError('bad-value', `${where}: ${String(v)} (${typeof v}) is not a value a topology can hold`, { hint: 'use strings (with units), numbers, booleans, arrays or plain objects' });
}

interface Rendered {
  text: string;
  /** Generated line (1-based) → the call that wrote it. */
  sites: Map<number, SourceLoc>;
}

/** The TOML of a lab's settings, its nodes (and stubs) and its links. */
export function renderToml(s: LabSettingsDecl, nodes: readonly NodeDecl[], links: readonly LinkDecl[], stubs: readonly string[] = []): Rendered {
  const lines: string[] = [];
  const sites = new Map<number, SourceLoc>();
  const emit = (line: string, site?: SourceLoc): void => {
    lines.push(line);
    if (site) sites.set(lines.length, site);
  };
  const table = (header: string, keys: Record<string, TomlLike | undefined>, where: string, site?: SourceLoc): void => {
    emit(header, site);
    for (const [k, v] of Object.entries(keys)) if (v !== undefined) emit(`${JSON.stringify(k)} = ${tomlInline(v, `${where}.${k}`)}`, site);
  };
  for (const [name, keys] of Object.entries(s.phynodes)) table(`[infrastructure.nodes.${JSON.stringify(name)}]`, keys, `hosts.${name}`);
  emit('[topology]');
  emit(`lab = ${JSON.stringify(s.name)}`);
  for (const [k, v] of Object.entries(s.topology)) if (v !== undefined) emit(`${k} = ${tomlInline(v, k)}`);
  emit('links = [');
  for (const l of links) {
    const body = { endpoints: l.endpoints, ...l.keys } as Record<string, TomlLike>;
    emit(`  ${tomlInline(body, `link ${l.endpoints.join(' -- ')}`)},`, l.site);
  }
  emit(']');
  if (Object.keys(s.addressing).length > 0) table('[topology.addressing]', s.addressing, 'addressing');
  if (s.defaults.links) table('[topology.defaults.links]', s.defaults.links, 'defaults.links');
  if (s.defaults.nodes) table('[topology.defaults.nodes]', s.defaults.nodes, 'defaults.nodes');
  for (const id of stubs) emit(`[topology.nodes.${JSON.stringify(id)}]`);
  for (const n of nodes) table(`[topology.nodes.${JSON.stringify(n.id)}]`, n.keys, `node ${n.id}`, n.site);
  return { text: `${lines.join('\n')}\n`, sites };
}

/** Reads rendered TOML; diagnostics on generated lines point at the user's calls instead. */
export function readRendered(r: Rendered, file: string): Topology {
  const relocate = (d: Diagnostic): Diagnostic => {
    if (d.loc?.file !== file) return d;
    const site = r.sites.get(d.loc.line);
    const { loc: _loc, ...rest } = d;
    return site ? { ...rest, loc: site } : rest;
  };
  try {
    const t = parseDuneToml(r.text, file);
    t.notes = t.notes.map(relocate);
    return t;
  } catch (e) {
    if (e instanceof TopologyError) throw new TopologyError(e.diagnostics.map(relocate));
    throw e;
  }
}

/**
 * Additions read on top of a base topology: the base's settings and every node and link of
 * it first, then the new nodes (stubs dropped) and links (indexed after the base's).
 */
export function mergeTopologies(base: Topology, added: Topology, stubs: ReadonlySet<string>): Topology {
  const nodes = [...base.nodes, ...added.nodes.filter((n) => !stubs.has(n.id))];
  const links = [...base.links, ...added.links.map((l, i) => ({ ...l, index: base.links.length + i }))];
  return { ...base, nodes, links, notes: [...base.notes, ...added.notes] };
}
