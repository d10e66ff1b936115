/**
 * Convergence: what a second `up` must do to turn the lab built from plan `old` into the
 * lab of plan `next`. Ops are compared by identity (what kernel object they make) and by
 * content. A device that is removed or re-created takes with it the addresses, routes and
 * qdiscs on it, so every op of the new plan that lives on such a device is re-applied even
 * when it did not change itself.
 */
import type { HostPlan, Op } from '@dune/compiler';

/** JSON with sorted keys: an op read back from the journal compares equal to a fresh one. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export function opKey(op: Op): string {
  switch (op.op) {
    case 'netns':
      return `netns ${op.ns}`;
    case 'veth':
      return `link ${op.ns}/${op.name}`;
    case 'vxlan':
      return `link ${op.ns}/${op.name}`;
    case 'bridge':
      return `link ${op.ns}/${op.name}`;
    case 'enslave':
      return `enslave ${op.ns}/${op.dev}`;
    case 'addr':
      return `addr ${op.ns}/${op.dev}/${op.cidr}`;
    case 'up':
      return `up ${op.ns}/${op.dev}`;
    case 'route':
      return op.table === undefined ? `route ${op.ns}/${op.dst}` : `route ${op.ns}/table ${op.table}/${op.dst}`;
    case 'rule':
      return `rule ${op.ns}/${op.priority}/${op.src ?? ''}/${op.dst ?? ''}/${op.iif ?? ''}`;
    case 'adopt':
      return `adopt ${op.ns}/${op.dev}`;
    case 'sysctl':
      return `sysctl ${op.ns}/${op.key}`;
    case 'impair':
      return `impair ${op.ns}/${op.dev}`;
    case 'file':
      return `file ${op.path}`;
    case 'exec':
      return `exec ${op.ns}/${JSON.stringify(op.argv)}`;
    case 'process':
      return `process ${op.name}`;
  }
}

/** The devices an op creates: `ns/dev`. A veth creates both its ends. */
function devicesOf(op: Op): string[] {
  switch (op.op) {
    case 'veth':
      return [`${op.ns}/${op.name}`, `${op.peerNs}/${op.peerName}`];
    case 'vxlan':
    case 'bridge':
      return [`${op.ns}/${op.name}`];
    default:
      return [];
  }
}

/** The device an op lives on, if any. */
function deviceOf(op: Op): string | undefined {
  switch (op.op) {
    case 'addr':
    case 'up':
    case 'route':
    case 'impair':
      return `${op.ns}/${op.dev}`;
    case 'enslave':
      return `${op.ns}/${op.dev}`;
    default:
      return undefined;
  }
}

function nsOf(op: Op): string | undefined {
  return op.op === 'file' ? undefined : op.ns;
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

const UNDO_ORDER: Op['op'][] = ['process', 'exec', 'file', 'impair', 'rule', 'route', 'addr', 'up', 'sysctl', 'enslave', 'vxlan', 'veth', 'bridge', 'adopt', 'netns'];

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
    if (!nextKeys.has(k) || (changed.has(k) && op.op !== 'impair' && op.op !== 'sysctl' && op.op !== 'file')) {
      remove.push(op);
      for (const d of devicesOf(op)) gone.add(d);
      if (op.op === 'netns') goneNs.add(op.ns);
    }
  }

  let unchanged = 0;
  for (const op of next.ops) {
    const k = opKey(op);
    const prev = oldOps.get(k);
    const ns = nsOf(op);
    const dev = deviceOf(op);
    const cascaded =
      (ns !== undefined && goneNs.has(ns)) ||
      (dev !== undefined && gone.has(dev)) ||
      devicesOf(op).some((d) => gone.has(d)) ||
      (op.op === 'veth' && (goneNs.has(op.peerNs) || goneNs.has(op.ns)));
    if (prev === undefined || cascaded) {
      apply.push(op);
    } else if (changed.has(k)) {
      if (op.op === 'impair') change.push(op);
      else if (op.op === 'sysctl') apply.push(op);
      else apply.push(op);
    } else {
      unchanged++;
    }
  }
  // A removed op whose object dies anyway with a removed namespace need not be undone.
  const pruned = remove.filter((op) => op.op === 'netns' || op.op === 'process' || op.op === 'file' || !(nsOf(op) !== undefined && goneNs.has(nsOf(op) as string)));
  pruned.sort((a, b) => UNDO_ORDER.indexOf(a.op) - UNDO_ORDER.indexOf(b.op));
  return { remove: pruned, apply, change, unchanged };
}
