/** `veth`: a pair, each end created straight into its namespace. */
import { newVeth, type LinkSpec } from '../netlink/link.js';
import { deleteIfThere } from './undo.js';
import { opKind } from './types.js';

export const veth = opKind('veth', {
  describe: (op) => `veth ${op.ns}/${op.name} <-> ${op.peerNs}/${op.peerName}`,
  key: (op) => `link ${op.ns}/${op.name}`,
  nss: (op) => [op.ns, op.peerNs],
  creates: (op) => [`${op.ns}/${op.name}`, `${op.peerNs}/${op.peerName}`],
  undoRank: 100,
  diesWithNs: true,
  apply: {
    stage: 'link',
    create(v, ref, s) {
      const [ca, ia] = s.allocIndex(v.ns, v, v.name);
      const [cb, ib] = s.allocIndex(v.peerNs, v, v.peerName);
      // Sent from a socket inside the first end's own namespace, with no IFLA_NET_NS_FD for
      // it: before Linux 6.x's fix, rtnl_newlink looks an explicit ifi_index up in the
      // *requesting* socket's namespace, so from the host socket index 2 (the host's eth0)
      // made Debian 12's 6.1 kernel answer EEXIST. The peer's index is checked where it goes.
      const sa: LinkSpec = { name: v.name, index: ia, ...(v.mtu ? { mtu: v.mtu } : {}), ...(v.mac ? { mac: v.mac } : {}) };
      const sb = s.spec(cb, ib, v.peerName, { ...(v.mtu ? { mtu: v.mtu } : {}), ...(v.peerMac ? { mac: v.peerMac } : {}) });
      s.create(ca, ref, (w, seq) => newVeth(w, seq, sa, sb));
      s.alias(ca, ia, v.alias, ref, v.name);
      s.alias(cb, ib, v.peerAlias, ref, v.peerName, true);
      if (ca === s.hostCtx()) s.createdOnHost(v.name, ref);
      if (cb === s.hostCtx()) s.createdOnHost(v.peerName, ref);
    },
  },
  undo: { order: 30, queue: (op, s, index) => deleteIfThere(op, op.name, s, index) },
});
