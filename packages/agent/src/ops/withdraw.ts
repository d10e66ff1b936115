/**
 * `withdraw`: a rule or a route that was there before the lab (the op carries it as it was
 * read), deleted in plan order on the namespace's socket (so `lookup local` moves without a
 * gap: the rule at its new priority is an earlier op) and put back exactly by `release`,
 * which the lab's down runs from the journaled plan before it deletes the lab's own rules and
 * routes: after a failed or killed up too (putting back what is still there is a no-op).
 */
import type { WithdrawOp } from '@dune/compiler';
import { getRouteDump } from '../netlink/addr-route.js';
import { getRuleDump, parseRule, parseTableRoute, ruleMsg, tableRouteMsg, type Rule, type TableRoute } from '../netlink/rule.js';
import { describeAck, NlSocket } from '../netlink/socket.js';
import { nsPath } from '../netns.js';
import { dumpLinks } from '../status.js';
import { opKind } from './types.js';

function rule(op: WithdrawOp): Rule | undefined {
  return op.rule === undefined ? undefined : { ...op.rule, action: 'table' };
}

const sameRule = (a: Rule, b: Rule): boolean =>
  a.family === b.family && a.priority === b.priority && a.table === b.table && a.action === b.action && a.src === b.src && a.dst === b.dst && a.iif === b.iif && a.oif === b.oif;

function describe(op: WithdrawOp): string {
  const where = op.ns || 'the host namespace';
  if (op.rule !== undefined) return `withdrawn rule ${op.rule.priority}${op.rule.dst ? ` to ${op.rule.dst}` : ''} lookup ${op.rule.table} in ${where}`;
  return `withdrawn route ${op.route?.dst} dev ${op.route?.dev} table ${op.route?.table} in ${where}`;
}

/** Puts the rule or route back unless it is there already. */
export async function putBack(op: WithdrawOp): Promise<string[]> {
  const s = NlSocket.open<string>(op.ns === '' ? null : nsPath(op.ns), op.ns || 'host');
  try {
    const r = rule(op);
    if (r !== undefined) {
      if (s.dump((w, seq, f) => getRuleDump(w, seq, f), 'rules').map(parseRule).some((x) => sameRule(x, r))) return [];
      s.queue('rule', (w, seq) => ruleMsg(w, seq, r));
    } else if (op.route !== undefined) {
      const { dev, ...saved } = op.route;
      const oif = dumpLinks(s as unknown as NlSocket).find((l) => l.name === dev)?.index;
      if (oif === undefined) return [`${describe(op)}: ${dev} is gone, and the route with it`];
      const back: TableRoute = { ...saved, oif };
      const there = s.dump((w, seq, f) => getRouteDump(w, seq, f, saved.family === 'inet' ? 2 : 10), 'routes').map(parseTableRoute);
      if (there.some((x) => x.table === back.table && x.dst === back.dst && x.oif === oif && x.via === back.via)) return [];
      s.queue('route', (w, seq) => tableRouteMsg(w, seq, back));
    }
    s.drain();
    // EEXIST: back already.
    return s.takeFailures().filter((f) => Math.abs(f.ack.errno) !== 17).map((f) => `put back ${describe(op)}: ${describeAck(f.ack)}`);
  } finally {
    s.close();
  }
}

export const withdraw = opKind('withdraw', {
  describe,
  key: (op) => (op.rule !== undefined ? `withdraw rule ${op.ns}/${op.rule.priority}/${op.rule.table}/${op.rule.dst ?? ''}/${op.rule.iif ?? ''}` : `withdraw route ${op.ns}/${op.route?.table}/${op.route?.dst}`),
  nss: (op) => [op.ns],
  undoRank: 36,
  diesWithNs: true,
  apply: {
    stage: 'socket',
    queue(op, ref, s) {
      const c = s.ctx(op.ns, op);
      const r = rule(op);
      if (r !== undefined) {
        c.sock.queue(ref, (w, seq) => ruleMsg(w, seq, r, true));
        return;
      }
      if (op.route === undefined) return;
      const { dev, ...saved } = op.route;
      const oif = s.devIndex(c, dev, op);
      c.sock.queue(ref, (w, seq) => tableRouteMsg(w, seq, { ...saved, oif }, true));
    },
  },
  release: putBack,
});
