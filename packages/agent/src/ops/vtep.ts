/**
 * `vtep`: a VXLAN device into a fabric outside the lab (a `vtep` brick). Like a `vxlan` link
 * it is created from the host namespace (its UDP socket and underlay stay there) and moved
 * into the brick's; unlike one it learns MACs, may join a multicast group, and keeps the VNI
 * it was given (vni.ts never reallocates it: the fabric fixes it).
 */
import type { VtepOp } from '@dune/compiler';
import { ApplyError } from '../errors.js';
import { newVxlan } from '../netlink/link.js';
import { devCounters } from './devcount.js';
import { opKind } from './types.js';
import { deleteIfThere } from './undo.js';

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
      const host = s.hostCtx();
      const c = s.freeName(x.ns, x, x.name);
      // Sent on the host's socket, with an index free in both namespaces (see vxlan.ts).
      const idx = Math.max(s.nextIndex(c), s.nextIndex(host));
      s.reserve(c, x.name, idx);
      s.reserve(host, undefined, idx);
      let underlayIndex: number | undefined;
      if (x.underlayDev !== undefined) {
        underlayIndex = host.index(x.underlayDev);
        if (underlayIndex === undefined) {
          throw new ApplyError(`${describe(x)}: underlay device ${x.underlayDev} not found in ${host.name ?? 'the host namespace'}`, {
            op: x,
            errno: 19,
            journal: s.journal,
            hint: 'set the vtep\'s dev to an interface of this host that reaches the fabric (`ip link`)',
          });
        }
      }
      const spec = {
        ...s.spec(c, idx, x.name, x.mtu !== undefined ? { mtu: x.mtu } : {}),
        vni: x.vni,
        local: x.local ?? '',
        remote: x.remote,
        port: x.port,
        learning: true,
        ...(x.ttl !== undefined ? { ttl: x.ttl } : {}),
        ...(underlayIndex !== undefined ? { underlayIndex } : {}),
      };
      s.create(host, ref, (w, seq) => newVxlan(w, seq, spec));
      s.alias(c, idx, x.alias, ref, x.name);
      if (c === host) s.createdOnHost(x.name, ref);
    },
  },
  undo: { order: 20, queue: (op, s, index) => deleteIfThere(op, op.name, s, index) },
  counters: (op) => devCounters(op.ns, op.name, op.node, {
    tx: `${op.name} (vni ${op.vni} → ${op.remote}:${op.port}): frames into the fabric`,
    rx: `${op.name} (vni ${op.vni}): frames from the fabric`,
  }),
});
