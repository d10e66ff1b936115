/**
 * Transient kernel objects: things dune creates for a moment and deletes itself, outside
 * any lab (today the capability probe's namespace, `dune-probe-<pid>`). A process killed
 * with SIGKILL cannot delete them, so each carries a tag naming its creator, and the next
 * `up`, `down` or `down --all` on the host reclaims those whose creator is dead:
 *
 *   /run/netns/dune-probe-<pid>   lo's alias `dune-transient:probe:<pid>:<start ticks>`,
 *                                 written before the namespace gets its name (native)
 *
 * The creator is the pid AND its start time (clock ticks since boot): a recycled pid is
 * not the creator. A namespace whose creator still runs is another process's probe in
 * flight and is never touched. One without a tag (made by an older dune, or an empty
 * placeholder file a kill left between its creation and its bind mount) is judged by the
 * pid in its name alone.
 */
import { statfsSync, unlinkSync } from 'node:fs';
import { deleteNamespaces, listNamespaces, nsPath } from './netns.js';
import { isAlive, isRunning, procStartTicks } from './lab/processes.js';
import { readLinks } from './status.js';

export const TRANSIENT_TAG = 'dune-transient';
const NSFS_MAGIC = 0x6e736673;

/** Transient namespace kinds and their name prefixes. */
const KINDS = { probe: 'dune-probe-' } as const;
export type TransientKind = keyof typeof KINDS;

export interface Transient {
  /** The namespace name to create. */
  ns: string;
  /** lo's alias: the tag. */
  tag: string;
}

/** Name and tag of a transient namespace created by this process. */
export function transientNamespace(kind: TransientKind, pid = process.pid): Transient {
  const ticks = procStartTicks(pid) ?? 0;
  return { ns: `${KINDS[kind]}${pid}`, tag: `${TRANSIENT_TAG}:${kind}:${pid}:${ticks}` };
}

/** `dune-transient:<kind>:<pid>:<ticks>` → creator, or undefined when it is not a tag. */
export function parseTag(alias: string): { kind: string; pid: number; startTicks: number } | undefined {
  const m = /^dune-transient:([a-z]+):(\d+):(\d+)$/.exec(alias);
  return m ? { kind: m[1] as string, pid: Number(m[2]), startTicks: Number(m[3]) } : undefined;
}

export interface ReclaimResult {
  /** Namespaces deleted: their creator is dead. */
  reclaimed: string[];
  /** Left alone: their creator runs (an operation in flight), or they carry someone else's alias. */
  kept: { ns: string; reason: string }[];
  errors: string[];
}

function isNsfs(path: string): boolean | undefined {
  try {
    return statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return undefined;
  }
}

/** lo's alias: a string, null when lo has none, undefined when it cannot be read. */
function loAlias(ns: string): string | null | undefined {
  try {
    return readLinks(ns).find((l) => l.index === 1)?.alias ?? null;
  } catch {
    return undefined;
  }
}

/** Deletes every transient namespace on this host whose creator is dead. Idempotent. */
export function reclaimTransients(): ReclaimResult {
  const res: ReclaimResult = { reclaimed: [], kept: [], errors: [] };
  const doomed: string[] = [];
  for (const ns of listNamespaces()) {
    const kind = (Object.keys(KINDS) as TransientKind[]).find((k) => ns.startsWith(KINDS[k]));
    if (kind === undefined) continue;
    const namePid = Number(ns.slice(KINDS[kind].length));
    if (!/^\d+$/.test(ns.slice(KINDS[kind].length))) {
      res.kept.push({ ns, reason: 'no creator pid in its name' });
      continue;
    }
    const path = nsPath(ns);
    const fs = isNsfs(path);
    if (fs === false) {
      // An empty file: a placeholder left by a kill before the bind mount, or a namespace
      // file after a reboot. Nothing of it exists in the kernel.
      if (namePid !== process.pid && isRunning(namePid)) {
        res.kept.push({ ns, reason: `being created by process ${namePid}` });
        continue;
      }
      try {
        unlinkSync(path);
        res.reclaimed.push(ns);
      } catch (e) {
        res.errors.push(`remove ${path}: ${(e as Error).message}`);
      }
      continue;
    }
    if (fs === undefined) continue; // gone meanwhile
    const alias = loAlias(ns);
    if (alias === undefined) {
      res.errors.push(`read lo's alias in ${ns}: cannot open it`);
      continue;
    }
    if (alias !== null) {
      const tag = parseTag(alias);
      if (tag === undefined || tag.kind !== kind || tag.pid !== namePid) {
        res.kept.push({ ns, reason: `lo's alias ${JSON.stringify(alias)} is not dune's tag` });
        continue;
      }
      if (isAlive(tag.pid, tag.startTicks)) {
        res.kept.push({ ns, reason: `its creator, process ${tag.pid}, is running` });
        continue;
      }
    } else if (isRunning(namePid)) {
      res.kept.push({ ns, reason: `untagged, and process ${namePid} is running` });
      continue;
    }
    doomed.push(ns);
  }
  const failed = deleteNamespaces(doomed);
  const failedNames = new Set(failed.map((f) => f.name));
  for (const f of failed) res.errors.push(`delete namespace ${f.name}: ${f.message}`);
  res.reclaimed.push(...doomed.filter((n) => !failedNames.has(n)));
  return res;
}
