#!/usr/bin/env node
/**
 * A UDP probe for the kernel lab, run inside lab nodes (`ip netns exec NS node udp-probe.mjs ...`).
 *
 *   node udp-probe.mjs recv PORT [--echo]
 *       binds 0.0.0.0:PORT, prints "ready" once bound; records every datagram until its stdin
 *       ends, then prints one JSON line: arrivals in order (seq, one-way delay, arrival time),
 *       and how many datagrams failed the integrity check. --echo sends each datagram back.
 *   node udp-probe.mjs send ADDR PORT COUNT INTERVAL_US SIZE WARMUP [ECHO_WAIT_MS]
 *       sends WARMUP, then COUNT datagrams of SIZE bytes, one every INTERVAL_US on an absolute
 *       schedule (late timers send what is due at once, so the average rate holds); with
 *       ECHO_WAIT_MS, also collects echoes and waits that long after the last send. Prints one
 *       JSON line. Warm-up datagrams (seq with the top bit set) give both Node processes time
 *       to compile their hot paths (in the guest the first ~20 datagrams see tens of ms of
 *       extra latency); the receiver skips them.
 *
 * Datagram: "DUNE" | seq u32 | send time u64 (ns, CLOCK_MONOTONIC) | size u32 | crc32 u32 |
 * filler. Sender and receiver run in one (guest) kernel, so CLOCK_MONOTONIC is the same clock
 * on both sides and the one-way delay is exact up to scheduling noise. The CRC (over the whole
 * datagram with the CRC field zeroed) tells corrupted payloads that still reach the socket
 * from good ones.
 */
import { createSocket } from 'node:dgram';
import { crc32 } from 'node:zlib';

const HEADER = 24;
const now = () => process.hrtime.bigint();

function makePacket(seq, size) {
  const b = Buffer.alloc(Math.max(size, HEADER));
  b.write('DUNE', 0, 'latin1');
  b.writeUInt32BE(seq, 4);
  b.writeUInt32BE(b.length, 16);
  for (let i = HEADER; i < b.length; i++) b[i] = (seq + i) & 0xff;
  return b;
}

function stamp(b) {
  b.writeBigUInt64BE(now(), 8);
  b.writeUInt32BE(0, 20);
  b.writeUInt32BE(crc32(b), 20);
}

function intact(b) {
  if (b.length < HEADER || b.toString('latin1', 0, 4) !== 'DUNE' || b.readUInt32BE(16) !== b.length) return false;
  const want = b.readUInt32BE(20);
  const c = Buffer.from(b);
  c.writeUInt32BE(0, 20);
  return crc32(c) === want;
}

const WARMUP_BIT = 0x80000000;
const us = (ns) => Math.round(Number(ns) / 100) / 10;

function recv(port, echo) {
  const sock = createSocket('udp4');
  const seqs = [];
  const txUs = [];
  const rxUs = [];
  let corrupted = 0;
  let bytes = 0;
  sock.on('message', (msg, rinfo) => {
    const t = now();
    if (echo) sock.send(msg, rinfo.port, rinfo.address);
    if (!intact(msg)) {
      corrupted++;
      return;
    }
    const seq = msg.readUInt32BE(4);
    if (seq & WARMUP_BIT) return;
    bytes += msg.length;
    seqs.push(seq);
    txUs.push(us(msg.readBigUInt64BE(8)));
    rxUs.push(us(t));
  });
  sock.bind(port, () => {
    sock.setRecvBufferSize(8 << 20);
    process.stdout.write('ready\n');
  });
  process.stdin.resume();
  process.stdin.on('end', () => {
    process.stdout.write(JSON.stringify({ seqs, txUs, rxUs, corrupted, bytes }) + '\n');
    sock.close();
    process.exit(0);
  });
}

function send(addr, port, count, intervalUs, size, warmup, echoWaitMs) {
  const sock = createSocket('udp4');
  const rtts = new Map();
  const txUs = [];
  if (echoWaitMs !== undefined) {
    sock.on('message', (msg) => {
      if (!intact(msg)) return;
      const seq = msg.readUInt32BE(4);
      if (!(seq & WARMUP_BIT) && !rtts.has(seq)) rtts.set(seq, us(now() - msg.readBigUInt64BE(8)));
    });
  }
  const packets = [
    ...Array.from({ length: warmup }, (_, i) => makePacket((WARMUP_BIT | i) >>> 0, size)),
    ...Array.from({ length: count }, (_, i) => makePacket(i, size)),
  ];
  const total = packets.length;
  sock.bind(0, () => {
    sock.setSendBufferSize(8 << 20);
    const start = now();
    let next = 0;
    const tick = () => {
      const elapsedUs = Number(now() - start) / 1000;
      // Send what is due; a late timer catches up, so the average rate holds.
      while (next < total && next * intervalUs <= elapsedUs) {
        const p = packets[next];
        stamp(p);
        if (next >= warmup) txUs.push(us(p.readBigUInt64BE(8)));
        sock.send(p, port, addr);
        next++;
      }
      if (next < total) {
        const waitUs = next * intervalUs - Number(now() - start) / 1000;
        setTimeout(tick, Math.max(0, Math.floor(waitUs / 1000)));
        return;
      }
      setTimeout(() => {
        const out = { sent: count, txUs, rttUs: [...rtts].sort((a, b) => a[0] - b[0]) };
        process.stdout.write(JSON.stringify(out) + '\n');
        sock.close();
      }, echoWaitMs ?? 50);
    };
    tick();
  });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'recv') recv(Number(args[0]), args.includes('--echo'));
else if (mode === 'send') {
  const [addr, port, count, intervalUs, size, warmup, echoWait] = args;
  send(addr, Number(port), Number(count), Number(intervalUs), Number(size), Number(warmup ?? 0), echoWait === undefined ? undefined : Number(echoWait));
} else {
  process.stderr.write('usage: udp-probe.mjs recv PORT [--echo] | send ADDR PORT COUNT INTERVAL_US SIZE WARMUP [ECHO_WAIT_MS]\n');
  process.exit(2);
}
