/**
 * `routes`: a node's static routes through one next hop, as one op (the compiler's route
 * tables). Each destination is applied and undone exactly as a `route` op; a lab's host view
 * (lab.ts) expands them into `route` ops first, so that convergence compares them route by
 * route.
 */
import { countRoutes, expandRoutes } from '@dune/compiler';
import { route } from './route.js';
import { opKind } from './types.js';

const routeApply = route.apply as Extract<typeof route.apply, { stage: 'socket' }>;
const routeUndo = route.undo as Extract<NonNullable<typeof route.undo>, { order: number }>;

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
      for (const r of expandRoutes(op)) routeApply.queue(r, ref, s);
    },
  },
  undo: {
    order: 0,
    queue(op, s, index) {
      for (const r of expandRoutes(op)) routeUndo.queue(r, s, index);
    },
  },
});
