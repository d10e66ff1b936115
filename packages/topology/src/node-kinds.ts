/**
 * Node kinds: one table keyed by name, the type derived from it (DESIGN.md, "Kinds").
 *
 * - `router` (the default): a namespace with an address on every link end, forwarding on,
 *   static routes to every other router.
 * - `switch`: a namespace holding one Linux bridge (stp off, forward delay 0, as nemu's
 *   Switch) with every link end enslaved; no addresses, no routes. The routers reached
 *   through a connected group of switches share one L2 segment and one subnet.
 * - `hub`: a switch whose bridge forgets every MAC at once (ageing time 0), so it floods
 *   every frame to every port, like Packetgraph's hub brick.
 */
export const nodeKinds = {
  router: { layer: 3, description: 'routes between its links (the default)' },
  switch: { layer: 2, description: 'a learning L2 switch (Linux bridge)', bridgeAgeingTimeCs: undefined },
  hub: { layer: 2, description: 'an L2 hub: floods every frame (bridge ageing time 0)', bridgeAgeingTimeCs: 0 },
} as const satisfies Record<string, { layer: 2 | 3; description: string; bridgeAgeingTimeCs?: number | undefined }>;

export type NodeKind = keyof typeof nodeKinds;

export const NODE_KIND_NAMES = Object.keys(nodeKinds) as NodeKind[];

export const DEFAULT_NODE_KIND: NodeKind = 'router';

export function isNodeKind(name: string): name is NodeKind {
  return Object.hasOwn(nodeKinds, name);
}

/** Whether nodes of this kind are L2 devices (no addresses, no routes, part of a segment). */
export function isL2Kind(kind: NodeKind | undefined): boolean {
  return nodeKinds[kind ?? DEFAULT_NODE_KIND].layer === 2;
}

/** The bridge's ageing time (centiseconds, the kernel's clock_t) for an L2 kind; undefined: the kernel default. */
export function bridgeAgeingTimeCs(kind: NodeKind | undefined): number | undefined {
  const k = nodeKinds[kind ?? DEFAULT_NODE_KIND];
  return 'bridgeAgeingTimeCs' in k ? k.bridgeAgeingTimeCs : undefined;
}
