/**
 * What the lab engine needs of a kernel, tried for real in a namespace (the agent's
 * capability probe runs this in its throwaway one): nfnetlink_queue (a queue can be bound over
 * NETLINK_NETFILTER) and the NFQUEUE target through nf_tables (nft_compat + xt_NFQUEUE: the
 * rule nft-rules.ts writes, with a balanced range as --queue-balance writes it). No iptables
 * binary: the engine writes its rules over netlink itself.
 */
import { configCmd, NETLINK_NETFILTER, NFQNL_CFG_CMD, NfqWriter, parseMessages } from '../kernel/nfnetlink-queue.js';
import type { IoNative } from '../kernel/native.js';
import { nftBatch } from './nft-rules.js';

export type ProbeIo = Pick<IoNative, 'nlOpen' | 'nlSend' | 'nlRecv' | 'nlClose'>;

/** Sends `buf` and waits for the answers to `seqs`: the first error's errno, or 0. */
function exchange(io: ProbeIo, fd: number, buf: Buffer, seqs: number[]): number {
  const sent = io.nlSend(fd, buf);
  if (sent < 0) return -sent;
  const waiting = new Set(seqs);
  while (waiting.size > 0) {
    const b = io.nlRecv(fd, 2000);
    if (b === null) return 110; // ETIMEDOUT
    let err = 0;
    parseMessages(b, b.length, () => {}, (a) => {
      if (!waiting.delete(a.seq)) return;
      if (a.errno !== 0 && err === 0) err = a.errno;
    });
    // A refused nf_tables transaction answers only up to the refused message.
    if (err !== 0) return err;
  }
  return 0;
}

/**
 * Tries both in the namespace at `nsPath` (null: this one), leaving a table `dune_impair_probe`
 * there (the caller's namespace is thrown away). ok, or the error naming what is missing.
 */
export function probeQueueSupport(nsPath: string | null, io: ProbeIo): { ok: true } | { ok: false; error: string } {
  let fd: number;
  try {
    fd = io.nlOpen(nsPath, NETLINK_NETFILTER);
  } catch (e) {
    return { ok: false, error: `NETLINK_NETFILTER socket: ${(e as Error).message}` };
  }
  try {
    const w = new NfqWriter(256);
    configCmd(w, 1, 0, NFQNL_CFG_CMD.BIND);
    const bindErr = exchange(io, fd, w.bytes(), [1]);
    if (bindErr !== 0) return { ok: false, error: `binding an NFQUEUE queue failed (errno ${bindErr}): is nfnetlink_queue built (CONFIG_NETFILTER_NETLINK_QUEUE)?` };
    const { batch, seqs } = nftBatch('probe', [{ dev: 'lo', nfqueue: 0, balance: 2 }], 10);
    const nftErr = exchange(io, fd, batch, seqs);
    if (nftErr !== 0) {
      return { ok: false, error: `an nf_tables rule with the NFQUEUE target was refused (errno ${nftErr}${nftErr === 2 ? ': ENOENT' : ''}): are nft_compat and xt_NFQUEUE built (CONFIG_NFT_COMPAT, CONFIG_NETFILTER_XT_TARGET_NFQUEUE)?` };
    }
    return { ok: true };
  } finally {
    io.nlClose(fd);
  }
}
