/** `process`: a supervised process in a node, started by the lab after the execs (lab/processes.ts). */
import { opKind } from './types.js';

export const process = opKind('process', {
  describe: (op) => `process ${op.name} in ${op.ns}`,
  key: (op) => `process ${op.name}`,
  nss: (op) => [op.ns],
  undoRank: 0,
  diesWithNs: false,
  apply: { stage: 'deferred' },
});
