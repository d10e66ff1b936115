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
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Engine, Pipe } from '../engine/engine.js';
import type { Packet } from '../engine/stage.js';

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
}

interface Session {
  key: string;
  address: string;
  port: number;
  listener: dgram.Socket;
  upstream: dgram.Socket;
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

  constructor(private readonly opts: UdpProxyOptions) {
    this.idleMs = opts.idleMs ?? 60_000;
    this.bufferBytes = opts.socketBufferBytes ?? 4 * 1024 * 1024;
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

  async start(): Promise<void> {
    const addrs = this.opts.listen ?? ['127.0.0.1', '::1'];
    let port = this.opts.proxyPort;
    for (const addr of addrs) {
      const sock = await this.bindListener(addr, port);
      const bound = sock.address().port;
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
    const s: Session = { key, address: rinfo.address, port: rinfo.port, listener, upstream, v6, lastSeen: Date.now(), closed: false, waiting: [] };
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
    if (session.waiting !== null) session.waiting.push(pkt.data);
    else this.sendUp(session, pkt.data);
  }

  private sendUp(s: Session, data: Buffer): void {
    if (s.closed) return;
    // No callback: Node then skips tracking the request; a failure surfaces as the
    // socket's 'error' event, counted there.
    s.upstream.send(data);
  }

  private toClient(pkt: Packet): void {
    const { session } = pkt.ref as Ref;
    if (pkt.data === null) return;
    session.listener.send(pkt.data, session.port, session.address);
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
    try {
      s.upstream.close();
    } catch {
      // already closed
    }
  }

  async close(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper);
    for (const s of [...this.sessions.values()]) this.closeSession(s);
    await Promise.all(this.listeners.map((l) => new Promise<void>((r) => l.close(() => r()))));
    this.listeners.length = 0;
  }
}
