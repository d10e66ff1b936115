/** `addr`: an address with its prefix length on a device. */
import { newAddr } from '../netlink/addr-route.js';
import { addrMsg } from '../netlink/rule.js';
import { opKind } from './types.js';

export const addr = opKind('addr', {
  describe: (op) => `addr ${op.cidr} on ${op.ns}/${op.dev}`,
  key: (op) => `addr ${op.ns}/${op.dev}/${op.cidr}`,
  nss: (op) => [op.ns],
  on: (op) => `${op.ns}/${op.dev}`,
  undoRank: 50,
  diesWithNs: true,
  runtime: true,
  apply: {
    stage: 'socket',
    queue(op, ref, s) {
      const c = s.ctx(op.ns, op);
      const dev = s.devIndex(c, op.dev, op);
      if (op.noPrefixRoute === true) c.sock.queue(ref, (w, seq) => addrMsg(w, seq, { ifindex: dev, cidr: op.cidr, noPrefixRoute: true }));
      else c.sock.queue(ref, (w, seq) => newAddr(w, seq, dev, op.cidr));
    },
  },
  undo: {
    order: 10,
    queue(op, s, index) {
      const i = index.get(op.dev);
      if (i !== undefined) s.queue(op, (w, seq) => newAddr(w, seq, i, op.cidr, true));
    },
  },
});
