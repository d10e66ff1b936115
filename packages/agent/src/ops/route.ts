/** `route`: a route in the node's main table, out of a device (and via a gateway). */
import { newRoute } from '../netlink/addr-route.js';
import { opKind } from './types.js';

export const route = opKind('route', {
  describe: (op) => `route ${op.dst}${op.via ? ` via ${op.via}` : ''} dev ${op.dev} in ${op.ns}`,
  key: (op) => `route ${op.ns}/${op.dst}`,
  nss: (op) => [op.ns],
  on: (op) => `${op.ns}/${op.dev}`,
  undoRank: 40,
  diesWithNs: true,
  runtime: true,
  apply: {
    stage: 'socket',
    queue(op, ref, s) {
      const c = s.ctx(op.ns, op);
      const oif = s.devIndex(c, op.dev, op);
      c.sock.queue(ref, (w, seq) =>
        newRoute(w, seq, {
          dst: op.dst,
          oif,
          ...(op.via !== undefined ? { via: op.via } : {}),
          ...(op.metric !== undefined ? { metric: op.metric } : {}),
          ...(op.src !== undefined ? { src: op.src } : {}),
        }),
      );
    },
  },
  undo: {
    order: 0,
    queue(op, s, index) {
      const oif = index.get(op.dev);
      if (oif === undefined) return;
      s.queue(op, (w, seq) => newRoute(w, seq, { dst: op.dst, oif, ...(op.via !== undefined ? { via: op.via } : {}), ...(op.metric !== undefined ? { metric: op.metric } : {}) }, true));
    },
  },
});
