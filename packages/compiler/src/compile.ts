/**
 * Topology → Plan, as a pipeline of small pure stages:
 *
 *   check ends, kind names ─► interfaces ─► graph ─► L2 segments ─► addresses ─► kinds' keys
 *     ─► weights ─► placement ─► carriers (link kinds)
 *     ─► source files ─► (errors so far) ─► templates ─► (errors) ─► routes ─► ops ─► Plan
 *
 * Each stage adds its problems to one Diagnostics, so a run reports every error it can
 * find before it stops; stages after a checkpoint rely on the ones before being valid.
 * The only I/O is `opts.readFile`.
 */
import { createHash } from 'node:crypto';
import type { Diagnostic, Topology } from '@dune/topology';
import { choicesHint, Diagnostics, sortDiagnostics } from '@dune/topology';
import { assignAddresses } from './addressing.js';
import { birdDaemons } from './bird.js';
import { buildNetworkGraph } from './graph.js';
import { hostsFiles } from './hosts.js';
import { assignInterfaces, describeLink } from './interfaces.js';
import { planLinks } from './links.js';
import { labName, nodeKeys, nsName, nsPrefix } from './naming.js';
import { assemble } from './ops.js';
import { place } from './placement.js';
import { canonicalJson, PLAN_FORMAT, type ImpairmentEngineSettings, type Plan } from './plan.js';
import { chooseWeights, computeRoutes } from './routing.js';
import { findSegments } from './segments.js';
import { readKinds } from './kinds/check.js';
import { checkKindNames } from './kinds/nodes/index.js';
import { planEvents } from './events.js';
import { planTraces, type PlanTrace } from './traces.js';
import { checkSources, renderNodes, Sources } from './template.js';

export interface CompileOptions {
  /** Reads a template or bind source file (paths already resolved against the topology's baseDir). */
  readFile?: (path: string) => Buffer;
  /** Lab name override. */
  lab?: string;
  /**
   * sha256 (hex) of the topology file's text, for `plan.source`. Without it, the hash of the
   * topology model's canonical JSON is used.
   */
  sourceSha256?: string;
  /**
   * Namespace names are `<nsPrefix><node-key>` instead of `dune.<lab>.<node-key>` (NetMirage
   * mode: `nm-<node>`). Teardown then goes by this prefix plus the `dune:<lab>:` mark on lo,
   * which every namespace still carries.
   */
  nsPrefix?: string;
  /**
   * Whoever compiles applies NetMirage client shaping itself (netmirage mode builds the
   * client↔root link): no `shaping-not-applied` warning.
   */
  clientShapingApplied?: boolean;
  /** Pinned processes may share cores when there are not enough (a warning says so). */
  overcommit?: boolean;
}

export interface CompileResult {
  plan: Plan;
  /** Warnings and notes (errors are thrown as a TopologyError), sorted. */
  diagnostics: Diagnostic[];
}

/** Topology → Plan: addresses, names, routes, placement, operations. Pure: no I/O but readFile. */
export function compile(topo: Topology, opts: CompileOptions = {}): Plan {
  return compileWithDiagnostics(topo, opts).plan;
}

/** `compile`, also returning the warnings and notes it found. Throws TopologyError on any error. */
export function compileWithDiagnostics(topo: Topology, opts: CompileOptions = {}): CompileResult {
  const diags = new Diagnostics();
  const lab = labName(opts.lab ?? topo.lab.name);

  const nodeIndex = indexNodes(topo, diags);
  checkKindNames(topo.nodes, diags);
  diags.throwIfErrors();

  const keyOf = nodeKeys(topo.nodes.map((n) => n.id));
  const keys = topo.nodes.map((n) => keyOf.get(n.id) as string);
  const ns = keys.map((k) => (opts.nsPrefix === undefined ? nsName(lab, k) : `${opts.nsPrefix}${k}`));

  const ifs = assignInterfaces(topo, nodeIndex, diags);
  const net = buildNetworkGraph(topo, nodeIndex);
  const segs = findSegments(topo, net, diags);
  const addr = assignAddresses(topo, ifs, segs, diags);
  const kinds = readKinds({ topo, ifs, net, segs, addr }, diags);
  const weights = topo.lab.routing !== 'none' ? chooseWeights(topo, diags) : undefined;
  if (!opts.clientShapingApplied) warnShaping(topo, diags);
  const placement = place(topo, net, diags, { overcommit: opts.overcommit === true });
  const carriers = planLinks(topo, net, placement, diags);
  const sources = new Sources(topo.baseDir, opts.readFile);
  checkSources(topo, sources, diags);
  diags.throwIfErrors();

  const rendered = renderNodes({ topo, lab, keys, ns, ifs, addr, placement, mtu: carriers.mtu }, sources, diags);
  diags.throwIfErrors();
  // Names resolve inside every node; a node's own template for the same path wins.
  const hosts = hostsFiles(topo, lab, keys, ns, addr, segs);
  hosts.files.forEach((f, v) => {
    const mine = rendered.files[v];
    if (mine !== undefined && !mine.some((x) => x.path === f.path)) mine.unshift(f);
  });

  // Routing daemons: their configurations and processes, before the user's own.
  if (weights && (topo.lab.routing === 'ospf' || topo.lab.routing === 'bgp')) {
    const d = birdDaemons({ topo, keys, ns, ifs, addr, net, segs, weights }, diags);
    diags.throwIfErrors();
    d.files.forEach((f, v) => rendered.files[v]?.unshift(...f));
    d.processes.forEach((p, v) => rendered.processes[v]?.unshift(...p));
  }
  const routes = weights && topo.lab.routing === 'static' ? computeRoutes({ topo, net, ifs, addr, ns, segs }, weights, diags) : undefined;
  const assembled = assemble({ topo, lab, keys, ns, ifs, addr, net, placement, carriers, routes, rendered, segs, kinds });
  const events = planEvents(topo, assembled.links, diags);
  const traces = planTraces(topo, assembled.links, diags);
  diags.throwIfErrors();
  const diagnostics = sortDiagnostics([...diags.items]);
  assembled.stats['warnings'] = diagnostics.filter((d) => d.severity === 'warning').length;

  const plan: Plan = {
    format: PLAN_FORMAT,
    lab,
    nsPrefix: opts.nsPrefix ?? nsPrefix(lab),
    source: { file: topo.file, format: topo.format, sha256: withTraceContents(opts.sourceSha256 ?? topologySha256(topo), traces, topo.file, opts.readFile) },
    nodes: assembled.nodes,
    links: assembled.links,
    hosts: assembled.hosts,
    stats: assembled.stats,
    blobs: hosts.blobs,
    ...(topo.lab.impairmentBackend !== 'auto' ? { impairmentBackend: topo.lab.impairmentBackend } : {}),
    ...impairmentEngine(topo),
    ...(events.length > 0 ? { events } : {}),
    ...(traces.length > 0 ? { traces } : {}),
  };
  return { plan, diagnostics };
}

/**
 * The userspace engine's settings, carried only where they differ from the engine's default
 * (one thread, fail closed): a lab that spells out the defaults has the same plan as one that does not.
 */
function impairmentEngine(topo: Topology): { impairmentEngine?: ImpairmentEngineSettings } {
  const { impairmentEngineThreads: threads, impairmentEngineFailOpen: failOpen } = topo.lab;
  const e: ImpairmentEngineSettings = {
    ...(threads !== undefined && threads !== 1 ? { threads } : {}),
    ...(failOpen === true ? { failOpen: true } : {}),
  };
  return Object.keys(e).length > 0 ? { impairmentEngine: e } : {};
}

/** Node positions by id; duplicate ids and links to unknown nodes are errors. */
function indexNodes(topo: Topology, diags: Diagnostics): Map<string, number> {
  const index = new Map<string, number>();
  topo.nodes.forEach((node, i) => {
    if (index.has(node.id)) {
      diags.error('duplicate-node', `node "${node.id}" is declared twice`, node.loc, 'give each node its own id');
      return;
    }
    index.set(node.id, i);
  });
  const ids = [...index.keys()];
  for (const link of topo.links) {
    for (const e of [link.a, link.b]) {
      if (!index.has(e.node)) {
        diags.error('unknown-node', `${describeLink(link)} ends at node "${e.node}", which is not declared`, e.loc ?? link.loc, choicesHint(e.node, ids.length > 20 ? ids.slice(0, 20) : ids));
      }
    }
  }
  return index;
}

/**
 * NetMirage's client shaping lives on the client↔core link of its edge/core split, which
 * this compiler does not build (every node is a namespace with its own links). Say so
 * rather than drop it silently.
 */
function warnShaping(topo: Topology, diags: Diagnostics): void {
  const shaped = topo.nodes.filter((n) => n.shaping !== undefined && Object.values(n.shaping).some((v) => v !== undefined));
  if (shaped.length === 0) return;
  const shown = shaped.slice(0, 5).map((n) => JSON.stringify(n.id)).join(', ');
  diags.warning(
    'shaping-not-applied',
    `${shaped.length} client node${shaped.length === 1 ? '' : 's'} (${shown}${shaped.length > 5 ? ', …' : ''}) carry NetMirage shaping (bandwidthup/bandwidthdown, node packetloss, self-loop) that is not applied: there is no client↔core link to put it on`,
    shaped[0]?.loc,
    'put the limits on the links to those nodes instead',
  );
}

/**
 * The source's checksum extended by the contents of the trace files it names (a changed trace
 * is a changed lab, though the topology's text is the same); unchanged without traces. A trace
 * that cannot be read here counts by what the plan carries of it.
 */
export function withTraceContents(sha256: string, traces: readonly PlanTrace[], topologyFile: string, readFile?: (path: string) => Buffer): string {
  const files = [...new Set(traces.map((t) => t.file).filter((f) => f !== topologyFile))].sort();
  if (files.length === 0) return sha256;
  const h = createHash('sha256').update(sha256);
  for (const f of files) {
    let content: Buffer | string;
    try {
      if (readFile === undefined) throw new Error('no readFile');
      content = readFile(f);
    } catch {
      content = JSON.stringify(traces.filter((t) => t.file === f));
    }
    h.update(`\0${f}\0${createHash('sha256').update(content).digest('hex')}`);
  }
  return h.digest('hex');
}

/** sha256 of the topology's canonical JSON (keys sorted), for plans compiled without the file text. */
export function topologySha256(topo: Topology): string {
  return createHash('sha256').update(JSON.stringify(canonicalJson(topo))).digest('hex');
}

