/** The agent's failures: one class per thing the user can act on, each with a code and a hint. */
import { constants as osConstants } from 'node:os';
import { DuneError } from '@dune/topology';
import type { Op } from '@dune/compiler';
import type { NlAck } from './netlink/parse.js';
import { describeAck } from './netlink/socket.js';
import { kindOfOp } from './ops/index.js';

/** What an apply created before it stopped: enough for the caller to roll back. */
export interface Journal {
  /** Namespaces created (deleting them removes every interface inside). */
  namespaces: string[];
  /** Interfaces created in the host namespace (or the namespace the agent treats as host). */
  hostInterfaces: string[];
  /** nftables tables created: `{ ns, table }` (family inet). */
  nftTables: { ns: string; table: string }[];
}

export const emptyJournal = (): Journal => ({ namespaces: [], hostInterfaces: [], nftTables: [] });

/** `veth dune.l.a/eth0 ↔ dune.l.b/eth0`: an op as a user reads it (its kind's `describe`, ops/). */
export function describeOp(op: Op): string {
  return kindOfOp(op).describe(op);
}

const HINTS: Record<number, string> = {
  17: 'an object of that name already exists: a previous run of this lab may still be up (`dune down <lab>` removes it), or the plan repeats a name',
  19: 'the interface does not exist in that namespace: check the op order of the plan',
  1: 'the agent needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)',
  95: 'this kernel lacks the feature: `dune check FILE` lists what it supports',
  2: 'a kernel module or object is missing: `dune check FILE` lists what this kernel supports',
};

/** An op the kernel refused. Carries the journal so the caller can roll back. */
export class ApplyError extends DuneError {
  readonly op: Op | undefined;
  readonly errno: number;
  readonly extack: string | undefined;
  journal: Journal;

  constructor(message: string, opts: { op?: Op; errno?: number; extack?: string; journal: Journal; hint?: string; cause?: unknown }) {
    super('apply-failed', message, {
      hint: opts.hint ?? HINTS[opts.errno ?? 0] ?? 'see the kernel message above',
      cause: opts.cause,
    });
    this.name = 'ApplyError';
    this.op = opts.op;
    this.errno = opts.errno ?? 0;
    this.extack = opts.extack;
    this.journal = opts.journal;
  }

  static fromAck(op: Op, ack: NlAck, journal: Journal, others: number): ApplyError {
    const more = others > 0 ? ` (and ${others} more failed op${others === 1 ? '' : 's'})` : '';
    return new ApplyError(`${describeOp(op)}: ${describeAck(ack)}${more}`, {
      op,
      errno: ack.errno,
      ...(ack.extack !== undefined ? { extack: ack.extack } : {}),
      journal,
    });
  }
}

export function describeErrno(errno: number): string {
  return describeAck({ seq: 0, errno });
}

/** An errno's symbolic name (ENOENT, ...), as Node's errors carry in `code`. */
export function errnoName(errno: number): string {
  return Object.entries(osConstants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
}
