/**
 * GraphML topologies: NetMirage/Shadow files and Topology Zoo files.
 *
 *   text ─ parseGraphmlRaw ─▶ RawGraph ─ resolveGraphml ─▶ Topology
 *          (graphml-parse.ts:           (graphml-resolve.ts:
 *           XML, keys, typed values,     clients, shaping, links,
 *           every value's line:col)      Zoo latencies from coordinates)
 *
 * Every problem of both stages is collected; one TopologyError reports them all.
 *
 * Routing weights: each link carries every numeric edge attribute in `weights` (latency in
 * ms). A link without the chosen weight attribute simply has no entry for it (a warning
 * counts them); what that means for routing is the compiler's decision.
 */
import { choicesHint, Diagnostics, sortDiagnostics, TopologyError } from './errors.js';
import type { Topology } from './model.js';
import { parseGraphmlRaw } from './graphml-parse.js';
import { HOPS_WEIGHT, NODE_NAMES, resolveGraphml, type GraphmlSettings, type NodeNames } from './graphml-resolve.js';

export { HOPS_WEIGHT, NODE_NAMES, type NodeNames };

export const GRAPHML_UNITS = ['shadow', 'KiB', 'modelnet', 'Kb'] as const;
export type GraphmlUnits = (typeof GRAPHML_UNITS)[number];

/** bit/s per unit of a node's bandwidthup/bandwidthdown (NetMirage's --units, applied for real). */
const UNIT_BITS_PER_SEC: Record<GraphmlUnits, { bits: number; name: string }> = {
  shadow: { bits: 1024 * 8, name: 'KiB/s' },
  KiB: { bits: 1024 * 8, name: 'KiB/s' },
  modelnet: { bits: 1000, name: 'Kbit/s' },
  Kb: { bits: 1000, name: 'Kbit/s' },
};

export interface GraphmlOptions {
  lab?: string;
  /** How node bandwidthup/down are read: shadow/KiB = KiB/s, modelnet/Kb = Kbit/s. Default shadow. */
  units?: GraphmlUnits;
  /** A node is a client iff its `type` equals this; absent: every node is a client. */
  clientType?: string;
  /** Edge attribute for shortest paths (default `latency`; `hops` needs no attribute). */
  weight?: string;
  /** `label`: Topology Zoo nodes named by their `label` (unique, kernel-safe); the id stays accepted. */
  names?: NodeNames;
}

/** GraphML (NetMirage/Shadow or Topology Zoo) text → resolved Topology. */
export function parseGraphml(text: string, file: string, opts: GraphmlOptions = {}): Topology {
  const diags = new Diagnostics();
  const settings = settingsOf(opts, diags);
  // A byte-order mark is invisible in editors: columns on line 1 are counted without it.
  const raw = parseGraphmlRaw(text.startsWith('\uFEFF') ? text.slice(1) : text, file, diags);
  if (raw === undefined || settings === undefined) {
    diags.throwIfErrors();
    throw new TopologyError(diags.items); // not reached: both return undefined only after an error
  }
  const topology = resolveGraphml(raw, settings, diags);
  diags.throwIfErrors();
  topology.notes = sortDiagnostics([...diags.items]);
  return topology;
}

function settingsOf(opts: GraphmlOptions, diags: Diagnostics): GraphmlSettings | undefined {
  const units = String(opts.units ?? 'shadow');
  const unit = Object.hasOwn(UNIT_BITS_PER_SEC, units) ? UNIT_BITS_PER_SEC[units as GraphmlUnits] : undefined;
  if (unit === undefined) {
    diags.error('bad-option', `the bandwidth units "${units}" are not known`, undefined, choicesHint(units, GRAPHML_UNITS));
    return undefined;
  }
  const weight = String(opts.weight ?? 'latency');
  if (weight === '') {
    diags.error('bad-option', 'the routing weight is empty', undefined, `name an edge attribute such as latency, or ${HOPS_WEIGHT}`);
    return undefined;
  }
  const names = String(opts.names ?? 'id');
  if (!(NODE_NAMES as readonly string[]).includes(names)) {
    diags.error('bad-option', `nodes cannot be named by "${names}"`, undefined, choicesHint(names, NODE_NAMES));
    return undefined;
  }
  const settings: GraphmlSettings = { bitsPerSecPerUnit: unit.bits, unitName: unit.name, weight };
  if (names === 'label') settings.names = 'label';
  if (opts.lab !== undefined) settings.lab = opts.lab;
  if (opts.clientType !== undefined) settings.clientType = opts.clientType;
  return settings;
}
