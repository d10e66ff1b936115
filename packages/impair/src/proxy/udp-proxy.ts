/**
 * The UDP proxy front end (no root needed):
 *
 *   client ──> listen socket ──> pipe `up` ──> session's upstream socket ──> service :port
 *   client <── listen socket <── pipe `down` <── session's upstream socket <──┘
 *
 * One upstream socket per client address (so the service sees one peer per client and its
 * replies find their way back), connected to the service; sessions idle for `idleMs` are
 * closed. IPv4 and IPv6: one listen socket per address, an IPv4 client is forwarded to the
 * service over IPv4 and an IPv6 one over IPv6.
 *
 * Sockets: with the agent's native addon (packages/agent/native), each socket is read with
 * recvmmsg (up to 64 datagrams a wakeup) and what falls due in one turn of the event loop is
 * sent with one sendmmsg per socket; without it, Node's dgram (one system call per datagram).
 */
import dgram from 'node:dgram';
import { isIP, isIPv6 } from 'node:net';
import type { Engine, Pipe } from '../engine/engine.js';
import type { Packet } from '../engine/stage.js';
import { ipText } from '@dune/topology';
import { ioNative, type IoNative } from '../kernel/native.js';

/** IP + UDP header bytes added to a payload to get the packet size the rate counts. */
export const UDP_OVERHEAD = { v4: 28, v6: 48 } as const;

/**
 * Replies go to client addresses as the kernel reported them: IP literals. Node's default
 * lookup answers those a tick later (dns.lookup); answering at once saves a tick per datagram.
 */
type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;
/**
 * A listener's send to a client names the client's address, which Node "looks up" per
 * datagram: it is a literal of the listener's own family, passed back as is (no parse).
 */
const literalLookup4 = (address: string, _family: unknown, cb: LookupCallback): void => cb(null, address, 4);
const literalLookup6 = (address: string, _family: unknown, cb: LookupCallback): void => cb(null, address, 6);

export interface UdpProxyOptions {
  engine: Engine;
  up: Pipe;
  down: Pipe;
  /** The service's port. */
  port: number;
  /** Where the service is reached: per family. */
  target4?: string;
  target6?: string;
  /** The client-facing port (0: any free port, the same on every address when possible). */
  proxyPort: number;
  /** Addresses the proxy listens on. Default: the loopback addresses. */
  listen?: string[];
  /** A session with no traffic either way for this long is closed. */
  idleMs?: number;
  /** Socket buffer sizes (bytes), so bursts are queued by the engine, not lost by the kernel. */
  socketBufferBytes?: number;
  /** Sockets through the native addon (batched) when it is built, else dgram. Default true. */
  native?: boolean;
}

type UdpNative = Required<Pick<IoNative, 'fdWatch' | 'fdUnwatch' | 'udpOpen' | 'udpPort' | 'udpClose' | 'udpRecv' | 'udpSend'>>;

/** The addon's batched UDP functions, or why they cannot be used. */
function udpNative(): UdpNative | string {
  let io: IoNative;
  try {
    io = ioNative();
  } catch (e) {
    return (e as Error).message;
  }
  if (typeof io.udpOpen !== 'function' || typeof io.udpRecv !== 'function' || typeof io.udpSend !== 'function') {
    return 'the native addon predates udpOpen/udpRecv/udpSend; rebuild it with `npm run build:native -w @dune/agent`';
  }
  return io as UdpNative;
}

const SLOT = 65536;
const BATCH = 64;
/** Batches read per wakeup at most, so one busy socket does not starve the loop. */
const READS_PER_WAKEUP = 8;

/** Datagrams due on one native socket, sent together at the end of the turn. */
interface Outbox {
  fd: number;
  bufs: Buffer[];
  n: number;
  /** Destinations (a listener's), 8 int32 each as udpRecv reports sources; null: connected. */
  meta: Int32Array | null;
  errorKind: string;
}

interface NativeSock {
  fd: number;
  watch: number;
  out: Outbox;
}

/** The source address udpRecv wrote at meta[at ..] (4 bytes for IPv4, 16 for IPv6) as text. */
function addrText(m: Int32Array, at: number, v6: boolean): string {
  return ipText(new Uint8Array(m.buffer, m.byteOffset + at * 4, v6 ? 16 : 4));
}

interface Session {
  key: string;
  address: string;
  port: number;
  /** dgram mode. */
  listener: dgram.Socket | null;
  upstream: dgram.Socket | null;
  /** native mode: the listener's and the session's own sockets, the client as udpSend wants it. */
  nListener: NativeSock | null;
  nUpstream: NativeSock | null;
  dest: Int32Array | null;
  v6: boolean;
  lastSeen: number;
  closed: boolean;
  /** Datagrams due before the upstream socket finished connecting. */
  waiting: Buffer[] | null;
}

interface Ref {
  session: Session;
}

export class UdpProxy {
  private readonly listeners: dgram.Socket[] = [];
  private readonly sessions = new Map<string, Session>();
  private reaper: NodeJS.Timeout | undefined;
  private readonly idleMs: number;
  private readonly bufferBytes: number;
  /** The port actually listened on, per address. */
  readonly ports = new Map<string, number>();
  sessionsOpened = 0;
  sessionsReaped = 0;
  /** The batched sockets, or null: dgram (then `fallbackReason` says why). */
  private readonly io: UdpNative | null;
  readonly fallbackReason: string | null;
  private readonly nListeners: NativeSock[] = [];
  private rbuf: Buffer | null = null;
  private readonly rmeta = new Int32Array(BATCH * 8);
  private readonly dirty: Outbox[] = [];
  private flushQueued = false;

  constructor(private readonly opts: UdpProxyOptions) {
    this.idleMs = opts.idleMs ?? 60_000;
    this.bufferBytes = opts.socketBufferBytes ?? 4 * 1024 * 1024;
    const targets = [opts.target4, opts.target6].filter((t): t is string => t !== undefined);
    const io = opts.native === false ? 'turned off' : targets.some((t) => isIP(t) === 0) ? 'the service is named, not an IP address' : udpNative();
    this.io = typeof io === 'string' ? null : io;
    this.fallbackReason = typeof io === 'string' ? io : null;
    opts.up.sink = {
      deliver: (pkt) => this.toService(pkt),
      drop: () => {},
    };
    opts.down.sink = {
      deliver: (pkt) => this.toClient(pkt),
      drop: () => {},
    };
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** True when the sockets go through the native addon (batched system calls). */
  get batched(): boolean {
    return this.io !== null;
  }

  async start(): Promise<void> {
    const addrs = this.opts.listen ?? ['127.0.0.1', '::1'];
    let port = this.opts.proxyPort;
    if (this.fallbackReason !== null && this.opts.native !== false) {
      this.opts.engine.log({ type: 'note', message: `proxy: Node dgram sockets, one system call per datagram (${this.fallbackReason})` });
    }
    for (const addr of addrs) {
      const bound = this.io !== null ? this.bindNative(this.io, addr, port) : (await this.bindListener(addr, port)).address().port;
      this.ports.set(addr, bound);
      // An ephemeral port: ask for the same one on the next address, so the proxy has one port.
      if (port === 0) port = bound;
    }
    const every = Math.max(50, Math.min(this.idleMs / 4, 10_000));
    this.reaper = setInterval(() => this.reap(), every);
    this.reaper.unref();
  }

  private bindListener(addr: string, port: number): Promise<dgram.Socket> {
    const v6 = isIPv6(addr);
    const sock = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, recvBufferSize: this.bufferBytes, sendBufferSize: this.bufferBytes, lookup: v6 ? literalLookup6 : literalLookup4 });
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, addr, () => {
        sock.off('error', reject);
        sock.on('error', () => this.opts.engine.countFrontendError('proxy-listen-error'));
        const label = sock.address().address;
        sock.on('message', (msg, rinfo) => this.fromClient(sock, label, msg, rinfo));
        this.listeners.push(sock);
        resolve(sock);
      });
    });
  }

  private fromClient(listener: dgram.Socket, label: string, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const key = `${rinfo.address}|${rinfo.port}|${label}`;
    let s = this.sessions.get(key);
    if (s === undefined) s = this.open(key, listener, rinfo);
    s.lastSeen = Date.now();
    const overhead = s.v6 ? UDP_OVERHEAD.v6 : UDP_OVERHEAD.v4;
    this.opts.up.input({ size: msg.length + overhead, data: msg, ref: { session: s } satisfies Ref });
  }

  private open(key: string, listener: dgram.Socket, rinfo: dgram.RemoteInfo): Session {
    const v6 = rinfo.family === 'IPv6' && !rinfo.address.startsWith('::ffff:');
    const upstream = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', recvBufferSize: this.bufferBytes, sendBufferSize: this.bufferBytes });
    const s: Session = { key, address: rinfo.address, port: rinfo.port, listener, upstream, nListener: null, nUpstream: null, dest: null, v6, lastSeen: Date.now(), closed: false, waiting: [] };
    const target = v6 ? (this.opts.target6 ?? '::1') : (this.opts.target4 ?? '127.0.0.1');
    // A connected socket sends without an address lookup per datagram; what falls due while
    // it connects waits in `waiting`.
    upstream.on('error', () => this.opts.engine.countFrontendError('proxy-upstream-error'));
    upstream.on('connect', () => {
      const waiting = s.waiting ?? [];
      s.waiting = null;
      for (const b of waiting) this.sendUp(s, b);
    });
    upstream.on('message', (msg) => {
      s.lastSeen = Date.now();
      this.opts.down.input({ size: msg.length + (v6 ? UDP_OVERHEAD.v6 : UDP_OVERHEAD.v4), data: msg, ref: { session: s } satisfies Ref });
    });
    upstream.connect(this.opts.port, target);
    this.sessions.set(key, s);
    this.sessionsOpened += 1;
    this.opts.engine.log({ type: 'note', message: `proxy: new client ${rinfo.address} port ${rinfo.port}` });
    return s;
  }

  private toService(pkt: Packet): void {
    const { session } = pkt.ref as Ref;
    if (session.closed || pkt.data === null) return;
    if (session.nUpstream !== null) this.queue(session.nUpstream.out, pkt.data, null);
    else if (session.waiting !== null) session.waiting.push(pkt.data);
    else this.sendUp(session, pkt.data);
  }

  private sendUp(s: Session, data: Buffer): void {
    if (s.closed) return;
    // No callback: Node then skips tracking the request; a failure surfaces as the
    // socket's 'error' event, counted there.
    s.upstream?.send(data);
  }

  private toClient(pkt: Packet): void {
    const { session } = pkt.ref as Ref;
    if (pkt.data === null) return;
    if (session.nListener !== null) this.queue(session.nListener.out, pkt.data, session.dest);
    else session.listener?.send(pkt.data, session.port, session.address);
  }

  // --- native sockets

  private bindNative(io: UdpNative, addr: string, port: number): number {
    const v6 = isIPv6(addr);
    const fd = io.udpOpen(v6 ? 6 : 4, addr, port, null, 0, this.bufferBytes);
    const bound = io.udpPort(fd);
    const label = addr;
    const sock: NativeSock = { fd, watch: -1, out: { fd, bufs: [], n: 0, meta: new Int32Array(BATCH * 8), errorKind: 'proxy-listen-error' } };
    sock.watch = io.fdWatch(fd, () => this.readListener(io, sock, label));
    this.nListeners.push(sock);
    return bound;
  }

  private recvBuffer(): Buffer {
    this.rbuf ??= Buffer.allocUnsafe(SLOT * BATCH);
    return this.rbuf;
  }

  /**
   * Reads what is queued on a native socket, up to READS_PER_WAKEUP batches so one busy socket
   * does not starve the loop; each datagram is handed to `each` as its own copy, with its
   * metadata at meta[o ..] (see udpRecv).
   */
  private drain(io: UdpNative, fd: number, errorKind: string, each: (data: Buffer, meta: Int32Array, o: number) => void, live: () => boolean = () => true): void {
    const buf = this.recvBuffer();
    const m = this.rmeta;
    for (let round = 0; round < READS_PER_WAKEUP && live(); round++) {
      const n = io.udpRecv(fd, buf, m);
      if (n < 0) this.opts.engine.countFrontendError(errorKind);
      if (n <= 0) return;
      for (let i = 0; i < n; i++) {
        const len = m[i * 8]!;
        const data = Buffer.allocUnsafe(len);
        buf.copy(data, 0, i * SLOT, i * SLOT + len);
        each(data, m, i * 8);
      }
      if (n < BATCH) return;
    }
  }

  private readListener(io: UdpNative, sock: NativeSock, label: string): void {
    this.drain(io, sock.fd, 'proxy-listen-error', (data, m, o) => {
      const v6 = m[o + 2] === 6;
      const port = m[o + 1]!;
      const key = v6 ? `${m[o + 4]},${m[o + 5]},${m[o + 6]},${m[o + 7]}|${port}|${label}` : `${m[o + 4]}|${port}|${label}`;
      const s = this.sessions.get(key) ?? this.openNative(io, key, sock, m, o, v6);
      s.lastSeen = Date.now();
      this.opts.up.input({ size: data.length + (v6 ? UDP_OVERHEAD.v6 : UDP_OVERHEAD.v4), data, ref: { session: s } satisfies Ref });
    });
  }

  private openNative(io: UdpNative, key: string, listener: NativeSock, m: Int32Array, o: number, v6: boolean): Session {
    const dest = m.slice(o, o + 8);
    const address = addrText(m, o + 4, v6);
    const port = m[o + 1]!;
    const target = v6 ? (this.opts.target6 ?? '::1') : (this.opts.target4 ?? '127.0.0.1');
    const fd = io.udpOpen(v6 ? 6 : 4, null, 0, target, this.opts.port, this.bufferBytes);
    const up: NativeSock = { fd, watch: -1, out: { fd, bufs: [], n: 0, meta: null, errorKind: 'proxy-upstream-error' } };
    const s: Session = { key, address, port, listener: null, upstream: null, nListener: listener, nUpstream: up, dest, v6, lastSeen: Date.now(), closed: false, waiting: null };
    const overhead = v6 ? UDP_OVERHEAD.v6 : UDP_OVERHEAD.v4;
    up.watch = io.fdWatch(fd, () =>
      this.drain(io, fd, 'proxy-upstream-error', (data) => {
        s.lastSeen = Date.now();
        this.opts.down.input({ size: data.length + overhead, data, ref: { session: s } satisfies Ref });
      }, () => !s.closed));
    this.sessions.set(key, s);
    this.sessionsOpened += 1;
    this.opts.engine.log({ type: 'note', message: `proxy: new client ${address} port ${port}` });
    return s;
  }

  private queue(out: Outbox, data: Buffer, dest: Int32Array | null): void {
    if (out.n === 0) this.dirty.push(out);
    if (out.meta !== null && dest !== null) {
      if (out.meta.length < (out.n + 1) * 8) {
        const grown = new Int32Array(out.meta.length * 2);
        grown.set(out.meta);
        out.meta = grown;
      }
      out.meta.set(dest, out.n * 8);
    }
    out.bufs[out.n] = data;
    out.n += 1;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
  }

  /** Sends what fell due this turn: one sendmmsg per socket (per 64 datagrams). */
  private readonly flush = (): void => {
    this.flushQueued = false;
    const io = this.io;
    if (io === null) return;
    for (const out of this.dirty) {
      if (out.fd >= 0) {
        const sent = io.udpSend(out.fd, out.bufs, out.n, out.meta);
        // dgram counts a failed send once, as the socket's 'error' event.
        if (sent < out.n) this.opts.engine.countFrontendError(out.errorKind);
      }
      out.bufs.fill(undefined as unknown as Buffer, 0, out.n);
      out.n = 0;
    }
    this.dirty.length = 0;
  };

  private closeNative(sock: NativeSock): void {
    if (this.io === null || sock.fd < 0) return;
    this.io.fdUnwatch(sock.watch);
    this.io.udpClose(sock.fd);
    // Its fd number may be reused: what was queued for it goes nowhere.
    sock.fd = -1;
    sock.out.fd = -1;
  }

  /** Closes the sessions idle for idleMs (packets still held for them are then discarded). */
  reap(now = Date.now()): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (now - s.lastSeen < this.idleMs) continue;
      this.closeSession(s);
      n += 1;
    }
    this.sessionsReaped += n;
    return n;
  }

  private closeSession(s: Session): void {
    s.closed = true;
    this.sessions.delete(s.key);
    if (s.nUpstream !== null) {
      this.closeNative(s.nUpstream);
      return;
    }
    try {
      s.upstream?.close();
    } catch {
      // already closed
    }
  }

  async close(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper);
    for (const s of [...this.sessions.values()]) this.closeSession(s);
    for (const l of this.nListeners) this.closeNative(l);
    this.nListeners.length = 0;
    await Promise.all(this.listeners.map((l) => new Promise<void>((r) => l.close(() => r()))));
    this.listeners.length = 0;
  }
}
