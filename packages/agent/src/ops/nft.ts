/**
 * `nft`: a brick's nftables tables in its node's namespace, created or replaced whole in one
 * `nft -f` transaction (atomic: traffic sees the old rules or the new, never a mix). Before
 * the definitions, each table is declared and deleted in the same transaction, so a first
 * apply and a live change are one script. Its named counters are what `dune status` shows.
 */
import type { NftOp } from '@dune/compiler';
import { DuneError } from '@dune/topology';
import { ApplyError } from '../errors.js';
import { inNs, mapLimit, run } from '../run.js';
import { opKind, type OpCounter } from './types.js';

const describe = (op: NftOp) => `nft ${op.tables.join(', ')} in ${op.ns}`;

/** The whole transaction: every table emptied away, then defined anew. */
export function nftTransaction(op: Pick<NftOp, 'tables' | 'script'>): string {
  const lines: string[] = [];
  for (const t of op.tables) lines.push(`table ${t} {}`, `delete table ${t}`);
  return `${lines.join('\n')}\n${op.script.endsWith('\n') ? op.script : `${op.script}\n`}`;
}

async function nftIn(ns: string, script: string): Promise<{ code: number; why: string }> {
  const r = await run(inNs(ns, ['nft', '-f', '-']), script);
  return { code: r.code, why: r.stderr.trim() || r.stdout.trim() };
}

export const nft = opKind('nft', {
  describe,
  key: (op) => `nft ${op.ns}`,
  nss: (op) => [op.ns],
  inPlace: 'reapply',
  undoRank: 35,
  diesWithNs: true,
  runtime: true,
  apply: {
    stage: 'batch',
    async run(ops, s) {
      await mapLimit([...ops], 4, async (op) => {
        const r = await nftIn(op.ns, nftTransaction(op));
        if (r.code === 0) return;
        const missing = r.code === 127 || /ENOENT|not found/i.test(r.why);
        throw new ApplyError(`${describe(op)}: nft -f failed (exit ${r.code}): ${r.why || 'no output'}`, {
          op,
          journal: s.journal,
          hint: missing ? 'bricks are built with nftables: install it (Debian: apt-get install nftables)' : 'the kernel refused the rules: `dune check FILE` lists what this kernel supports (nft, bridge)',
        });
      });
    },
  },
  undo: {
    async run(op) {
      const r = await nftIn(op.ns, op.tables.map((t) => `table ${t} {}\ndelete table ${t}\n`).join(''));
      if (r.code !== 0) throw new DuneError('nft-failed', `removing ${op.tables.join(', ')} in ${op.ns} failed: ${r.why}`, { hint: 'run `dune down` and `dune up` again' });
    },
  },
  async counters(op) {
    const r = await run(inNs(op.ns, ['nft', '-j', 'list', 'counters']));
    if (r.code !== 0) return [];
    const found = new Map<string, { packets: number; bytes: number }>();
    try {
      const doc = JSON.parse(r.stdout) as { nftables?: { counter?: { family: string; table: string; name: string; packets: number; bytes: number } }[] };
      for (const item of doc.nftables ?? []) {
        const c = item.counter;
        if (c !== undefined) found.set(`${c.family} ${c.table}\0${c.name}`, { packets: c.packets, bytes: c.bytes });
      }
    } catch {
      return [];
    }
    return op.counters.map((c): OpCounter => {
      const v = found.get(`${c.table}\0${c.name}`);
      return { node: op.node, name: c.name, label: c.label, packets: v?.packets ?? null, bytes: v?.bytes ?? null };
    });
  },
});
