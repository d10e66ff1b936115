/** `netns`: a node's namespace, lo marked with the lab's alias. Created in batches by apply.ts (native threads). */
import { opKind } from './types.js';

export const netns = opKind('netns', {
  describe: (op) => `netns ${op.ns}`,
  key: (op) => `netns ${op.ns}`,
  nss: (op) => [op.ns],
  undoRank: 120,
  diesWithNs: false,
  apply: { stage: 'netns' },
});
