/** `vxlan`: created from the host namespace (its UDP socket stays there), moved into the node's. */
import type { VxlanOp } from '@dune/compiler';
import { ApplyError } from '../errors.js';
import { newVxlan, type LinkSpec, type VxlanSpec } from '../netlink/link.js';
import { opKind, type LinkStage, type Ref } from './types.js';
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
      createFromHost(x, ref, s, describe(x), "check the phynode's `iface` (the underlay interface) on this host", {
        ...(x.mtu !== undefined ? { mtu: x.mtu } : {}),
        ...(x.mac ? { mac: x.mac } : {}),
      }, { vni: x.vni, local: x.local, remote: x.remote, port: x.port });
    },
  },
  undo: { order: 20, queue: (op, s, index) => deleteIfThere(op, op.name, s, index) },
});

/**
 * A VXLAN device created from the host namespace and moved into `x.ns` (a lab's `vxlan` link
 * or a `vtep` brick). The host socket must send it (the UDP socket lives where the request
 * comes from). Older kernels look an explicit ifi_index up in the requesting namespace (see
 * veth), so the index must be free in the host's namespace as well as in the node's.
 */
export function createFromHost(
  x: { ns: string; name: string; alias: string; underlayDev?: string } & Parameters<LinkStage['freeName']>[1],
  ref: Ref,
  s: LinkStage,
  described: string,
  underlayHint: string,
  link: Partial<LinkSpec>,
  vxlan: Omit<VxlanSpec, keyof LinkSpec | 'underlayIndex'>,
): void {
  const host = s.hostCtx();
  const c = s.freeName(x.ns, x, x.name);
  const idx = Math.max(s.nextIndex(c), s.nextIndex(host));
  s.reserve(c, x.name, idx);
  s.reserve(host, undefined, idx);
  let underlayIndex: number | undefined;
  if (x.underlayDev !== undefined) {
    underlayIndex = host.index(x.underlayDev);
    if (underlayIndex === undefined) {
      throw new ApplyError(`${described}: underlay device ${x.underlayDev} not found in ${host.name ?? 'the host namespace'}`, {
        op: x,
        errno: 19,
        journal: s.journal,
        hint: underlayHint,
      });
    }
  }
  const spec: VxlanSpec = { ...s.spec(c, idx, x.name, link), ...vxlan, ...(underlayIndex !== undefined ? { underlayIndex } : {}) };
  s.create(host, ref, (w, seq) => newVxlan(w, seq, spec));
  s.alias(c, idx, x.alias, ref, x.name);
  if (c === host) s.createdOnHost(x.name, ref);
}
