/**
 * Node kinds: one table keyed by name, the type derived from it (DESIGN.md, "Kinds").
 *
 * Adding a kind is one file in this folder plus one line in `nodeKinds` below:
 *
 *   // kinds/nodes/blackhole.ts: a switch that swallows every frame and counts it
 *   export const blackhole = nodeKind({
 *     description: 'swallows every frame and counts it',
 *     layer: 2,
 *     phases: { ...bridgePhases(), filters: (n, out) => out.push(brickOp(n, [BRICK_TABLE], [...], counters)) },
 *   });
 *
 *   // here, in nodeKinds:  blackhole,
 *
 * (docs/kinds.md has it whole; diode.ts, firewall.ts and antispoof.ts read keys of their own.)
 * The contract (types.ts): `layer` says whether the node routes (3) or carries frames (2,
 * part of an L2 segment); `options` reads the kind's keys; each phase hook pushes the node's
 * ops for that phase of the host's op list. Nothing else in the compiler or the agent names
 * a kind: they ask this table.
 */
import type { Diagnostics, Node } from '@dune/topology';
import { choicesHint } from '@dune/topology';
import { antispoof } from './antispoof.js';
import { capture } from './capture.js';
import { diode } from './diode.js';
import { firewall } from './firewall.js';
import { hub } from './hub.js';
import { nic } from './nic.js';
import { router } from './router.js';
import { switchKind } from './switch.js';
import { tap } from './tap.js';
import type { NodeKindDef } from './types.js';
import { vhost } from './vhost.js';
import { vtep } from './vtep.js';

export const nodeKinds = {
  router,
  switch: switchKind,
  hub,
  diode,
  firewall,
  antispoof,
  vtep,
  nic,
  tap,
  vhost,
  capture,
} as const satisfies Record<string, Pick<NodeKindDef, 'description' | 'layer'>>;

export type NodeKind = keyof typeof nodeKinds;

export const NODE_KIND_NAMES = Object.keys(nodeKinds) as NodeKind[];

export const DEFAULT_NODE_KIND: NodeKind = 'router';

export function isNodeKind(name: string): name is NodeKind {
  return Object.hasOwn(nodeKinds, name);
}

/** The node's kind definition (an unknown kind, already reported by checkKindNames, as a router). */
export function kindOf(node: Pick<Node, 'kind'>): NodeKindDef<unknown> {
  const k = node.kind ?? DEFAULT_NODE_KIND;
  return (isNodeKind(k) ? nodeKinds[k] : router) as NodeKindDef<unknown>;
}

/** Whether nodes of this kind are L2 devices (no addresses, no routes, part of a segment). */
export function isL2Kind(kind: string | undefined): boolean {
  return kindOf({ kind }).layer === 2;
}

/** An unknown kind names the known ones and the nearest, where it was written. */
export function checkKindNames(nodes: readonly Node[], diags: Diagnostics): void {
  for (const node of nodes) {
    if (node.kind === undefined || isNodeKind(node.kind)) continue;
    diags.error('unknown-kind', `node kind "${node.kind}" (node "${node.id}") is not supported; the kinds are ${NODE_KIND_NAMES.join(', ')}`,
      node.kindLoc ?? node.loc, choicesHint(node.kind, NODE_KIND_NAMES));
  }
}

export * from './types.js';
export { bridgePhases } from './bridge.js';
export { readFirewall, firewallOp, describeRule, FIREWALL_KEYS, RULE_KEYS, type FirewallSpec, type FirewallRule } from './firewall-rules.js';
export { BRICK_TABLE, BRICK_INET_TABLE } from './nft.js';
export { VTEP_DEV, VTEP_KEYS } from './vtep.js';
export { NIC_KEYS } from './nic.js';
export { TAP_KEYS } from './tap.js';
export { CAPTURE_KEYS, captureFile, defaultCaptureDir } from './capture.js';
