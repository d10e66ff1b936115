/** `enslave`: a device joins a bridge of its namespace. */
import { setLink } from '../netlink/link.js';
import { opKind } from './types.js';

export const enslave = opKind('enslave', {
  describe: (op) => `enslave ${op.ns}/${op.dev} to ${op.master}`,
  key: (op) => `enslave ${op.ns}/${op.dev}`,
  nss: (op) => [op.ns],
  on: (op) => `${op.ns}/${op.dev}`,
  undoRank: 80,
  diesWithNs: true,
  apply: {
    stage: 'socket',
    queue(op, ref, s) {
      const c = s.ctx(op.ns, op);
      const dev = s.devIndex(c, op.dev, op);
      const master = s.devIndex(c, op.master, op);
      c.sock.queue(ref, (w, seq) => setLink(w, seq, { index: dev, master }));
    },
  },
});
