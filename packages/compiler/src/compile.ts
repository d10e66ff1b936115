import type { Topology } from '@dune/topology';
import { DuneError } from '@dune/topology';
import type { Plan } from './plan.js';

export interface CompileOptions {
  /** Reads a template or bind source file (paths already resolved against the topology's baseDir). */
  readFile?: (path: string) => Buffer;
  /** Lab name override. */
  lab?: string;
}

/** Topology → Plan: addresses, names, routes, placement, operations. Pure: no I/O but readFile. */
export function compile(topo: Topology, _opts: CompileOptions = {}): Plan {
  throw new DuneError('not-implemented', `compiling ${topo.file}: the compiler is not written yet`);
}
