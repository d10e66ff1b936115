/**
 * `tap`: a persistent TAP device on a bridge with the brick's links, so a QEMU VM (or any
 * program opening /dev/net/tun) joins the lab's segment, like Packetgraph's tap brick:
 *
 *   [topology.nodes.vm1]
 *   kind = "tap"
 *   name = "tap0"            # the device (default tap0)
 *   owner = "qemu"           # user allowed to open it without root (optional); group too
 *   multi_queue = false      # IFF_MULTI_QUEUE (default false)
 *
 * The VM runs in the brick's namespace: `dune exec --lab L vm1 -- qemu-system-x86_64 ...
 * -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0`.
 * `vhost` (vhost.ts) is the same with IFF_VNET_HDR, as vhost-net needs.
 */
import type { TapOp } from '../../plan.js';
import { bridgePhases } from './bridge.js';
import { boolKey, ifNameKey, intKey, onlyKeys, strKey } from './keys.js';
import { nodeKind, type NodeKindDef } from './types.js';

export const TAP_KEYS = ['name', 'owner', 'group', 'multi_queue', 'mtu'] as const;

export type TapOptions = Omit<TapOp, 'op' | 'ns' | 'node' | 'alias' | 'master'> | undefined;

/** The tap kind, or its vhost-net capable variant (`vnetHdr`). */
export function tapKind(vnetHdr: boolean, description: string): NodeKindDef<TapOptions> {
  const bridge = bridgePhases<TapOptions>();
  return nodeKind<TapOptions>({
    description,
    layer: 2,
    keys: TAP_KEYS,
    ports: { min: 1 },
    options(c) {
      const ok = onlyKeys(c, TAP_KEYS);
      const name = c.ctx['name'] === undefined ? 'tap0' : ifNameKey(c, 'name', 'tap0', { ports: c.ports });
      if (name === 'tap0' && c.ctx['name'] === undefined && c.ports.some((p) => p.name === 'tap0')) {
        c.diags.error('name-taken', `node "${c.node.id}" has a link end named tap0, the name of its tap`, c.node.kindLoc ?? c.node.loc, 'name the tap: name = "tap1"');
        return undefined;
      }
      const owner = strKey(c, 'owner', 'qemu');
      const group = strKey(c, 'group', 'kvm');
      const multiQueue = boolKey(c, 'multi_queue', false);
      const mtu = intKey(c, 'mtu', 68, 65535);
      if (!ok || name === undefined) return undefined;
      return { name, vnetHdr, multiQueue, ...(owner !== undefined ? { owner } : {}), ...(group !== undefined ? { group } : {}), ...(mtu !== undefined ? { mtu } : {}) };
    },
    phases: {
      ...bridge,
      devices(n, out, stats) {
        bridge.devices?.(n, out, stats);
        // Made, enslaved and raised by its op once the bridge exists (ops/tap.ts in the agent).
        if (n.options !== undefined) out.push({ op: 'tap', ns: n.ns, node: n.node.id, ...n.options, alias: n.alias(n.options.name), master: n.bridge });
      },
    },
  });
}

export const tap = tapKind(false, 'a TAP device on a bridge with its links, for a VM or a program on /dev/net/tun');
