/**
 * Teardown from kernel state alone (no journal needed), touching only what carries our marks:
 *
 *   /run/netns/dune.<lab>.*  → open each, read lo's alias (one pipelined GETLINK per
 *                              namespace) → `dune:<lab>:…`? to delete : report it as
 *                              foreign and leave it alone
 *   host interfaces          → dump, delete those whose alias starts with `dune:<lab>:`
 *   host nftables            → delete table inet dune_<lab>
 *   marked namespaces        → umount + unlink (native), last
 *
 * Idempotent: a second run finds nothing and succeeds. The kernel frees a namespace and its
 * interfaces asynchronously once its file is gone; that is fine.
 */
import { statfsSync, unlinkSync } from 'node:fs';
import { isNativeError, native } from './native.js';
import { IFLA_IFALIAS, NETLINK_ROUTE, NLM_F_REQUEST, NLMSG_ERROR, RTM_NEWLINK } from './netlink/constants.js';
import { delLink, getLink } from './netlink/link.js';
import { attrStr, findAttr, messages } from './netlink/parse.js';
import { NlSocket, describeAck } from './netlink/socket.js';
import { NlWriter } from './netlink/writer.js';
import { deleteNamespaces, listNamespaces, nsPath } from './netns.js';
import { deleteNftTable, listNftTables, nftTableName } from './impair/nft.js';
import { dumpLinks } from './status.js';

const NSFS_MAGIC = 0x6e736673;

export interface TeardownResult {
  /** The lab, or null for every lab. */
  lab: string | null;
  deletedNamespaces: string[];
  /** Namespaces with our prefix but without our mark on lo: left alone. */
  foreign: { ns: string; reason: string }[];
  /** Files under /run/netns with our prefix that were not namespaces any more (after a reboot): removed. */
  staleFiles: string[];
  deletedHostInterfaces: string[];
  deletedNftTables: string[];
  errors: string[];
  ms: number;
  /** Wall time per step: verify (marks), delete (namespaces), host (interfaces + nft). */
  timingsMs: { verify: number; delete: number; host: number };
}

export interface TeardownOptions {
  /** The namespace treated as the host's (see ApplyOptions.hostNs). */
  hostNs?: string;
  /** The lab's namespaces are `<nsPrefix><key>` rather than `dune.<lab>.<key>` (its plan's nsPrefix). */
  nsPrefix?: string;
  /** lo's marks the caller has just read (loAliases): not read again. */
  aliases?: ReadonlyMap<string, LoAlias>;
}

export function teardownLab(lab: string, opts: TeardownOptions = {}): Promise<TeardownResult> {
  return teardown(lab, opts);
}

export function teardownAll(opts: TeardownOptions = {}): Promise<TeardownResult> {
  return teardown(null, opts);
}

/** `dune:<lab>:…` → lab. */
function aliasLab(alias: string | undefined): string | undefined {
  const m = alias === undefined ? null : /^dune:([^:]+):/.exec(alias);
  return m?.[1];
}

/** `dune.<lab>.<key>` → lab. */
function nsLab(ns: string): string | undefined {
  return /^dune\.([^.]+)\./.exec(ns)?.[1];
}

async function teardown(lab: string | null, opts: TeardownOptions): Promise<TeardownResult> {
  const t0 = performance.now();
  const res: TeardownResult = {
    lab,
    deletedNamespaces: [],
    foreign: [],
    staleFiles: [],
    deletedHostInterfaces: [],
    deletedNftTables: [],
    errors: [],
    ms: 0,
    timingsMs: { verify: 0, delete: 0, host: 0 },
  };
  // Listing nftables tables means spawning nft: start it now, it runs while we work.
  const tablesP = listNftTables(opts.hostNs ?? null);
  const prefix = lab !== null && opts.nsPrefix !== undefined ? opts.nsPrefix : lab === null ? 'dune.' : `dune.${lab}.`;
  const candidates = listNamespaces().filter((n) => n.startsWith(prefix) && n !== opts.hostNs);
  const marked = verifyMarks(candidates, res, lab !== null && opts.nsPrefix !== undefined ? lab : undefined, opts.aliases);
  const t1 = performance.now();
  res.timingsMs.verify = Math.round(t1 - t0);
  // Host-side objects first: deleting namespaces starts the kernel's cleanup of every
  // interface in them, which holds RTNL in long stretches and would stall our dump.
  deleteHostInterfaces(lab, opts.hostNs ?? null, res);
  await deleteHostNft(lab, opts.hostNs ?? null, await tablesP, res);
  const t2 = performance.now();
  res.timingsMs.host = Math.round(t2 - t1);
  const failed = deleteNamespaces(marked);
  res.timingsMs.delete = Math.round(performance.now() - t2);
  for (const f of failed) res.errors.push(`delete namespace ${f.name}: ${f.message}`);
  const failedNames = new Set(failed.map((f) => f.name));
  res.deletedNamespaces = marked.filter((n) => !failedNames.has(n));
  res.ms = Math.round(performance.now() - t0);
  return res;
}

/** lo's alias in a namespace: the alias (null: none), or why it could not be read. */
export type LoAlias = { alias: string | null } | { stale: true } | { error: string; enter: boolean };

/**
 * Reads lo's alias in every namespace of `names`: a socket opened inside each, one GETLINK
 * of ifindex 1 (LOOPBACK_IFINDEX) sent on each, then the answers read, far cheaper than a
 * dump of every link per namespace. A /run/netns entry whose mount is gone is `stale`.
 */
export function loAliases(names: readonly string[]): Map<string, LoAlias> {
  const n = native();
  const out = new Map<string, LoAlias>();
  const open: { name: string; fd: number }[] = [];
  const w = new NlWriter(256);
  for (const name of names) {
    let fd: number;
    try {
      fd = n.nlOpen(nsPath(name), NETLINK_ROUTE);
    } catch (e) {
      out.set(name, isStale(name) ? { stale: true } : { error: isNativeError(e) ? e.code : (e as Error).message, enter: true });
      continue;
    }
    w.reset();
    getLink(w, 1, NLM_F_REQUEST, { index: 1 });
    try {
      n.nlSend(fd, w.bytes());
      open.push({ name, fd });
    } catch (e) {
      n.nlClose(fd);
      out.set(name, { error: `query ${name}: ${(e as Error).message}`, enter: false });
    }
  }
  for (const { name, fd } of open) {
    try {
      out.set(name, { alias: readAlias(fd) ?? null });
    } catch (e) {
      out.set(name, { error: `read mark of ${name}: ${(e as Error).message}`, enter: false });
    } finally {
      n.nlClose(fd);
    }
  }
  return out;
}

/** The names among `names` whose lo carries their lab's mark; the others reported in `res`. */
function verifyMarks(names: string[], res: TeardownResult, labOfAll?: string, known?: ReadonlyMap<string, LoAlias>): string[] {
  const ours: string[] = [];
  const read = loAliases(known === undefined ? names : names.filter((n) => !known.has(n)));
  for (const name of names) {
    const a = known?.get(name) ?? read.get(name);
    if (a === undefined) continue;
    if ('stale' in a) {
      try {
        unlinkSync(nsPath(name));
        res.staleFiles.push(name);
      } catch (u) {
        res.errors.push(`remove stale ${nsPath(name)}: ${(u as Error).message}`);
      }
    } else if ('error' in a) {
      if (a.enter) res.foreign.push({ ns: name, reason: `cannot be entered (${a.error}): left alone` });
      else res.errors.push(a.error);
    } else {
      const want = labOfAll ?? nsLab(name);
      const got = aliasLab(a.alias ?? undefined);
      if (got !== undefined && got === want) ours.push(name);
      else {
        res.foreign.push({
          ns: name,
          reason: a.alias ? `lo's alias ${JSON.stringify(a.alias)} is not this lab's mark: foreign, left alone` : 'no mark on lo: foreign, left alone',
        });
      }
    }
  }
  return ours;
}

function readAlias(fd: number): string | undefined {
  for (;;) {
    const buf = native().nlRecv(fd, 2000);
    if (buf === null) throw new Error('no answer from the kernel');
    for (const m of messages(buf)) {
      if (m.type === RTM_NEWLINK) return attrStr(findAttr(m.data, 16, IFLA_IFALIAS));
      if (m.type === NLMSG_ERROR) {
        const errno = -m.data.readInt32LE(0);
        if (errno !== 0) throw new Error(describeAck({ seq: m.seq, errno }));
      }
    }
  }
}

/** A /run/netns entry that is a plain file, not a namespace (its mount is gone). */
function isStale(name: string): boolean {
  try {
    return statfsSync(nsPath(name)).type !== NSFS_MAGIC;
  } catch {
    return false;
  }
}

function deleteHostInterfaces(lab: string | null, hostNs: string | null, res: TeardownResult): void {
  const want = lab === null ? 'dune:' : `dune:${lab}:`;
  let s: NlSocket<string>;
  try {
    s = NlSocket.open<string>(hostNs === null ? null : nsPath(hostNs), hostNs ?? 'host');
  } catch (e) {
    res.errors.push(`open the host namespace ${hostNs ?? ''}: ${(e as Error).message}`);
    return;
  }
  try {
    const ours = dumpLinks(s).filter((l) => l.alias?.startsWith(want));
    for (const l of ours) s.queue(l.name, (w, seq) => delLink(w, seq, { index: l.index }));
    s.drain();
    const failed = new Map(s.takeFailures().map((f) => [f.ref, f.ack]));
    for (const l of ours) {
      const ack = failed.get(l.name);
      // ENODEV: gone meanwhile (a veth whose peer's namespace was just deleted).
      if (ack && ack.errno !== 19) res.errors.push(`delete host interface ${l.name}: ${describeAck(ack)}`);
      else res.deletedHostInterfaces.push(l.name);
    }
  } finally {
    s.close();
  }
}

async function deleteHostNft(lab: string | null, hostNs: string | null, tables: string[], res: TeardownResult): Promise<void> {
  const doomed = tables.filter((t) => (lab === null ? t.startsWith('dune_') : t === nftTableName(lab)));
  for (const t of doomed) {
    const l = t.slice('dune_'.length);
    if (await deleteNftTable(hostNs, l)) res.deletedNftTables.push(t);
    else res.errors.push(`delete nftables table inet ${t}`);
  }
}
