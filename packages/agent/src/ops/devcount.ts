/** A device brick's counters for `dune status`: what its device sent and received (`ip -s -j link`). */
import { inNs, run } from '../run.js';
import type { OpCounter } from './types.js';

interface Stats { packets: number; bytes: number }

/** Two counters of `dev` in `ns`: frames it sent (`tx`: out of the lab, into the device) and received. */
export async function devCounters(ns: string, dev: string, node: string, label: { tx: string; rx: string }): Promise<OpCounter[]> {
  const r = await run(inNs(ns, ['ip', '-s', '-j', 'link', 'show', 'dev', dev]));
  let st: { rx?: Stats; tx?: Stats } | undefined;
  try {
    st = r.code === 0 ? (JSON.parse(r.stdout) as { stats64?: { rx?: Stats; tx?: Stats } }[])[0]?.stats64 : undefined;
  } catch {
    st = undefined;
  }
  return [
    { node, name: `${dev}_tx`, label: label.tx, packets: st?.tx?.packets ?? null, bytes: st?.tx?.bytes ?? null },
    { node, name: `${dev}_rx`, label: label.rx, packets: st?.rx?.packets ?? null, bytes: st?.rx?.bytes ?? null },
  ];
}
