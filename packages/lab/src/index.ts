/**
 * @dune/lab: the lab as a library, and the engine every front end stands on.
 *
 *   import { Lab } from '@dune/lab';
 *   const lab = new Lab({ name: 'demo' });
 *   const a = lab.node('a'), b = lab.node('b');
 *   lab.link(a, b, { latency: '5ms' });
 *   await lab.up();
 *   console.log((await a.run(['ping', '-c', '1', b.address(4)])).stdout);
 *   await lab.down();
 */
export { Lab, LabNode, LabLink, LabInterface, type LabOptions, type NodeOptions, type LinkSettings, type SpawnOptions, type RunOptions, type RouteSpec, type HostSpec, type SshSettings, type LabEvent } from './lab.js';
export { LabProcess, type RunResult } from './process.js';
export * from './engine.js';
export * from './faults.js';
export * from './traces.js';
export * from './bricks.js';
export * from './graph/index.js';
export { startUi, type UiOptions, type UiServer } from './ui/server.js';
export { compileLoaded, loadTopology, type Loaded, type LoadOptions, type Compiled } from './load.js';
export { DEFAULT_TOPOLOGY, DEFAULT_TOPOLOGY_FILE } from './default-topology.js';
export type { LabStatus, LabLinkStatus, DownResult, UpResult, LabEvent as HostLabEvent, PreflightResult, NodeRoute, DaemonState } from '@dune/agent';
export { requireRoot } from '@dune/agent';
export type { ExitStatus } from '@dune/transport';
export type { Plan, PlanEvent, PlanTrace } from '@dune/compiler';
export { DuneError, TopologyError, type Diagnostic } from '@dune/topology';
export * from './k8s.js';
