/**
 * The part every layer-2 kind shares: a Linux bridge in the node's namespace (STP off,
 * forward delay 0, as nemu's Switch: ports forward at once) with every link end enslaved.
 * No addresses, no forwarding sysctls, no routes. Bricks (diode, firewall, antispoof) add
 * their `filters` phase to these.
 */
import type { NodeKindDef, NodePhase, PhaseHook } from './types.js';

export function bridgePhases<O>(ageingTimeCs?: number): { [P in Extract<NodePhase, 'devices' | 'enslave' | 'up'>]: PhaseHook<O> } {
  return {
    devices(n, out) {
      out.push({ op: 'bridge', ns: n.ns, name: n.bridge, alias: n.alias(n.bridge), ...(ageingTimeCs !== undefined ? { ageingTimeCs } : {}) });
    },
    enslave(n, out) {
      for (const i of n.ports) out.push({ op: 'enslave', ns: n.ns, dev: i.name, master: n.bridge });
    },
    up(n, out) {
      out.push({ dev: n.bridge, ns: n.ns, op: 'up' });
      for (const i of n.ports) out.push({ dev: i.name, ns: n.ns, op: 'up' });
    },
  };
}

export type L2KindDef<O> = NodeKindDef<O> & { layer: 2 };
