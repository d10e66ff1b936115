/** `exec`: a command run once in a node at `up`, by the lab after the files (lab/lab.ts). */
import { opKind } from './types.js';

export const exec = opKind('exec', {
  describe: (op) => `exec in ${op.ns}`,
  key: (op) => `exec ${op.ns}/${JSON.stringify(op.argv)}`,
  nss: (op) => [op.ns],
  undoRank: 10,
  diesWithNs: true,
  apply: { stage: 'deferred' },
});
