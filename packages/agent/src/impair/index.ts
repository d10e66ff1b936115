/**
 * Live impairment changes and read-back, for `dune set` and `dune status`.
 *
 *   changeImpairment: plan → change the qdisc tree in place when its shape is the same, else
 *                     replace it (delete root + add, one batch) → nft rule
 *                     → the userspace engine's part, handed to the caller's `userspace`
 *   readImpairment:   qdisc + class dump → model values; nft chain → loss
 */
import type { Impairment } from '@dune/topology';
import { labOf } from '../apply.js';
import { NlSocket } from '../netlink/socket.js';
import { formatHandle, type TcEntry } from '../netlink/tc.js';
import { nsPath } from '../netns.js';
import { probeCapabilities } from '../probe.js';
import type { Caps } from '../probe-types.js';
import { dumpTc, linkByName } from '../status.js';
import { netemImpairment, planImpairment, type ImpairmentBackendSetting, type ImpairPlan } from './backends.js';
import { applyNftLoss, NFT_LOSS_SCALE, readNftLoss } from './nft.js';
import { queueTcChange, queueTcPlan, sameTcShape } from './tc-apply.js';
import { ApplyError, emptyJournal } from '../errors.js';
import { describeAck } from '../netlink/socket.js';

export * from './backends.js';
export * from './userspace.js';
export { nftLossScript, nftTableName, lossChainName } from './nft.js';

export interface ImpairOptions {
  caps?: Caps;
  /** For the nftables table name; derived from a `dune.<lab>.` namespace name if absent. */
  lab?: string;
  /** The lab's `impairment_backend` (default `auto`). */
  prefer?: ImpairmentBackendSetting;
  /**
   * Hands the userspace engine its part of the direction (null: none any more), after the
   * kernel's part is in place. Without it the userspace backend is not used (see
   * PlanOptions.userspaceEngine).
   */
  userspace?: (part: Impairment | null) => Promise<void>;
}

function requireLab(ns: string | null, lab: string | undefined): string {
  const l = lab ?? labOf(ns);
  if (l === undefined) throw new Error(`the lab of namespace ${ns ?? 'host'} is unknown: pass { lab }`);
  return l;
}

/** Replaces the impairment on the egress of `dev` in `ns`; `{}` removes it. */
export async function changeImpairment(ns: string | null, dev: string, imp: Impairment, opts: ImpairOptions = {}): Promise<ImpairPlan> {
  const caps = opts.caps ?? (await probeCapabilities());
  const s = NlSocket.open<'del' | 'add'>(ns === null ? null : nsPath(ns), ns ?? 'host');
  let plan: ImpairPlan;
  try {
    const link = linkByName(s as unknown as NlSocket, dev);
    plan = planImpairment(imp, caps, {
      mtu: link.mtu ?? 1500,
      where: `${ns ?? 'host'}/${dev}`,
      ...(opts.prefer ? { prefer: opts.prefer } : {}),
      userspaceEngine: opts.userspace !== undefined,
    });
    if (sameTcShape(plan, dumpTc(s as unknown as NlSocket, link.index))) queueTcChange(s, 'add', link.index, plan);
    else queueTcPlan(s, 'add', link.index, plan, true, 'del');
    s.drain();
    // Deleting a root qdisc that is not there fails; that is the "nothing to replace" case.
    const f = s.takeFailures().find((x) => x.ref === 'add');
    if (f) {
      throw new ApplyError(`change impairment on ${ns ?? 'host'}/${dev}: ${describeAck(f.ack)}`, {
        errno: f.ack.errno,
        ...(f.ack.extack !== undefined ? { extack: f.ack.extack } : {}),
        journal: emptyJournal(),
      });
    }
  } finally {
    s.close();
  }
  if (plan.nftLossPpm !== undefined || caps.nft.ok) {
    await applyNftLoss(ns, requireLab(ns, opts.lab), [{ dev, ppm: plan.nftLossPpm ?? null }]);
  }
  await opts.userspace?.(plan.userspace ?? null);
  return plan;
}

export interface ImpairmentStatus {
  /** What the kernel does now, in the model's terms. */
  impairment: Impairment;
  /** The raw tree, for display: `1: htb`, `1:1 htb class`, ... */
  tc: { handle: string; parent: string; kind: string; class: boolean }[];
  nftLossPpm?: number;
}

export async function readImpairment(ns: string | null, dev: string, opts: { lab?: string } = {}): Promise<ImpairmentStatus> {
  const s = NlSocket.open(ns === null ? null : nsPath(ns), ns ?? 'host');
  let tc: { qdiscs: TcEntry[]; classes: TcEntry[] };
  try {
    const link = linkByName(s, dev);
    tc = dumpTc(s, link.index);
  } finally {
    s.close();
  }
  const imp: Impairment = {};
  for (const e of [...tc.qdiscs, ...tc.classes]) {
    const o = e.options;
    if (!o) continue;
    if (o.kind === 'htb-class' || o.kind === 'tbf') imp.rateBitsPerSec = o.rateBytesPerSec * 8;
    if (o.kind === 'pfifo') imp.queuePackets = o.limitPackets;
    if (o.kind === 'bfifo') imp.queueBytes = o.limitBytes;
    if (o.kind === 'netem') netemImpairment(o, imp);
  }
  const out: ImpairmentStatus = {
    impairment: imp,
    tc: [
      ...tc.qdiscs.map((q) => ({ handle: formatHandle(q.handle), parent: formatHandle(q.parent), kind: q.kind, class: false })),
      ...tc.classes.map((c) => ({ handle: formatHandle(c.handle), parent: formatHandle(c.parent), kind: c.kind, class: true })),
    ],
  };
  const lab = opts.lab ?? labOf(ns);
  if (lab !== undefined) {
    const ppm = await readNftLoss(ns, lab, dev);
    if (ppm !== undefined) {
      out.nftLossPpm = ppm;
      imp.lossPct = (ppm / NFT_LOSS_SCALE) * 100;
    }
  }
  return out;
}
