import type { Topology } from './model.js';
import { DuneError } from './errors.js';

export const GRAPHML_UNITS = ['shadow', 'KiB', 'modelnet', 'Kb'] as const;
export type GraphmlUnits = (typeof GRAPHML_UNITS)[number];

export interface GraphmlOptions {
  lab?: string;
  /** How node bandwidthup/down are read: shadow/KiB = KiB/s, modelnet/Kb = Kbit/s. Default shadow. */
  units?: GraphmlUnits;
  /** A node is a client iff its `type` equals this; absent: every node is a client. */
  clientType?: string;
  /** Edge attribute for shortest paths (default `latency`). */
  weight?: string;
}

/** GraphML (NetMirage/Shadow or Topology Zoo) text → resolved Topology. */
export function parseGraphml(_text: string, file: string, _opts: GraphmlOptions = {}): Topology {
  throw new DuneError('not-implemented', `reading ${file}: the GraphML reader is not written yet`);
}
