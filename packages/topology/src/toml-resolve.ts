/**
 * Stage 2 of the DUNE TOML reader: raw topology → Topology. Defaults merged, units
 * normalised, names and references checked. Every problem goes to the Diagnostics; the
 * caller throws once at the end, so one run reports them all.
 */
import { basename, dirname, extname } from 'node:path';
import { choicesHint, nearest, type Diagnostics } from './errors.js';
import {
  DEFAULT_POOLS, ROUTING_MODES, type AddressPools, type LabSettings, type Node, type Phynode, type Topology,
} from './model.js';
import { LINK_WEIGHTS, resolveLinks } from './toml-link.js';
import { NodeResolver } from './toml-node.js';
import { resolveEvents } from './toml-events.js';
import { resolveSchedule } from './toml-schedule.js';
import type { RawDuneFile, RawPhynode } from './toml-raw.js';
import {
  asChoice, asInt, asString, badType, badValue, IFNAME_HINT, ifnameProblem, ipProblem, parseCidr, pathText, plainValue, setOwn,
  type Located,
} from './toml-values.js';

export interface ResolveOptions {
  /** Lab name override. */
  lab?: string;
}

/** The phynode a file without `[infrastructure.nodes]` gets: this machine. */
export const DEFAULT_PHYNODE = 'local';

const ROUTE_TO = ['all-nodes', 'clients'] as const;
const IMPAIRMENT_BACKENDS = ['auto', 'netem', 'userspace'] as const;
const ENGINE_FAIL = ['closed', 'open'] as const;
/** The most worker threads the userspace engine runs (its own limit). */
const MAX_ENGINE_THREADS = 256;
const ROUTING_WEIGHTS = ['hops', ...LINK_WEIGHTS] as const;

/**
 * Lab names end up in namespace, nftables and directory names (`/run/dune/<lab>/`), so they
 * are kept to a safe alphabet.
 */
const LAB_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const LAB_HINT = 'a lab name is 1 to 32 letters, digits, "_", "." or "-", starting with a letter or digit';

export function resolveDuneToml(raw: RawDuneFile, opts: ResolveOptions, d: Diagnostics): Topology {
  const lab = labSettings(raw, opts, d);
  const phynodes = resolvePhynodes(raw, d);

  const nodes = new NodeResolver(d, raw.locator);
  const defaults = nodes.parts(raw.nodeDefaults);
  const declared = raw.nodes?.map((n) => nodes.node(n, defaults));
  const declaredIds = declared ? new Set(declared.map((n) => n.id)) : undefined;

  const { links, implicitNodes } = resolveLinks(d, raw, declaredIds);
  const allNodes: Node[] = [...(declared ?? []), ...implicitNodes.map((n) => nodes.implicitNode(n.id, defaults, n.loc))];

  checkPhynodeRefs(d, raw, allNodes, phynodes);
  checkAddrInterfaces(d, raw, allNodes, links);
  if (allNodes.length === 0) d.note('empty-topology', 'the topology has no nodes', raw.linksLoc ?? { file: raw.file, line: 1, col: 1 });
  const events = raw.events ? resolveEvents(d, raw.events, allNodes) : [];
  const schedule = raw.schedule ? resolveSchedule(d, raw.schedule, allNodes, raw.locator) : [];

  return {
    format: 'dune-toml',
    file: raw.file,
    baseDir: dirname(raw.file),
    lab,
    phynodes,
    nodes: allNodes,
    links,
    notes: [],
    ...(events.length > 0 ? { events } : {}),
    ...(schedule.length > 0 ? { schedule } : {}),
  };
}

function labSettings(raw: RawDuneFile, opts: ResolveOptions, d: Diagnostics): LabSettings {
  const s = raw.settings;
  let name: string | undefined;
  if (opts.lab !== undefined) {
    name = opts.lab;
    if (!LAB_NAME.test(name)) d.error('bad-lab-name', `the lab name "${name}" (given as an option) is not usable`, undefined, LAB_HINT);
  } else if (s.lab) {
    name = asString(d, s.lab);
    if (name !== undefined && !LAB_NAME.test(name)) d.error('bad-lab-name', `the lab name "${name}" is not usable`, s.lab.loc, LAB_HINT);
  }
  if (name === undefined) name = labNameFromFile(raw.file);

  const routing = s.routing ? asChoice(d, s.routing, ROUTING_MODES) : undefined;
  const routeTo = s.route_to ? asChoice(d, s.route_to, ROUTE_TO) : undefined;
  const backend = s.impairment_backend ? asChoice(d, s.impairment_backend, IMPAIRMENT_BACKENDS) : undefined;
  const vxlanPort = s.vxlan_port ? asInt(d, s.vxlan_port, 1, 65535) : undefined;
  const engineThreads = s.impairment_engine_threads ? engineThreadsSetting(d, s.impairment_engine_threads) : undefined;
  const engineFail = s.impairment_engine_fail ? asChoice(d, s.impairment_engine_fail, ENGINE_FAIL) : undefined;
  let routingWeight: string | undefined;
  if (s.routing_weight) routingWeight = asChoice(d, s.routing_weight, ROUTING_WEIGHTS);
  return {
    name,
    routing: routing ?? 'static',
    routingWeight: routingWeight ?? 'latency',
    routeTo: routeTo ?? 'all-nodes',
    pools: pools(raw, d),
    impairmentBackend: backend ?? 'auto',
    vxlanPort: vxlanPort ?? 4789,
    ...(engineThreads !== undefined ? { impairmentEngineThreads: engineThreads } : {}),
    ...(engineFail !== undefined ? { impairmentEngineFailOpen: engineFail === 'open' } : {}),
  };
}

/** `impairment_engine_threads`: an integer from 1 to 256, or "auto" (one per core). */
function engineThreadsSetting(d: Diagnostics, l: Located): number | 'auto' | undefined {
  const hint = `write a number of threads from 1 to ${MAX_ENGINE_THREADS}, such as 4, or "auto" for one per core of the host`;
  if (l.value === 'auto') return 'auto';
  if (typeof l.value === 'string') return badValue(d, l, `${pathText(l.path)} is "${l.value}", which is neither a number of threads nor "auto"`, hint);
  if (typeof l.value !== 'number' || !Number.isInteger(l.value)) return badType(d, l, `an integer from 1 to ${MAX_ENGINE_THREADS} or "auto"`, hint);
  if (l.value < 1 || l.value > MAX_ENGINE_THREADS) return badValue(d, l, `${pathText(l.path)} is ${l.value}; it must be from 1 to ${MAX_ENGINE_THREADS}, or "auto"`, hint);
  return l.value;
}

/** "topologies/my topo.toml" → "my-topo": the base name, made safe. */
export function labNameFromFile(file: string): string {
  const base = basename(file, extname(file));
  const safe = base.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 32);
  return safe === '' ? 'lab' : safe;
}

function pools(raw: RawDuneFile, d: Diagnostics): AddressPools {
  const a = raw.addressing ?? {};
  const out: AddressPools = { ...DEFAULT_POOLS };
  const pool = (l: Located | undefined, family: 4 | 6): string | undefined => {
    if (!l) return undefined;
    const text = asString(d, l);
    if (text === undefined) return undefined;
    const r = parseCidr(text, false);
    if ('problem' in r) return badValue(d, l, `${pathText(l.path)}: ${r.problem}`, `write a pool such as "${family === 4 ? '10.128.0.0/9' : 'fd7a:de00::/32'}"`);
    if (r.family !== family) return badValue(d, l, `${pathText(l.path)} must be an IPv${family} prefix, got "${text}"`);
    return r.cidr;
  };
  out.linkV4 = pool(a.link_v4, 4) ?? out.linkV4;
  out.linkV6 = pool(a.link_v6, 6) ?? out.linkV6;
  out.nodeV4 = pool(a.node_v4, 4) ?? out.nodeV4;
  out.nodeV6 = pool(a.node_v6, 6) ?? out.nodeV6;
  const segV4 = pool(a.segment_v4, 4);
  if (segV4 !== undefined) out.segmentV4 = segV4;
  const segV6 = pool(a.segment_v6, 6);
  if (segV6 !== undefined) out.segmentV6 = segV6;
  const len = (l: Located | undefined, poolCidr: string, max: number): number | undefined => {
    if (!l) return undefined;
    const min = Number(poolCidr.split('/')[1]);
    return asInt(d, l, min, max);
  };
  out.linkV4Len = len(a.link_v4_len, out.linkV4, 32) ?? out.linkV4Len;
  out.linkV6Len = len(a.link_v6_len, out.linkV6, 128) ?? out.linkV6Len;
  return out;
}

function resolvePhynodes(raw: RawDuneFile, d: Diagnostics): Phynode[] {
  if (raw.phynodes === undefined || raw.phynodes.length === 0) {
    d.note('default-phynode', `no [infrastructure.nodes]: every node runs on this machine, as phynode "${DEFAULT_PHYNODE}"`);
    return [{ name: DEFAULT_PHYNODE, binds: [], extra: {} }];
  }
  const binds = new NodeResolver(d, raw.locator);
  return raw.phynodes.map((p) => resolvePhynode(p, raw, d, binds));
}

function resolvePhynode(p: RawPhynode, raw: RawDuneFile, d: Diagnostics, resolver: NodeResolver): Phynode {
  const f = p.fields;
  const out: Phynode = { name: p.name, binds: resolver.binds(p.binds), extra: {}, loc: p.loc };
  if (f.cores) {
    const cores = resolveCores(f.cores, raw, d);
    if (cores) out.cores = cores;
  }
  if (f.host) {
    const host = asString(d, f.host);
    if (host === '') badValue(d, f.host, `${pathText(f.host.path)} is empty`, 'leave host out (or write "localhost") for this machine');
    else if (host !== undefined) out.host = host;
  }
  if (f.port) {
    const port = asInt(d, f.port, 1, 65535);
    if (port !== undefined) out.port = port;
  }
  for (const key of ['user', 'identity'] as const) {
    const l = f[key];
    const v = l && asString(d, l);
    if (v !== undefined) out[key] = v;
  }
  if (f.underlay) {
    const ip = asString(d, f.underlay);
    const problem = ip === undefined ? undefined : ipProblem(ip);
    if (problem) d.error('bad-address', `${pathText(f.underlay.path)}: ${problem}`, f.underlay.loc, 'write the address VXLAN uses on this host, e.g. "192.0.2.10"');
    else if (ip !== undefined) out.underlay = ip;
  }
  if (f.iface) {
    const iface = asString(d, f.iface);
    const problem = iface === undefined ? undefined : ifnameProblem(iface);
    if (problem) d.error('bad-ifname', `${pathText(f.iface.path)}: ${problem}`, f.iface.loc, IFNAME_HINT);
    else if (iface !== undefined) out.iface = iface;
  }
  if (f.mpf) setOwn(out.extra, 'mpf', plainValue(f.mpf.value));
  for (const e of p.extra) setOwn(out.extra, e.key, plainValue(e.value));
  return out;
}

/** `[[1, 2, 3], [4, 5]]`: NUMA groups of core ids; a core may appear once. */
function resolveCores(l: Located, raw: RawDuneFile, d: Diagnostics): number[][] | undefined {
  const example = 'write cores as NUMA groups of core ids, e.g. cores = [[1, 2, 3], [4, 5, 6, 7]]';
  const bad = (path: readonly (string | number)[], what: string): undefined => {
    d.error('bad-type', `${pathText(path)} must be ${what}`, raw.locator.valueLoc(path), example);
    return undefined;
  };
  if (!Array.isArray(l.value)) return bad(l.path, `an array of arrays of core ids, got ${typeof l.value === 'number' ? `the integer ${l.value}` : 'something else'}`);
  const seen = new Map<number, string>();
  let ok = true;
  const groups = l.value.map((group, g) => {
    const gpath = [...l.path, g];
    if (!Array.isArray(group)) {
      bad(gpath, 'an array of core ids');
      ok = false;
      return [];
    }
    return group.flatMap((core, i) => {
      const cpath = [...gpath, i];
      if (typeof core !== 'number' || !Number.isInteger(core) || core < 0) {
        bad(cpath, 'a core id (an integer ≥ 0)');
        ok = false;
        return [];
      }
      const first = seen.get(core);
      if (first !== undefined) {
        d.error('duplicate-core', `core ${core} is listed twice, at ${first} and ${pathText(cpath)}`, raw.locator.valueLoc(cpath), 'list each core in one group only');
        ok = false;
      } else seen.set(core, pathText(cpath));
      return [core];
    });
  });
  return ok ? groups : undefined;
}

function checkPhynodeRefs(d: Diagnostics, raw: RawDuneFile, nodes: Node[], phynodes: Phynode[]): void {
  const names = phynodes.map((p) => p.name);
  for (const n of nodes) {
    if (n.phynode === undefined || names.includes(n.phynode)) continue;
    const at = raw.nodes?.find((r) => r.id === n.id)?.phynode?.loc ?? n.loc;
    const declaredHere = raw.phynodes !== undefined && raw.phynodes.length > 0;
    d.error('unknown-phynode', `node "${n.id}" is placed on phynode "${n.phynode}", which [infrastructure.nodes] does not declare`, at,
      declaredHere ? choicesHint(n.phynode, names) : `declare it as [infrastructure.nodes.${pathText([n.phynode])}], or leave phynode out to run on this machine`);
  }
}

/**
 * Addresses for an interface no link gives the node are an error, unless some of the node's
 * endpoints leave the interface name to the compiler (the name is not known yet).
 */
function checkAddrInterfaces(d: Diagnostics, raw: RawDuneFile, nodes: Node[], links: Topology['links']): void {
  const ifaces = new Map<string, Set<string>>();
  const unnamed = new Set<string>();
  for (const l of links) {
    for (const e of [l.a, l.b]) {
      if (e.iface === undefined) unnamed.add(e.node);
      else ifaces.set(e.node, (ifaces.get(e.node) ?? new Set()).add(e.iface));
    }
  }
  for (const n of nodes) {
    if (unnamed.has(n.id)) continue;
    const known = ['lo', ...(ifaces.get(n.id) ?? [])];
    for (const iface of Object.keys(n.addrs)) {
      if (known.includes(iface)) continue;
      const entry = raw.nodes?.find((r) => r.id === n.id)?.addrs?.entries.find((e) => e.key === iface);
      d.error('unknown-interface', `node "${n.id}" has addresses for interface "${iface}", but no link gives it that interface`, entry?.keyLoc ?? n.loc,
        nearest(iface, known) ? choicesHint(iface, known) : `its interfaces are ${known.join(', ')}`);
    }
  }
}
