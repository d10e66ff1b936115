/** Undo helpers the op kinds share (remove.ts runs them). */
import type { Op } from '@dune/compiler';
import { delLink } from '../netlink/link.js';
import type { NlSocket } from '../netlink/socket.js';

/** Deletes device `name` when it is still there (a device already gone is the end state). */
export function deleteIfThere(op: Op, name: string, s: NlSocket<Op>, index: ReadonlyMap<string, number>): void {
  if (index.has(name)) s.queue(op, (w, seq) => delLink(w, seq, { name }));
}
