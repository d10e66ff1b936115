/** Putting an ImpairPlan's qdisc tree on a device, and reading one back. */
import { delRootQdisc, newClass, newQdisc } from '../netlink/tc.js';
import type { NlSocket } from '../netlink/socket.js';
import type { ImpairPlan } from './backends.js';

/**
 * Queues the tree, root first. With `replace`, the old root qdisc is deleted first in the
 * same batch (the kernel runs the batch in order within one sendmsg, so the device is
 * unshaped for microseconds, not a round trip); `delRef` marks that request so the caller
 * can ignore its failure when there was nothing to delete.
 */
export function queueTcPlan<R>(sock: NlSocket<R>, ref: R, ifindex: number, plan: ImpairPlan, replace: boolean, delRef?: R): void {
  if (replace) sock.queue(delRef ?? ref, (w, seq) => delRootQdisc(w, seq, ifindex));
  for (const n of plan.tc) {
    const t = { ifindex, handle: n.handle, parent: n.parent };
    if (n.type === 'qdisc') sock.queue(ref, (w, seq) => newQdisc(w, seq, t, n.options));
    else sock.queue(ref, (w, seq) => newClass(w, seq, t, n.options));
  }
}
