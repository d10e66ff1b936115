/**
 * nfnetlink_queue, spoken directly (what libnetfilter_queue does in C): the messages on a
 * NETLINK_NETFILTER socket that bind a queue, receive its packets and issue verdicts.
 *
 *   netlink header (host order) │ nfgenmsg: family u8, version u8, queue number be16 │ attributes
 *
 * Attribute values of this subsystem are in network byte order (include/uapi/linux/
 * netfilter/nfnetlink_queue.h); the netlink and attribute headers are in host order
 * (little-endian on every machine we run on).
 */

export const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_QUEUE = 3;
export const NFQNL_MSG_PACKET = 0;
const NFQNL_MSG_VERDICT = 1;
const NFQNL_MSG_CONFIG = 2;
const NFQNL_MSG_VERDICT_BATCH = 3;

const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
export const NLMSG_ERROR = 2;
const NLMSG_HDRLEN = 16;
const NFGEN_HDRLEN = 4;

export const NFQNL_CFG_CMD = { BIND: 1, UNBIND: 2, PF_BIND: 3, PF_UNBIND: 4 } as const;
export const NFQNL_COPY_PACKET = 2;
export const NFQA_CFG_F_FAIL_OPEN = 1;

const NFQA_CFG_CMD = 1;
const NFQA_CFG_PARAMS = 2;
const NFQA_CFG_QUEUE_MAXLEN = 3;
const NFQA_CFG_MASK = 4;
const NFQA_CFG_FLAGS = 5;

const NFQA_PACKET_HDR = 1;
const NFQA_VERDICT_HDR = 2;
const NFQA_MARK = 3;
const NFQA_TIMESTAMP = 4;
const NFQA_IFINDEX_INDEV = 5;
const NFQA_IFINDEX_OUTDEV = 6;
const NFQA_PAYLOAD = 10;
const NFQA_CAP_LEN = 13;

export const NF_DROP = 0;
export const NF_ACCEPT = 1;

const align4 = (n: number) => (n + 3) & ~3;

/** Writes netlink messages back to back into one growing buffer (one sendto for many). */
export class NfqWriter {
  private buf: Buffer;
  length = 0;

  /** A lab's engine has one writer per namespace: small ones that grow stay cheap by the hundred. */
  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.alloc(initialBytes);
  }

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (this.length + n > size) size *= 2;
    const b = Buffer.alloc(size);
    this.buf.copy(b, 0, 0, this.length);
    this.buf = b;
  }

  /** Starts a message; returns its offset, for `end`. */
  begin(msgType: number, flags: number, seq: number, queue: number, family = 0): number {
    this.ensure(NLMSG_HDRLEN + NFGEN_HDRLEN);
    const at = this.length;
    const b = this.buf;
    b.writeUInt32LE(0, at);
    b.writeUInt16LE((NFNL_SUBSYS_QUEUE << 8) | msgType, at + 4);
    b.writeUInt16LE(flags, at + 6);
    b.writeUInt32LE(seq >>> 0, at + 8);
    b.writeUInt32LE(0, at + 12);
    b.writeUInt8(family, at + 16);
    b.writeUInt8(0, at + 17); // NFNETLINK_V0
    b.writeUInt16BE(queue, at + 18);
    this.length += NLMSG_HDRLEN + NFGEN_HDRLEN;
    return at;
  }

  attr(type: number, value: Buffer | ((b: Buffer, at: number) => void), valueLen?: number): void {
    const len = valueLen ?? (value as Buffer).length;
    const total = align4(4 + len);
    this.ensure(total);
    const at = this.length;
    this.buf.writeUInt16LE(4 + len, at);
    this.buf.writeUInt16LE(type, at + 2);
    if (typeof value === 'function') value(this.buf, at + 4);
    else value.copy(this.buf, at + 4);
    this.buf.fill(0, at + 4 + len, at + total);
    this.length += total;
  }

  end(at: number): void {
    this.buf.writeUInt32LE(this.length - at, at);
  }

  /** The bytes written so far (a view; valid until the next write). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }
}

export function configCmd(w: NfqWriter, seq: number, queue: number, cmd: number, pf = 0): void {
  const at = w.begin(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, queue);
  w.attr(NFQA_CFG_CMD, (b, o) => {
    b.writeUInt8(cmd, o);
    b.writeUInt8(0, o + 1);
    b.writeUInt16BE(pf, o + 2);
  }, 4);
  w.end(at);
}

/**
 * Copy mode and range, queue length and flags, in one message. `ack: false` asks for no
 * answer (a change of copy range sent among verdicts, whose failure only costs a copy).
 */
export function configParams(w: NfqWriter, seq: number, queue: number, o: { copyRange: number; maxLen: number; flags: number; flagsMask: number; ack?: boolean }): void {
  const at = w.begin(NFQNL_MSG_CONFIG, o.ack === false ? NLM_F_REQUEST : NLM_F_REQUEST | NLM_F_ACK, seq, queue);
  w.attr(NFQA_CFG_PARAMS, (b, off) => {
    b.writeUInt32BE(o.copyRange >>> 0, off);
    b.writeUInt8(NFQNL_COPY_PACKET, off + 4);
  }, 5);
  w.attr(NFQA_CFG_QUEUE_MAXLEN, (b, off) => b.writeUInt32BE(o.maxLen >>> 0, off), 4);
  w.attr(NFQA_CFG_MASK, (b, off) => b.writeUInt32BE(o.flagsMask >>> 0, off), 4);
  w.attr(NFQA_CFG_FLAGS, (b, off) => b.writeUInt32BE(o.flags >>> 0, off), 4);
  w.end(at);
}

/** A verdict on one packet; with `payload`, the packet is replaced by those bytes. */
export function verdict(w: NfqWriter, queue: number, id: number, v: number, payload?: Buffer): void {
  const at = w.begin(NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, queue);
  w.attr(NFQA_VERDICT_HDR, (b, o) => {
    b.writeUInt32BE(v >>> 0, o);
    b.writeUInt32BE(id >>> 0, o + 4);
  }, 8);
  if (payload) w.attr(NFQA_PAYLOAD, payload);
  w.end(at);
}

/**
 * One verdict on every packet of `queue` still awaiting one whose id is `id` or before it
 * (the kernel compares ids modulo 2^32): NFQNL_MSG_VERDICT_BATCH.
 */
export function verdictBatch(w: NfqWriter, queue: number, id: number, v: number): void {
  const at = w.begin(NFQNL_MSG_VERDICT_BATCH, NLM_F_REQUEST, 0, queue);
  w.attr(NFQA_VERDICT_HDR, (b, o) => {
    b.writeUInt32BE(v >>> 0, o);
    b.writeUInt32BE(id >>> 0, o + 4);
  }, 8);
  w.end(at);
}

export interface QueuedPacket {
  queue: number;
  id: number;
  /** Ethertype of the packet: 0x0800 IPv4, 0x86dd IPv6. */
  hwProtocol: number;
  hook: number;
  mark: number;
  inIfindex: number;
  outIfindex: number;
  /**
   * NFQA_TIMESTAMP in µs of CLOCK_REALTIME: when the packet was received, or queued (0: the
   * kernel sent none; it does once timestamps are on, see sockTimestamp).
   */
  stampUs: number;
  /** A view into the receive buffer: copy it to keep it. Truncated to the queue's copy range. */
  payload: Buffer;
  /** The packet's whole length (NFQA_CAP_LEN when the payload was truncated, else the payload's). */
  length: number;
}

export interface NlAckResult {
  seq: number;
  /** 0 for success, else a positive errno. */
  errno: number;
}

/**
 * Walks a buffer of netlink messages: packets go to `onPacket`, ACKs and errors to `onAck`.
 * Malformed trailing bytes end the walk (the kernel never sends them).
 */
export function parseMessages(buf: Buffer, len: number, onPacket: (p: QueuedPacket) => void, onAck?: (a: NlAckResult) => void): void {
  let off = 0;
  while (off + NLMSG_HDRLEN <= len) {
    const msgLen = buf.readUInt32LE(off);
    if (msgLen < NLMSG_HDRLEN || off + msgLen > len) break;
    const type = buf.readUInt16LE(off + 4);
    const seq = buf.readUInt32LE(off + 8);
    if (type === NLMSG_ERROR) {
      onAck?.({ seq, errno: -buf.readInt32LE(off + NLMSG_HDRLEN) });
    } else if (type === ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET) && msgLen >= NLMSG_HDRLEN + NFGEN_HDRLEN) {
      const p: QueuedPacket = {
        queue: buf.readUInt16BE(off + NLMSG_HDRLEN + 2),
        id: -1,
        hwProtocol: 0,
        hook: 0,
        mark: 0,
        inIfindex: 0,
        outIfindex: 0,
        stampUs: 0,
        payload: EMPTY,
        length: -1,
      };
      let a = off + NLMSG_HDRLEN + NFGEN_HDRLEN;
      const end = off + msgLen;
      while (a + 4 <= end) {
        const alen = buf.readUInt16LE(a);
        const atype = buf.readUInt16LE(a + 2) & 0x3fff;
        if (alen < 4 || a + alen > end) break;
        const v = a + 4;
        switch (atype) {
          case NFQA_PACKET_HDR:
            p.id = buf.readUInt32BE(v);
            p.hwProtocol = buf.readUInt16BE(v + 4);
            p.hook = buf.readUInt8(v + 6);
            break;
          case NFQA_MARK:
            p.mark = buf.readUInt32BE(v);
            break;
          case NFQA_TIMESTAMP:
            // struct nfqnl_msg_packet_timestamp { be64 sec; be64 usec; }
            p.stampUs = (buf.readUInt32BE(v) * 4294967296 + buf.readUInt32BE(v + 4)) * 1e6 + buf.readUInt32BE(v + 12);
            break;
          case NFQA_IFINDEX_INDEV:
            p.inIfindex = buf.readUInt32BE(v);
            break;
          case NFQA_IFINDEX_OUTDEV:
            p.outIfindex = buf.readUInt32BE(v);
            break;
          case NFQA_PAYLOAD:
            p.payload = buf.subarray(v, v + alen - 4);
            break;
          case NFQA_CAP_LEN:
            p.length = buf.readUInt32BE(v);
            break;
        }
        a += align4(alen);
      }
      if (p.length < p.payload.length) p.length = p.payload.length;
      if (p.id >= 0) onPacket(p);
    }
    off += align4(msgLen);
  }
}

const EMPTY = Buffer.alloc(0);

/** Length of the IP header at the start of `pkt` (IPv6: the fixed 40 bytes). */
export function ipHeaderLength(pkt: Buffer): number {
  if (pkt.length < 1) return 0;
  const version = pkt[0]! >> 4;
  if (version === 4) return Math.min(pkt.length, (pkt[0]! & 0x0f) * 4);
  if (version === 6) return Math.min(pkt.length, 40);
  return 0;
}
