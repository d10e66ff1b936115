/**
 * One rtnetlink socket, bound to the namespace it was opened in, that pipelines requests:
 *
 *   queue(req) … queue(req) → one sendmsg per ~64 KiB → kernel runs each request in turn
 *   and queues an error per failed request, and an ACK for the last one → drain() reads them
 *
 * The kernel handles every request of a datagram synchronously inside sendmsg and goes on
 * after a failed one, so a failure is mapped back to its request by sequence number and the
 * rest of the batch still runs (the caller decides what a failure means). Successes are not
 * ACKed one by one (NLM_F_ACK is cleared on queued requests): the kernel answers a failed
 * request whatever its flags, and runs one socket's requests in order, so the ACK of a send's
 * last request says every request before it is done (Kdl's 1.1 M routes: 1.1 M fewer ACKs
 * for the kernel to build and queue and for us to read).
 */
import { native } from '../native.js';
import {
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_OVERRUN,
} from './constants.js';
import { messages, parseError, type NlAck, type NlMsg } from './parse.js';
import { align4, NlWriter } from './writer.js';

/** Bytes per sendmsg: well under the kernel's limit and our 16 MiB socket buffers. */
const SEND_CHUNK_BYTES = 64 * 1024;
/**
 * Requests outstanding before we stop and read ACKs: each ACK is a separate skb charged at
 * its truesize (~1 KiB) against the 16 MiB receive buffer, and an overflow would lose ACKs.
 */
const MAX_IN_FLIGHT = 4096;
const RECV_TIMEOUT_MS = 10_000;

export interface Failure<R> {
  ref: R;
  ack: NlAck;
}

export class NetlinkError extends Error {
  readonly errno: number;
  readonly extack: string | undefined;
  constructor(message: string, ack: NlAck) {
    super(message);
    this.name = 'NetlinkError';
    this.errno = ack.errno;
    this.extack = ack.extack;
  }
}

/** Whether batches were handed to the background sender since the last wait. */
let queuedInBackground = false;
/** A sendInOrder job may still be running: the next batch of any socket waits for it. */
let orderedInFlight = false;

/** Waits until every batch handed to the background sender is sent (a no-op when none is). */
function sent(): void {
  orderedInFlight = false;
  if (!queuedInBackground) return;
  queuedInBackground = false;
  native().nlSendWait();
}

/**
 * Background senders from now on: 2 (the default) where the kernel runs different namespaces'
 * requests side by side (IPv6 routes take no RTNL), 1 where every request takes RTNL (links,
 * addresses: a second sender only spins on the lock, a core the kernel's own workers lack).
 * Waits until everything queued is sent.
 */
export function setSenders(n: 1 | 2): void {
  native().nlSetSenders(n);
}

/** One request of sendInOrder: `build` writes it for `sock`, as for queue(). */
export interface OrderedRequest<R> {
  sock: NlSocket<R>;
  ref: R;
  build: (w: NlWriter, seq: number) => void;
}

export class NlSocket<R = string> {
  readonly fd: number;
  /** For messages: the namespace this socket acts in. */
  readonly label: string;
  private seq = 1;
  // Grown on demand up to a chunk: a lab opens one socket per namespace, thousands of them.
  private readonly w = new NlWriter(4096);
  private readonly pending = new Map<number, R>();
  /** Offset in `w` of the last queued request: the one flush asks the kernel to ACK. */
  private last = -1;
  readonly failures: Failure<R>[] = [];
  private closed = false;

  constructor(fd: number, label: string) {
    this.fd = fd;
    this.label = label;
  }

  /** Opens a routing socket inside `nsPath` (null: the namespace this process is in). */
  static open<R = string>(nsPath: string | null, label = nsPath ?? 'host', protocol = NETLINK_ROUTE): NlSocket<R> {
    return new NlSocket<R>(native().nlOpen(nsPath, protocol), label);
  }

  /** Queues one request; `build` writes it (via `w.beginMsg(type, flags, seq)`). */
  queue(ref: R, build: (w: NlWriter, seq: number) => void): void {
    const seq = this.seq++;
    const start = align4(this.w.length);
    build(this.w, seq);
    const flags = this.w.buf.readUInt16LE(start + 6);
    this.w.buf.writeUInt16LE(flags & ~NLM_F_ACK, start + 6);
    this.last = start;
    this.pending.set(seq, ref);
    if (this.w.length >= SEND_CHUNK_BYTES) this.flush();
    if (this.pending.size >= MAX_IN_FLIGHT) this.drain();
  }

  /**
   * Sends what is queued without waiting for the ACKs: by default handed to the addon's
   * background sender, so the kernel works through this batch while the caller builds the next
   * (see nlSendAsync); `wait` sends it from this thread, after whatever is still queued.
   */
  flush(background = true): void {
    if (this.w.length === 0) return;
    if (this.last >= 0) this.w.buf.writeUInt16LE(this.w.buf.readUInt16LE(this.last + 6) | NLM_F_ACK, this.last + 6);
    const n = native();
    if (orderedInFlight) sent();
    if (background) {
      n.nlSendAsync(this.fd, this.w.bytes());
      queuedInBackground = true;
    } else {
      sent();
      n.nlSend(this.fd, this.w.bytes());
    }
    this.w.reset();
    this.last = -1;
  }

  /**
   * Requests on several sockets, each sent (and ACKed) on its own, in exactly this order, by a
   * background sender while the caller goes on: for when the kernel's work depends on the order
   * across namespaces (a veth's two ends brought up one right after the other). Whatever the
   * sockets had queued is sent first; their next batches wait until these are sent.
   */
  static sendInOrder<R>(reqs: readonly OrderedRequest<R>[]): void {
    if (reqs.length === 0) return;
    for (const r of reqs) r.sock.flush();
    sent();
    const w = new NlWriter(reqs.length * 64);
    const fds = new Int32Array(reqs.length);
    const ends = new Int32Array(reqs.length);
    reqs.forEach((r, k) => {
      const seq = r.sock.seq++;
      const start = w.length;
      r.build(w, seq);
      w.buf.writeUInt16LE(w.buf.readUInt16LE(start + 6) | NLM_F_ACK, start + 6);
      r.sock.pending.set(seq, r.ref);
      fds[k] = r.sock.fd;
      ends[k] = w.length;
    });
    native().nlSendSeqAsync(fds, w.bytes(), ends);
    queuedInBackground = true;
    orderedInFlight = true;
  }

  get outstanding(): number {
    return this.pending.size;
  }

  /** Sends what is queued and reads every outstanding ACK; failures land in `failures`. */
  drain(): void {
    this.flush();
    sent();
    while (this.pending.size > 0) {
      const buf = native().nlRecv(this.fd, RECV_TIMEOUT_MS);
      if (buf === null) {
        throw new Error(
          `netlink (${this.label}): no answer to ${this.pending.size} request(s) after ${RECV_TIMEOUT_MS} ms`,
        );
      }
      for (const m of messages(buf)) {
        if (m.type !== NLMSG_ERROR) continue;
        const ref = this.pending.get(m.seq);
        if (ref === undefined) continue;
        const ack = parseError(m);
        if (ack.errno !== 0) this.failures.push({ ref, ack });
        // Requests run in order: this one's answer means every earlier one is done.
        for (const s of this.pending.keys()) {
          if (s > m.seq) break;
          this.pending.delete(s);
        }
      }
    }
  }

  /** One request, waited for; throws on an error ACK. Replies other than the ACK are returned. */
  call(build: (w: NlWriter, seq: number) => void, what: string): NlMsg[] {
    this.drain();
    const seq = this.seq++;
    build(this.w, seq);
    this.flush(false);
    const replies: NlMsg[] = [];
    for (;;) {
      const buf = native().nlRecv(this.fd, RECV_TIMEOUT_MS);
      if (buf === null) throw new Error(`netlink (${this.label}): no answer to ${what} after ${RECV_TIMEOUT_MS} ms`);
      for (const m of messages(buf)) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR) {
          const ack = parseError(m);
          if (ack.errno !== 0) throw new NetlinkError(`${what} (${this.label}): ${describeAck(ack)}`, ack);
          return replies;
        }
        replies.push(m);
      }
    }
  }

  /** A dump (NLM_F_DUMP): every reply message until NLMSG_DONE. Restarts once if interrupted. */
  dump(build: (w: NlWriter, seq: number, flags: number) => void, what: string): NlMsg[] {
    for (let attempt = 0; ; attempt++) {
      this.drain();
      const seq = this.seq++;
      build(this.w, seq, NLM_F_REQUEST | NLM_F_DUMP);
      this.flush(false);
      const out: NlMsg[] = [];
      let interrupted = false;
      let done = false;
      while (!done) {
        const buf = native().nlRecv(this.fd, RECV_TIMEOUT_MS);
        if (buf === null) throw new Error(`netlink (${this.label}): dump ${what} got no answer in ${RECV_TIMEOUT_MS} ms`);
        for (const m of messages(buf)) {
          if (m.seq !== seq) continue;
          if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
          if (m.type === NLMSG_DONE) {
            done = true;
            break;
          }
          if (m.type === NLMSG_ERROR) {
            const ack = parseError(m);
            if (ack.errno !== 0) throw new NetlinkError(`dump ${what} (${this.label}): ${describeAck(ack)}`, ack);
            done = true;
            break;
          }
          if (m.type === NLMSG_OVERRUN) throw new Error(`netlink (${this.label}): overrun during dump ${what}`);
          out.push(m);
        }
      }
      // The kernel flags a dump that raced with a change; one retry is enough in practice.
      if (!interrupted || attempt > 0) return out;
    }
  }

  takeFailures(): Failure<R>[] {
    return this.failures.splice(0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    sent(); // nothing of ours may still be on its way to an fd about to be closed (and reused)
    native().nlClose(this.fd);
  }
}

/** `File exists (EEXIST, errno 17): <kernel's extack>`. */
export function describeAck(ack: NlAck): string {
  const name = ERRNO_NAMES[ack.errno] ?? `errno ${ack.errno}`;
  const text = ERRNO_TEXT[ack.errno] ?? 'error';
  const ext = ack.extack ? `: ${ack.extack}` : '';
  return `${text} (${name}, errno ${ack.errno})${ext}`;
}

export const ACK_FLAGS = NLM_F_REQUEST | NLM_F_ACK;

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 7: 'E2BIG', 12: 'ENOMEM', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST',
  19: 'ENODEV', 22: 'EINVAL', 34: 'ERANGE', 28: 'ENOSPC', 90: 'EMSGSIZE', 93: 'EPROTONOSUPPORT',
  95: 'EOPNOTSUPP', 97: 'EAFNOSUPPORT', 99: 'EADDRNOTAVAIL', 100: 'ENETDOWN', 101: 'ENETUNREACH', 105: 'ENOBUFS',
  113: 'EHOSTUNREACH',
};

const ERRNO_TEXT: Record<number, string> = {
  1: 'Operation not permitted', 2: 'No such file or directory', 3: 'No such process', 7: 'Argument list too long',
  12: 'Out of memory', 13: 'Permission denied', 16: 'Device or resource busy', 17: 'File exists', 19: 'No such device',
  22: 'Invalid argument', 28: 'No space left on device', 34: 'Numerical result out of range', 90: 'Message too long',
  93: 'Protocol not supported', 95: 'Operation not supported', 97: 'Address family not supported by protocol',
  99: 'Cannot assign requested address', 100: 'Network is down', 101: 'Network is unreachable', 105: 'No buffer space available',
  113: 'No route to host',
};
