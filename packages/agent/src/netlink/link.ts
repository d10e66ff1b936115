/**
 * RTM_*LINK messages: veth, vxlan and bridge creation (straight into their namespaces via
 * IFLA_NET_NS_FD, from a socket in any namespace), setlink (up, alias, master), dellink, and
 * the link dump for status.
 */
import {
  AF_UNSPEC,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_BR_AGEING_TIME,
  IFLA_BR_FORWARD_DELAY,
  IFLA_BR_STP_STATE,
  IFLA_IFALIAS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_NUM_RX_QUEUES,
  IFLA_NUM_TX_QUEUES,
  IFLA_OPERSTATE,
  IFLA_STATS64,
  IFLA_VXLAN_GROUP,
  IFLA_VXLAN_GROUP6,
  IFLA_VXLAN_ID,
  IFLA_VXLAN_LEARNING,
  IFLA_VXLAN_LINK,
  IFLA_VXLAN_LOCAL,
  IFLA_VXLAN_LOCAL6,
  IFLA_VXLAN_PORT,
  IFLA_VXLAN_TTL,
  AF_INET,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  OPERSTATES,
  RTM_DELLINK,
  RTM_GETLINK,
  RTM_NEWLINK,
  RTM_SETLINK,
  VETH_INFO_PEER,
} from './constants.js';
import { parseIp, parseMac, formatMac } from './ip.js';
import { attrs, attrStr, attrU32, type NlMsg } from './parse.js';
import type { NlWriter } from './writer.js';

const CREATE_FLAGS = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const SET_FLAGS = NLM_F_REQUEST | NLM_F_ACK;

/** What a new interface gets at creation. */
export interface LinkSpec {
  name: string;
  /** Explicit ifindex in its namespace (0: the kernel picks). */
  index?: number;
  /** fd of the namespace the interface is created in; absent: the socket's own. */
  nsFd?: number;
  mtu?: number;
  mac?: string;
  /** Created administratively up (ifi_flags IFF_UP): saves a separate setlink. */
  up?: boolean;
}

function ifinfomsg(w: NlWriter, index: number, flags: number, change: number): void {
  // struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; }
  w.u8(AF_UNSPEC).u8(0).u16(0).i32(index).u32(flags).u32(change);
}

function linkAttrs(w: NlWriter, s: LinkSpec): void {
  w.attrStr(IFLA_IFNAME, s.name);
  if (s.mtu !== undefined) w.attrU32(IFLA_MTU, s.mtu);
  if (s.mac !== undefined) w.attrBytes(IFLA_ADDRESS, parseMac(s.mac));
  if (s.nsFd !== undefined) w.attrU32(IFLA_NET_NS_FD, s.nsFd);
}

function upFlags(s: LinkSpec): [number, number] {
  return s.up ? [IFF_UP, IFF_UP] : [0, 0];
}

function beginNew(w: NlWriter, seq: number, s: LinkSpec): number {
  const start = w.beginMsg(RTM_NEWLINK, CREATE_FLAGS, seq);
  const [flags, change] = upFlags(s);
  ifinfomsg(w, s.index ?? 0, flags, change);
  linkAttrs(w, s);
  return start;
}

/**
 * One queue each way, asked for at creation. Without it the kernel allocates a queue per
 * possible CPU and, once the device is registered, cuts the real count back to one, which
 * waits for an expedited RCU grace period while holding RTNL: twice per pair, stalling every
 * other link, address and sysctl write on the machine meanwhile (`ip link add` does the same).
 */
function singleQueue(w: NlWriter): void {
  w.attrU32(IFLA_NUM_TX_QUEUES, 1);
  w.attrU32(IFLA_NUM_RX_QUEUES, 1);
}

/** `ip link add A netns X type veth peer name B netns Y`, both ends in one message. */
export function newVeth(w: NlWriter, seq: number, a: LinkSpec, b: LinkSpec): void {
  const start = beginNew(w, seq, a);
  singleQueue(w);
  const info = w.beginNest(IFLA_LINKINFO);
  w.attrStr(IFLA_INFO_KIND, 'veth');
  const data = w.beginNest(IFLA_INFO_DATA);
  // VETH_INFO_PEER carries a whole ifinfomsg followed by the peer's own IFLA_* attributes.
  const peer = w.beginNest(VETH_INFO_PEER);
  const [flags, change] = upFlags(b);
  ifinfomsg(w, b.index ?? 0, flags, change);
  linkAttrs(w, b);
  singleQueue(w);
  w.endNest(peer);
  w.endNest(data);
  w.endNest(info);
  w.endMsg(start);
}

export interface VxlanSpec extends LinkSpec {
  vni: number;
  local: string;
  remote: string;
  port: number;
  /** ifindex of the underlay device in the socket's namespace. */
  underlayIndex?: number;
  /** MAC learning (default off: a point-to-point link); a vtep into a fabric learns. */
  learning?: boolean;
  /** Outer TTL (default 64). */
  ttl?: number;
}

/**
 * A VXLAN device. Its UDP socket lives in the namespace of the netlink socket that creates
 * it (the "host"), while the device itself goes to `nsFd`: the node sees a plain interface,
 * the encapsulated traffic leaves from the host's underlay.
 */
export function newVxlan(w: NlWriter, seq: number, s: VxlanSpec): void {
  const start = beginNew(w, seq, s);
  const info = w.beginNest(IFLA_LINKINFO);
  w.attrStr(IFLA_INFO_KIND, 'vxlan');
  const data = w.beginNest(IFLA_INFO_DATA);
  w.attrU32(IFLA_VXLAN_ID, s.vni);
  const remote = parseIp(s.remote);
  if (s.local !== '') {
    const local = parseIp(s.local);
    if (local.family === AF_INET) w.attrBytes(IFLA_VXLAN_LOCAL, local.bytes);
    else w.attrBytes(IFLA_VXLAN_LOCAL6, local.bytes);
  }
  if (remote.family === AF_INET) w.attrBytes(IFLA_VXLAN_GROUP, remote.bytes);
  else w.attrBytes(IFLA_VXLAN_GROUP6, remote.bytes);
  if (s.underlayIndex !== undefined) w.attrU32(IFLA_VXLAN_LINK, s.underlayIndex);
  // The UDP port is the one attribute of this family in network byte order.
  w.attrBe16(IFLA_VXLAN_PORT, s.port);
  w.attrU8(IFLA_VXLAN_TTL, s.ttl ?? 64);
  // Point-to-point: learning only adds FDB churn.
  w.attrU8(IFLA_VXLAN_LEARNING, s.learning === true ? 1 : 0);
  w.endNest(data);
  w.endNest(info);
  w.endMsg(start);
}

export interface BridgeSpec extends LinkSpec {
  /** IFLA_BR_STP_STATE: 0 off. */
  stpState?: number;
  /** IFLA_BR_FORWARD_DELAY in centiseconds; 0 only allowed with STP off (sent first). */
  forwardDelayCs?: number;
  /** IFLA_BR_AGEING_TIME in centiseconds; 0: learn nothing, flood everything (a hub). */
  ageingTimeCs?: number;
}

export function newBridge(w: NlWriter, seq: number, s: BridgeSpec): void {
  const start = beginNew(w, seq, s);
  const info = w.beginNest(IFLA_LINKINFO);
  w.attrStr(IFLA_INFO_KIND, 'bridge');
  if (s.stpState !== undefined || s.forwardDelayCs !== undefined || s.ageingTimeCs !== undefined) {
    const data = w.beginNest(IFLA_INFO_DATA);
    if (s.stpState !== undefined) w.attrU32(IFLA_BR_STP_STATE, s.stpState);
    if (s.forwardDelayCs !== undefined) w.attrU32(IFLA_BR_FORWARD_DELAY, s.forwardDelayCs);
    if (s.ageingTimeCs !== undefined) w.attrU32(IFLA_BR_AGEING_TIME, s.ageingTimeCs);
    w.endNest(data);
  }
  w.endNest(info);
  w.endMsg(start);
}

/** A generic link of `kind` with no options (dummy, for the probe). */
export function newSimpleLink(w: NlWriter, seq: number, kind: string, s: LinkSpec): void {
  const start = beginNew(w, seq, s);
  const info = w.beginNest(IFLA_LINKINFO);
  w.attrStr(IFLA_INFO_KIND, kind);
  w.endNest(info);
  w.endMsg(start);
}

export interface SetLinkSpec {
  /** Target by index, or by name when index is 0/absent. */
  index?: number;
  name?: string;
  up?: boolean;
  alias?: string;
  /** ifindex of the bridge; 0 releases. */
  master?: number;
  mtu?: number;
}

export function setLink(w: NlWriter, seq: number, s: SetLinkSpec): void {
  const start = w.beginMsg(RTM_SETLINK, SET_FLAGS, seq);
  const flags = s.up === undefined ? 0 : s.up ? IFF_UP : 0;
  const change = s.up === undefined ? 0 : IFF_UP;
  ifinfomsg(w, s.index ?? 0, flags, change);
  if (!s.index && s.name !== undefined) w.attrStr(IFLA_IFNAME, s.name);
  if (s.mtu !== undefined) w.attrU32(IFLA_MTU, s.mtu);
  if (s.alias !== undefined) w.attrStr(IFLA_IFALIAS, s.alias);
  if (s.master !== undefined) w.attrU32(IFLA_MASTER, s.master);
  w.endMsg(start);
}

export function delLink(w: NlWriter, seq: number, target: { index?: number; name?: string }): void {
  const start = w.beginMsg(RTM_DELLINK, SET_FLAGS, seq);
  ifinfomsg(w, target.index ?? 0, 0, 0);
  if (!target.index && target.name !== undefined) w.attrStr(IFLA_IFNAME, target.name);
  w.endMsg(start);
}

/** RTM_GETLINK: a dump when `flags` has NLM_F_DUMP, else one link by index or name. */
export function getLink(w: NlWriter, seq: number, flags: number, target: { index?: number; name?: string } = {}): void {
  const start = w.beginMsg(RTM_GETLINK, flags, seq);
  ifinfomsg(w, target.index ?? 0, 0, 0);
  if (!target.index && target.name !== undefined) w.attrStr(IFLA_IFNAME, target.name);
  w.endMsg(start);
}

export interface LinkStats {
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  rxErrors: bigint;
  txErrors: bigint;
  rxDropped: bigint;
  txDropped: bigint;
}

export interface LinkInfoMsg {
  index: number;
  name: string;
  /** IFF_* flags. */
  flags: number;
  up: boolean;
  operstate: (typeof OPERSTATES)[number];
  mtu?: number;
  mac?: string;
  alias?: string;
  master?: number;
  kind?: string;
  stats?: LinkStats;
}

export function parseLink(m: NlMsg): LinkInfoMsg {
  const d = m.data;
  const index = d.readInt32LE(4);
  const flags = d.readUInt32LE(8);
  const a = attrs(d, 16);
  const op = a.get(IFLA_OPERSTATE);
  const out: LinkInfoMsg = {
    index,
    name: attrStr(a.get(IFLA_IFNAME)) ?? '',
    flags,
    up: (flags & IFF_UP) !== 0,
    operstate: OPERSTATES[op?.[0] ?? 0] ?? 'unknown',
  };
  const mtu = attrU32(a.get(IFLA_MTU));
  if (mtu !== undefined) out.mtu = mtu;
  const mac = a.get(IFLA_ADDRESS);
  if (mac && mac.length === 6) out.mac = formatMac(mac);
  const alias = attrStr(a.get(IFLA_IFALIAS));
  if (alias) out.alias = alias;
  const master = attrU32(a.get(IFLA_MASTER));
  if (master !== undefined) out.master = master;
  const li = a.get(IFLA_LINKINFO);
  if (li) {
    const kind = attrStr(attrs(li).get(IFLA_INFO_KIND));
    if (kind) out.kind = kind;
  }
  const st = a.get(IFLA_STATS64);
  if (st && st.length >= 64) {
    const u = (i: number) => st.readBigUInt64LE(i * 8);
    out.stats = {
      rxPackets: u(0),
      txPackets: u(1),
      rxBytes: u(2),
      txBytes: u(3),
      rxErrors: u(4),
      txErrors: u(5),
      rxDropped: u(6),
      txDropped: u(7),
    };
  }
  return out;
}
