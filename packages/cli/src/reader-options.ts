import { Command, Option } from 'commander';
import { GRAPHML_UNITS, NODE_NAMES, ROUTING_MODES, type GraphmlUnits, type NodeNames, type RoutingMode } from '@dune/topology';
import type { LoadOptions } from '@dune/lab';

export interface ReaderFlags {
  units?: GraphmlUnits;
  clientType?: string;
  weight?: string;
  lab?: string;
  names?: NodeNames;
  overcommit?: boolean;
  routing?: RoutingMode;
}

export function readerOptions(f: ReaderFlags): LoadOptions {
  const o: LoadOptions = {};
  if (f.units !== undefined) o.units = f.units;
  if (f.clientType !== undefined) o.clientType = f.clientType;
  if (f.weight !== undefined) o.weight = f.weight;
  if (f.lab !== undefined) o.lab = f.lab;
  if (f.names !== undefined) o.names = f.names;
  if (f.overcommit === true) o.overcommit = true;
  if (f.routing !== undefined) o.routing = f.routing;
  return o;
}

export function addReaderOptions(c: Command): Command {
  return c
    .addOption(new Option('-u, --units <units>', 'GraphML node bandwidth units').choices([...GRAPHML_UNITS]).default(undefined))
    .option('--client-type <type>', 'GraphML: a node is a client iff its `type` equals this (default: every node)')
    .option('-w, --weight <key>', 'routing weight: latency, hops, or a numeric link attribute')
    .option('--lab <name>', 'lab name (default: the file name without extension)')
    .addOption(new Option('--names <how>', 'GraphML: name nodes by their `id` or by their Topology Zoo `label` (the id stays accepted)').choices([...NODE_NAMES]).default(undefined))
    .addOption(new Option('--routing <mode>', "routing: static routes, BIRD's OSPF or BGP in every router, or none (overrides the file)").choices([...ROUTING_MODES]).default(undefined))
    .option('--overcommit', 'let pinned processes share cores when the phynodes have too few (a warning says so)');
}

