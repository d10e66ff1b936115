/**
 * DIR/tor.toml: the Tor network as a dune topology (README "Topology files"). Pure.
 *
 * The Tor nodes and web hang off a backbone: one router `core` by default (a star), or the
 * routers of a GraphML/Zoo file with its links and their latencies kept. Each Tor node is a
 * router-kind node with its own address on lo (172.16.x.y, what its torrc binds to) and one
 * pinned process, `tor -f DIR/nodes/<name>/torrc`, so `dune up` starts it (pinned to a core
 * when the file declares cores) and `dune down` stops it.
 */
import { formatDurationUs, formatRate, type Impairment, type Topology } from '@dune/topology';
import { WEB_PORT } from './torrc.js';
import type { TorNetwork } from './layout.js';

export interface BackboneLink {
  a: string;
  b: string;
  impairment: Impairment;
}

export interface Backbone {
  routers: { id: string; label?: string }[];
  links: BackboneLink[];
  /** The routers Tor nodes are attached to, round-robin. */
  attach: string[];
  /** Where it came from, for the file's header. */
  source: string;
}

export const STAR_ROUTER = 'core';

export function starBackbone(): Backbone {
  return { routers: [{ id: STAR_ROUTER }], links: [], attach: [STAR_ROUTER], source: `a star around router "${STAR_ROUTER}"` };
}

/** A node id we can write as a TOML key and Linux can carry in names: Zoo ids are "0", "1", … */
function routerId(id: string, taken: Set<string>): string {
  let base = /^[A-Za-z][A-Za-z0-9_-]{0,30}$/.test(id) ? id : `r${id.replace(/[^A-Za-z0-9_-]+/g, '-')}`.slice(0, 31);
  while (taken.has(base)) base = `${base}_`;
  taken.add(base);
  return base;
}

/**
 * The routers and links of a GraphML topology. Tor nodes attach to its NetMirage client
 * nodes (all nodes of a Zoo file), so a `--client-node` file keeps its meaning.
 */
export function graphBackbone(topo: Topology, reserved: readonly string[]): Backbone {
  const taken = new Set(reserved);
  const ids = new Map<string, string>();
  const routers = topo.nodes.map((n) => {
    const id = routerId(n.id, taken);
    ids.set(n.id, id);
    const label = typeof n.ctx['label'] === 'string' ? n.ctx['label'] : undefined;
    return label === undefined ? { id } : { id, label };
  });
  const links = topo.links.map((l) => ({
    a: ids.get(l.a.node) as string,
    b: ids.get(l.b.node) as string,
    // GraphML readers give both ends the same impairment; keep the larger of each value.
    impairment: mergeMax(l.a.impairment, l.b.impairment),
  }));
  const clients = topo.nodes.filter((n) => n.client).map((n) => ids.get(n.id) as string);
  return { routers, links, attach: clients.length > 0 ? clients : routers.map((r) => r.id), source: topo.file };
}

function mergeMax(a: Impairment, b: Impairment): Impairment {
  const out: Impairment = { ...a };
  for (const k of ['delayUs', 'jitterUs', 'lossPct', 'rateBitsPerSec', 'queuePackets'] as const) {
    const v = Math.max(a[k] ?? 0, b[k] ?? 0);
    if (v > 0) out[k] = v;
  }
  return out;
}

/** The TOML link keys of an impairment (what the GraphML readers produce). */
function impairmentKeys(i: Impairment): string[] {
  const kv: string[] = [];
  if (i.delayUs) kv.push(`latency = ${str(formatDurationUs(i.delayUs))}`);
  if (i.jitterUs) kv.push(`jitter = ${str(formatDurationUs(i.jitterUs))}`);
  if (i.lossPct) kv.push(`loss = ${str(`${i.lossPct}%`)}`);
  if (i.rateBitsPerSec) kv.push(`bw = ${str(formatRate(i.rateBitsPerSec))}`);
  if (i.queuePackets) kv.push(`queue = ${str(`${i.queuePackets}p`)}`);
  return kv;
}

/** A TOML basic string (JSON's escapes are TOML's). */
function str(s: string): string {
  return JSON.stringify(s);
}

export interface TomlOptions {
  /** Latency of each Tor node's access link (`5ms`); undefined or 0: none. */
  accessLatency?: string;
  /** Core ids for `[infrastructure.nodes.local]`: one per process when given. */
  cores?: number[];
  /** The web server's argv. */
  webCmd: string[];
}

export function torToml(net: TorNetwork, backbone: Backbone, o: TomlOptions): string {
  const l: string[] = [];
  l.push(
    `# A private Tor network, written by \`dune tor init\` (${net.nodes.length} tor processes and web).`,
    `# Backbone: ${backbone.source}. Files: ${net.dir}`,
    '#   dune up tor.toml && dune tor wait --dir <this directory> && dune exec client0 -- curl --socks5-hostname 127.0.0.1:9050 ' + net.web.url,
    '',
  );
  if (o.cores !== undefined && o.cores.length > 0) {
    l.push('[infrastructure.nodes.local]', `cores = [[${o.cores.join(', ')}]]`, '');
  }
  l.push('[topology]', `lab = ${str(net.lab ?? 'tor')}`, 'routing = "static"', 'links = [');
  for (const bl of backbone.links) {
    const kv = [`endpoints = [${str(bl.a)}, ${str(bl.b)}]`, ...impairmentKeys(bl.impairment)];
    l.push(`  { ${kv.join(', ')} },`);
  }
  const hosts = [...net.nodes.map((n) => n.name), net.web.name];
  const attachedTo = new Map<string, string>();
  hosts.forEach((h, i) => {
    const r = backbone.attach[i % backbone.attach.length] as string;
    attachedTo.set(h, r);
    const kv = [`endpoints = [${str(r)}, ${str(h)}]`];
    if (o.accessLatency !== undefined && !/^0+(\.0+)?([a-z]+)?$/.test(o.accessLatency)) kv.push(`latency = ${str(o.accessLatency)}`);
    l.push(`  { ${kv.join(', ')} },`);
  });
  l.push(']', '');

  for (const r of backbone.routers) {
    l.push(`[topology.nodes.${str(r.id)}]`);
    if (r.label !== undefined) l.push(`label = ${str(r.label)}`);
    l.push('');
  }
  for (const n of net.nodes) {
    l.push(`[topology.nodes.${n.name}]`, `addrs.lo = [${str(`${n.addr}/32`)}]`, `tor_role = ${str(n.role)}`);
    l.push(`[[topology.nodes.${n.name}.pinned]]`, `cmd = [${['tor', '-f', n.torrc].map(str).join(', ')}]`, '');
  }
  l.push(`[topology.nodes.${net.web.name}]`, `addrs.lo = [${str(`${net.web.addr}/32`)}]`, `tor_role = "web"  # HTTP on port ${WEB_PORT}, serving ${net.web.root}`);
  l.push(`[[topology.nodes.${net.web.name}.pinned]]`, `cmd = [${o.webCmd.map(str).join(', ')}]`, '');
  return `${l.join('\n')}`;
}
