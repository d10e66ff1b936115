/**
 * Bernoulli loss with nftables: in the node's namespace, a table `inet dune_<lab>` with one
 * chain per impaired device, hooked at postrouting (which sees forwarded and locally sent
 * packets alike, before the egress qdisc):
 *
 *   table inet dune_L { chain loss_eth0 { type filter hook postrouting priority 0; policy accept;
 *     oifname "eth0" numgen random mod 1000000 < 300000 counter drop } }
 *
 * One chain per device makes a live change one atomic `nft -f` transaction: add the chain
 * (a no-op if it is there), flush it, add the new rule. Everything for one namespace goes in
 * one nft invocation, run through nsenter with argv only.
 */
import { DuneError } from '@dune/topology';
import { inNs, run } from '../run.js';
import { native } from '../native.js';
import { nsPath } from '../netns.js';
import { NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR } from '../netlink/constants.js';
import { NlWriter } from '../netlink/writer.js';
import { attrStr, findAttr, messages } from '../netlink/parse.js';

export const NFT_LOSS_SCALE = 1_000_000;

export const nftTableName = (lab: string): string => `dune_${lab}`;

/** Chain names: nft identifiers allow [A-Za-z0-9_./-] after a letter; other names go hex. */
export function lossChainName(dev: string): string {
  return /^[A-Za-z0-9_.-]+$/.test(dev) ? `loss_${dev}` : `loss_x${Buffer.from(dev, 'utf8').toString('hex')}`;
}

export interface NftLossEntry {
  dev: string;
  /** Loss in parts per million; null removes the device's rule (and chain). */
  ppm: number | null;
}

export function nftLossScript(lab: string, entries: readonly NftLossEntry[]): string {
  const t = `inet ${nftTableName(lab)}`;
  const lines = [`add table ${t}`];
  for (const e of entries) {
    const chain = lossChainName(e.dev);
    lines.push(`add chain ${t} ${chain} { type filter hook postrouting priority 0; policy accept; }`);
    if (e.ppm === null) {
      lines.push(`delete chain ${t} ${chain}`);
      continue;
    }
    lines.push(`flush chain ${t} ${chain}`);
    const dev = JSON.stringify(e.dev);
    // numgen's range is 0..mod-1: total loss is a plain drop (and `< 1000000` would be refused).
    const pick = Math.round(e.ppm) >= NFT_LOSS_SCALE ? '' : `numgen random mod ${NFT_LOSS_SCALE} < ${Math.round(e.ppm)} `;
    lines.push(`add rule ${t} ${chain} oifname ${dev} ${pick}counter drop`);
  }
  return lines.join('\n') + '\n';
}

export async function applyNftLoss(ns: string | null, lab: string, entries: readonly NftLossEntry[]): Promise<void> {
  const r = await run(inNs(ns, ['nft', '-f', '-']), nftLossScript(lab, entries));
  if (r.code !== 0) {
    const why = r.stderr.trim() || r.stdout.trim();
    const missing = r.code === 127 || /ENOENT|not found/i.test(why);
    throw new DuneError('nft-failed', `nft -f - in ${ns ?? 'the host namespace'} failed (exit ${r.code}): ${why || 'no output'}`, {
      hint: missing
        ? 'nftables applies packet loss here: install it (Debian: apt-get install nftables), or set impairment_backend = "userspace"'
        : 'the kernel refused the loss rule: check that nf_tables is available (`nft list tables` as root), or set impairment_backend = "userspace"',
    });
  }
}

/** The loss rule on `dev`, in parts per million; undefined when there is none. */
export async function readNftLoss(ns: string | null, lab: string, dev: string): Promise<number | undefined> {
  const r = await run(inNs(ns, ['nft', 'list', 'chain', 'inet', nftTableName(lab), lossChainName(dev)]));
  if (r.code !== 0) return undefined;
  const m = /numgen random mod (\d+) < (\d+)/.exec(r.stdout);
  if (!m) return /oifname .* drop/.test(r.stdout) ? NFT_LOSS_SCALE : undefined;
  return (Number(m[2]) / Number(m[1])) * NFT_LOSS_SCALE;
}

/** Deletes the lab's table in a namespace, if it is there. */
export async function deleteNftTable(ns: string | null, lab: string): Promise<boolean> {
  const t = nftTableName(lab);
  const r = await run(inNs(ns, ['nft', '-f', '-']), `add table inet ${t}\ndelete table inet ${t}\n`);
  return r.code === 0;
}

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_GETTABLE = 1;
const NFTA_TABLE_NAME = 1;
const NFPROTO_INET = 1;

/**
 * Tables named dune_* in a namespace (family inet), from one nf_tables dump over netlink
 * (spawning `nft list tables` cost down tens of milliseconds of waiting). None when the
 * kernel has no nf_tables.
 */
export function listNftTables(ns: string | null): string[] {
  const n = native();
  let fd: number;
  try {
    fd = n.nlOpen(ns === null ? null : nsPath(ns), NETLINK_NETFILTER);
  } catch {
    return [];
  }
  const out: string[] = [];
  try {
    // nlmsghdr + nfgenmsg (family, version 0, res_id 0): a dump of every table.
    const w = new NlWriter(32);
    const start = w.beginMsg((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_DUMP, 1);
    w.u8(NFPROTO_INET).u8(0).u16(0);
    w.endMsg(start);
    n.nlSend(fd, w.bytes());
    for (;;) {
      const buf = n.nlRecv(fd, 2000);
      if (buf === null) return out;
      for (const m of messages(buf)) {
        if (m.type === NLMSG_DONE || m.type === NLMSG_ERROR) return out;
        if (m.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE) || m.data.readUInt8(0) !== NFPROTO_INET) continue;
        const name = attrStr(findAttr(m.data, 4, NFTA_TABLE_NAME));
        if (name?.startsWith('dune_')) out.push(name);
      }
    }
  } catch {
    return out;
  } finally {
    n.nlClose(fd);
  }
}
