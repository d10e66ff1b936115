/** `rule`: a policy rule (`ip rule add priority P [from] [to] [iif] lookup TABLE`), marked as dune's by its protocol. */
import type { RuleOp } from '@dune/compiler';
import { RTPROT_DUNE } from '../netlink/constants.js';
import { ruleMsg, type Rule } from '../netlink/rule.js';
import { opKind } from './types.js';

function rule(op: RuleOp): Rule {
  const r: Rule = { family: 'inet', priority: op.priority, table: op.table, action: 'table', protocol: RTPROT_DUNE };
  if (op.src !== undefined) r.src = op.src;
  if (op.dst !== undefined) r.dst = op.dst;
  if (op.iif !== undefined) r.iif = op.iif;
  return r;
}

export const rule_ = opKind('rule', {
  describe: (op) => `rule ${op.priority}${op.src ? ` from ${op.src}` : ''}${op.dst ? ` to ${op.dst}` : ''}${op.iif ? ` iif ${op.iif}` : ''} lookup ${op.table} in ${op.ns || 'the host namespace'}`,
  key: (op) => `rule ${op.ns}/${op.priority}/${op.src ?? ''}/${op.dst ?? ''}/${op.iif ?? ''}`,
  nss: (op) => [op.ns],
  undoRank: 38,
  diesWithNs: true,
  apply: {
    stage: 'socket',
    queue(op, ref, s) {
      const c = s.ctx(op.ns, op);
      c.sock.queue(ref, (w, seq) => ruleMsg(w, seq, rule(op)));
    },
  },
  // Before the routes of the table it points at.
  undo: { order: -5, queue: (op, s) => s.queue(op, (w, seq) => ruleMsg(w, seq, rule(op), true)) },
});
