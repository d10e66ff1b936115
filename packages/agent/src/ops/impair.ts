/**
 * `impair`: a link direction's impairment on the egress of a device. The backend (netem,
 * htb/tbf, nftables loss, the userspace engine) is chosen per host from the probe
 * (impair/backends.ts); tc objects are queued on the namespace's socket, nftables loss rules
 * go in one `nft` run per namespace after the sockets drain (apply.ts).
 */
import type { ImpairOp } from '@dune/compiler';
import { ApplyError } from '../errors.js';
import { planImpairment, type ImpairPlan } from '../impair/backends.js';
import { changeImpairment } from '../impair/index.js';
import { queueTcPlan } from '../impair/tc-apply.js';
import { opKind, type ApplyContext } from './types.js';

export const impair = opKind('impair', {
  describe: (op) => `impair ${op.ns}/${op.dev} (link ${op.link})`,
  key: (op) => `impair ${op.ns}/${op.dev}`,
  nss: (op) => [op.ns],
  on: (op) => `${op.ns}/${op.dev}`,
  inPlace: 'change',
  undoRank: 30,
  diesWithNs: true,
  apply: {
    stage: 'socket',
    queue(op, ref, s) {
      s.caps(); // first: without a probe, nothing below can be decided
      const c = s.ctx(op.ns, op);
      const dev = s.devIndex(c, op.dev, op);
      const plan = planImpair(op, s);
      queueTcPlan(c.sock, ref, dev, plan, false);
      if (plan.nftLossPpm !== undefined) s.nftLoss(c.name, { dev: op.dev, ppm: plan.nftLossPpm });
      s.impaired({ ns: op.ns, dev: op.dev, link: op.link, plan });
    },
  },
  undo: {
    async run(op, opts) {
      await changeImpairment(op.ns, op.dev, {}, opts.lab !== undefined ? { lab: opts.lab } : {});
    },
  },
});

function planImpair(op: ImpairOp, s: ApplyContext): ImpairPlan {
  try {
    return planImpairment(op.impairment, s.caps(), { mtu: op.mtu, where: `${op.ns}/${op.dev} (link ${op.link})`, prefer: s.opts.impairmentBackend ?? 'auto', userspaceEngine: s.opts.userspaceEngine === true });
  } catch (e) {
    // Unsupported is a plan-level problem; keep its message and hint, add the journal.
    const err = e as ApplyError;
    throw new ApplyError(err.message, { op, errno: 95, journal: s.journal, hint: err.hint, cause: e });
  }
}
