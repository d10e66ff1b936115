/** `bridge`: a Linux bridge with STP off and forward delay 0 (nemu's Switch: ports forward at once). */
import { newBridge, type BridgeSpec } from '../netlink/link.js';
import { opKind } from './types.js';
import { deleteIfThere } from './undo.js';

export const bridge = opKind('bridge', {
  describe: (op) => `bridge ${op.ns}/${op.name}`,
  key: (op) => `link ${op.ns}/${op.name}`,
  nss: (op) => [op.ns],
  creates: (op) => [`${op.ns}/${op.name}`],
  undoRank: 110,
  diesWithNs: true,
  apply: {
    stage: 'link',
    create(b, ref, s) {
      const [c, idx] = s.allocIndex(b.ns, b, b.name);
      const spec: BridgeSpec = {
        name: b.name,
        index: idx,
        ...(b.mtu ? { mtu: b.mtu } : {}),
        stpState: 0,
        forwardDelayCs: 0,
        ...(b.ageingTimeCs !== undefined ? { ageingTimeCs: b.ageingTimeCs } : {}),
      };
      s.create(c, ref, (w, seq) => newBridge(w, seq, spec));
      s.alias(c, idx, b.alias, ref, b.name);
      if (c === s.hostCtx()) s.createdOnHost(b.name, ref);
    },
  },
  undo: { order: 40, queue: (op, s, index) => deleteIfThere(op, op.name, s, index) },
});
