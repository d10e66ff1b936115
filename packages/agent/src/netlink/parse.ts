/**
 * Reading netlink: a stream of nlmsghdr-framed messages (several datagrams concatenated are
 * still one valid stream), rtattr lists, and NLMSG_ERROR with its extended ack.
 */
import {
  NLA_TYPE_MASK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSGERR_ATTR_MISS_TYPE,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
} from './constants.js';
import { align4 } from './writer.js';

export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The payload after nlmsghdr (a view into the received buffer). */
  data: Buffer;
}

export function* messages(buf: Buffer): Generator<NlMsg> {
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    yield {
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      data: buf.subarray(off + NLMSG_HDRLEN, off + len),
    };
    off += align4(len);
  }
}

/** Attributes by type (the last one wins when repeated; use `attrList` to keep all). */
export type Attrs = Map<number, Buffer>;

export function attrs(buf: Buffer, offset = 0): Attrs {
  const out: Attrs = new Map();
  for (const [t, v] of attrList(buf, offset)) out.set(t, v);
  return out;
}

export function attrList(buf: Buffer, offset = 0): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  let off = offset;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > buf.length) break;
    out.push([type, buf.subarray(off + 4, off + len)]);
    off += align4(len);
  }
  return out;
}

/** The first attribute of `type` (its payload), found without taking the others apart. */
export function findAttr(buf: Buffer, offset: number, type: number): Buffer | undefined {
  let off = offset;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    if ((buf.readUInt16LE(off + 2) & NLA_TYPE_MASK) === type) return buf.subarray(off + 4, off + len);
    off += align4(len);
  }
  return undefined;
}

export const attrStr = (b: Buffer | undefined): string | undefined => {
  if (b === undefined) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
};

export const attrU32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined);
export const attrU64 = (b: Buffer | undefined): bigint | undefined => (b && b.length >= 8 ? b.readBigUInt64LE(0) : undefined);

/** What an NLMSG_ERROR says: errno 0 is an ACK. */
export interface NlAck {
  seq: number;
  /** Positive errno; 0 = success. */
  errno: number;
  /** The kernel's extended-ack text (NLMSGERR_ATTR_MSG), when it gave one. */
  extack?: string;
  /** Offset in the request of the attribute that was wrong (NLMSGERR_ATTR_OFFS). */
  badAttrOffset?: number;
  missingAttrType?: number;
}

export function parseError(m: NlMsg): NlAck {
  if (m.type !== NLMSG_ERROR) throw new Error(`not an NLMSG_ERROR: type ${m.type}`);
  const err = m.data.readInt32LE(0);
  const ack: NlAck = { seq: m.seq, errno: err === 0 ? 0 : -err };
  if (m.flags & NLM_F_ACK_TLVS) {
    // After the error code: the request's own nlmsghdr, plus its payload unless CAPPED.
    const origLen = m.data.length >= 20 ? m.data.readUInt32LE(4) : NLMSG_HDRLEN;
    const skip = 4 + (m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(origLen));
    const tl = attrs(m.data, skip);
    const msg = attrStr(tl.get(NLMSGERR_ATTR_MSG));
    if (msg) ack.extack = msg;
    const offs = attrU32(tl.get(NLMSGERR_ATTR_OFFS));
    if (offs !== undefined) ack.badAttrOffset = offs;
    const miss = attrU32(tl.get(NLMSGERR_ATTR_MISS_TYPE));
    if (miss !== undefined) ack.missingAttrType = miss;
  }
  return ack;
}
