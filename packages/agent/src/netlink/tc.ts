/**
 * Traffic control over rtnetlink: qdiscs and classes for htb, tbf, pfifo/bfifo and netem,
 * encoded from the uapi structs in linux/pkt_sched.h. Rate tables (TCA_*_RTAB) are not
 * sent: since Linux 3.x htb and tbf compute rates themselves, and a ratespec with a
 * linklayer set (TC_LINKLAYER_ETHERNET) tells them not to look for a table.
 */
import {
  NETEM_LOSS_GE,
  NLA_F_NESTED,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  PSCHED_NS_PER_TICK,
  RTM_DELQDISC,
  RTM_GETQDISC,
  RTM_GETTCLASS,
  RTM_NEWQDISC,
  RTM_NEWTCLASS,
  TC_H_ROOT,
  TC_HTB_PROTOVER,
  TC_LINKLAYER_ETHERNET,
  TCA_HTB_CEIL64,
  TCA_HTB_INIT,
  TCA_HTB_PARMS,
  TCA_HTB_RATE64,
  TCA_KIND,
  TCA_NETEM_CORR,
  TCA_NETEM_CORRUPT,
  TCA_NETEM_DELAY_DIST,
  TCA_NETEM_JITTER64,
  TCA_NETEM_LATENCY64,
  TCA_NETEM_LOSS,
  TCA_NETEM_RATE,
  TCA_NETEM_RATE64,
  TCA_NETEM_REORDER,
  TCA_OPTIONS,
  TCA_TBF_BURST,
  TCA_TBF_PARMS,
  TCA_TBF_RATE64,
} from './constants.js';
import { attrs, attrStr, attrU64, type NlMsg } from './parse.js';
import type { NlWriter } from './writer.js';

export const U32_MAX = 0xffffffff;

/** `major:minor` → the kernel's 32-bit handle. */
export const handle = (major: number, minor = 0): number => ((major << 16) | minor) >>> 0;

export function formatHandle(h: number): string {
  if (h === TC_H_ROOT) return 'root';
  return `${(h >>> 16).toString(16)}:${(h & 0xffff).toString(16)}`;
}

/** C's rint() in the default rounding mode: halves go to the even neighbour. */
export function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** A probability in percent on netem's u32 scale, exactly as iproute2: rint(fraction × UINT32_MAX). */
export const pctToU32 = (pct: number): number => rint((Math.min(Math.max(pct, 0), 100) / 100) * U32_MAX) >>> 0;
export const u32ToPct = (v: number): number => (v / U32_MAX) * 100;

/** Nanoseconds → kernel psched ticks (64 ns), saturating at u32. */
export const nsToTicks = (ns: number): number => Math.min(Math.round(ns / PSCHED_NS_PER_TICK), U32_MAX);

// struct tc_ratespec { u8 cell_log; u8 linklayer; u16 overhead; s16 cell_align; u16 mpu; u32 rate; }
function ratespec(w: NlWriter, bytesPerSec: number): void {
  w.u8(0).u8(TC_LINKLAYER_ETHERNET).u16(0).i16(0).u16(0).u32(Math.min(bytesPerSec, U32_MAX));
}

// struct tcmsg { u8 family; u8 pad1; u16 pad2; s32 ifindex; u32 handle; u32 parent; u32 info; }
function tcmsg(w: NlWriter, ifindex: number, h: number, parent: number): void {
  w.u8(0).u8(0).u16(0).i32(ifindex).u32(h).u32(parent).u32(0);
}

export interface TcTarget {
  ifindex: number;
  handle: number;
  parent: number;
  /** Replace what is there (NLM_F_CREATE|NLM_F_REPLACE) instead of failing if it exists. */
  replace?: boolean;
}

/** The options of one qdisc or class, as a tagged value: what `tc` would take as arguments. */
export type TcOptions =
  | { kind: 'htb'; defaultClass: number; directQlen?: number }
  | { kind: 'htb-class'; rateBytesPerSec: number; ceilBytesPerSec?: number; burstBytes: number; quantumBytes: number }
  | { kind: 'tbf'; rateBytesPerSec: number; burstBytes: number; limitBytes: number }
  | { kind: 'pfifo'; limitPackets: number }
  | { kind: 'bfifo'; limitBytes: number }
  | ({ kind: 'netem' } & NetemOptions);

export interface NetemOptions {
  limitPackets: number;
  delayNs?: number;
  jitterNs?: number;
  delayCorrPct?: number;
  lossPct?: number;
  lossCorrPct?: number;
  /** Gilbert-Elliott, as the kernel takes it (h, not 1-h). */
  gemodel?: { pPct: number; rPct: number; hPct: number; k1Pct: number };
  duplicatePct?: number;
  duplicateCorrPct?: number;
  reorderPct?: number;
  reorderCorrPct?: number;
  gap?: number;
  corruptPct?: number;
  corruptCorrPct?: number;
  rateBytesPerSec?: number;
  /** Delay distribution table (NETEM_DIST_SCALE = 8192 units), as in /usr/lib/tc/*.dist. */
  distribution?: Int16Array;
}

export function kindName(o: TcOptions): string {
  return o.kind === 'htb-class' ? 'htb' : o.kind;
}

function writeOptions(w: NlWriter, o: TcOptions): void {
  switch (o.kind) {
    case 'htb': {
      const n = w.beginNest(TCA_OPTIONS);
      // struct tc_htb_glob { u32 version; u32 rate2quantum; u32 defcls; u32 debug; u32 direct_pkts; }
      w.attrStruct(TCA_HTB_INIT, (x) => x.u32(TC_HTB_PROTOVER).u32(10).u32(o.defaultClass).u32(0).u32(0));
      w.endNest(n);
      return;
    }
    case 'htb-class': {
      const ceil = o.ceilBytesPerSec ?? o.rateBytesPerSec;
      const n = w.beginNest(TCA_OPTIONS);
      // struct tc_htb_opt { tc_ratespec rate; tc_ratespec ceil; u32 buffer; u32 cbuffer; u32 quantum; u32 level; u32 prio; }
      w.attrStruct(TCA_HTB_PARMS, (x) => {
        ratespec(x, o.rateBytesPerSec);
        ratespec(x, ceil);
        x.u32(nsToTicks((o.burstBytes * 1e9) / o.rateBytesPerSec));
        x.u32(nsToTicks((o.burstBytes * 1e9) / ceil));
        x.u32(o.quantumBytes).u32(0).u32(0);
      });
      // Rates of 2^32 bytes/s (34 Gbit/s) and more do not fit tc_ratespec.rate.
      if (o.rateBytesPerSec >= U32_MAX) w.attrU64(TCA_HTB_RATE64, BigInt(Math.round(o.rateBytesPerSec)));
      if (ceil >= U32_MAX) w.attrU64(TCA_HTB_CEIL64, BigInt(Math.round(ceil)));
      w.endNest(n);
      return;
    }
    case 'tbf': {
      const n = w.beginNest(TCA_OPTIONS);
      // struct tc_tbf_qopt { tc_ratespec rate; tc_ratespec peakrate; u32 limit; u32 buffer; u32 mtu; }
      w.attrStruct(TCA_TBF_PARMS, (x) => {
        ratespec(x, o.rateBytesPerSec);
        x.u8(0).u8(0).u16(0).i16(0).u16(0).u32(0); // no peak rate
        x.u32(o.limitBytes).u32(nsToTicks((o.burstBytes * 1e9) / o.rateBytesPerSec)).u32(0);
      });
      if (o.rateBytesPerSec >= U32_MAX) w.attrU64(TCA_TBF_RATE64, BigInt(Math.round(o.rateBytesPerSec)));
      w.attrU32(TCA_TBF_BURST, o.burstBytes);
      w.endNest(n);
      return;
    }
    case 'pfifo':
      // struct tc_fifo_qopt { u32 limit; } directly as the option payload
      w.attrStruct(TCA_OPTIONS, (x) => x.u32(o.limitPackets));
      return;
    case 'bfifo':
      w.attrStruct(TCA_OPTIONS, (x) => x.u32(o.limitBytes));
      return;
    case 'netem':
      writeNetem(w, o);
      return;
  }
}

/**
 * netem's TCA_OPTIONS is a struct tc_netem_qopt followed by attributes inside the same
 * attribute (the kernel parses it with nla_parse_nested_compat):
 *
 *   struct tc_netem_qopt { u32 latency; u32 limit; u32 loss; u32 gap; u32 duplicate; u32 jitter; }
 *
 * latency/jitter there are u32 psched ticks; TCA_NETEM_LATENCY64/JITTER64 (s64 ns) override
 * them, so both are sent, as tc does.
 */
export function writeNetem(w: NlWriter, o: NetemOptions): void {
  const n = w.beginNest(TCA_OPTIONS);
  const reorder = o.reorderPct !== undefined && o.reorderPct > 0;
  w.u32(nsToTicks(o.delayNs ?? 0))
    .u32(o.limitPackets)
    .u32(o.gemodel ? 0 : pctToU32(o.lossPct ?? 0))
    .u32(o.gap ?? (reorder ? 1 : 0))
    .u32(pctToU32(o.duplicatePct ?? 0))
    .u32(nsToTicks(o.jitterNs ?? 0));
  if (o.delayCorrPct || o.lossCorrPct || o.duplicateCorrPct) {
    // struct tc_netem_corr { u32 delay_corr; u32 loss_corr; u32 dup_corr; }
    w.attrStruct(TCA_NETEM_CORR, (x) =>
      x.u32(pctToU32(o.delayCorrPct ?? 0)).u32(pctToU32(o.lossCorrPct ?? 0)).u32(pctToU32(o.duplicateCorrPct ?? 0)),
    );
  }
  if (o.distribution) {
    w.attrStruct(TCA_NETEM_DELAY_DIST, (x) => {
      for (const v of o.distribution ?? []) x.i16(v);
    });
  }
  if (reorder) {
    // struct tc_netem_reorder { u32 probability; u32 correlation; }
    w.attrStruct(TCA_NETEM_REORDER, (x) => x.u32(pctToU32(o.reorderPct ?? 0)).u32(pctToU32(o.reorderCorrPct ?? 0)));
  }
  if (o.corruptPct) {
    // struct tc_netem_corrupt { u32 probability; u32 correlation; }
    w.attrStruct(TCA_NETEM_CORRUPT, (x) => x.u32(pctToU32(o.corruptPct ?? 0)).u32(pctToU32(o.corruptCorrPct ?? 0)));
  }
  if (o.gemodel) {
    const g = o.gemodel;
    const loss = w.beginNest(TCA_NETEM_LOSS | NLA_F_NESTED);
    // struct tc_netem_gemodel { u32 p; u32 r; u32 h; u32 k1; }
    w.attrStruct(NETEM_LOSS_GE, (x) => x.u32(pctToU32(g.pPct)).u32(pctToU32(g.rPct)).u32(pctToU32(g.hPct)).u32(pctToU32(g.k1Pct)));
    w.endNest(loss);
  }
  if (o.rateBytesPerSec !== undefined) {
    const rate = o.rateBytesPerSec;
    // struct tc_netem_rate { u32 rate; s32 packet_overhead; u32 cell_size; s32 cell_overhead; }
    w.attrStruct(TCA_NETEM_RATE, (x) => x.u32(Math.min(rate, U32_MAX)).i32(0).u32(0).i32(0));
    if (rate >= U32_MAX) w.attrU64(TCA_NETEM_RATE64, BigInt(Math.round(rate)));
  }
  if (o.delayNs !== undefined) w.attrI64(TCA_NETEM_LATENCY64, BigInt(Math.round(o.delayNs)));
  if (o.jitterNs !== undefined) w.attrI64(TCA_NETEM_JITTER64, BigInt(Math.round(o.jitterNs)));
  w.endNest(n);
}

function tcFlags(t: TcTarget): number {
  return NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (t.replace ? NLM_F_REPLACE : NLM_F_EXCL);
}

export function newQdisc(w: NlWriter, seq: number, t: TcTarget, o: TcOptions): void {
  const start = w.beginMsg(RTM_NEWQDISC, tcFlags(t), seq);
  tcmsg(w, t.ifindex, t.handle, t.parent);
  w.attrStr(TCA_KIND, kindName(o));
  writeOptions(w, o);
  w.endMsg(start);
}

export function newClass(w: NlWriter, seq: number, t: TcTarget, o: TcOptions): void {
  const start = w.beginMsg(RTM_NEWTCLASS, tcFlags(t), seq);
  tcmsg(w, t.ifindex, t.handle, t.parent);
  w.attrStr(TCA_KIND, kindName(o));
  writeOptions(w, o);
  w.endMsg(start);
}

/** Deletes the root qdisc of `ifindex` (and so everything under it). */
export function delRootQdisc(w: NlWriter, seq: number, ifindex: number): void {
  const start = w.beginMsg(RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK, seq);
  tcmsg(w, ifindex, 0, TC_H_ROOT);
  w.endMsg(start);
}

export function getQdiscs(w: NlWriter, seq: number, flags: number, ifindex = 0): void {
  const start = w.beginMsg(RTM_GETQDISC, flags, seq);
  tcmsg(w, ifindex, 0, 0);
  w.endMsg(start);
}

export function getClasses(w: NlWriter, seq: number, flags: number, ifindex: number): void {
  const start = w.beginMsg(RTM_GETTCLASS, flags, seq);
  tcmsg(w, ifindex, 0, 0);
  w.endMsg(start);
}

export interface TcEntry {
  ifindex: number;
  handle: number;
  parent: number;
  kind: string;
  /** Decoded options, for the kinds we create. */
  options?: TcOptions;
}

export function parseTc(m: NlMsg, isClass: boolean): TcEntry {
  const d = m.data;
  const a = attrs(d, 20);
  const kind = attrStr(a.get(TCA_KIND)) ?? '';
  const e: TcEntry = { ifindex: d.readInt32LE(4), handle: d.readUInt32LE(8), parent: d.readUInt32LE(12), kind };
  const opt = a.get(TCA_OPTIONS);
  if (opt) {
    const o = decodeOptions(kind, isClass, opt);
    if (o) e.options = o;
  }
  return e;
}

function rateOf(b: Buffer, off: number): number {
  return b.readUInt32LE(off + 8);
}

export function decodeOptions(kind: string, isClass: boolean, opt: Buffer): TcOptions | undefined {
  if ((kind === 'pfifo' || kind === 'bfifo') && opt.length >= 4) {
    return kind === 'pfifo' ? { kind, limitPackets: opt.readUInt32LE(0) } : { kind, limitBytes: opt.readUInt32LE(0) };
  }
  if (kind === 'htb' && isClass) {
    const a = attrs(opt);
    const p = a.get(TCA_HTB_PARMS);
    if (!p || p.length < 44) return undefined;
    const rate64 = attrU64(a.get(TCA_HTB_RATE64));
    const ceil64 = attrU64(a.get(TCA_HTB_CEIL64));
    const rate = rate64 !== undefined ? Number(rate64) : rateOf(p, 0);
    const ceil = ceil64 !== undefined ? Number(ceil64) : rateOf(p, 12);
    const bufferNs = p.readUInt32LE(24) * PSCHED_NS_PER_TICK;
    return {
      kind: 'htb-class',
      rateBytesPerSec: rate,
      ceilBytesPerSec: ceil,
      burstBytes: Math.round((bufferNs / 1e9) * rate),
      quantumBytes: p.readUInt32LE(32),
    };
  }
  if (kind === 'htb') {
    const g = attrs(opt).get(TCA_HTB_INIT);
    return g && g.length >= 12 ? { kind: 'htb', defaultClass: g.readUInt32LE(8) } : undefined;
  }
  if (kind === 'tbf') {
    const a = attrs(opt);
    const p = a.get(TCA_TBF_PARMS);
    if (!p || p.length < 36) return undefined;
    const rate64 = attrU64(a.get(TCA_TBF_RATE64));
    const rate = rate64 !== undefined ? Number(rate64) : rateOf(p, 0);
    return {
      kind: 'tbf',
      rateBytesPerSec: rate,
      limitBytes: p.readUInt32LE(24),
      burstBytes: Math.round(((p.readUInt32LE(28) * PSCHED_NS_PER_TICK) / 1e9) * rate),
    };
  }
  if (kind === 'netem' && opt.length >= 24) return { kind: 'netem', ...decodeNetem(opt) };
  return undefined;
}

export function decodeNetem(opt: Buffer): NetemOptions {
  const o: NetemOptions = { limitPackets: opt.readUInt32LE(4) };
  const latencyTicks = opt.readUInt32LE(0);
  const jitterTicks = opt.readUInt32LE(20);
  if (latencyTicks) o.delayNs = latencyTicks * PSCHED_NS_PER_TICK;
  if (jitterTicks) o.jitterNs = jitterTicks * PSCHED_NS_PER_TICK;
  if (opt.readUInt32LE(8)) o.lossPct = u32ToPct(opt.readUInt32LE(8));
  if (opt.readUInt32LE(12)) o.gap = opt.readUInt32LE(12);
  if (opt.readUInt32LE(16)) o.duplicatePct = u32ToPct(opt.readUInt32LE(16));
  const a = attrs(opt, 24);
  const lat = a.get(TCA_NETEM_LATENCY64);
  if (lat && lat.length >= 8) o.delayNs = Number(lat.readBigInt64LE(0));
  const jit = a.get(TCA_NETEM_JITTER64);
  if (jit && jit.length >= 8) o.jitterNs = Number(jit.readBigInt64LE(0));
  const corr = a.get(TCA_NETEM_CORR);
  if (corr && corr.length >= 12) {
    if (corr.readUInt32LE(0)) o.delayCorrPct = u32ToPct(corr.readUInt32LE(0));
    if (corr.readUInt32LE(4)) o.lossCorrPct = u32ToPct(corr.readUInt32LE(4));
    if (corr.readUInt32LE(8)) o.duplicateCorrPct = u32ToPct(corr.readUInt32LE(8));
  }
  const re = a.get(TCA_NETEM_REORDER);
  if (re && re.length >= 8 && re.readUInt32LE(0)) {
    o.reorderPct = u32ToPct(re.readUInt32LE(0));
    if (re.readUInt32LE(4)) o.reorderCorrPct = u32ToPct(re.readUInt32LE(4));
  }
  const co = a.get(TCA_NETEM_CORRUPT);
  if (co && co.length >= 8 && co.readUInt32LE(0)) o.corruptPct = u32ToPct(co.readUInt32LE(0));
  const loss = a.get(TCA_NETEM_LOSS);
  if (loss) {
    const ge = attrs(loss).get(NETEM_LOSS_GE);
    if (ge && ge.length >= 16) {
      o.gemodel = {
        pPct: u32ToPct(ge.readUInt32LE(0)),
        rPct: u32ToPct(ge.readUInt32LE(4)),
        hPct: u32ToPct(ge.readUInt32LE(8)),
        k1Pct: u32ToPct(ge.readUInt32LE(12)),
      };
    }
  }
  const rate = a.get(TCA_NETEM_RATE);
  if (rate && rate.length >= 4 && rate.readUInt32LE(0)) o.rateBytesPerSec = rate.readUInt32LE(0);
  const rate64 = attrU64(a.get(TCA_NETEM_RATE64));
  if (rate64 !== undefined) o.rateBytesPerSec = Number(rate64);
  return o;
}
