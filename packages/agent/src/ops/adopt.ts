/**
 * `adopt`: an interface of the host's namespace moved into a node's (NetMirage's edge-facing
 * NIC), with its addresses, state and routes put back there. apply.ts moves every adopted
 * interface in one stage right after the namespaces (so each keeps its ifindex); remove.ts
 * and teardown move it back and restore what the op saved before its namespace goes
 * (adopt.ts at the package's root), so there is no per-op undo here.
 */
import { devCounters } from './devcount.js';
import { opKind } from './types.js';

export const adopt = opKind('adopt', {
  describe: (op) => `adopt ${op.dev} into ${op.ns}`,
  key: (op) => `adopt ${op.ns}/${op.dev}`,
  nss: (op) => [op.ns],
  creates: (op) => [`${op.ns}/${op.dev}`],
  undoRank: 115,
  diesWithNs: false,
  apply: { stage: 'adopt' },
  // A nic brick's port: what crossed the wire (NetMirage's adopted NICs name no node: none).
  counters: async (op) => (op.node === undefined ? [] : devCounters(op.ns, op.name ?? op.dev, op.node, {
    tx: `${op.name ?? op.dev} (host ${op.dev}): frames to the wire`,
    rx: `${op.name ?? op.dev} (host ${op.dev}): frames from the wire`,
  })),
});
