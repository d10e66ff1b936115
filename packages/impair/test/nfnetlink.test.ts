/**
 * nfnetlink_queue's packet messages, parsed from bytes laid out as the kernel writes them
 * (include/uapi/linux/netfilter/nfnetlink_queue.h): the header, the timestamp, the payload.
 */
import { describe, expect, it } from 'vitest';
import { NFQNL_MSG_PACKET, NfqWriter, Outstanding, parseMessages, type QueuedPacket } from '../src/index.js';

function packetMessage(w: NfqWriter, o: { queue: number; id: number; stamp?: [sec: number, usec: number]; payload: Buffer }): void {
  const at = w.begin(NFQNL_MSG_PACKET, 0, 0, o.queue, 2);
  w.attr(1, (b, v) => {
    b.writeUInt32BE(o.id, v);
    b.writeUInt16BE(0x0800, v + 4);
    b.writeUInt8(4, v + 6);
  }, 7);
  if (o.stamp) {
    w.attr(4, (b, v) => {
      b.writeBigUInt64BE(BigInt(o.stamp![0]), v);
      b.writeBigUInt64BE(BigInt(o.stamp![1]), v + 8);
    }, 16);
  }
  w.attr(10, o.payload);
  w.end(at);
}

describe('NFQNL_MSG_PACKET', () => {
  it('NFQA_TIMESTAMP becomes µs of the realtime clock; absent, 0', () => {
    const w = new NfqWriter(512);
    packetMessage(w, { queue: 1000, id: 7, stamp: [1_764_857_000, 123_456], payload: Buffer.from([0x45, 0, 0, 20]) });
    packetMessage(w, { queue: 1001, id: 8, payload: Buffer.from([0x45, 1, 2, 3, 4]) });
    const got: QueuedPacket[] = [];
    parseMessages(w.bytes(), w.length, (p) => got.push({ ...p, payload: Buffer.from(p.payload) }));
    expect(got.map((p) => [p.queue, p.id, p.hwProtocol, p.hook, p.stampUs, [...p.payload]])).toEqual([
      [1000, 7, 0x0800, 4, 1_764_857_000_123_456, [0x45, 0, 0, 20]],
      [1001, 8, 0x0800, 4, 0, [0x45, 1, 2, 3, 4]],
    ]);
  });
});

describe('batch verdicts: the run of accepted packets at the head of a queue', () => {
  it('covers only the oldest packets, in the kernel order, stopping at the first undecided one', () => {
    const o = new Outstanding();
    for (const id of [1, 2, 3, 4, 5]) o.push(id);
    o.accepted.add(1);
    o.accepted.add(2);
    o.accepted.add(4);
    expect(o.takeAcceptedRun()).toEqual({ last: 2, n: 2 });
    // 4 waits behind 3: the caller sends its verdict alone and marks it decided.
    expect([...o.accepted]).toEqual([4]);
    o.accepted.clear();
    o.decided.add(4);
    o.accepted.add(3);
    expect(o.takeAcceptedRun()).toEqual({ last: 3, n: 1 });
    // 4 was skipped as decided; 5 is still held
    expect(o.takeAcceptedRun()).toEqual({ last: -1, n: 0 });
    o.accepted.add(5);
    expect(o.takeAcceptedRun()).toEqual({ last: 5, n: 1 });
  });
});
