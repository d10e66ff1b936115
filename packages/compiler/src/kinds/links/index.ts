/**
 * Link kinds: how a link is carried, one table keyed by name (DESIGN.md, "Kinds").
 *
 * A link gets the first kind, in table order, whose `fits` accepts it. Adding a kind is one
 * file here (types.ts: `fits`, `defaultMtu`, optional `vni` and `check`, and `ops`, the
 * devices it makes on each host) plus one line in `linkKinds`; put it before the kinds it
 * should win over.
 */
import type { LinkKindDef } from './types.js';
import { veth } from './veth.js';
import { vxlan } from './vxlan.js';

export const linkKinds = {
  veth,
  vxlan,
} as const satisfies Record<string, LinkKindDef>;

export type LinkKind = keyof typeof linkKinds;

export const LINK_KIND_NAMES = Object.keys(linkKinds) as LinkKind[];

export * from './types.js';
export { DEFAULT_MTU } from './veth.js';
export { VXLAN_DEFAULT_MTU } from './vxlan.js';
