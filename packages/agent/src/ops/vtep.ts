/**
 * `vtep`: a VXLAN device into a fabric outside the lab (a `vtep` brick). Like a `vxlan` link
 * it is created from the host namespace (its UDP socket and underlay stay there) and moved
 * into the brick's; unlike one it learns MACs, may join a multicast group, and keeps the VNI
 * it was given (vni.ts never reallocates it: the fabric fixes it). Both are made by
 * vxlan.ts's createFromHost.
 */
import type { VtepOp } from '@dune/compiler';
import { devCounters } from './devcount.js';
import { opKind } from './types.js';
import { deleteIfThere } from './undo.js';
import { createFromHost } from './vxlan.js';

const describe = (op: VtepOp) => `vtep ${op.ns}/${op.name} (vni ${op.vni}, ${op.local ?? 'any'} -> ${op.remote}:${op.port}${op.underlayDev ? ` dev ${op.underlayDev}` : ''})`;

export const vtep = opKind('vtep', {
  describe,
  key: (op) => `link ${op.ns}/${op.name}`,
  nss: (op) => [op.ns],
  creates: (op) => [`${op.ns}/${op.name}`],
  undoRank: 90,
  diesWithNs: true,
  apply: {
    stage: 'link',
    create(x, ref, s) {
      createFromHost(x, ref, s, describe(x), "set the vtep's dev to an interface of this host that reaches the fabric (`ip link`)", x.mtu !== undefined ? { mtu: x.mtu } : {}, {
        vni: x.vni,
        local: x.local ?? '',
        remote: x.remote,
        port: x.port,
        learning: true,
        ...(x.ttl !== undefined ? { ttl: x.ttl } : {}),
      });
    },
  },
  undo: { order: 20, queue: (op, s, index) => deleteIfThere(op, op.name, s, index) },
  counters: (op) => devCounters(op.ns, op.name, op.node, {
    tx: `${op.name} (vni ${op.vni} → ${op.remote}:${op.port}): frames into the fabric`,
    rx: `${op.name} (vni ${op.vni}): frames from the fabric`,
  }),
});
