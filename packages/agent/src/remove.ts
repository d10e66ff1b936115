/**
 * Undoing kernel ops, for convergence (a second `up` with a changed plan): the inverse of
 * apply, per namespace over one socket each. Objects that are already gone are fine: the
 * point is the end state. Namespaces go last, and everything inside one that goes is not
 * undone one by one (the kernel frees it with the namespace).
 */
import type { Op } from '@dune/compiler';
import { ApplyError, describeOp, emptyJournal } from './errors.js';
import { changeImpairment } from './impair/index.js';
import { newAddr, newRoute } from './netlink/addr-route.js';
import { delLink } from './netlink/link.js';
import { describeAck, NlSocket } from './netlink/socket.js';
import { deleteNamespaces, nsPath } from './netns.js';
import { dumpLinks } from './status.js';
import { releaseAdopted, undoHostOps } from './adopt.js';
import { RTPROT_DUNE } from './netlink/constants.js';
import { ourRoute, ruleMsg, tableRouteMsg } from './netlink/rule.js';

/** ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL: the object is not there any more. */
const GONE = new Set([2, 3, 19, 99]);

export async function removeKernelOps(ops: readonly Op[], opts: { lab?: string } = {}): Promise<void> {
  const dropNs = new Set(ops.filter((o) => o.op === 'netns').map((o) => o.ns));
  const byNs = new Map<string, Op[]>();
  // Adopted interfaces go back before anything else of their namespace goes; the host's own
  // namespace ("") is undone by undoHostOps.
  const hostErrs = [...releaseAdopted(ops), ...undoHostOps(ops)];
  if (hostErrs.length > 0) throw new ApplyError(hostErrs.join('; '), { errno: 0, journal: emptyJournal() });
  for (const op of ops) {
    if (op.op === 'adopt' || ('ns' in op && op.ns === '')) continue;
    if (op.op === 'netns' || op.op === 'file' || op.op === 'exec' || op.op === 'process') continue;
    if (dropNs.has(op.ns)) continue;
    const l = byNs.get(op.ns) ?? [];
    l.push(op);
    byNs.set(op.ns, l);
  }
  for (const [ns, list] of byNs) {
    for (const op of list) {
      if (op.op === 'impair') await changeImpairment(ns, op.dev, {}, opts.lab !== undefined ? { lab: opts.lab } : {});
    }
    const s = NlSocket.open<Op>(nsPath(ns), ns);
    try {
      const index = new Map(dumpLinks(s as unknown as NlSocket).map((l) => [l.name, l.index]));
      const order: Op['op'][] = ['rule', 'route', 'addr', 'vxlan', 'veth', 'bridge'];
      for (const kind of order) {
        for (const op of list) {
          if (op.op !== kind) continue;
          if (op.op === 'rule') {
            s.queue(op, (w, seq) => ruleMsg(w, seq, { family: 'inet', priority: op.priority, table: op.table, action: 'table', protocol: RTPROT_DUNE, ...(op.src !== undefined ? { src: op.src } : {}), ...(op.dst !== undefined ? { dst: op.dst } : {}), ...(op.iif !== undefined ? { iif: op.iif } : {}) }, true));
          } else if (op.op === 'route' && (op.table !== undefined || op.onlink === true)) {
            const oif = index.get(op.dev);
            if (oif !== undefined) s.queue(op, (w, seq) => tableRouteMsg(w, seq, ourRoute(op.table ?? 254, op.dst, oif, op.via, op.onlink === true), true));
          } else if (op.op === 'route') {
            const oif = index.get(op.dev);
            if (oif === undefined) continue;
            s.queue(op, (w, seq) => newRoute(w, seq, { dst: op.dst, oif, ...(op.via !== undefined ? { via: op.via } : {}), ...(op.metric !== undefined ? { metric: op.metric } : {}) }, true));
          } else if (op.op === 'addr') {
            const i = index.get(op.dev);
            if (i !== undefined) s.queue(op, (w, seq) => newAddr(w, seq, i, op.cidr, true));
          } else if (op.op === 'veth' || op.op === 'vxlan' || op.op === 'bridge') {
            if (index.has(op.name)) s.queue(op, (w, seq) => delLink(w, seq, { name: op.name }));
          }
        }
        s.drain();
      }
      const failed = s.takeFailures().filter((f) => !GONE.has(Math.abs(f.ack.errno)));
      if (failed.length > 0 && failed[0] !== undefined) {
        const f = failed[0];
        throw new ApplyError(`undo ${describeOp(f.ref)}: ${describeAck(f.ack)}`, { errno: f.ack.errno, journal: emptyJournal() });
      }
    } finally {
      s.close();
    }
  }
  const errs = deleteNamespaces([...dropNs]).filter((e) => !GONE.has(Math.abs(e.errno)));
  if (errs.length > 0 && errs[0] !== undefined) {
    throw new ApplyError(`delete namespace ${errs[0].name}: ${errs[0].message}`, { errno: errs[0].errno, journal: emptyJournal() });
  }
}
