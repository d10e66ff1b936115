/** Putting an ImpairPlan's qdisc tree on a device, and reading one back. */
import { delRootQdisc, kindName, newClass, newQdisc, type TcEntry } from '../netlink/tc.js';
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

/**
 * Whether `plan`'s tree has the shape of what the device has now (the same qdiscs and classes,
 * handles, parents and kinds): then a change is made in place (tc's `change`: an htb class
 * gets its new rate, a netem qdisc its new parameters) and the packets queued in it stay.
 * Replacing the tree would drop them, which a trace changing a rate every 100 ms cannot afford.
 */
export function sameTcShape(plan: ImpairPlan, now: { qdiscs: TcEntry[]; classes: TcEntry[] }): boolean {
  // A class's parent is not compared: the kernel reports a top class's as the root.
  const key = (type: string, handle: number, parent: number, kind: string): string => `${type} ${handle} ${type === 'class' ? '' : parent} ${kind}`;
  const want = plan.tc.map((n) => key(n.type, n.handle, n.parent, kindName(n.options))).sort();
  const have = [...now.qdiscs.map((q) => key('qdisc', q.handle, q.parent, q.kind)), ...now.classes.map((c) => key('class', c.handle, c.parent, c.kind))].sort();
  if (!(want.length > 0 && want.length === have.length && want.every((k, i) => k === have[i]))) return false;
  // netem's `change` keeps what an absent attribute held (a rate, reorder, a distribution
  // table): in place only when the old and new set the same fields, with no jitter (whose
  // distribution table the kernel does not dump back).
  for (const n of plan.tc) {
    if (n.options.kind !== 'netem') continue;
    const o = now.qdiscs.find((q) => q.handle === n.handle)?.options;
    if (o?.kind !== 'netem') return false;
    const fields = (x: object): string => Object.entries(x).filter(([, v]) => v !== undefined && v !== 0).map(([k]) => k).sort().join(',');
    if (n.options.jitterNs || o.jitterNs || n.options.distribution || fields(n.options) !== fields(o)) return false;
  }
  return true;
}

/** Queues the tree as in-place changes of the one there (see sameTcShape). */
export function queueTcChange<R>(sock: NlSocket<R>, ref: R, ifindex: number, plan: ImpairPlan): void {
  for (const n of plan.tc) {
    const t = { ifindex, handle: n.handle, parent: n.parent, replace: true };
    // htb's qdisc has no `change` (and its only option, the default class, is always 1).
    if (n.type === 'qdisc' && n.options.kind !== 'htb') sock.queue(ref, (w, seq) => newQdisc(w, seq, t, n.options));
    else if (n.type === 'class') sock.queue(ref, (w, seq) => newClass(w, seq, t, n.options));
  }
}
