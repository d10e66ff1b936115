import type { Topology } from './model.js';
import { DuneError } from './errors.js';

export interface DuneTomlOptions {
  /** Lab name override (default: the file's base name). */
  lab?: string;
}

/** DUNE TOML text → resolved Topology. Throws TopologyError with every problem found. */
export function parseDuneToml(_text: string, file: string, _opts: DuneTomlOptions = {}): Topology {
  throw new DuneError('not-implemented', `reading ${file}: the TOML reader is not written yet`);
}
