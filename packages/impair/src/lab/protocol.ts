/**
 * A lab's engine process and its control channel: JSON lines over a unix socket,
 * `/run/dune/<lab>/impair.sock`, spoken by the agent (`dune up`, `dune set`, `dune status`,
 * `dune down`) and by anyone with root who wants to look.
 *
 *   client → engine   {"id":1,"method":"set","params":{"ns":"dune.l.r1","dev":"eth0","params":{"delayUs":20000}}}
 *   engine → client   {"id":1,"ok":true,"result":{...}}
 *                     {"id":1,"ok":false,"error":{"code":"no-such-pipe","message":"...","hint":"..."}}
 *
 * One pipe per impaired link direction, named `<ns>/<dev>`: fed by NFQUEUE queue N in that
 * node's namespace (a rule in its mangle POSTROUTING, see rules.ts), its parameters the part
 * of the direction's impairment the agent gave the userspace backend. Requests that change
 * pipes run one at a time, in arrival order; `counters` and `hello` answer at once.
 */
import type { Impairment } from '@dune/topology';
import type { Tally } from '../engine/counters.js';
import type { DropCause } from '../engine/stage.js';

export const LAB_ENGINE_PROTOCOL = 'dune-impair-engine/1' as const;

/** The socket's file name in the lab's state directory. */
export const LAB_ENGINE_SOCKET = 'impair.sock';

/** One impaired link direction as the agent describes it. */
export interface LabPipeSpec {
  /** The node's namespace (a name under /run/netns). */
  ns: string;
  /** The interface whose egress is impaired. */
  dev: string;
  /** The plan's link and side, `3:a`, for status. */
  link: string;
  /** The model's keys (delayUs, jitterUs, ...): what this engine applies to the direction. */
  params: Impairment;
  /**
   * The other end of the wire, when it is a veth end in a node namespace (not a bridge port):
   * the engine then queues the direction as it arrives there (PREROUTING, `-i`) rather than
   * as it leaves `ns/dev`. Crossing the veth has orphaned the packet from its socket: held
   * packets no longer count against the sender's TCP Small Queues and send buffer, which cap
   * a TCP flow at a few kB per delay period when the engine holds the sender's own skbs.
   * Only TCP is queued there unless `all`: the kernel stamps a packet as it arrives, before
   * the engine holds it, so a receiver reading that stamp (`ping`) would not see the last
   * link's delay; other protocols are queued where they leave, into the same pipe (one rate,
   * one queue, one clock for the direction). Not used while the direction duplicates (a
   * duplicate is sent from the egress side).
   */
  ingress?: { ns: string; dev: string; all?: boolean };
}

export interface SyncParams {
  /** Every pipe the lab wants on this host: others are removed, missing ones added. */
  pipes: LabPipeSpec[];
  /**
   * The lab had an engine before this one that did not stop cleanly: its rules may still be
   * in the namespaces (they are replaced, not duplicated).
   */
  recover?: boolean;
}

export interface SyncResult {
  added: number;
  removed: number;
  changed: number;
  unchanged: number;
  namespaces: number;
  /** Namespaces whose rules were (re)written. */
  rulesWritten: number;
  ms: number;
}

export interface SetParams {
  ns: string;
  dev: string;
  /** Replaces the pipe's parameters whole. */
  params: Impairment;
  /** With `create`, a missing pipe is added (its link name is needed then). */
  link?: string;
  create?: boolean;
  /** The far end of the wire (see LabPipeSpec.ingress): given when the pipe may be created. */
  ingress?: { ns: string; dev: string; all?: boolean };
}

export interface PipeRef {
  ns: string;
  dev: string;
}

export interface ShutdownParams {
  /**
   * Leave the rules in place: the caller deletes the namespaces next (`dune down`), so
   * removing them one by one would only cost time.
   */
  keepRules?: boolean;
}

export interface LabPipeStatus {
  ns: string;
  dev: string;
  link: string;
  /** The NFQUEUE queue number in the namespace (the first hook's). */
  nfqueue: number;
  /** Where the direction is queued: one hook, or two (TCP where it arrives, the rest where it leaves). */
  queuedAt?: { ns: string; dev: string; dir: 'in' | 'out'; nfqueue: number; proto?: 'tcp' | 'other' }[];
  params: Impairment;
  received: Tally;
  delivered: Tally;
  dropped: Record<DropCause, Tally>;
  duplicated: number;
  corrupted: number;
  reordered: number;
  /** Packets waiting for their time (delay, rate). */
  held: Tally;
  /** What waits in the rate queue (or, with a limit and no rate, everything held). */
  queued: Tally;
  /** Time spent in the engine by delivered packets. */
  latencyUs: { p50: number; p99: number; max: number };
  /** The engine thread the pipe runs in (engines with worker threads only). */
  thread?: number;
}

export interface LabEngineStatus {
  protocol: typeof LAB_ENGINE_PROTOCOL;
  lab: string;
  pid: number;
  seed: number;
  startedAt: string;
  namespaces: number;
  pipes: LabPipeStatus[];
  held: Tally;
  /** Front-end problems by kind (kernel queue overruns, send errors). */
  frontendErrors: Record<string, number>;
  /** How late the scheduler's wake-ups were. */
  schedulerLatenessUs: { p50: number; p99: number; max: number };
  /** What a release costs (wake-up to verdict sent), and how far ahead packets are released to cover it. */
  releaseCostUs?: { p50: number; p99: number; max: number; aheadUs: number };
  /**
   * Packets read from the kernel, and how many carried its receive stamp (their delay counts
   * from their arrival in the node; the others' from when the engine read them).
   */
  kernelPackets?: { received: number; stamped: number };
  /** How long stamped packets waited in the kernel for the engine to read them (absorbed into their delays). */
  readDelayUs?: { p50: number; p99: number; max: number };
  /** Whether a full kernel queue lets packets through unimpaired (else they are dropped). */
  failOpen?: boolean;
  /**
   * Engines with worker threads: per thread, its pipes, the namespaces it has sockets in, what
   * it holds, and how busy it was since the last status (0..1). Counts as of this status.
   */
  threads?: { thread: number; pipes: number; namespaces: number; held: Tally; utilization: number }[];
  cpuSeconds: { user: number; system: number };
  rssBytes: number;
}

export interface HelloResult {
  protocol: typeof LAB_ENGINE_PROTOCOL;
  lab: string;
  pid: number;
  seed: number;
  startedAt: string;
  pipes: number;
  namespaces: number;
  /** Engine threads (1: the pipes run in the process's own thread). */
  threads: number;
  failOpen: boolean;
}

export interface LabRequest {
  id: number;
  method: LabMethod;
  params?: unknown;
}

export type LabReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string; hint?: string; problems?: unknown } };

export const LAB_METHODS = ['hello', 'sync', 'add', 'remove', 'set', 'counters', 'shutdown'] as const;
export type LabMethod = (typeof LAB_METHODS)[number];

/** Methods that change pipes: run one at a time. */
export const MUTATING: ReadonlySet<LabMethod> = new Set(['sync', 'add', 'remove', 'set', 'shutdown']);

export const pipeName = (ns: string, dev: string): string => `${ns}/${dev}`;

/** An error with a stable code, sent back to the client as is. */
export class LabEngineError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly problems?: unknown,
  ) {
    super(message);
    this.name = 'LabEngineError';
  }
}
