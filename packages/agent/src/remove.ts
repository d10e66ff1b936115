/**
 * Undoing kernel ops, for convergence (a second `up` with a changed plan): the inverse of
 * apply, per namespace over one socket each. Objects that are already gone are fine: the
 * point is the end state. Namespaces go last, and everything inside one that goes is not
 * undone one by one (the kernel frees it with the namespace).
 */
import type { Op } from '@dune/compiler';
import { ApplyError, describeOp, emptyJournal } from './errors.js';
import { kindOfOp, releaseOps } from './ops/index.js';
import { describeAck, NlSocket } from './netlink/socket.js';
import { deleteNamespaces, nsPath } from './netns.js';
import { dumpLinks } from './status.js';
import { releaseAdopted, undoHostOps } from './adopt.js';

/** ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL: the object is not there any more. */
const GONE = new Set([2, 3, 19, 99]);

export async function removeKernelOps(ops: readonly Op[], opts: { lab?: string } = {}): Promise<void> {
  const dropNs = new Set(ops.filter((o) => o.op === 'netns').map((o) => o.ns));
  const byNs = new Map<string, Op[]>();
  // Adopted interfaces go back before anything else of their namespace goes; the host's own
  // namespace ("") is undone by undoHostOps.
  const hostErrs = [...(await releaseOps(ops)), ...releaseAdopted(ops), ...undoHostOps(ops)];
  if (hostErrs.length > 0) throw new ApplyError(hostErrs.join('; '), { errno: 0, journal: emptyJournal() });
  for (const op of ops) {
    if ('ns' in op && op.ns === '') continue;
    // Namespaces go last, all at once; what is not a kernel object has no undo here.
    const def = kindOfOp(op);
    if (def.undo === undefined) continue;
    const ns = def.nss(op)[0] as string;
    if (dropNs.has(ns)) continue;
    const l = byNs.get(ns) ?? [];
    l.push(op);
    byNs.set(ns, l);
  }
  for (const [ns, list] of byNs) {
    for (const op of list) {
      const undo = kindOfOp(op).undo;
      if (undo !== undefined && 'run' in undo) await undo.run(op, opts);
    }
    const queued = list.flatMap((op) => {
      const undo = kindOfOp(op).undo;
      return undo !== undefined && 'queue' in undo ? [{ op, undo }] : [];
    });
    if (queued.length === 0) continue;
    const s = NlSocket.open<Op>(nsPath(ns), ns);
    try {
      const index = new Map(dumpLinks(s as unknown as NlSocket).map((l) => [l.name, l.index]));
      for (const order of [...new Set(queued.map((q) => q.undo.order))].sort((x, y) => x - y)) {
        for (const q of queued) if (q.undo.order === order) q.undo.queue(q.op, s, index);
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
