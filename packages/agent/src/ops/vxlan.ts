/** `vxlan`: created from the host namespace (its UDP socket stays there), moved into the node's. */
import type { VxlanOp } from '@dune/compiler';
import { ApplyError } from '../errors.js';
import { newVxlan } from '../netlink/link.js';
import { opKind } from './types.js';
import { deleteIfThere } from './undo.js';

const describe = (op: VxlanOp) => `vxlan ${op.ns}/${op.name} (vni ${op.vni}, ${op.local} -> ${op.remote}:${op.port})`;

export const vxlan = opKind('vxlan', {
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
      // The host socket must send it (the UDP socket lives where the request comes from).
      // Older kernels look an explicit ifi_index up in the requesting namespace (see veth),
      // so the index must be free in the host's namespace as well as in the node's.
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
            hint: 'check the phynode\'s `iface` (the underlay interface) on this host',
          });
        }
      }
      const spec = {
        ...s.spec(c, idx, x.name, { mtu: x.mtu, ...(x.mac ? { mac: x.mac } : {}) }),
        vni: x.vni,
        local: x.local,
        remote: x.remote,
        port: x.port,
        ...(underlayIndex !== undefined ? { underlayIndex } : {}),
      };
      // Sent on the host's socket: the VXLAN UDP socket belongs to the creating namespace.
      s.create(host, ref, (w, seq) => newVxlan(w, seq, spec));
      s.alias(c, idx, x.alias, ref, x.name);
      if (c === host) s.createdOnHost(x.name, ref);
    },
  },
  undo: { order: 20, queue: (op, s, index) => deleteIfThere(op, op.name, s, index) },
});
