/**
 * Named network namespaces, iproute2-compatible: a bind mount of the namespace on
 * /run/netns/<name>, so `ip netns exec` and every other tool see them.
 */
import { closeSync, openSync, readdirSync } from 'node:fs';
import { native } from './native.js';
import { NETLINK_ROUTE } from './netlink/constants.js';
import { describeErrno } from './errors.js';

export const NETNS_DIR = '/run/netns';

export const nsPath = (name: string): string => `${NETNS_DIR}/${name}`;

/** A namespace the agent holds open: a routing socket inside it and an fd of it. */
export interface OpenNs {
  name: string;
  nlFd: number;
  nsFd: number;
}

export interface CreateResult {
  created: OpenNs[];
  failed: { name: string; errno: number; message: string }[];
}

/**
 * Written inside every namespace we create, before any interface exists (new interfaces
 * inherit `default`): no duplicate address detection. In an emulated network it only delays
 * things, and badly: a router cannot send a neighbour solicitation while its link-local
 * address is tentative, so forwarded IPv6 waits ~1 s for the first next-hop resolution.
 * A plan's own sysctl ops come later and can set it back.
 */
export const NETNS_INIT_SYSCTLS: [string, string][] = [['/proc/sys/net/ipv6/conf/default/accept_dad', '0']];

/**
 * Creates the namespaces on `threads` native threads (namespace creation is kernel time that
 * scales with cores, and each thread also waits on locks the kernel's own workers hold: 4
 * threads create 1,000 namespaces in ~180 ms where 2 take ~210 ms on 2 cores), each returned
 * with a routing socket opened inside it while the thread was there. Names that already exist
 * fail with EEXIST: a namespace is never adopted. With `loAliases` (one per name), lo of each
 * carries its mark before the namespace gets its name, so no kill -9 can leave a named but
 * unmarked lab namespace; with `loUp` (one flag per name), lo comes up in that same message.
 */
export function createNamespaces(names: string[], threads = 4, init: [string, string][] = NETNS_INIT_SYSCTLS, loAliases?: string[], loUp?: readonly boolean[]): CreateResult {
  if (names.length === 0) return { created: [], failed: [] };
  const r = loAliases
    ? native().netnsCreateMany(names, threads, NETLINK_ROUTE, init, loAliases, ...(loUp ? [Uint8Array.from(loUp, (u) => (u ? 1 : 0))] : []))
    : native().netnsCreateMany(names, threads, NETLINK_ROUTE, init);
  return createResult(names, r);
}

/** What createNamespacesAsync makes: names, the init writes, lo's mark and state in each. */
export interface NamespaceJob {
  names: string[];
  init: [string, string][];
  loAliases: string[];
  loUp: boolean[];
}

/** createNamespaces of a job (the form `up` and the applier share). */
export function createNamespacesFor(job: NamespaceJob, threads = 4): CreateResult {
  return createNamespaces(job.names, threads, job.init, job.loAliases, job.loUp);
}

/** The part of a job for the names `keep` keeps. */
export function pickJob(job: NamespaceJob, keep: (name: string) => boolean): NamespaceJob {
  const at = job.names.flatMap((n, i) => (keep(n) ? [i] : []));
  return { names: at.map((i) => job.names[i] as string), init: job.init, loAliases: at.map((i) => job.loAliases[i] as string), loUp: at.map((i) => job.loUp[i] as boolean) };
}

/**
 * createNamespaces while JavaScript goes on (the threads are run from libuv's pool): `up` of
 * a new lab makes its namespaces while it stages the plan and probes the kernel.
 */
export async function createNamespacesAsync(job: NamespaceJob, threads = 4): Promise<CreateResult> {
  if (job.names.length === 0) return { created: [], failed: [] };
  const r = await native().netnsCreateManyAsync(job.names, threads, NETLINK_ROUTE, job.init, job.loAliases, Uint8Array.from(job.loUp, (u) => (u ? 1 : 0)));
  return createResult(job.names, r);
}

/** Per name, the native result's [errno, netlink fd, namespace fd]. */
function createResult(names: readonly string[], r: Int32Array): CreateResult {
  const out: CreateResult = { created: [], failed: [] };
  names.forEach((name, i) => {
    const errno = r[3 * i] ?? 0;
    const nlFd = r[3 * i + 1] ?? -1;
    const nsFd = r[3 * i + 2] ?? -1;
    if (errno === 0 && nlFd >= 0 && nsFd >= 0) out.created.push({ name, nlFd, nsFd });
    else if (errno === 0) {
      // Created, but a socket or fd could not be opened inside (fd limit?): still ours.
      if (nlFd >= 0) closeSync(nlFd);
      if (nsFd >= 0) closeSync(nsFd);
      out.created.push({ name, nlFd: -1, nsFd: -1 });
    } else out.failed.push({ name, errno, message: describeErrno(errno) });
  });
  return out;
}

/** Closes what a CreateResult holds open (its namespaces stay). */
export function closeCreated(r: CreateResult): void {
  for (const c of r.created) {
    if (c.nlFd >= 0) closeSync(c.nlFd);
    if (c.nsFd >= 0) closeSync(c.nsFd);
  }
}

/** Deletes namespaces by name (umount + unlink); absent ones count as deleted. */
export function deleteNamespaces(names: string[]): { name: string; errno: number; message: string }[] {
  if (names.length === 0) return [];
  const r = native().netnsDeleteMany(names);
  const failed: { name: string; errno: number; message: string }[] = [];
  names.forEach((name, i) => {
    const errno = r[i] ?? 0;
    if (errno !== 0) failed.push({ name, errno, message: describeErrno(errno) });
  });
  return failed;
}

export function listNamespaces(): string[] {
  try {
    return readdirSync(NETNS_DIR).sort();
  } catch {
    return [];
  }
}

/** An fd of an existing namespace (for IFLA_NET_NS_FD); null: this process's own. */
export function openNsFd(name: string | null): number {
  return openSync(name === null ? '/proc/thread-self/ns/net' : nsPath(name), 'r');
}
