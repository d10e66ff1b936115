/**
 * `routes`: a node's static routes through one next hop, as one op (the compiler's route
 * tables). Each destination is applied and undone exactly as a `route` op would be, but
 * straight from the table: its runs (`FIRST-LAST/LEN`) are stepped through as bytes, and the
 * device, gateway and source are looked up once per table, not per route (Kdl: 1.1 M routes
 * in 3,700 tables). A lab's convergence with an earlier plan compares route by route: there
 * (lab.ts) the tables of both plans are expanded into `route` ops first.
 */
import { countRoutes } from '@dune/compiler';
import { routeMsg } from '../netlink/addr-route.js';
import { forEachPrefix, parseIp } from '../netlink/ip.js';
import { opKind } from './types.js';

export const routes = opKind('routes', {
  describe: (op) => `${countRoutes(op)} route${countRoutes(op) === 1 ? '' : 's'} via ${op.via} dev ${op.dev} in ${op.ns}`,
  key: (op) => `routes ${op.ns}/${op.dev}/${op.via}`,
  nss: (op) => [op.ns],
  on: (op) => `${op.ns}/${op.dev}`,
  undoRank: 40,
  diesWithNs: true,
  apply: {
    stage: 'socket',
    queue(op, ref, s) {
      const c = s.ctx(op.ns, op);
      const oif = s.devIndex(c, op.dev, op);
      const gw = parseIp(op.via);
      const src = op.src !== undefined ? parseIp(op.src) : undefined;
      for (const entry of op.dst) forEachPrefix(entry, (dst) => c.sock.queue(ref, (w, seq) => routeMsg(w, seq, dst, gw, oif, src)), gw.family);
    },
  },
  undo: {
    order: 0,
    queue(op, s, index) {
      const oif = index.get(op.dev);
      if (oif === undefined) return;
      const gw = parseIp(op.via);
      for (const entry of op.dst) forEachPrefix(entry, (dst) => s.queue(op, (w, seq) => routeMsg(w, seq, dst, gw, oif, undefined, undefined, true)), gw.family);
    },
  },
});
