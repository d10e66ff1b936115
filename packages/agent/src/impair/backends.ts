/**
 * Impairment backends, one table keyed by name. Planning one direction of a link:
 *
 *   Impairment → netem, if the kernel has it and the lab does not ask for `userspace`
 *              → else, key by key, the first of htb (rate, queue), nftables-loss (Bernoulli
 *                loss), userspace (the impair engine behind NFQUEUE: everything else, and
 *                whatever the two before cannot take here) that can → ImpairPlan
 *                └─ anything no available backend can do → ImpairmentUnsupportedError
 *
 * A backend says which parameters it can carry and whether this kernel has what it needs;
 * its `build` adds qdiscs (or an nftables loss rule, or the engine's part) to the plan.
 * Nothing is ever dropped silently: a parameter nobody here can apply is an error that names
 * it and the way out.
 *
 * Where the userspace engine and the kernel share a direction, the order on the wire is the
 * netfilter hooks' then the qdisc's: the engine (iptables mangle POSTROUTING, priority -150:
 * delay, jitter, reorder, duplicate, corrupt, correlated or Gilbert-Elliott loss), then the
 * nftables loss chain (postrouting, priority 0), then htb's rate and queue on the egress.
 *
 * To add a backend: one entry here (keys, available, build), its tests, a line in the docs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { DuneError, IMPAIRMENT_KEYS, type Impairment } from '@dune/topology';
import type { Caps } from '../probe-types.js';
import { TC_H_ROOT } from '../netlink/constants.js';
import { handle, type TcOptions } from '../netlink/tc.js';

export type ImpairKey = keyof Impairment;

/** One qdisc or class of the tree on a device's egress, root first. */
export interface TcNode {
  type: 'qdisc' | 'class';
  handle: number;
  parent: number;
  options: TcOptions;
}

export interface ImpairPlan {
  /** Which backend carries each parameter that is set. */
  assignments: Partial<Record<ImpairKey, BackendName>>;
  tc: TcNode[];
  /** Bernoulli loss by nftables, in parts per million; absent: no rule. */
  nftLossPpm?: number;
  /** What the lab's userspace engine applies to this direction; absent: no engine pipe. */
  userspace?: Impairment;
}

export interface PlanContext {
  /** Interface MTU: sizes bursts and queue limits. */
  mtu: number;
}

interface Backend {
  /** Parameters it can carry. */
  keys: readonly ImpairKey[];
  /** What the kernel must have; the reason when it does not. */
  available(caps: Caps): { ok: boolean; missing: string };
  /** Whether it can carry this particular impairment's values of its keys (e.g. no correlation). */
  accepts?(imp: Impairment): string | undefined;
  build(imp: Impairment, ctx: PlanContext, plan: ImpairPlan): void;
}

const RATE_KEYS = ['rateBitsPerSec', 'queuePackets', 'queueBytes'] as const satisfies readonly ImpairKey[];

/** Keys only netem or the userspace engine can carry (given a loss that nftables cannot draw). */
function needsEngine(imp: Impairment): boolean {
  return (
    imp.delayUs !== undefined || imp.jitterUs !== undefined || imp.jitterDistribution !== undefined || imp.jitterCorrelationPct !== undefined ||
    imp.duplicatePct !== undefined || imp.corruptPct !== undefined || imp.reorderPct !== undefined || imp.reorderGap !== undefined ||
    imp.lossGilbertElliott !== undefined || imp.lossCorrelationPct !== undefined
  );
}

/** With no rate set, netem's queue is sized for what a veth can push: about 10 Gbit/s. */
const ASSUMED_LINE_RATE_BITS = 10e9;
const NETEM_MIN_LIMIT = 1000;

export const impairBackends = {
  netem: {
    keys: IMPAIRMENT_KEYS,
    available: (c) => ({ ok: c.netem.ok, missing: `sch_netem (CONFIG_NET_SCH_NETEM): ${c.netem.error ?? 'not found'}` }),
    build(imp, ctx, plan) {
      plan.tc.push({ type: 'qdisc', handle: handle(1), parent: TC_H_ROOT, options: { kind: 'netem', ...netemOptions(imp, ctx) } });
    },
  },
  htb: {
    keys: RATE_KEYS,
    available: (c) => ({ ok: c.htb.ok && c.pfifo.ok, missing: `sch_htb: ${c.htb.error ?? c.pfifo.error ?? 'not found'}` }),
    // A queue limit without a rate is netem's `limit`: it bounds what the delay holds, which
    // only the engine sees (a fifo on the egress, after the delay, would never fill).
    accepts: (imp) =>
      imp.rateBitsPerSec === undefined && (imp.queuePackets !== undefined || imp.queueBytes !== undefined) && needsEngine(imp)
        ? 'a queue limit without a rate bounds the packets a delay holds: the userspace engine keeps it'
        : undefined,
    build(imp, ctx, plan) {
      const leaf = fifoFor(imp, ctx);
      if (imp.rateBitsPerSec === undefined) {
        // A queue limit alone: a plain fifo as the root qdisc.
        if (leaf) plan.tc.push({ type: 'qdisc', handle: handle(1), parent: TC_H_ROOT, options: leaf });
        return;
      }
      const rate = imp.rateBitsPerSec / 8;
      plan.tc.push({ type: 'qdisc', handle: handle(1), parent: TC_H_ROOT, options: { kind: 'htb', defaultClass: 1 } });
      plan.tc.push({
        type: 'class',
        handle: handle(1, 1),
        parent: handle(1),
        options: {
          kind: 'htb-class',
          rateBytesPerSec: rate,
          burstBytes: htbBurstBytes(rate, ctx.mtu),
          quantumBytes: Math.round(Math.min(Math.max(rate / 10, ctx.mtu + 14), 200_000)),
        },
      });
      if (leaf) plan.tc.push({ type: 'qdisc', handle: handle(0x10), parent: handle(1, 1), options: leaf });
    },
  },
  'nftables-loss': {
    keys: ['lossPct', 'lossCorrelationPct'],
    available: (c) => ({ ok: c.nft.ok, missing: `nftables: ${c.nft.error ?? 'not found'}` }),
    accepts: (imp) =>
      imp.lossCorrelationPct
        ? 'nftables drops each packet independently: loss correlation needs netem or the userspace engine'
        : imp.lossGilbertElliott !== undefined
          ? 'a Gilbert-Elliott model replaces the Bernoulli loss: both go to netem or the userspace engine'
          : undefined,
    build(imp, _ctx, plan) {
      if (imp.lossPct !== undefined && imp.lossPct > 0) plan.nftLossPpm = Math.round(imp.lossPct * 10_000);
    },
  },
  // Last: it can carry anything, and takes what the kernel's own tools cannot.
  userspace: {
    keys: IMPAIRMENT_KEYS,
    available: (c) => ({
      ok: c.nfqueue.ok,
      missing: `the NFQUEUE target through nf_tables (nft_compat, xt_NFQUEUE) and nfnetlink_queue for the userspace engine: ${c.nfqueue.error ?? 'not found'}`,
    }),
    build(imp, _ctx, plan) {
      const mine: Record<string, unknown> = {};
      for (const k of setKeys(imp)) if (plan.assignments[k] === 'userspace') mine[k] = imp[k];
      plan.userspace = structuredClone(mine) as Impairment;
    },
  },
} as const satisfies Record<string, Backend>;

export type BackendName = keyof typeof impairBackends;
export const BACKEND_NAMES = Object.keys(impairBackends) as BackendName[];

/**
 * The burst an htb class may send at line speed: a few MTUs at low rates, 1 ms worth at
 * high rates (the kernel's timers cannot refill a one-MTU bucket often enough beyond a few
 * hundred Mbit/s, and throughput falls short of the rate).
 */
export function htbBurstBytes(rateBytesPerSec: number, mtu: number): number {
  return Math.round(Math.max(4 * (mtu + 14), rateBytesPerSec / 1000));
}

function fifoFor(imp: Impairment, ctx: PlanContext): TcOptions | undefined {
  if (imp.queueBytes !== undefined) {
    // Both given: the tighter of the two, in bytes.
    const bytes = imp.queuePackets !== undefined ? Math.min(imp.queueBytes, imp.queuePackets * ctx.mtu) : imp.queueBytes;
    return { kind: 'bfifo', limitBytes: bytes };
  }
  if (imp.queuePackets !== undefined) return { kind: 'pfifo', limitPackets: imp.queuePackets };
  return undefined;
}

/** The parameters that are actually set (0 counts: `loss 0%` is set, and harmless). */
export function setKeys(imp: Impairment): ImpairKey[] {
  return IMPAIRMENT_KEYS.filter((k) => imp[k] !== undefined);
}

export class ImpairmentUnsupportedError extends DuneError {
  readonly keys: ImpairKey[];
  constructor(where: string, keys: ImpairKey[], reasons: string[], engine = false) {
    super(
      'impairment-unsupported',
      `${where}: cannot apply ${keys.join(', ')} on this kernel (${reasons.join('; ')})`,
      {
        hint:
          'use a kernel with sch_netem (CONFIG_NET_SCH_NETEM, e.g. any distribution kernel, or the UML kernel lab), ' +
          (engine ? 'or one with nfnetlink_queue, nft_compat and xt_NFQUEUE for the userspace engine; ' : '') +
          'or remove these parameters',
      },
    );
    this.name = 'ImpairmentUnsupportedError';
    this.keys = keys;
  }
}

export interface PlanOptions extends PlanContext {
  /** For messages: `dune.lab.a/eth0`. */
  where?: string;
  /**
   * The lab's `impairment_backend`: `auto` (netem where the kernel has it, else htb,
   * nftables and the userspace engine), `netem` (an error when missing), `userspace` (htb,
   * nftables and the engine even where netem exists). `no-netem` is `userspace`'s old name.
   */
  prefer?: ImpairmentBackendSetting | 'no-netem';
  /**
   * The caller runs the lab's userspace engine and hands it `ImpairPlan.userspace` (dune's
   * labs do). Without it the userspace backend is never chosen: a caller that would not
   * apply that part gets an error instead of an impairment silently missing.
   */
  userspaceEngine?: boolean;
}

export type ImpairmentBackendSetting = 'auto' | 'netem' | 'userspace';

/** Which backend does what on one direction of one link, or an error naming what cannot be done. */
export function planImpairment(imp: Impairment, caps: Caps, opts: PlanOptions): ImpairPlan {
  const plan: ImpairPlan = { assignments: {}, tc: [] };
  const keys = setKeys(imp);
  if (keys.length === 0) return plan;
  const where = opts.where ?? 'impairment';
  const prefer = opts.prefer ?? 'auto';
  const netem = impairBackends.netem.available(caps);
  const engine = opts.userspaceEngine === true;
  if (prefer === 'netem' && !netem.ok) throw new ImpairmentUnsupportedError(where, keys, [netem.missing], engine);
  if (netem.ok && prefer !== 'no-netem' && prefer !== 'userspace') {
    for (const k of keys) plan.assignments[k] = 'netem';
    impairBackends.netem.build(imp, opts, plan);
    return plan;
  }
  const reasons = new Set<string>();
  if (!netem.ok) reasons.add(`no ${netem.missing}`);
  const unsupported: ImpairKey[] = [];
  const used = new Set<BackendName>();
  for (const k of keys) {
    let chosen: BackendName | undefined;
    for (const name of BACKEND_NAMES) {
      if (name === 'netem' || (name === 'userspace' && !engine)) continue;
      const b: Backend = impairBackends[name];
      if (!b.keys.includes(k)) continue;
      const av = b.available(caps);
      if (!av.ok) {
        reasons.add(`no ${av.missing}`);
        continue;
      }
      const why = b.accepts?.(imp);
      if (why) {
        reasons.add(why);
        continue;
      }
      chosen = name;
      break;
    }
    if (chosen === undefined) unsupported.push(k);
    else {
      plan.assignments[k] = chosen;
      used.add(chosen);
    }
  }
  if (unsupported.length > 0) throw new ImpairmentUnsupportedError(where, unsupported, [...reasons], engine);
  for (const name of used) impairBackends[name].build(imp, opts, plan);
  return plan;
}

/** netem's options from the model; the queue limit sized so rate × delay never overflows it. */
export function netemOptions(imp: Impairment, ctx: PlanContext): Omit<Extract<TcOptions, { kind: 'netem' }>, 'kind'> {
  const rateBits = imp.rateBitsPerSec ?? ASSUMED_LINE_RATE_BITS;
  const holdSec = ((imp.delayUs ?? 0) + 2 * (imp.jitterUs ?? 0)) / 1e6;
  // netem's default limit (1000 packets) silently drops once rate × delay exceeds it.
  const sized = Math.max(NETEM_MIN_LIMIT, Math.ceil(((rateBits / 8) * holdSec * 1.5) / Math.max(ctx.mtu, 1)));
  let limit = sized;
  if (imp.queuePackets !== undefined) limit = imp.queuePackets;
  if (imp.queueBytes !== undefined) limit = Math.min(imp.queuePackets ?? Infinity, Math.max(1, Math.ceil(imp.queueBytes / ctx.mtu)));
  const o: Omit<Extract<TcOptions, { kind: 'netem' }>, 'kind'> = { limitPackets: limit };
  if (imp.delayUs !== undefined) o.delayNs = imp.delayUs * 1000;
  if (imp.jitterUs !== undefined) o.jitterNs = imp.jitterUs * 1000;
  if (imp.jitterCorrelationPct !== undefined) o.delayCorrPct = imp.jitterCorrelationPct;
  if (imp.jitterUs && imp.jitterDistribution && imp.jitterDistribution !== 'uniform') {
    o.distribution = distributionTable(imp.jitterDistribution);
  }
  if (imp.lossGilbertElliott) {
    const g = imp.lossGilbertElliott;
    // netem's command line takes 1-h and 1-k; the kernel takes h and 1-k.
    o.gemodel = { pPct: g.pPct, rPct: g.rPct, hPct: 100 - g.oneMinusHPct, k1Pct: g.oneMinusKPct };
  } else if (imp.lossPct !== undefined) {
    o.lossPct = imp.lossPct;
    if (imp.lossCorrelationPct !== undefined) o.lossCorrPct = imp.lossCorrelationPct;
  }
  if (imp.duplicatePct !== undefined) o.duplicatePct = imp.duplicatePct;
  if (imp.corruptPct !== undefined) o.corruptPct = imp.corruptPct;
  if (imp.reorderPct !== undefined) o.reorderPct = imp.reorderPct;
  if (imp.reorderGap !== undefined) o.gap = imp.reorderGap;
  if (imp.rateBitsPerSec !== undefined) o.rateBytesPerSec = imp.rateBitsPerSec / 8;
  return o;
}

const DIST_DIRS = ['/usr/lib/x86_64-linux-gnu/tc', '/usr/lib/aarch64-linux-gnu/tc', '/usr/lib/tc', '/usr/lib64/tc', '/usr/share/tc'];

/** netem delay distribution tables, as iproute2 ships them (`normal.dist`, ...). */
export function distributionTable(name: string): Int16Array {
  for (const dir of DIST_DIRS) {
    const f = `${dir}/${name}.dist`;
    if (!existsSync(f)) continue;
    const nums = readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => !l.trimStart().startsWith('#'))
      .join(' ')
      .split(/\s+/)
      .filter((x) => x !== '')
      .map(Number);
    return Int16Array.from(nums);
  }
  throw new DuneError('netem-distribution-missing', `no ${name}.dist table for netem jitter in ${DIST_DIRS.join(', ')}`, {
    hint: 'install iproute2 (it ships the tables), or use jitterDistribution = "uniform"',
  });
}
