/**
 * `up`: a device brought up. Most are up at creation already (the alias message of the link
 * stage carries the flag); undone by a running lab, it is a link failure (`dune link down`).
 */
import { setLink } from '../netlink/link.js';
import { opKind } from './types.js';

export const up = opKind('up', {
  describe: (op) => `up ${op.ns}/${op.dev}`,
  key: (op) => `up ${op.ns}/${op.dev}`,
  nss: (op) => [op.ns],
  on: (op) => `${op.ns}/${op.dev}`,
  undoRank: 60,
  diesWithNs: true,
  runtime: true,
  apply: {
    stage: 'socket',
    queue(op, ref, s) {
      if (s.upAtCreation(s.isHost(op.ns) ? (s.opts.hostNs ?? null) : op.ns, op.dev)) return;
      const c = s.ctx(op.ns, op);
      const dev = s.devIndex(c, op.dev, op);
      c.sock.queue(ref, (w, seq) => setLink(w, seq, { index: dev, up: true }));
    },
  },
});
