/**
 * Policy routing over rtnetlink: rules (RTM_NEWRULE / RTM_DELRULE / dump, FRA_* attributes),
 * routes in any table with every field a save-and-restore needs (type, scope, protocol,
 * prefsrc, onlink), addresses with IFA_F_NOPREFIXROUTE, and moving a link to another
 * namespace. NetMirage's core and edge are built from these (`ip rule`, `ip route ... table`).
 */
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  IFA_ADDRESS,
  IFA_FLAGS,
  IFA_LOCAL,
  IFLA_IFNAME,
  IFLA_NET_NS_FD,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_TABLE,
  RTM_DELADDR,
  RTM_DELROUTE,
  RTM_NEWADDR,
  RTM_NEWROUTE,
  RTM_SETLINK,
  RTN_UNICAST,
  RTPROT_DUNE,
} from './constants.js';
import { formatIp, parseIp, parsePrefix } from './ip.js';
import { attrs, attrStr, attrU32, type NlMsg } from './parse.js';
import type { NlWriter } from './writer.js';
import type { SavedRoute } from '@dune/compiler';

export const RTM_NEWRULE = 32;
export const RTM_DELRULE = 33;
export const RTM_GETRULE = 34;

export const FRA_DST = 1;
export const FRA_SRC = 2;
export const FRA_IIFNAME = 3;
export const FRA_PRIORITY = 6;
export const FRA_FWMARK = 10;
export const FRA_TABLE = 15;
export const FRA_FWMASK = 16;
export const FRA_OIFNAME = 17;
export const FRA_PROTOCOL = 21;

export const FR_ACT_TO_TBL = 1;
export const FR_ACT_BLACKHOLE = 6;
export const FR_ACT_UNREACHABLE = 7;
export const FR_ACT_PROHIBIT = 8;

export const RT_TABLE_LOCAL = 255;
export const RT_TABLE_MAIN = 254;
export const RT_TABLE_DEFAULT = 253;

export const RTN_LOCAL = 2;
export const RTN_BROADCAST = 3;
export const RTN_UNREACHABLE = 7;
export const RTNH_F_ONLINK = 4;
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_HOST = 254;
export const IFA_F_NOPREFIXROUTE = 0x200;

const CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const PLAIN = NLM_F_REQUEST | NLM_F_ACK;

export const RULE_ACTIONS = { table: FR_ACT_TO_TBL, blackhole: FR_ACT_BLACKHOLE, unreachable: FR_ACT_UNREACHABLE, prohibit: FR_ACT_PROHIBIT } as const;
export type RuleAction = keyof typeof RULE_ACTIONS;

/** One rule, as `ip rule` shows it: what a dump returns and what add/delete take. */
export interface Rule {
  family: 'inet' | 'inet6';
  priority: number;
  /** `lookup` table; 0 with an action other than `table`. */
  table: number;
  action: RuleAction;
  /** `from` prefix, `to` prefix. */
  src?: string;
  dst?: string;
  iif?: string;
  oif?: string;
  tos?: number;
  fwmark?: number;
  fwmask?: number;
  /** FRA_PROTOCOL: who made it (kernel ≥ 4.17). */
  protocol?: number;
}

function familyOf(r: Rule): number {
  return r.family === 'inet' ? AF_INET : AF_INET6;
}

/** `ip rule add|del ...`. Delete matches on every field given. */
export function ruleMsg(w: NlWriter, seq: number, r: Rule, del = false): void {
  const family = familyOf(r);
  const src = r.src !== undefined ? parsePrefix(r.src) : undefined;
  const dst = r.dst !== undefined ? parsePrefix(r.dst) : undefined;
  const start = del ? w.beginMsg(RTM_DELRULE, PLAIN, seq) : w.beginMsg(RTM_NEWRULE, CREATE, seq);
  // struct fib_rule_hdr { family, dst_len, src_len, tos, table, res1, res2, action; u32 flags; }
  w.u8(family)
    .u8(dst?.prefixLen ?? 0)
    .u8(src?.prefixLen ?? 0)
    .u8(r.tos ?? 0)
    .u8(r.table < 256 ? r.table : 0)
    .u8(0)
    .u8(0)
    .u8(RULE_ACTIONS[r.action])
    .u32(0);
  w.attrU32(FRA_PRIORITY, r.priority);
  if (r.action === 'table') w.attrU32(FRA_TABLE, r.table);
  if (src) w.attrBytes(FRA_SRC, src.bytes);
  if (dst) w.attrBytes(FRA_DST, dst.bytes);
  if (r.iif !== undefined) w.attrStr(FRA_IIFNAME, r.iif);
  if (r.oif !== undefined) w.attrStr(FRA_OIFNAME, r.oif);
  if (r.fwmark !== undefined) w.attrU32(FRA_FWMARK, r.fwmark);
  if (r.fwmask !== undefined) w.attrU32(FRA_FWMASK, r.fwmask);
  if (r.protocol !== undefined) w.attrU8(FRA_PROTOCOL, r.protocol);
  w.endMsg(start);
}

export function getRuleDump(w: NlWriter, seq: number, flags: number, family = AF_UNSPEC): void {
  const start = w.beginMsg(RTM_GETRULE, flags, seq);
  w.u8(family).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u32(0);
  w.endMsg(start);
}

export function parseRule(m: NlMsg): Rule {
  const d = m.data;
  const family = d.readUInt8(0);
  const dstLen = d.readUInt8(1);
  const srcLen = d.readUInt8(2);
  const tos = d.readUInt8(3);
  const action = d.readUInt8(7);
  const a = attrs(d, 12);
  const name = (Object.keys(RULE_ACTIONS) as RuleAction[]).find((k) => RULE_ACTIONS[k] === action) ?? 'table';
  const r: Rule = {
    family: family === AF_INET6 ? 'inet6' : 'inet',
    priority: attrU32(a.get(FRA_PRIORITY)) ?? 0,
    table: attrU32(a.get(FRA_TABLE)) ?? d.readUInt8(4),
    action: name,
  };
  const src = a.get(FRA_SRC);
  if (src) r.src = `${formatIp(family, src)}/${srcLen}`;
  const dst = a.get(FRA_DST);
  if (dst) r.dst = `${formatIp(family, dst)}/${dstLen}`;
  const iif = attrStr(a.get(FRA_IIFNAME));
  if (iif) r.iif = iif;
  const oif = attrStr(a.get(FRA_OIFNAME));
  if (oif) r.oif = oif;
  if (tos) r.tos = tos;
  const mark = attrU32(a.get(FRA_FWMARK));
  if (mark !== undefined) r.fwmark = mark;
  const mask = attrU32(a.get(FRA_FWMASK));
  if (mask !== undefined && mark !== undefined) r.fwmask = mask;
  const proto = a.get(FRA_PROTOCOL);
  if (proto && proto.length >= 1) r.protocol = proto.readUInt8(0);
  return r;
}

/**
 * A route in any table, with what it takes to put it back exactly: the plan's saved route
 * (compiler SavedRoute; `type` is RTN_*: 1 unicast, 2 local, 3 broadcast, 7 unreachable)
 * with the device it leaves by.
 */
export interface TableRoute extends SavedRoute {
  oif?: number;
}

/** `ip route add|del DST [via GW] [dev OIF] table T [proto P] [scope S] [src A] [onlink]`. */
export function tableRouteMsg(w: NlWriter, seq: number, r: TableRoute, del = false): void {
  const family = r.family === 'inet' ? AF_INET : AF_INET6;
  const dst = parsePrefix(r.dst, family);
  const start = del ? w.beginMsg(RTM_DELROUTE, PLAIN, seq) : w.beginMsg(RTM_NEWROUTE, CREATE, seq);
  w.u8(family)
    .u8(dst.prefixLen)
    .u8(0)
    .u8(r.tos ?? 0)
    .u8(r.table < 256 ? r.table : 0)
    .u8(r.protocol)
    .u8(r.scope)
    .u8(r.type)
    .u32(r.onlink ? RTNH_F_ONLINK : 0);
  if (dst.prefixLen > 0) w.attrBytes(RTA_DST, dst.bytes);
  if (r.via !== undefined) w.attrBytes(RTA_GATEWAY, parseIp(r.via).bytes);
  if (r.oif !== undefined) w.attrU32(RTA_OIF, r.oif);
  if (r.src !== undefined) w.attrBytes(RTA_PREFSRC, parseIp(r.src).bytes);
  if (r.metric !== undefined) w.attrU32(RTA_PRIORITY, r.metric);
  w.attrU32(RTA_TABLE, r.table);
  w.endMsg(start);
}

/** A unicast route of ours (proto 68): `via` → universe scope, else link scope. */
export function ourRoute(table: number, dst: string, oif: number, via?: string, onlink = false): TableRoute {
  const r: TableRoute = { family: 'inet', table, dst, oif, type: RTN_UNICAST, scope: via === undefined ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE, protocol: RTPROT_DUNE };
  if (via !== undefined) r.via = via;
  if (onlink) r.onlink = true;
  return r;
}

export function parseTableRoute(m: NlMsg): TableRoute {
  const d = m.data;
  const family = d.readUInt8(0);
  const dstLen = d.readUInt8(1);
  const a = attrs(d, 12);
  const dstB = a.get(RTA_DST);
  const r: TableRoute = {
    family: family === AF_INET6 ? 'inet6' : 'inet',
    table: attrU32(a.get(RTA_TABLE)) ?? d.readUInt8(4),
    dst: dstLen === 0 && !dstB ? 'default' : `${formatIp(family, dstB ?? Buffer.alloc(16))}/${dstLen}`,
    type: d.readUInt8(7),
    scope: d.readUInt8(6),
    protocol: d.readUInt8(5),
  };
  const tos = d.readUInt8(3);
  if (tos) r.tos = tos;
  if (d.readUInt32LE(8) & RTNH_F_ONLINK) r.onlink = true;
  const gw = a.get(RTA_GATEWAY);
  if (gw) r.via = formatIp(family, gw);
  const oif = attrU32(a.get(RTA_OIF));
  if (oif !== undefined) r.oif = oif;
  const src = a.get(RTA_PREFSRC);
  if (src) r.src = formatIp(family, src);
  const metric = attrU32(a.get(RTA_PRIORITY));
  if (metric !== undefined) r.metric = metric;
  return r;
}

/** An address with its flags; `noprefixroute` keeps the kernel from adding the subnet route. */
export interface AddrSpec {
  ifindex: number;
  cidr: string;
  noPrefixRoute?: boolean;
}

export function addrMsg(w: NlWriter, seq: number, a: AddrSpec, del = false): void {
  const p = parsePrefix(a.cidr);
  const flags = 0x80 /* IFA_F_PERMANENT */ | (a.noPrefixRoute ? IFA_F_NOPREFIXROUTE : 0);
  const start = del ? w.beginMsg(RTM_DELADDR, PLAIN, seq) : w.beginMsg(RTM_NEWADDR, CREATE, seq);
  w.u8(p.family).u8(p.prefixLen).u8(flags & 0xff).u8(RT_SCOPE_UNIVERSE).u32(a.ifindex);
  if (p.family === AF_INET) w.attrBytes(IFA_LOCAL, p.bytes);
  w.attrBytes(IFA_ADDRESS, p.bytes);
  w.attrU32(IFA_FLAGS, flags);
  w.endMsg(start);
}

/** `ip link set IFINDEX netns FD`: the link leaves the socket's namespace (its IP config does not follow). */
export function moveLinkMsg(w: NlWriter, seq: number, ifindex: number, nsFd: number, name?: string): void {
  const start = w.beginMsg(RTM_SETLINK, PLAIN, seq);
  w.u8(AF_UNSPEC).u8(0).u16(0).i32(ifindex).u32(0).u32(0);
  w.attrU32(IFLA_NET_NS_FD, nsFd);
  // Renamed in the same message (`ip link set X netns N name Y`): it never meets a namesake.
  if (name !== undefined) w.attrStr(IFLA_IFNAME, name);
  w.endMsg(start);
}
