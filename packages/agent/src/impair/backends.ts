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
import { DuneError, IMPAIRMENT_KEYS, type Impairment, type ImpairmentTomlKey } from '@dune/topology';
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

/** Every key but a Mahimahi trace per packet, which only the userspace engine follows. */
const NETEM_KEYS = IMPAIRMENT_KEYS.filter((k) => k !== 'deliveryTrace');

const RATE_KEYS = ['rateBitsPerSec', 'queuePackets', 'queueBytes'] as const satisfies readonly ImpairKey[];

/** Keys only netem or the userspace engine can carry (given a loss that nftables cannot draw): all but htb's and nftables'. */
function needsEngine(imp: Impairment): boolean {
  return IMPAIRMENT_KEYS.some((k) => imp[k] !== undefined && !(RATE_KEYS as readonly ImpairKey[]).includes(k) && k !== 'lossPct');
}

/** With no rate set, netem's queue is sized for what a veth can push: about 10 Gbit/s. */
const ASSUMED_LINE_RATE_BITS = 10e9;
const NETEM_MIN_LIMIT = 1000;

export const impairBackends = {
  netem: {
    keys: NETEM_KEYS,
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
  const withNetem = netem.ok && prefer !== 'no-netem' && prefer !== 'userspace';
  const reasons = new Set<string>();
  if (!netem.ok) reasons.add(`no ${netem.missing}`);
  const unsupported: ImpairKey[] = [];
  const used = new Set<BackendName>();
  for (const k of keys) {
    let chosen: BackendName | undefined;
    // netem, when it is used, carries every key it can (a Mahimahi trace per packet it cannot).
    if (withNetem && (impairBackends.netem.keys as readonly ImpairKey[]).includes(k)) {
      plan.assignments[k] = 'netem';
      used.add('netem');
      continue;
    }
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

type NetemOptions = Omit<Extract<TcOptions, { kind: 'netem' }>, 'kind'>;

interface NetemEncoding {
  /** Puts the key's part of `imp` into netem's options. */
  encode(imp: Impairment, o: NetemOptions, ctx: PlanContext): void;
  /** Reads it back from what the kernel reports (`dune status` of a netem lab). */
  decode(o: NetemOptions, imp: Impairment): void;
}

/**
 * netem's encoding of each key of the impairment key table (impairment-keys.ts says it in tc's
 * words): a key added there is refused by the type checker until it has its entry here.
 */
export const NETEM: Record<ImpairmentTomlKey, NetemEncoding> = {
  latency: {
    encode: (i, o) => void (i.delayUs !== undefined && (o.delayNs = i.delayUs * 1000)),
    decode: (o, i) => void (o.delayNs && (i.delayUs = o.delayNs / 1000)),
  },
  jitter: {
    encode: (i, o) => void (i.jitterUs !== undefined && (o.jitterNs = i.jitterUs * 1000)),
    decode: (o, i) => void (o.jitterNs && (i.jitterUs = o.jitterNs / 1000)),
  },
  jitter_distribution: {
    encode(i, o) {
      if (i.jitterUs && i.jitterDistribution && i.jitterDistribution !== 'uniform') o.distribution = distributionTable(i.jitterDistribution);
    },
    // The kernel keeps the table, not its name.
    decode: () => undefined,
  },
  jitter_correlation: {
    encode: (i, o) => void (i.jitterCorrelationPct !== undefined && (o.delayCorrPct = i.jitterCorrelationPct)),
    decode: () => undefined,
  },
  loss: {
    encode(i, o) {
      if (i.lossGilbertElliott) {
        const g = i.lossGilbertElliott;
        // netem's command line takes 1-h and 1-k; the kernel takes h and 1-k.
        o.gemodel = { pPct: g.pPct, rPct: g.rPct, hPct: 100 - g.oneMinusHPct, k1Pct: g.oneMinusKPct };
      } else if (i.lossPct !== undefined) o.lossPct = i.lossPct;
    },
    decode(o, i) {
      if (o.lossPct) i.lossPct = o.lossPct;
      if (o.gemodel) i.lossGilbertElliott = { pPct: o.gemodel.pPct, rPct: o.gemodel.rPct, oneMinusHPct: 100 - o.gemodel.hPct, oneMinusKPct: o.gemodel.k1Pct };
    },
  },
  loss_correlation: {
    encode: (i, o) => void (!i.lossGilbertElliott && i.lossPct !== undefined && i.lossCorrelationPct !== undefined && (o.lossCorrPct = i.lossCorrelationPct)),
    decode: (o, i) => void (o.lossCorrPct && (i.lossCorrelationPct = o.lossCorrPct)),
  },
  duplicate: {
    encode: (i, o) => void (i.duplicatePct !== undefined && (o.duplicatePct = i.duplicatePct)),
    decode: (o, i) => void (o.duplicatePct && (i.duplicatePct = o.duplicatePct)),
  },
  corrupt: {
    encode: (i, o) => void (i.corruptPct !== undefined && (o.corruptPct = i.corruptPct)),
    decode: (o, i) => void (o.corruptPct && (i.corruptPct = o.corruptPct)),
  },
  reorder: {
    encode: (i, o) => void (i.reorderPct !== undefined && (o.reorderPct = i.reorderPct)),
    decode: (o, i) => void (o.reorderPct && (i.reorderPct = o.reorderPct)),
  },
  reorder_gap: {
    encode: (i, o) => void (i.reorderGap !== undefined && (o.gap = i.reorderGap)),
    decode: (o, i) => void (o.gap && o.reorderPct && (i.reorderGap = o.gap)),
  },
  bw: {
    encode: (i, o) => void (i.rateBitsPerSec !== undefined && (o.rateBytesPerSec = i.rateBitsPerSec / 8)),
    decode: (o, i) => void (o.rateBytesPerSec && (i.rateBitsPerSec = o.rateBytesPerSec * 8)),
  },
  queue: {
    // Always: the limit sized so rate × delay never overflows it, unless a queue is asked for.
    encode(i, o, ctx) {
      const rateBits = i.rateBitsPerSec ?? ASSUMED_LINE_RATE_BITS;
      const holdSec = ((i.delayUs ?? 0) + 2 * (i.jitterUs ?? 0)) / 1e6;
      // netem's default limit (1000 packets) silently drops once rate × delay exceeds it.
      let limit = Math.max(NETEM_MIN_LIMIT, Math.ceil(((rateBits / 8) * holdSec * 1.5) / Math.max(ctx.mtu, 1)));
      if (i.queuePackets !== undefined) limit = i.queuePackets;
      if (i.queueBytes !== undefined) limit = Math.min(i.queuePackets ?? Infinity, Math.max(1, Math.ceil(i.queueBytes / ctx.mtu)));
      o.limitPackets = limit;
    },
    decode: (o, i) => void (i.queuePackets = o.limitPackets),
  },
};

/** netem's options from the model, key by key (NETEM). */
export function netemOptions(imp: Impairment, ctx: PlanContext): NetemOptions {
  const o: NetemOptions = { limitPackets: 0 };
  for (const enc of Object.values(NETEM)) enc.encode(imp, o, ctx);
  return o;
}

/** The model from netem's options as the kernel reports them. */
export function netemImpairment(o: NetemOptions, imp: Impairment = {}): Impairment {
  for (const enc of Object.values(NETEM)) enc.decode(o, imp);
  return imp;
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
