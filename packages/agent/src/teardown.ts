/**
 * Teardown from kernel state alone (no journal needed), touching only what carries our marks:
 *
 *   /run/netns/dune.<lab>.*  → enter each, read lo's alias (one GETLINK per namespace, on
 *                              a few threads) → `dune:<lab>:…`? to delete : report it as
 *                              foreign and leave it alone
 *   host interfaces          → dump, delete those whose alias starts with `dune:<lab>:`
 *   host nftables            → delete table inet dune_<lab>
 *   marked namespaces        → umount + unlink (native), last
 *
 * Idempotent: a second run finds nothing and succeeds. The kernel frees a namespace and its
 * interfaces asynchronously once its file is gone; that is fine.
 */
import { unlinkSync } from 'node:fs';
import { native } from './native.js';
import { errnoName } from './errors.js';
import { delLink } from './netlink/link.js';
import { NlSocket, describeAck } from './netlink/socket.js';
import { deleteNamespaces, listNamespaces, nsPath } from './netns.js';
import { deleteNftTable, listNftTables, nftTableName } from './impair/nft.js';
import { dumpLinks } from './status.js';

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
  const prefix = lab !== null && opts.nsPrefix !== undefined ? opts.nsPrefix : lab === null ? 'dune.' : `dune.${lab}.`;
  const candidates = listNamespaces().filter((n) => n.startsWith(prefix) && n !== opts.hostNs);
  const marked = verifyMarks(candidates, res, lab !== null && opts.nsPrefix !== undefined ? lab : undefined, opts.aliases);
  const t1 = performance.now();
  res.timingsMs.verify = Math.round(t1 - t0);
  // Host-side objects first: deleting namespaces starts the kernel's cleanup of every
  // interface in them, which holds RTNL in long stretches and would stall our dump.
  deleteHostInterfaces(lab, opts.hostNs ?? null, res);
  await deleteHostNft(lab, opts.hostNs ?? null, listNftTables(opts.hostNs ?? null), res);
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
 * Reads lo's alias in every namespace of `names` (native loAliasesMany: a few threads, each
 * entering the namespaces it takes and asking with one GETLINK of ifindex 1, LOOPBACK_IFINDEX;
 * far cheaper than a dump of every link per namespace). A /run/netns entry whose mount is
 * gone is `stale`.
 */
export function loAliases(names: readonly string[]): Map<string, LoAlias> {
  const out = new Map<string, LoAlias>();
  if (names.length === 0) return out;
  const r = native().loAliasesMany([...names]);
  names.forEach((name, i) => {
    const kind = r.codes[2 * i];
    const errno = r.codes[2 * i + 1] ?? 0;
    if (kind === 0) out.set(name, { alias: r.aliases[i] ?? null });
    else if (kind === 1) out.set(name, { stale: true });
    else if (kind === 2) out.set(name, { error: errnoName(errno), enter: true });
    else out.set(name, { error: `read mark of ${name}: ${errnoName(errno)}`, enter: false });
  });
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
