/** `veth`: both ends on one phynode: one veth pair, created straight into the two namespaces. */
import type { LinkKindDef } from './types.js';

export const DEFAULT_MTU = 1500;

export const veth: LinkKindDef = {
  description: 'a veth pair (both ends on one phynode)',
  fits: (l) => l.sameHost,
  defaultMtu: DEFAULT_MTU,
  ops(l, out) {
    const { a, b } = l.ends;
    out.push({
      op: 'veth',
      ns: a.ns,
      name: a.dev,
      peerNs: b.ns,
      peerName: b.dev,
      ...(l.link.mtu !== undefined ? { mtu: l.link.mtu } : {}),
      ...(a.mac !== undefined ? { mac: a.mac } : {}),
      ...(b.mac !== undefined ? { peerMac: b.mac } : {}),
      alias: a.alias,
      peerAlias: b.alias,
    });
  },
};
