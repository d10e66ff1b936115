/**
 * Names inside nodes: each node's `/etc/netns/<ns>/hosts`, which `ip netns exec` bind-mounts
 * over /etc/hosts for every process it starts in that namespace (pinned processes, daemons,
 * `dune exec`, `dune shell`). Every addressed node is listed by its id, its aliases (a Zoo
 * node's id under `--names label`) and its kernel-safe key, with its own IPv4 and IPv6
 * addresses. A name that a hosts file cannot hold (spaces, `#`, ...) or that the resolver
 * reads as an address (a Zoo id such as `7`) is left out.
 *
 * The file is the lab's: written by the agent as any file op, so `down` removes it and the
 * /etc/netns/<ns> directory it created.
 */
import { createHash } from 'node:crypto';
import type { Topology } from '@dune/topology';
import type { Addressing } from './addressing.js';
import type { FileOp } from './plan.js';
import type { Segments } from './segments.js';
import { FILE_MODE } from './template.js';

/** Where `ip netns exec` looks for a namespace's own /etc files. */
export function netnsEtcPath(ns: string, file: string): string {
  return `/etc/netns/${ns}/${file}`;
}

/** What glibc's hosts parser reads as one name: no whitespace, no comment sign. */
const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;
/** What the resolver reads as an IPv4 address before it looks at hosts (inet_aton: `7`, `1.2`, `0x1f`). */
const NUMERIC = /^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$/i;

/** The names a node answers to in hosts files, in order: id, aliases, key; duplicates dropped. */
export function hostNames(id: string, aliases: readonly string[], key: string): string[] {
  return [...new Set([id, ...aliases, key])].filter((n) => HOST_NAME.test(n) && !NUMERIC.test(n));
}

/**
 * One hosts file per node, all with the same text: it is one blob of the plan (its key a
 * digest of the text) that every node's file op names, so the plan grows by one line per
 * node, not by one copy of a text that itself has a line per node.
 */
export function hostsFiles(topo: Topology, lab: string, keys: readonly string[], ns: readonly string[], addr: Addressing, segs: Segments): { files: FileOp[]; blobs: Record<string, string> } {
  const lines = [`# written by dune for lab ${lab}; removed by dune down`, '127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  const v6: string[] = [];
  topo.nodes.forEach((node, v) => {
    if (segs.isL2[v]) return;
    const names = hostNames(node.id, node.aliases ?? [], keys[v] as string).join(' ');
    if (names === '') return;
    lines.push(`${addr.nodeV4[v]}\t${names}`);
    v6.push(`${addr.nodeV6[v]}\t${names}`);
  });
  const contentBase64 = Buffer.from(`${[...lines, ...v6].join('\n')}\n`, 'utf8').toString('base64');
  const blob = `hosts-${createHash('sha256').update(contentBase64).digest('hex').slice(0, 16)}`;
  return {
    files: topo.nodes.map((node, v) => ({ op: 'file', node: node.id, path: netnsEtcPath(ns[v] as string, 'hosts'), blob, mode: FILE_MODE })),
    blobs: { [blob]: contentBase64 },
  };
}
