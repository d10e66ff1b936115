/**
 * The N-API addon (native/src/dune_native.c): the system calls Node lacks (setns around
 * socket/open, unshare + bind mount for namespaces). Loaded lazily so that pure code (the
 * encoders, the impairment planner) works and is testable without it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DuneError } from '@dune/topology';

export interface NativeApi {
  /** A bound NETLINK socket of `protocol` opened inside `nsPath` (null: the current namespace). */
  nlOpen(nsPath: string | null, protocol: number): number;
  nlSend(fd: number, buf: Buffer): number;
  /** Queues `buf` for a background thread to send on `fd`, in order (a copy is taken). */
  nlSendAsync(fd: number, buf: Buffer): void;
  /** Returns once every queued batch is sent; throws the first send error since the last wait. */
  nlSendWait(): void;
  /**
   * Segment k of `buf` (ends[k-1] .. ends[k]) sent to fds[k], one sendto each, by one background
   * sender in exactly this order across sockets; wait (nlSendWait) before queuing more for them.
   */
  nlSendSeqAsync(fds: Int32Array, buf: Buffer, ends: Int32Array): void;
  /** How many background senders take batches from now on (1..2, at most DUNE_NL_SENDERS); waits for the queue to empty first. */
  nlSetSenders(n: number): void;
  /** Waits up to timeoutMs, then returns every queued datagram concatenated; null on timeout. */
  nlRecv(fd: number, timeoutMs: number): Buffer | null;
  nlClose(fd: number): void;
  /** The pid of the process at the other end of a connected unix socket (SO_PEERCRED). */
  peerPid(fd: number): number;
  /** open(2) of `path` while inside `nsPath`: for /proc/sys/net, which is per namespace. */
  openInNs(nsPath: string | null, path: string, flags: number): number;
  /**
   * Writes values[i] to paths[i], nsPaths[k] (null: this process's namespace) getting the next
   * counts[k] of them, each namespace entered once by one of `threads` threads; paths under
   * `dir` are opened below one fd of it. A pair per path: (0, 0) written, (1, errno) open
   * failed, (2, errno) write failed, (3, errno) its namespace could not be entered.
   */
  writeInNsMany(nsPaths: readonly (string | null)[], counts: Int32Array, dir: string, paths: readonly string[], values: readonly string[], threads: number): Int32Array;
  /**
   * Per name: [errno, netlink fd, namespace fd] (the fds are -1 when protocol < 0). `init`:
   * [path, value] pairs written inside each new namespace first (best effort). `loAliases`: lo's
   * alias in each, set before the namespace is named; `loUp` (a byte per name): lo comes up
   * in the same message.
   */
  netnsCreateMany(names: string[], threads: number, protocol: number, init?: [string, string][], loAliases?: string[], loUp?: Uint8Array): Int32Array;
  /** netnsCreateMany on libuv's pool: resolves with the same result. */
  netnsCreateManyAsync(names: string[], threads: number, protocol: number, init: [string, string][], loAliases: string[], loUp: Uint8Array): Promise<Int32Array>;
  /** Per name: errno (0 = deleted or already absent); umounts on `threads` threads (default 16: each waits for an RCU grace period). */
  netnsDeleteMany(names: string[], threads?: number): Int32Array;
  /**
   * unlink of every file, then rmdir of every dir in order, on a thread of libuv's pool: an
   * errno per file, then per dir (0 removed).
   */
  /**
   * lo's alias in each /run/netns/<name>, read on `threads` threads (default 4). A pair per
   * name in codes: (0, 0) read, aliases[i] the alias or null; (1, errno) stale (its mount is
   * gone); (2, errno) cannot be entered; (3, errno) the query failed.
   */
  loAliasesMany(names: string[], threads?: number): { codes: Int32Array; aliases: (string | null)[] };
  removePaths(files: readonly string[], dirs: readonly string[]): Promise<Int32Array>;
}

/** The errno-carrying error the addon throws. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

const ADDON = fileURLToPath(new URL('../native/build/Release/dune_native.node', import.meta.url));

let cached: NativeApi | undefined;

export function native(): NativeApi {
  if (cached) return cached;
  // The bundled agent (dune-agent.mjs, shipped to remote hosts) has the addon beside it.
  const addon = process.env['DUNE_AGENT_NATIVE'] ?? ADDON;
  if (!existsSync(addon)) {
    throw new DuneError('agent-native-missing', `the agent's native addon is not built: ${addon} does not exist`, {
      hint: 'run `npm run build` (or `npm run build:native -w @dune/agent`) in the checkout',
    });
  }
  const require = createRequire(import.meta.url);
  cached = require(addon) as NativeApi;
  return cached;
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as Partial<NativeError>).errno === 'number';
}
