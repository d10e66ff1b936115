/**
 * `adopt`: an interface of the host's namespace moved into a node's (NetMirage's edge-facing
 * NIC), with its addresses, state and routes put back there. apply.ts moves every adopted
 * interface in one stage right after the namespaces (so each keeps its ifindex); remove.ts
 * and teardown move it back and restore what the op saved before its namespace goes
 * (adopt.ts at the package's root), so there is no per-op undo here.
 */
import { opKind } from './types.js';

export const adopt = opKind('adopt', {
  describe: (op) => `adopt ${op.dev} into ${op.ns}`,
  key: (op) => `adopt ${op.ns}/${op.dev}`,
  nss: (op) => [op.ns],
  creates: (op) => [`${op.ns}/${op.dev}`],
  undoRank: 115,
  diesWithNs: false,
  apply: { stage: 'adopt' },
});
