/**
 * The agent's N-API addon (packages/agent/native), loaded by path: the engine needs only a
 * few of its functions, and depending on @dune/agent's code would make a cycle once the
 * agent's lab backend runs this engine.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface IoNative {
  nlOpen(nsPath: string | null, protocol: number): number;
  nlSend(fd: number, buf: Buffer): number;
  nlRecv(fd: number, timeoutMs: number): Buffer | null;
  nlClose(fd: number): void;
  fdWatch(fd: number, cb: () => void): number;
  fdUnwatch(id: number): void;
  /** Bytes read (0: nothing queued) or -errno. */
  recvInto(fd: number, buf: Buffer): number;
  rawOpen(nsPath: string | null, family: 4 | 6, mark: number): number;
  /** Bytes sent or -errno. */
  rawSend(fd: number, packet: Buffer): number;
  /** SO_TIMESTAMP on: the kernel stamps queued packets from then on. 0 or -errno. Absent from older builds. */
  sockTimestamp?(fd: number): number;
  /** CLOCK_REALTIME in µs. Absent from older builds. */
  realtimeUs?(): number;
  /**
   * The UDP proxy's batched sockets (absent from older builds). udpOpen: a nonblocking UDP
   * socket bound (null: any address; port 0: any) and connected when connectAddr is given.
   */
  udpOpen?(family: 4 | 6, bindAddr: string | null, bindPort: number, connectAddr: string | null, connectPort: number, bufBytes: number): number;
  udpPort?(fd: number): number;
  udpClose?(fd: number): void;
  /**
   * recvmmsg into `buf`'s 64 KiB slots: datagram i at i * 65536, meta[i * 8 ..] = length, source
   * port, family (4|6), source address as 4 int32 words. The count (0: none queued) or -errno.
   */
  udpRecv?(fd: number, buf: Buffer, meta: Int32Array): number;
  /** sendmmsg of bufs[0..count) (meta null: a connected socket). How many went, or -errno. */
  udpSend?(fd: number, bufs: Buffer[], count: number, meta: Int32Array | null): number;
}

/** Read when first needed: a lab's engine, run from the agent's bundle, sets the variable first. */
function candidates(): string[] {
  return [
    process.env.DUNE_NATIVE_ADDON,
    process.env.DUNE_AGENT_NATIVE,
    // packages/impair/{src,dist}/kernel → packages/agent/native
    fileURLToPath(new URL('../../../agent/native/build/Release/dune_native.node', import.meta.url)),
  ].filter((p): p is string => typeof p === 'string' && p !== '');
}

let cached: IoNative | undefined;

export function ioNative(): IoNative {
  if (cached) return cached;
  const CANDIDATES = candidates();
  const path = CANDIDATES.find((p) => existsSync(p));
  if (path === undefined) {
    throw new Error(
      `kernel mode needs the agent's native addon, which is not built (looked for ${CANDIDATES.join(', ')}); ` +
        'run `npm run build:native -w @dune/agent` in the checkout',
    );
  }
  const mod = createRequire(import.meta.url)(path) as Partial<IoNative>;
  if (typeof mod.fdWatch !== 'function') {
    throw new Error(`the native addon at ${path} predates fdWatch/recvInto; rebuild it with \`npm run build:native -w @dune/agent\``);
  }
  cached = mod as IoNative;
  return cached;
}
