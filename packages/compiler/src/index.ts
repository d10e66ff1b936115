export * from './plan.js';
export * from './compile.js';
export * from './naming.js';
export { summarizePlan } from './summary.js';
export type { PlanEvent } from './events.js';
export type { PlanTrace } from './traces.js';
export * as cidr from './cidr.js';
// `export *`, not a named re-export: with a named one esbuild keeps the whole compiler (graphology,
// nunjucks) in the agent's bundle, which uses the serialiser (transport scripts/bundle-agent.mjs).
export * from './serialize.js';
export * from './synthetic.js';
export * from './netmirage.js';
export * from './vni.js';
export { FIRST_VNI } from './links.js';
export { hostNames, netnsEtcPath } from './hosts.js';
export { nodeKinds, NODE_KIND_NAMES, DEFAULT_NODE_KIND, isNodeKind, isL2Kind, kindOf, bridgePhases, nodeKind, NODE_PHASES, readFirewall, firewallOp, describeRule, FIREWALL_KEYS, RULE_KEYS, BRICK_TABLE, BRICK_INET_TABLE, CAPTURE_KEYS, NIC_KEYS, TAP_KEYS, VTEP_KEYS, VTEP_DEV, type FirewallSpec, type FirewallRule, type NodeKind, type NodeKindDef, type KindNode, type KindCheck, type KindPort, type NodePhase } from './kinds/nodes/index.js';
export { linkKinds, LINK_KIND_NAMES, type LinkKind, type LinkKindDef } from './kinds/links/index.js';
