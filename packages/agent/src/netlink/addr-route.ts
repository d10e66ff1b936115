/** RTM_NEWADDR / RTM_NEWROUTE and their dumps. */
import {
  AF_INET,
  AF_INET6,
  IFA_ADDRESS,
  IFA_F_NODAD,
  IFA_F_PERMANENT,
  IFA_FLAGS,
  IFA_LOCAL,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_TABLE,
  RTA_VIA,
  RTM_GETADDR,
  RTM_GETROUTE,
  RTM_DELADDR,
  RTM_DELROUTE,
  RTM_NEWADDR,
  RTM_NEWROUTE,
  RTN_UNICAST,
  RTPROT_DUNE,
} from './constants.js';
import { formatIp, parseIp, parsePrefix, type IpAddr, type IpPrefix } from './ip.js';
import { attrs, attrU32, type NlMsg } from './parse.js';
import type { NlWriter } from './writer.js';

const CREATE_FLAGS = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const DELETE_FLAGS = NLM_F_REQUEST | NLM_F_ACK;

/** The same messages with `del` set are RTM_DELADDR / RTM_DELROUTE: convergence removes what a new plan no longer has. */

/**
 * `ip addr add CIDR dev IFINDEX`. IPv4 carries IFA_LOCAL and IFA_ADDRESS (the same on a
 * broadcast link); IPv6 carries IFA_ADDRESS with IFA_F_NODAD so the address is usable at
 * once instead of after ~1-2 s of duplicate address detection.
 */
export function newAddr(w: NlWriter, seq: number, ifindex: number, cidr: string, del = false): void {
  const p = parsePrefix(cidr);
  const v6 = p.family === AF_INET6;
  const flags = v6 ? IFA_F_NODAD | IFA_F_PERMANENT : IFA_F_PERMANENT;
  const start = del ? w.beginMsg(RTM_DELADDR, DELETE_FLAGS, seq) : w.beginMsg(RTM_NEWADDR, CREATE_FLAGS, seq);
  // struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index; }
  w.u8(p.family).u8(p.prefixLen).u8(flags & 0xff).u8(RT_SCOPE_UNIVERSE).u32(ifindex);
  if (!v6) w.attrBytes(IFA_LOCAL, p.bytes);
  w.attrBytes(IFA_ADDRESS, p.bytes);
  w.attrU32(IFA_FLAGS, flags);
  w.endMsg(start);
}

export interface RouteSpec {
  /** CIDR or `default`. */
  dst: string;
  via?: string;
  oif: number;
  metric?: number;
  /** Preferred source address (`ip route ... src A`), e.g. the node's loopback address. */
  src?: string;
}

/**
 * `ip route add DST [via GW] dev OIF [metric M] proto 68`. A gateway of the other family
 * (an IPv4 route via an IPv6 next hop) goes in RTA_VIA, as the kernel requires.
 */
export function newRoute(w: NlWriter, seq: number, r: RouteSpec, del = false): void {
  const gw = r.via !== undefined ? parseIp(r.via) : undefined;
  routeMsg(w, seq, parsePrefix(r.dst, gw?.family), gw, r.oif, r.src !== undefined ? parseIp(r.src) : undefined, r.metric, del);
}

/** newRoute's message from parsed parts (a route table's prefixes are never text: ops/routes.ts). */
export function routeMsg(w: NlWriter, seq: number, dst: IpPrefix, gw: IpAddr | undefined, oif: number, src?: IpAddr, metric?: number, del = false): void {
  const start = del ? w.beginMsg(RTM_DELROUTE, DELETE_FLAGS, seq) : w.beginMsg(RTM_NEWROUTE, CREATE_FLAGS, seq);
  // struct rtmsg { family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; }
  w.u8(dst.family)
    .u8(dst.prefixLen)
    .u8(0)
    .u8(0)
    .u8(RT_TABLE_MAIN)
    .u8(RTPROT_DUNE)
    .u8(gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK)
    .u8(RTN_UNICAST)
    .u32(0);
  if (dst.prefixLen > 0) w.attrBytes(RTA_DST, dst.bytes);
  if (gw) {
    if (gw.family === dst.family) w.attrBytes(RTA_GATEWAY, gw.bytes);
    else w.attrStruct(RTA_VIA, (x) => x.u16(gw.family).raw(gw.bytes));
  }
  w.attrU32(RTA_OIF, oif);
  if (src !== undefined) w.attrBytes(RTA_PREFSRC, src.bytes);
  if (metric !== undefined) w.attrU32(RTA_PRIORITY, metric);
  w.attrU32(RTA_TABLE, RT_TABLE_MAIN);
  w.endMsg(start);
}

export function getAddrDump(w: NlWriter, seq: number, flags: number): void {
  const start = w.beginMsg(RTM_GETADDR, flags, seq);
  w.u8(0).u8(0).u8(0).u8(0).u32(0);
  w.endMsg(start);
}

export function getRouteDump(w: NlWriter, seq: number, flags: number, family = 0): void {
  const start = w.beginMsg(RTM_GETROUTE, flags, seq);
  w.u8(family).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0).u32(0);
  w.endMsg(start);
}

export interface AddrInfo {
  ifindex: number;
  cidr: string;
  family: 'inet' | 'inet6';
}

export function parseAddr(m: NlMsg): AddrInfo {
  const d = m.data;
  const family = d.readUInt8(0);
  const prefixLen = d.readUInt8(1);
  const ifindex = d.readUInt32LE(4);
  const a = attrs(d, 8);
  const b = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS) ?? Buffer.alloc(family === AF_INET ? 4 : 16);
  return { ifindex, cidr: `${formatIp(family, b)}/${prefixLen}`, family: family === AF_INET ? 'inet' : 'inet6' };
}

export interface RouteInfo {
  family: 'inet' | 'inet6';
  dst: string;
  via?: string;
  oif?: number;
  metric?: number;
  table: number;
  protocol: number;
}

export function parseRoute(m: NlMsg): RouteInfo {
  const d = m.data;
  const family = d.readUInt8(0);
  const dstLen = d.readUInt8(1);
  const protocol = d.readUInt8(5);
  const a = attrs(d, 12);
  const table = attrU32(a.get(RTA_TABLE)) ?? d.readUInt8(4);
  const dstB = a.get(RTA_DST);
  const out: RouteInfo = {
    family: family === AF_INET ? 'inet' : 'inet6',
    dst: dstLen === 0 && !dstB ? 'default' : `${formatIp(family, dstB ?? Buffer.alloc(16))}/${dstLen}`,
    table,
    protocol,
  };
  const gw = a.get(RTA_GATEWAY);
  if (gw) out.via = formatIp(family, gw);
  const via = a.get(RTA_VIA);
  if (via && via.length >= 2) out.via = formatIp(via.readUInt16LE(0), via.subarray(2));
  const oif = attrU32(a.get(RTA_OIF));
  if (oif !== undefined) out.oif = oif;
  const metric = attrU32(a.get(RTA_PRIORITY));
  if (metric !== undefined) out.metric = metric;
  return out;
}
