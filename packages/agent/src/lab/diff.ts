/**
 * Convergence: what a second `up` must do to turn the lab built from plan `old` into the
 * lab of plan `next`. Ops are compared by identity (what kernel object they make) and by
 * content. A device that is removed or re-created takes with it the addresses, routes and
 * qdiscs on it, so every op of the new plan that lives on such a device is re-applied even
 * when it did not change itself.
 */
import type { HostPlan, Op } from '@dune/compiler';
import { kindOfOp } from '../ops/index.js';

/** JSON with sorted keys: an op read back from the journal compares equal to a fresh one. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** An op's identity: two ops with one key make the same kernel object (its kind's `key`, ops/). */
export function opKey(op: Op): string {
  return kindOfOp(op).key(op);
}

/** The devices an op creates: `ns/dev`. A veth creates both its ends. */
function devicesOf(op: Op): string[] {
  return kindOfOp(op).creates?.(op) ?? [];
}

/** The device an op lives on, if any. */
function deviceOf(op: Op): string | undefined {
  return kindOfOp(op).on?.(op);
}

export interface Convergence {
  /** Old ops to undo, in undo order (processes first, namespaces last). */
  remove: Op[];
  /** New ops to apply, in plan order. */
  apply: Op[];
  /** Impairments whose parameters changed on a device that stays: changed live. */
  change: Op[];
  unchanged: number;
}


export function converge(old: HostPlan | undefined, next: HostPlan): Convergence {
  // A fresh lab: everything is new (and a big plan's 1 M op keys need not be built).
  if (old === undefined) return { remove: [], apply: next.ops.slice(), change: [], unchanged: 0 };
  const oldOps = new Map<string, { op: Op; json: string }>();
  for (const op of old?.ops ?? []) oldOps.set(opKey(op), { op, json: canonical(op) });
  const nextKeys = new Set<string>();
  const remove: Op[] = [];
  const apply: Op[] = [];
  const change: Op[] = [];
  const gone = new Set<string>(); // devices deleted or re-created
  const goneNs = new Set<string>();

  const changed = new Map<string, Op>();
  for (const op of next.ops) {
    const k = opKey(op);
    nextKeys.add(k);
    const prev = oldOps.get(k);
    if (prev !== undefined && prev.json !== canonical(op)) changed.set(k, op);
  }
  for (const [k, { op }] of oldOps) {
    // A changed impairment or sysctl is changed in place, and a changed file rewritten in place
    // (its backup, if any, still holds what was there before the lab).
    if (!nextKeys.has(k) || (changed.has(k) && kindOfOp(op).inPlace === undefined)) {
      remove.push(op);
      for (const d of devicesOf(op)) gone.add(d);
      if (op.op === 'netns') goneNs.add(op.ns);
    }
  }

  let unchanged = 0;
  for (const op of next.ops) {
    const k = opKey(op);
    const prev = oldOps.get(k);
    const def = kindOfOp(op);
    const dev = deviceOf(op);
    const cascaded =
      def.nss(op).some((ns) => goneNs.has(ns)) ||
      (dev !== undefined && gone.has(dev)) ||
      devicesOf(op).some((d) => gone.has(d));
    if (prev === undefined || cascaded) {
      apply.push(op);
    } else if (changed.has(k)) {
      if (def.inPlace === 'change') change.push(op);
      else apply.push(op);
    } else {
      unchanged++;
    }
  }
  // A removed op whose object dies anyway with a removed namespace need not be undone.
  const pruned = remove.filter((op) => !kindOfOp(op).diesWithNs || !goneNs.has(kindOfOp(op).nss(op)[0] as string));
  pruned.sort((a, b) => kindOfOp(a).undoRank - kindOfOp(b).undoRank);
  return { remove: pruned, apply, change, unchanged };
}
