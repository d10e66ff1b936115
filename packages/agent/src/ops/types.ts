/**
 * What a plan operation kind is, to the agent: the contract every file of this folder
 * implements (index.ts holds the table and says how to add one).
 *
 * An op kind says, for its ops:
 *   - how a user reads one (`describe`, in every error about it);
 *   - its identity for convergence (`key`: two ops with one key make the same kernel object),
 *     the namespaces it lives in, the devices it creates (`creates`) and the device it lives
 *     on (`on`), so a second `up` knows what a removed device takes with it;
 *   - how a changed op is handled by a second `up` (`inPlace`), its rank in the undo order,
 *     and whether the kernel frees it with its namespace;
 *   - how `apply` runs it (`apply.stage`, see below) and how a running lab undoes it (`undo`);
 *   - whether a running lab accepts it as a runtime change (`runtime`: `dune link`, the API's
 *     addresses and routes, `dune firewall`).
 *
 * The stages of an apply, in order (apply.ts): `netns` (namespaces, batched in native
 * threads) → `adopt` (host interfaces moved in, before any device is made there) → `link` (devices, all created over netlink, then drained) → `sysctl` → `socket`
 * (queued on each namespace's routing socket in plan order, then drained) → `batch` (whole
 * groups of ops at once, such as one nftables transaction per namespace) → `deferred` (not
 * kernel objects: files, commands and processes, run by the lab after the kernel layer).
 * Teardown needs nothing from a kind: everything lives in the lab's namespaces, or carries
 * the lab's alias (teardown.ts); a kind that keeps something outside them (daemons, files)
 * says how it goes in `release`, which down runs from the journaled plan.
 */
import type { Op, OpKind } from '@dune/compiler';
import type { Journal } from '../errors.js';
import type { ApplyOptions } from '../apply.js';
import type { Caps } from '../probe-types.js';
import type { ImpairPlan } from '../impair/backends.js';
import type { NftLossEntry } from '../impair/nft.js';
import type { LinkSpec } from '../netlink/link.js';
import type { NlSocket } from '../netlink/socket.js';

/** A request on a socket, pointing back at its op. */
export interface Ref {
  opIndex: number;
}

/** One namespace an apply works in: its socket, its fd, and the interfaces it knows by name. */
export interface NsContext {
  readonly name: string | null;
  readonly sock: NlSocket<Ref>;
  readonly nsFd: number;
  index(dev: string): number | undefined;
}

/** What the stages give an op kind's apply hooks (implemented by apply.ts's Applier). */
export interface ApplyContext {
  readonly opts: ApplyOptions;
  readonly journal: Journal;
  /** The namespace's context (null/undefined/'' or opts.hostNs: the host's). */
  ctx(ns: string | null | undefined, op: Op): NsContext;
  hostCtx(): NsContext;
  isHost(ns: string | null | undefined): boolean;
  /** The device's index in the context; an ApplyError naming the op when it is not there. */
  devIndex(c: NsContext, dev: string, op: Op): number;
  /** The probe's result (an ApplyError when the caller gave none). */
  caps(): Caps;
}

/** The link stage: devices are created with explicit indexes, then aliased (and brought up) in one more message. */
export interface LinkStage extends ApplyContext {
  /** Checks `name` is free in `ns` and reserves an index for it there. */
  allocIndex(ns: string | null | undefined, op: Op, name: string): [NsContext, number];
  /** Checks `name` is free in `ns`. */
  freeName(ns: string | null | undefined, op: Op, name: string): NsContext;
  /** Reserves `index` in `c`, for `name` when given (a device whose index must be free in two namespaces). */
  reserve(c: NsContext, name: string | undefined, index: number): void;
  /** The next free index in `c`. */
  nextIndex(c: NsContext): number;
  spec(c: NsContext, index: number, name: string, extra: Partial<LinkSpec>): LinkSpec;
  /** Queues a creation on `c`'s socket; every creating socket is drained together. */
  create(c: NsContext, ref: Ref, build: Parameters<NlSocket<Ref>['queue']>[1]): void;
  /**
   * After creation: sets the alias (and brings the device up when the plan does, at no extra
   * cost). `peer`: the device is the carrier partner of the one aliased just before (a veth's
   * other end); when both come up, they come up one right after the other.
   */
  alias(c: NsContext, index: number, alias: string, ref: Ref, name: string, peer?: boolean): void;
  /** A device created in the host namespace: the journal lists it once it exists. */
  createdOnHost(name: string, ref: Ref): void;
}

/** The socket stage: requests queued on a namespace's socket, in plan order. */
export interface SocketStage extends ApplyContext {
  /** The device was brought up at creation (its `up` op costs nothing). */
  upAtCreation(ns: string | null, dev: string): boolean;
  /** nftables loss for a device, applied in one `nft` run per namespace once the sockets drained. */
  nftLoss(ns: string | null, entry: NftLossEntry): void;
  /** Which backend carries which part of an impairment (ApplyResult.impairments). */
  impaired(record: { ns: string; dev: string; link: string; plan: ImpairPlan }): void;
}

export type ApplyStage<O extends Op> =
  | { stage: 'netns' }
  | { stage: 'adopt' }
  | { stage: 'link'; create(op: O, ref: Ref, s: LinkStage): void }
  /**
   * Writes under /proc/sys: called once with the plan's ops of this kind grouped by namespace,
   * each group in plan order (groups of different namespaces may be written at once).
   */
  | { stage: 'sysctl'; write(groups: readonly (readonly O[])[], s: ApplyContext): void }
  | { stage: 'socket'; queue(op: O, ref: Ref, s: SocketStage): void }
  | { stage: 'batch'; run(ops: readonly O[], s: ApplyContext): Promise<void> }
  | { stage: 'deferred' };

/** How a running lab undoes an op in a namespace that stays (remove.ts). */
export type UndoHook<O extends Op> =
  | {
      /** Queued on the namespace's socket in `order` (lower first), one drain per order; `index` maps names to ifindexes. */
      order: number;
      queue(op: O, s: NlSocket<Op>, index: ReadonlyMap<string, number>): void;
    }
  | {
      /** Run before the socket undos of its namespace. */
      run(op: O, opts: { lab?: string }): Promise<void>;
    };

export interface OpKindDef<O extends Op> {
  describe(op: O): string;
  key(op: O): string;
  /** The namespaces it lives in (a veth: both ends'); none for a file. */
  nss(op: O): string[];
  creates?(op: O): string[];
  on?(op: O): string | undefined;
  /** A changed op on a second `up`: `change` is changed live (impairments), `reapply` applied again over the old; absent: undone and applied anew. */
  inPlace?: 'change' | 'reapply';
  /** Its place in the undo order of convergence (lower first). */
  undoRank: number;
  /** The kernel frees it with its namespace: a removed namespace needs no undo of it. */
  diesWithNs: boolean;
  apply: ApplyStage<O>;
  undo?: UndoHook<O>;
  /**
   * What deleting the lab's namespaces does not undo (daemons and files it keeps outside
   * them, such as a private Open vSwitch): run by the lab's down from the journaled plan (so
   * after a failed up or a crash too) and when a converging up drops the op. Idempotent;
   * returns what it could not undo.
   */
  release?(op: O): Promise<string[]>;
  runtime?: boolean;
  /** What it counts, read from the kernel for `dune status` (a brick's named nft counters). */
  counters?(op: O): Promise<OpCounter[]>;
}

/** One counter of a node's op, as `dune status` shows it (null: not readable now). */
export interface OpCounter {
  node: string;
  name: string;
  label: string;
  packets: number | null;
  bytes: number | null;
}

/** Declares the op kind `K` with its op type. */
export function opKind<K extends OpKind>(_kind: K, def: OpKindDef<Extract<Op, { op: K }>>): OpKindDef<Extract<Op, { op: K }>> {
  return def;
}
