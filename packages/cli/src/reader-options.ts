import { Command, Option } from 'commander';
import { GRAPHML_UNITS, type GraphmlUnits } from '@dune/topology';
import type { LoadOptions } from '@dune/lab';

export interface ReaderFlags {
  units?: GraphmlUnits;
  clientType?: string;
  weight?: string;
  lab?: string;
}

export function readerOptions(f: ReaderFlags): LoadOptions {
  const o: LoadOptions = {};
  if (f.units !== undefined) o.units = f.units;
  if (f.clientType !== undefined) o.clientType = f.clientType;
  if (f.weight !== undefined) o.weight = f.weight;
  if (f.lab !== undefined) o.lab = f.lab;
  return o;
}

export function addReaderOptions(c: Command): Command {
  return c
    .addOption(new Option('-u, --units <units>', 'GraphML node bandwidth units').choices([...GRAPHML_UNITS]).default(undefined))
    .option('--client-type <type>', 'GraphML: a node is a client iff its `type` equals this (default: every node)')
    .option('-w, --weight <key>', 'routing weight: latency, hops, or a numeric link attribute')
    .option('--lab <name>', 'lab name (default: the file name without extension)');
}

