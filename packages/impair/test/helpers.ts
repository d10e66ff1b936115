import dgram from 'node:dgram';

export interface Arrival {
  seq: number;
  at: number;
  bytes: Buffer;
}

/** A UDP echo service on 127.0.0.1 and ::1, on one port; it records what arrives. */
export async function echoServer(opts: { echo?: boolean } = {}) {
  const arrivals: Arrival[] = [];
  const bind = (type: 'udp4' | 'udp6', addr: string, port: number) =>
    new Promise<dgram.Socket>((resolve, reject) => {
      const s = dgram.createSocket({ type, ipv6Only: type === 'udp6', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
      s.once('error', reject);
      s.bind(port, addr, () => resolve(s));
    });
  const v4 = await bind('udp4', '127.0.0.1', 0);
  const port = v4.address().port;
  const v6 = await bind('udp6', '::1', port);
  for (const s of [v4, v6]) {
    s.on('message', (msg, rinfo) => {
      arrivals.push({ seq: msg.readUInt32BE(0), at: performance.now(), bytes: msg });
      if (opts.echo !== false) s.send(msg, rinfo.port, rinfo.address);
    });
  }
  return {
    port,
    arrivals,
    close: () => Promise.all([v4, v6].map((s) => new Promise<void>((r) => s.close(() => r())))),
  };
}

/** A client that sends numbered datagrams and times their echoes. */
export async function client(port: number, host = '127.0.0.1') {
  const type = host.includes(':') ? 'udp6' : 'udp4';
  const sock = dgram.createSocket({ type, recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  await new Promise<void>((r) => sock.bind(0, host, () => r()));
  const sentAt = new Map<number, number>();
  const rtts: number[] = [];
  const echoes: Arrival[] = [];
  sock.on('message', (msg) => {
    const seq = msg.readUInt32BE(0);
    const at = performance.now();
    echoes.push({ seq, at, bytes: msg });
    const t = sentAt.get(seq);
    if (t !== undefined) rtts.push(at - t);
  });
  let seq = 0;
  return {
    /** The client's own port (the proxy names it in its notes). */
    port: sock.address().port,
    rtts,
    echoes,
    sentAt,
    send(size = 64): number {
      const b = Buffer.alloc(size, 0xa5);
      const s = seq++;
      b.writeUInt32BE(s, 0);
      sentAt.set(s, performance.now());
      sock.send(b, port, host);
      return s;
    },
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends `n` datagrams, `perTick` every `tickMs`. */
export async function pace(send: () => void, n: number, perTick: number, tickMs: number): Promise<void> {
  for (let i = 0; i < n; ) {
    for (let k = 0; k < perTick && i < n; k++, i++) send();
    await sleep(tickMs);
  }
}

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** The 99 % interval of a binomial(n, p) count (normal approximation). */
export function binomial99(n: number, p: number): [number, number] {
  const sd = Math.sqrt(n * p * (1 - p));
  return [n * p - 2.576 * sd, n * p + 2.576 * sd];
}
