/**
 * A growable byte writer for netlink messages: nlmsghdr, fixed family headers, and rtattrs
 * (nested ones patched on close). Many messages can be written back to back into one writer
 * and sent with one sendmsg: every message and attribute is padded to 4 bytes as the kernel
 * expects (NLMSG_ALIGN / NLA_ALIGN). Integers are host order (little-endian on every machine
 * we run on) except where a field says network order (VXLAN port, addresses).
 */
import { NLA_F_NESTED, NLMSG_HDRLEN } from './constants.js';

export const align4 = (n: number): number => (n + 3) & ~3;

export class NlWriter {
  buf: Buffer;
  off = 0;

  constructor(initialBytes = 4096) {
    this.buf = Buffer.alloc(initialBytes);
  }

  get length(): number {
    return this.off;
  }

  /** The bytes written so far (a view, valid until the next write). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.off);
  }

  reset(): void {
    this.off = 0;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  private pad(): void {
    const to = align4(this.off);
    if (to > this.off) {
      this.ensure(to - this.off);
      this.buf.fill(0, this.off, to);
      this.off = to;
    }
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf.writeUInt8(v, this.off);
    this.off += 1;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.off);
    this.off += 2;
    return this;
  }

  i16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16LE(v, this.off);
    this.off += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.off);
    this.off += 4;
    return this;
  }

  i32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.off);
    this.off += 4;
    return this;
  }

  u64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigUInt64LE(v, this.off);
    this.off += 8;
    return this;
  }

  i64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigInt64LE(v, this.off);
    this.off += 8;
    return this;
  }

  raw(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
    return this;
  }

  /** Starts a message: nlmsghdr with its length patched by `endMsg`. Returns its offset. */
  beginMsg(type: number, flags: number, seq: number): number {
    this.pad();
    const start = this.off;
    this.ensure(NLMSG_HDRLEN);
    this.buf.writeUInt32LE(0, start);
    this.buf.writeUInt16LE(type, start + 4);
    this.buf.writeUInt16LE(flags, start + 6);
    this.buf.writeUInt32LE(seq >>> 0, start + 8);
    this.buf.writeUInt32LE(0, start + 12); // nlmsg_pid: 0, the kernel fills in ours
    this.off += NLMSG_HDRLEN;
    return start;
  }

  endMsg(start: number): void {
    this.pad();
    this.buf.writeUInt32LE(this.off - start, start);
  }

  private attrHeader(type: number, payloadLen: number): void {
    this.pad();
    this.ensure(4 + payloadLen);
    this.buf.writeUInt16LE(4 + payloadLen, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.off += 4;
  }

  attrU8(type: number, v: number): this {
    this.attrHeader(type, 1);
    this.u8(v);
    this.pad();
    return this;
  }

  attrU16(type: number, v: number): this {
    this.attrHeader(type, 2);
    this.u16(v);
    this.pad();
    return this;
  }

  /** A 16-bit value in network byte order (ports). */
  attrBe16(type: number, v: number): this {
    this.attrHeader(type, 2);
    this.buf.writeUInt16BE(v, this.off);
    this.off += 2;
    this.pad();
    return this;
  }

  attrU32(type: number, v: number): this {
    this.attrHeader(type, 4);
    this.u32(v);
    return this;
  }

  attrI32(type: number, v: number): this {
    this.attrHeader(type, 4);
    this.i32(v);
    return this;
  }

  attrU64(type: number, v: bigint): this {
    this.attrHeader(type, 8);
    this.u64(v);
    return this;
  }

  attrI64(type: number, v: bigint): this {
    this.attrHeader(type, 8);
    this.i64(v);
    return this;
  }

  /** A NUL-terminated string (IFNAME, KIND, IFALIAS...). */
  attrStr(type: number, s: string): this {
    const n = Buffer.byteLength(s, 'utf8');
    this.attrHeader(type, n + 1);
    this.buf.write(s, this.off, 'utf8');
    this.off += n;
    this.u8(0);
    this.pad();
    return this;
  }

  attrBytes(type: number, b: Uint8Array): this {
    this.attrHeader(type, b.length);
    this.raw(b);
    this.pad();
    return this;
  }

  /** Opens a nested attribute; close with `endNest`. */
  beginNest(type: number, nestedFlag = false): number {
    this.pad();
    const start = this.off;
    this.attrHeader(nestedFlag ? type | NLA_F_NESTED : type, 0);
    return start;
  }

  endNest(start: number): void {
    this.pad();
    this.buf.writeUInt16LE(this.off - start, start);
  }

  /** An attribute whose payload is written by `fn` (a C struct, say). */
  attrStruct(type: number, fn: (w: this) => void): this {
    const start = this.beginNest(type);
    fn(this);
    // The length covers the payload as written; padding after it is not counted.
    this.buf.writeUInt16LE(this.off - start, start);
    this.pad();
    return this;
  }
}
