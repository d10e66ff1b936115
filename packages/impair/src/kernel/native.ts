/**
 * The agent's N-API addon (packages/agent/native), loaded by path: the engine needs only a
 * few of its functions, and depending on @dune/agent's code would make a cycle once the
 * agent's lab backend runs this engine.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { RealClock, type RealClockOptions, type Waker } from '../engine/clock.js';

export interface IoNative {
  nlOpen(nsPath: string | null, protocol: number): number;
  nlSend(fd: number, buf: Buffer): number;
  nlRecv(fd: number, timeoutMs: number): Buffer | null;
  nlClose(fd: number): void;
  fdWatch(fd: number, cb: () => void): number;
  fdUnwatch(id: number): void;
  /** Whether the watch keeps the process alive (a new one does). Absent from older builds. */
  fdRef?(id: number, ref: boolean): void;
  /** A nonblocking CLOCK_MONOTONIC timerfd. Absent from older builds. */
  timerfdOpen?(): number;
  /** Expires in delayUs (0: at once; < 0: disarmed); resets the expiry count. 0 or -errno. */
  timerfdSet?(fd: number, delayUs: number): number;
  /** Bytes read (0: nothing queued) or -errno. */
  recvInto(fd: number, buf: Buffer): number;
  rawOpen(nsPath: string | null, family: 4 | 6, mark: number): number;
  /** Bytes sent or -errno. */
  rawSend(fd: number, packet: Buffer): number;
  /** SO_TIMESTAMP on: the kernel stamps queued packets from then on. 0 or -errno. Absent from older builds. */
  sockTimestamp?(fd: number): number;
  /** CLOCK_REALTIME in µs. Absent from older builds. */
  realtimeUs?(): number;
  /** out[0] = CLOCK_MONOTONIC µs, out[1] = CLOCK_REALTIME µs; allocates nothing. Absent from older builds. */
  clockInto?(out: Float64Array): void;
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

/**
 * The engine's clock source when the addon can give one that allocates nothing on the
 * JavaScript heap (RealClockOptions.source); undefined otherwise (an older build, or no
 * addon: RealClock then reads performance.now()).
 */
export function allocationFreeClock(): (() => number) | undefined {
  let io: IoNative;
  try {
    io = ioNative();
  } catch {
    return undefined;
  }
  const into = io.clockInto;
  if (into === undefined) return undefined;
  const out = new Float64Array(2);
  return () => {
    into(out);
    return out[0] as number;
  };
}

/**
 * A waker on a timerfd watched on Node's loop (RealClockOptions.waker): readable from its
 * expiry until set again, so it calls back on every turn while the clock spins. Unreferenced
 * while cleared, like an unarmed timer. Undefined on an older build or without the addon.
 */
export function descriptorWaker(): ((onTurn: () => void) => Waker) | undefined {
  let io: IoNative;
  try {
    io = ioNative();
  } catch {
    return undefined;
  }
  const { timerfdOpen, timerfdSet, fdRef } = io;
  if (timerfdOpen === undefined || timerfdSet === undefined || fdRef === undefined) return undefined;
  return (onTurn) => {
    const fd = timerfdOpen();
    const id = io.fdWatch(fd, onTurn);
    fdRef(id, false);
    let armed = false;
    let closed = false;
    return {
      set(delayUs: number): void {
        if (closed) return;
        timerfdSet(fd, delayUs);
        if (!armed) fdRef(id, true);
        armed = true;
      },
      clear(): void {
        if (!armed || closed) return;
        timerfdSet(fd, -1);
        fdRef(id, false);
        armed = false;
      },
      close(): void {
        if (closed) return;
        closed = true;
        io.fdUnwatch(id);
        io.nlClose(fd);
      },
    };
  };
}

/** The engine's real clock, on the allocation-free source and the descriptor waker when there are. */
export function kernelClock(opts: { spinBelowUs?: number | undefined } = {}): RealClock {
  const source = allocationFreeClock();
  const waker = descriptorWaker();
  const o: RealClockOptions = {};
  if (opts.spinBelowUs !== undefined) o.spinBelowUs = opts.spinBelowUs;
  if (source !== undefined) o.source = source;
  if (waker !== undefined) o.waker = waker;
  return new RealClock(o);
}
