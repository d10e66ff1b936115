/**
 * The NFQUEUE front end: one NETLINK_NETFILTER socket in a namespace, bound to any number
 * of queues, each feeding one pipe.
 *
 *   iptables … -j NFQUEUE --queue-num N ─> kernel holds the packet, sends us a copy
 *     ─> socket readable (libuv poll on Node's loop) ─> recvInto ─> pipe(N).input
 *     ─> engine: dropped → NF_DROP │ due → NF_ACCEPT (with the corrupted bytes, if any)
 *        duplicate → the copy is sent through a raw socket with ENGINE_MARK
 *   verdicts of one turn of the event loop go out in one sendto
 *
 * A lab's engine process makes one of these per namespace, with one queue per impaired
 * link direction; the impaired-network tool makes one with two queues (up, down).
 */
import type { Engine, Pipe } from '../engine/engine.js';
import type { Packet } from '../engine/stage.js';
import { ENGINE_MARK } from './iptables.js';
import { ioNative, type IoNative } from './native.js';
import {
  configCmd, configParams, ipHeaderLength, NETLINK_NETFILTER, NF_ACCEPT, NF_DROP, NFQA_CFG_F_FAIL_OPEN, NFQNL_CFG_CMD, NfqWriter, parseMessages,
  verdict, verdictBatch, type NlAckResult, type QueuedPacket,
} from './nfnetlink-queue.js';

/**
 * The packets of one queue awaiting a verdict, in the kernel's order, so that accepts of a
 * run of its oldest ones go out as one NFQNL_MSG_VERDICT_BATCH. Each id is in `ids` from its
 * arrival until a verdict covers it; `decided` holds ids whose verdict went out alone (a
 * drop, a changed payload, an accept behind an older undecided packet), skipped when the
 * head reaches them.
 */
export class Outstanding {
  constructor(readonly queue = 0) {}
  ids: number[] = [];
  head = 0;
  readonly accepted = new Set<number>();
  readonly decided = new Set<number>();

  push(id: number): void {
    this.ids.push(id);
  }

  /** The last id of the run of accepted (or already decided) packets at the head; -1: none. */
  takeAcceptedRun(): { last: number; n: number } {
    let last = -1;
    let n = 0;
    while (this.head < this.ids.length) {
      const id = this.ids[this.head]!;
      if (this.accepted.delete(id)) {
        last = id;
        n++;
      } else if (!this.decided.delete(id)) break;
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.ids.length) {
      this.ids = this.ids.slice(this.head);
      this.head = 0;
    }
    return { last, n };
  }
}

export interface NfqueueOptions {
  engine: Engine;
  /** Namespace name (under /run/netns); undefined: the namespace this process is in. */
  netns?: string;
  queues: { queue: number; pipe: Pipe }[];
  /** Packets the kernel keeps per queue waiting for a verdict (its default, 1024, is small). */
  maxQueueLen?: number;
  /**
   * When the engine falls behind and a queue is full: true, the kernel lets the packets
   * through unimpaired (NFQA_CFG_F_FAIL_OPEN); false (default), it drops them, as a full
   * netem queue does.
   */
  failOpen?: boolean;
  /**
   * The buffer datagrams are read into. Packets are handled before the next read, so every
   * front end of one process can share one (a lab's engine has one per namespace).
   */
  recvBuffer?: Buffer;
  /** Initial size of the verdict buffer (it grows as needed). */
  writerBytes?: number;
}

interface Ref {
  /** The front end holding the kernel's packet: a pipe may be fed by several (a lab's direction queued in two namespaces). */
  fe: NfqueueFrontend;
  queue: number;
  id: number;
  family: 4 | 6;
}

/** Every pipe a front end binds delivers through its packets' own front end. */
const ROUTED_SINK = {
  deliver: (p: Packet): void => (p.ref as Ref).fe.deliver(p),
  drop: (p: Packet): void => (p.ref as Ref).fe.drop(p),
};

const RECV_BUFFER_BYTES = 4 * 1024 * 1024;
/** The room recvInto (dune_io.c) needs for one more datagram (its SLOT). */
const RECV_SLOT_BYTES = 65536 + 1024;
/**
 * What the kernel copies of a packet no stage reads the bytes of: its IP header and what
 * follows it closely (the engine reads the version and header length; NFQA_CAP_LEN gives the
 * whole length). A pipe that corrupts or duplicates gets the whole packet.
 */
export const HEADER_COPY_RANGE = 128;
const FULL_COPY_RANGE = 0xffff;

export class NfqueueFrontend {
  private readonly io: IoNative;
  private fd = -1;
  private watch = -1;
  private readonly recvBuf: Buffer;
  private readonly out: NfqWriter;
  private flushScheduled = false;
  /** When the first accept of the verdicts waiting in `out` was decided (engine µs; -1: none). */
  private releaseStartUs = -1;
  private readonly raw: { 4: number; 6: number } = { 4: -1, 6: -1 };
  private readonly byQueue = new Map<number, Pipe>();
  private readonly outstanding = new Map<number, Outstanding>();
  /** Queues with accepts since the last flush: what writeAccepts visits (a Map's entries would be an array each, per flush). */
  private readonly acceptedIn: Outstanding[] = [];
  /** Per queue: whether the kernel copies whole packets (else HEADER_COPY_RANGE bytes). */
  private readonly copyFull = new Map<number, boolean>();
  private seq = 1;
  readonly stats = { packets: 0, stamped: 0, verdicts: 0, batchVerdicts: 0, injected: 0, enobufs: 0, sendErrors: 0 };
  /** The clocks read together after each receive: the kernel's stamps (realtime) are turned into engine time with them. */
  private readRealUs = 0;
  private readEngineUs = 0;

  constructor(private readonly opts: NfqueueOptions) {
    this.io = ioNative();
    this.recvBuf = opts.recvBuffer ?? Buffer.allocUnsafe(RECV_BUFFER_BYTES);
    this.out = new NfqWriter(opts.writerBytes);
    const seen = new Set<number>();
    for (const { queue } of opts.queues) {
      if (seen.has(queue)) throw new Error(`queue ${queue} is given twice`);
      seen.add(queue);
    }
  }

  private get nsPath(): string | null {
    return this.opts.netns === undefined ? null : `/run/netns/${this.opts.netns}`;
  }

  /** Opens the socket and binds every queue; throws (with nothing left bound) on failure. */
  start(): void {
    this.fd = this.io.nlOpen(this.nsPath, NETLINK_NETFILTER);
    // Packet timestamps on: each queued packet then carries the time the kernel received or
    // queued it, and its delay counts from there (the way to the engine is absorbed).
    this.io.sockTimestamp?.(this.fd);
    try {
      this.bind(this.opts.queues);
      this.watch = this.io.fdWatch(this.fd, this.onReadable);
    } catch (e) {
      this.closeFds();
      throw e;
    }
  }

  /** The queues bound, and their pipes. */
  get queues(): { queue: number; pipe: Pipe }[] {
    return [...this.byQueue].map(([queue, pipe]) => ({ queue, pipe }));
  }

  /**
   * Binds more queues while running (a lab adding an impaired link). All or nothing: on
   * failure (e.g. a queue another process has) none of `queues` is bound.
   */
  addQueue(queue: number, pipe: Pipe): void {
    if (this.fd < 0) throw new Error('the NFQUEUE front end is not started');
    this.bind([{ queue, pipe }]);
  }

  /**
   * Unbinds a queue; the packets its pipe holds are accepted (remove the rules feeding it
   * first). Its pipe is left to the caller.
   */
  removeQueue(queue: number): void {
    const pipe = this.byQueue.get(queue);
    if (pipe === undefined) return;
    for (const { pkt } of this.opts.engine.takeHeld([pipe], this.mine)) {
      const ref = pkt.ref as Ref;
      if (!pkt.copy) this.queueVerdict(ref.queue, ref.id, NF_ACCEPT);
    }
    this.flush();
    this.outstanding.delete(queue);
    this.copyFull.delete(queue);
    const w = new NfqWriter(256);
    const s = this.seq++;
    configCmd(w, s, queue, NFQNL_CFG_CMD.UNBIND);
    this.byQueue.delete(queue);
    this.call(w, [s], `unbinding queue ${queue}`);
  }

  private bind(queues: readonly { queue: number; pipe: Pipe }[]): void {
    if (queues.length === 0) return;
    for (const { queue } of queues) {
      if (this.byQueue.has(queue)) throw new Error(`queue ${queue} is already bound by this engine`);
    }
    const w = new NfqWriter(Math.max(256, queues.length * 128));
    const seqs: number[] = [];
    for (const { queue, pipe } of queues) {
      const s1 = this.seq++;
      configCmd(w, s1, queue, NFQNL_CFG_CMD.BIND);
      const s2 = this.seq++;
      configParams(w, s2, queue, this.queueParams(pipe.needsData));
      seqs.push(s1, s2);
    }
    try {
      this.call(w, seqs, `binding queue${queues.length === 1 ? '' : 's'} ${queues.map((q) => q.queue).join(', ')}`);
    } catch (e) {
      // Some may have been bound before one failed: unbind them all (an unbound one is no error).
      const u = new NfqWriter(Math.max(256, queues.length * 64));
      for (const { queue } of queues) configCmd(u, this.seq++, queue, NFQNL_CFG_CMD.UNBIND);
      try {
        this.io.nlSend(this.fd, u.bytes());
      } catch {
        // the socket's close unbinds too
      }
      throw e;
    }
    for (const { queue, pipe } of queues) {
      this.byQueue.set(queue, pipe);
      this.copyFull.set(queue, pipe.needsData);
      this.outstanding.set(queue, new Outstanding(queue));
      pipe.sink = ROUTED_SINK;
    }
  }

  private queueParams(full: boolean): { copyRange: number; maxLen: number; flags: number; flagsMask: number } {
    return {
      copyRange: full ? FULL_COPY_RANGE : HEADER_COPY_RANGE, maxLen: this.opts.maxQueueLen ?? 65536,
      flags: this.opts.failOpen ? NFQA_CFG_F_FAIL_OPEN : 0, flagsMask: NFQA_CFG_F_FAIL_OPEN,
    };
  }

  /**
   * Sends config messages and reads their ACKs. The kernel handles config requests inside
   * sendmsg, so the ACKs are queued by the time it returns: they are read without waiting
   * (recvInto, which pads datagrams as the parser needs), and packets of queues already
   * bound that arrive meanwhile go to their pipes as usual.
   */
  private call(w: NfqWriter, seqs: number[], what: string): void {
    this.io.nlSend(this.fd, w.bytes());
    const waiting = new Set(seqs);
    const errors: NlAckResult[] = [];
    const deadline = Date.now() + 2000;
    while (waiting.size > 0) {
      const n = this.io.recvInto(this.fd, this.recvBuf);
      if (n > 0) {
        parseMessages(this.recvBuf, n, this.onPacket, (a) => {
          if (!waiting.delete(a.seq)) return;
          if (a.errno !== 0) errors.push(a);
        });
      } else if (Date.now() > deadline) {
        throw new Error(`nfnetlink_queue: no answer while ${what}`);
      }
    }
    if (errors.length > 0) {
      const e = errors[0]!.errno;
      // The kernel answers EPERM when another socket has bound the queue (we checked root before).
      const why = e === 1 || e === 16 ? `another process already has this queue (${e === 1 ? 'EPERM' : 'EBUSY'})` : `errno ${e}`;
      throw new Error(`nfnetlink_queue: ${what} failed: ${why}`);
    }
  }

  private readonly onReadable = (): void => {
    for (let round = 0; round < 64; round++) {
      const n = this.io.recvInto(this.fd, this.recvBuf);
      if (n === 0) break;
      if (n < 0) {
        // ENOBUFS: the kernel could not queue messages to us; those packets were dropped by it.
        if (-n === 105) {
          this.stats.enobufs += 1;
          this.opts.engine.countFrontendError('nfqueue-enobufs');
          continue;
        }
        this.opts.engine.countFrontendError('nfqueue-recv-error');
        break;
      }
      this.readRealUs = this.io.realtimeUs?.() ?? 0;
      this.readEngineUs = this.opts.engine.clock.now();
      parseMessages(this.recvBuf, n, this.onPacket);
      // recvInto reads until the socket is drained or the buffer is full: with room left for
      // another datagram it was drained, and asking again would be a system call for nothing.
      if (n < this.recvBuf.length - RECV_SLOT_BYTES) break;
    }
  };

  /** The packet's arrival on the engine's clock, from the kernel's stamp; undefined: now. */
  private arrival(stampUs: number): number | undefined {
    if (stampUs === 0 || this.readRealUs === 0) return undefined;
    const age = this.readRealUs - stampUs;
    // A stamp from the future or from long ago means the wall clock was stepped: use now.
    if (age < 0 || age > 1_000_000) return undefined;
    this.stats.stamped += 1;
    this.opts.engine.readDelay.record(age);
    return this.readEngineUs - age;
  }

  private readonly onPacket = (q: QueuedPacket): void => {
    const pipe = this.byQueue.get(q.queue);
    this.stats.packets += 1;
    if (pipe === undefined) {
      this.queueVerdict(q.queue, q.id, NF_ACCEPT);
      return;
    }
    const needs = pipe.needsData;
    if (needs !== this.copyFull.get(q.queue)) {
      // The pipe's stages changed: the kernel copies whole packets from now on, or headers
      // only. Sent with the verdicts, unacknowledged (packets already queued keep their copy).
      this.copyFull.set(q.queue, needs);
      configParams(this.out, this.seq++, q.queue, { ...this.queueParams(needs), ack: false });
      this.scheduleFlush();
    }
    // Copied out of the receive buffer (which the next read overwrites) only when a stage may
    // change or copy the bytes, and whole; otherwise the verdict alone releases the kernel's packet.
    const data = needs && q.payload.length === q.length ? Buffer.from(q.payload) : null;
    const family = q.hwProtocol === 0x86dd || q.payload[0]! >> 4 === 6 ? 6 : 4;
    this.outstanding.get(q.queue)?.push(q.id);
    pipe.input({
      size: q.length, data, corruptFrom: ipHeaderLength(q.payload), arrivedUs: this.arrival(q.stampUs),
      ref: { fe: this, queue: q.queue, id: q.id, family } satisfies Ref,
    });
  };

  private readonly mine = (pkt: Packet): boolean => (pkt.ref as Ref | undefined)?.fe === this;

  /** @internal (ROUTED_SINK) */
  deliver(pkt: Packet): void {
    const ref = pkt.ref as Ref;
    if (pkt.copy) {
      if (pkt.data === null) return;
      const fd = this.rawFd(ref.family);
      const r = fd < 0 ? -9 : this.io.rawSend(fd, pkt.data);
      if (r < 0) {
        this.stats.sendErrors += 1;
        this.opts.engine.countFrontendError('nfqueue-inject-error');
      } else {
        this.stats.injected += 1;
      }
      return;
    }
    if (this.releaseStartUs < 0) this.releaseStartUs = this.opts.engine.clock.now();
    const o = this.outstanding.get(ref.queue);
    if (o !== undefined && !(pkt.corrupted && pkt.data)) {
      // Accepted with the bytes the kernel has: decided at the flush, with its neighbours.
      if (o.accepted.size === 0) this.acceptedIn.push(o);
      o.accepted.add(ref.id);
      this.stats.verdicts += 1;
      this.scheduleFlush();
      return;
    }
    this.queueVerdict(ref.queue, ref.id, NF_ACCEPT, pkt.corrupted && pkt.data ? pkt.data : undefined);
  }

  /**
   * The raw socket duplicates are sent through, opened on the first duplicate: most links
   * never duplicate, and a lab's engine with hundreds of namespaces would otherwise hold two
   * idle sockets in each. -1 when it cannot be opened (counted as an inject error).
   */
  private rawFd(family: 4 | 6): number {
    if (this.raw[family] < 0 && this.fd >= 0) {
      try {
        this.raw[family] = this.io.rawOpen(this.nsPath, family, ENGINE_MARK | 0);
      } catch {
        return -1;
      }
    }
    return this.raw[family];
  }

  /** @internal (ROUTED_SINK) */
  drop(pkt: Packet): void {
    if (pkt.copy) return;
    const ref = pkt.ref as Ref;
    this.queueVerdict(ref.queue, ref.id, NF_DROP);
  }

  /** One verdict of its own (a drop, a changed payload, a queue not tracked). */
  private queueVerdict(queue: number, id: number, v: number, payload?: Buffer): void {
    verdict(this.out, queue, id, v, payload);
    this.outstanding.get(queue)?.decided.add(id);
    this.stats.verdicts += 1;
    if (this.out.length > 60 * 1024) this.flush();
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flush);
    }
  }

  /**
   * The accepts decided since the last flush: the run of them at the head of each queue as
   * one batch verdict, the others one by one (a batch would also cover older packets the
   * engine still holds).
   */
  private writeAccepts(): void {
    for (let i = 0; i < this.acceptedIn.length; i++) {
      const o = this.acceptedIn[i] as Outstanding;
      const queue = o.queue;
      // Unbound since (its packets went with the queue), or already written.
      if (o.accepted.size === 0 || this.outstanding.get(queue) !== o) continue;
      const run = o.takeAcceptedRun();
      if (run.n === 1) verdict(this.out, queue, run.last, NF_ACCEPT);
      else if (run.n > 1) {
        verdictBatch(this.out, queue, run.last, NF_ACCEPT);
        this.stats.batchVerdicts += 1;
      }
      if (o.accepted.size === 0) continue;
      for (const id of o.accepted) {
        verdict(this.out, queue, id, NF_ACCEPT);
        o.decided.add(id);
      }
      o.accepted.clear();
    }
    this.acceptedIn.length = 0;
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.fd < 0) return;
    this.writeAccepts();
    if (this.out.length === 0) return;
    try {
      const engine = this.opts.engine;
      const sendUs = this.releaseStartUs >= 0 ? engine.clock.now() : 0;
      this.io.nlSend(this.fd, this.out.bytes());
      // What the release cost, up to the verdicts' return and up to their sending (see Engine.noteReleaseCost).
      if (this.releaseStartUs >= 0) engine.noteReleaseCost(engine.clock.now() - this.releaseStartUs, sendUs - this.releaseStartUs);
    } catch {
      this.stats.sendErrors += 1;
      this.opts.engine.countFrontendError('nfqueue-verdict-error');
    }
    this.releaseStartUs = -1;
    this.out.reset();
  };

  /**
   * Releases every packet still held (accepted: they were on their way), unbinds the queues
   * and closes the sockets. Remove the iptables rules first, or new packets keep coming.
   */
  close(): void {
    if (this.fd < 0) return;
    if (this.watch >= 0) this.io.fdUnwatch(this.watch);
    this.watch = -1;
    // Whatever is still readable is accepted as is.
    for (;;) {
      const n = this.io.recvInto(this.fd, this.recvBuf);
      if (n <= 0) break;
      parseMessages(this.recvBuf, n, (q) => this.queueVerdict(q.queue, q.id, NF_ACCEPT));
    }
    for (const { pkt } of this.opts.engine.takeHeld([...this.byQueue.values()], this.mine)) {
      const ref = pkt.ref as Ref;
      if (!pkt.copy) this.queueVerdict(ref.queue, ref.id, NF_ACCEPT);
    }
    this.flush();
    try {
      const w = new NfqWriter(Math.max(256, this.byQueue.size * 64));
      const seqs: number[] = [];
      for (const queue of this.byQueue.keys()) {
        const s = this.seq++;
        configCmd(w, s, queue, NFQNL_CFG_CMD.UNBIND);
        seqs.push(s);
      }
      if (seqs.length > 0) this.call(w, seqs, 'unbinding the queues');
    } catch {
      // closing the socket unbinds too
    }
    this.closeFds();
  }

  private closeFds(): void {
    for (const fd of [this.fd, this.raw[4], this.raw[6]]) {
      if (fd >= 0) {
        try {
          this.io.nlClose(fd);
        } catch {
          // closed
        }
      }
    }
    this.fd = -1;
    this.raw[4] = -1;
    this.raw[6] = -1;
  }
}
