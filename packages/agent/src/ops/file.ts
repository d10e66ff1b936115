/** `file`: a rendered template or a bind, written by the lab after the kernel layer (lab/lab.ts). */
import { opKind } from './types.js';

export const file = opKind('file', {
  describe: (op) => `file ${op.path} for ${op.node}`,
  key: (op) => `file ${op.path}`,
  nss: () => [],
  inPlace: 'reapply',
  undoRank: 20,
  diesWithNs: false,
  apply: { stage: 'deferred' },
});
