/** @dune/netmirage: NetMirage's core and edge on dune's compiler and agent. */
export * from './core.js';
export * from './edge.js';
export * from './setup-file.js';
export { buildCoreProgram, coreMain, parseEdgeNode } from './core-cli.js';
export { buildEdgeProgram, edgeMain } from './edge-cli.js';
export type { Io } from './io.js';
