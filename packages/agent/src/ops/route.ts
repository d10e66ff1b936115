/**
 * `route`: a route out of a device (and via a gateway), in the node's main table or in a
 * numbered one (`table`, with policy rules: NetMirage's root switch), `onlink` when the
 * gateway is not on the device's subnet.
 */
import type { RouteOp } from '@dune/compiler';
import { newRoute } from '../netlink/addr-route.js';
import { ourRoute, tableRouteMsg } from '../netlink/rule.js';
import { opKind } from './types.js';

/** Routes in a table or on-link are built by rule.ts's message (it carries both). */
const special = (op: RouteOp) => op.table !== undefined || op.onlink === true;

export const route = opKind('route', {
  describe: (op) => `route ${op.dst}${op.via ? ` via ${op.via}` : ''} dev ${op.dev}${op.table !== undefined ? ` table ${op.table}` : ''} in ${op.ns}`,
  key: (op) => (op.table === undefined ? `route ${op.ns}/${op.dst}` : `route ${op.ns}/table ${op.table}/${op.dst}`),
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
      if (special(op)) {
        const r = ourRoute(op.table ?? 254, op.dst, oif, op.via, op.onlink === true);
        if (op.metric !== undefined) r.metric = op.metric;
        if (op.src !== undefined) r.src = op.src;
        c.sock.queue(ref, (w, seq) => tableRouteMsg(w, seq, r));
        return;
      }
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
      if (special(op)) {
        s.queue(op, (w, seq) => tableRouteMsg(w, seq, ourRoute(op.table ?? 254, op.dst, oif, op.via, op.onlink === true), true));
        return;
      }
      s.queue(op, (w, seq) => newRoute(w, seq, { dst: op.dst, oif, ...(op.via !== undefined ? { via: op.via } : {}), ...(op.metric !== undefined ? { metric: op.metric } : {}) }, true));
    },
  },
});
