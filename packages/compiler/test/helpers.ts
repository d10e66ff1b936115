/** Hand-built topologies for compiler tests, so they do not depend on the readers. */
import type { Endpoint, Impairment, LabSettings, Link, Node, Phynode, Pinned, Topology } from '@dune/topology';
import { DEFAULT_POOLS, splitCommand, TopologyError } from '@dune/topology';
import { compile, expandRouteTables, type CompileOptions, type Op, type Plan } from '../src/index.js';

export type EndSpec = string | { node: string; iface?: string; impairment?: Impairment; mac?: string; metric?: number };

export interface LinkSpec {
  mtu?: number;
  weights?: Record<string, number>;
  /** Sets weights.latency and both ends' delay. */
  latencyMs?: number;
  a?: Partial<Endpoint>;
  b?: Partial<Endpoint>;
}

const loc = (line: number) => ({ file: 'test.toml', line, col: 1 });

function end(spec: EndSpec): Endpoint {
  if (typeof spec !== 'string') return { impairment: {}, ...spec };
  const colon = spec.lastIndexOf(':');
  return colon < 0 ? { node: spec, impairment: {} } : { node: spec.slice(0, colon), iface: spec.slice(colon + 1), impairment: {} };
}

export function pinned(cmd: string, environ: Record<string, string> = {}, extra: Partial<Pinned> = {}): Pinned {
  const slots = new Set(['core_0']);
  for (const v of Object.values(environ)) for (const m of v.matchAll(/core_(\d+)/g)) slots.add(`core_${m[1]}`);
  return {
    cmd: { text: cmd, argv: splitCommand(cmd).argv },
    environ,
    preDown: [],
    postUp: [],
    coreSlots: [...slots].sort((a, b) => Number(a.slice(5)) - Number(b.slice(5))),
    ...extra,
  };
}

/** A command as the TOML reader makes it: split like sh would, templates left in the words. */
export function cmd(text: string) {
  return { text, argv: splitCommand(text).argv };
}

export class TopoBuilder {
  private readonly nodes: Node[] = [];
  private readonly links: Link[] = [];
  private readonly phys: Phynode[] = [];
  private labSettings: LabSettings;
  private line = 1;

  constructor(name = 'test') {
    this.labSettings = {
      name,
      routing: 'static',
      routingWeight: 'hops',
      routeTo: 'all-nodes',
      pools: { ...DEFAULT_POOLS },
      impairmentBackend: 'auto',
      vxlanPort: 4789,
    };
  }

  lab(settings: Partial<LabSettings>): this {
    this.labSettings = { ...this.labSettings, ...settings };
    return this;
  }

  node(id: string, extra: Partial<Node> = {}): this {
    this.nodes.push({
      id,
      sysctls: {},
      templates: [],
      binds: [],
      exec: [],
      pinned: [],
      addrs: {},
      ctx: {},
      client: false,
      loc: loc(this.line++),
      ...extra,
    });
    return this;
  }

  nodesNamed(...ids: string[]): this {
    for (const id of ids) this.node(id);
    return this;
  }

  link(a: EndSpec, b: EndSpec, spec: LinkSpec = {}): this {
    const ea = { ...end(a), ...spec.a };
    const eb = { ...end(b), ...spec.b };
    const weights = { ...spec.weights };
    if (spec.latencyMs !== undefined) {
      weights['latency'] = spec.latencyMs;
      ea.impairment = { ...ea.impairment, delayUs: spec.latencyMs * 1000 };
      eb.impairment = { ...eb.impairment, delayUs: spec.latencyMs * 1000 };
    }
    const link: Link = { index: this.links.length, a: ea, b: eb, weights, loc: loc(this.line++) };
    if (spec.mtu !== undefined) link.mtu = spec.mtu;
    this.links.push(link);
    return this;
  }

  /** A chain: ids[0] – ids[1] – … with `eth<N>` names left to the compiler. */
  chain(ids: string[], spec: LinkSpec = {}): this {
    for (let i = 0; i + 1 < ids.length; i++) this.link(ids[i] as string, ids[i + 1] as string, spec);
    return this;
  }

  phynode(name: string, extra: Partial<Phynode> = {}): this {
    this.phys.push({ name, binds: [], extra: {}, loc: loc(this.line++), ...extra });
    return this;
  }

  build(): Topology {
    return {
      format: 'dune-toml',
      file: 'test.toml',
      baseDir: '/topo',
      lab: this.labSettings,
      phynodes: this.phys,
      nodes: this.nodes,
      links: this.links,
      notes: [],
    };
  }
}

export function ops<K extends Op['op']>(plan: Plan, kind: K, host?: string): Extract<Op, { op: K }>[] {
  return plan.hosts
    .filter((h) => host === undefined || h.phynode === host)
    // Route tables (`routes` ops) as the route ops they stand for.
    .flatMap((h) => (kind === 'route' ? expandRouteTables(h.ops) : h.ops))
    .filter((o): o is Extract<Op, { op: K }> => o.op === kind);
}

/** The TopologyError a compile throws, or fails the test. */
export function compileError(t: Topology, opts: CompileOptions = {}): TopologyError {
  try {
    compile(t, opts);
  } catch (e) {
    if (e instanceof TopologyError) return e;
    throw e;
  }
  throw new Error('expected the compile to fail');
}

/** Route lookup: in node `node`, the route to `dst` → "via dev". */
export function routeOf(plan: Plan, node: string, dst: string): string | undefined {
  const ns = plan.nodes.find((n) => n.node === node)?.ns;
  const r = ops(plan, 'route').find((o) => o.ns === ns && o.dst === dst);
  return r ? `${r.via} ${r.dev}` : undefined;
}

export function nodeV4(plan: Plan, node: string): string {
  return `${plan.nodes.find((n) => n.node === node)?.v4}/32`;
}

export function nodeV6(plan: Plan, node: string): string {
  return `${plan.nodes.find((n) => n.node === node)?.v6}/128`;
}

/** The address of `node`'s end of the link to `peer` (first such link). */
export function linkAddr(plan: Plan, node: string, peer: string, family: 4 | 6): string {
  for (const l of plan.links) {
    if (l.a.node === node && l.b.node === peer) return (family === 4 ? l.a.v4 : l.a.v6) as string;
    if (l.b.node === node && l.a.node === peer) return (family === 4 ? l.b.v4 : l.b.v6) as string;
  }
  throw new Error(`no link ${node}–${peer}`);
}

export function devTo(plan: Plan, node: string, peer: string): string {
  for (const l of plan.links) {
    if (l.a.node === node && l.b.node === peer) return l.a.dev;
    if (l.b.node === node && l.a.node === peer) return l.b.dev;
  }
  throw new Error(`no link ${node}–${peer}`);
}

/** The file ops of templates and binds: without the hosts file every node gets. */
export function userFiles(plan: Plan): Extract<Op, { op: 'file' }>[] {
  return ops(plan, 'file').filter((f) => !f.path.startsWith('/etc/netns/'));
}
