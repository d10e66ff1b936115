/**
 * Plan operation kinds, as the agent runs them: one table keyed by op name (the `op` field
 * of the plan's ops, packages/compiler/src/plan.ts), one file per kind (DESIGN.md, "Kinds").
 *
 * Adding an op kind:
 *   1. its type in plan.ts (an interface with `op: 'name'` and `ns`), added to `Op`;
 *   2. one file here implementing OpKindDef (types.ts): describe, key, nss, undoRank,
 *      diesWithNs, and `apply` (which stage runs it, and how), optionally creates/on (what
 *      convergence must know), inPlace, undo and runtime;
 *   3. one line in `opKinds` below. TypeScript refuses a plan op without its entry here.
 *
 *   // ops/tap.ts
 *   export const tap = opKind('tap', {
 *     describe: (op) => `tap ${op.ns}/${op.name}`,
 *     key: (op) => `link ${op.ns}/${op.name}`,
 *     nss: (op) => [op.ns],
 *     creates: (op) => [`${op.ns}/${op.name}`],
 *     undoRank: 95, diesWithNs: true,
 *     apply: { stage: 'link', create(op, ref, s) { const [c, i] = s.allocIndex(op.ns, op, op.name); s.create(c, ref, (w, seq) => newTap(w, seq, s.spec(c, i, op.name, {}))); s.alias(c, i, op.alias, ref, op.name); } },
 *     undo: { order: 35, queue: (op, s, index) => deleteIfThere(op, op.name, s, index) },
 *   });
 *
 * errors.ts (describeOp), lab/diff.ts (convergence), apply.ts, remove.ts and the lab's
 * runtime changes ask this table; none of them names an op kind.
 */
import type { Op, OpKind } from '@dune/compiler';
import { addr } from './addr.js';
import { adopt } from './adopt.js';
import { bridge } from './bridge.js';
import { enslave } from './enslave.js';
import { exec } from './exec.js';
import { file } from './file.js';
import { impair } from './impair.js';
import { netns } from './netns.js';
import { nft } from './nft.js';
import { ovs } from './ovs.js';
import { process } from './process.js';
import { route } from './route.js';
import { routes } from './routes.js';
import { rule_ } from './rule.js';
import { sysctl } from './sysctl.js';
import { tap } from './tap.js';
import type { OpKindDef } from './types.js';
import { up } from './up.js';
import { veth } from './veth.js';
import { vtep } from './vtep.js';
import { withdraw } from './withdraw.js';
import { vxlan } from './vxlan.js';

export const opKinds: { readonly [K in OpKind]: OpKindDef<Extract<Op, { op: K }>> } = {
  netns,
  adopt,
  veth,
  vxlan,
  vtep,
  tap,
  bridge,
  enslave,
  addr,
  up,
  route,
  routes,
  rule: rule_,
  withdraw,
  sysctl,
  impair,
  nft,
  ovs,
  file,
  exec,
  process,
};

/** The kind of an op, typed for any op (the table's entries are each typed for their own). */
export function kindOfOp(op: Op): OpKindDef<Op> {
  return opKinds[op.op] as unknown as OpKindDef<Op>;
}

/** Releases what the ops keep outside the lab's namespaces (OpKindDef.release), in plan order; what could not be undone. */
export async function releaseOps(ops: readonly Op[]): Promise<string[]> {
  const errors: string[] = [];
  for (const op of ops) {
    const release = kindOfOp(op).release;
    if (release === undefined) continue;
    try {
      errors.push(...(await release(op)));
    } catch (e) {
      errors.push(`${kindOfOp(op).describe(op)}: ${(e as Error).message}`);
    }
  }
  return errors;
}

export * from './types.js';
export { deleteIfThere } from './undo.js';
export { sysctlPath } from './sysctl.js';
export { nftTransaction } from './nft.js';
