/**
 * Stage 1: which interfaces each node has, and their kernel names.
 *
 * A node's interfaces are its link endpoints, in link order (a before b). The name the user
 * gave is kept when the kernel accepts it (`validIfName`); otherwise, or when none was given,
 * the interface is `eth<N>` with the smallest N that no other interface of the node uses,
 * including names the user gives on later links.
 */
import type { Diagnostics, Link, Topology } from '@dune/topology';
import { formatLoc } from '@dune/topology';
import { validIfName } from './naming.js';

export interface NodeIface {
  /** Kernel name, unique within the node. */
  name: string;
  link: number;
  end: 'a' | 'b';
}

export interface Interfaces {
  /** Per link (by position in topo.links): the kernel names of its a and b ends. */
  aName: string[];
  bName: string[];
  /** Per node (by position in topo.nodes): its interfaces in order. */
  byNode: NodeIface[][];
  /** Per node: the name the user wrote → the kernel name (for `addrs` keys). */
  userToKernel: Map<string, string>[];
}

/** `#3 (r0:eth0 – r1:eth0)` with the location when known: how messages name a link. */
export function describeLink(link: Link): string {
  const end = (e: Link['a']) => (e.iface === undefined ? e.node : `${e.node}:${e.iface}`);
  const where = link.loc ? ` at ${formatLoc(link.loc)}` : '';
  return `link #${link.index} (${end(link.a)} – ${end(link.b)})${where}`;
}

export function assignInterfaces(topo: Topology, nodeIndex: Map<string, number>, diags: Diagnostics): Interfaces {
  const n = topo.nodes.length;
  const byNode: NodeIface[][] = Array.from({ length: n }, () => []);
  const userToKernel: Map<string, string>[] = Array.from({ length: n }, () => new Map());
  const aName = new Array<string>(topo.links.length).fill('');
  const bName = new Array<string>(topo.links.length).fill('');

  // Pass 1: the user's valid names are taken first, so generated names never steal them.
  const taken: Set<string>[] = Array.from({ length: n }, () => new Set());
  const givenBy: Map<string, Link>[] = Array.from({ length: n }, () => new Map());
  topo.links.forEach((link) => {
    for (const e of [link.a, link.b]) {
      const ni = nodeIndex.get(e.node);
      if (ni === undefined || e.iface === undefined) continue;
      const first = givenBy[ni]?.get(e.iface);
      if (first !== undefined) {
        const self = first === link ? ' (both ends of the same link)' : '';
        diags.error(
          'duplicate-interface',
          `node "${e.node}" is given interface "${e.iface}" twice${self}: by ${describeLink(first)} and by ${describeLink(link)}`,
          e.loc ?? link.loc,
          'each interface of a node needs its own name: rename one end, or leave its name out to get eth<N>',
        );
        continue;
      }
      givenBy[ni]?.set(e.iface, link);
      if (e.iface === 'lo') {
        diags.error('reserved-interface', `node "${e.node}": "lo" is the loopback interface and cannot be a link end (${describeLink(link)})`, e.loc ?? link.loc, 'name the link end differently, or leave the name out to get eth<N>');
        continue;
      }
      if (validIfName(e.iface)) taken[ni]?.add(e.iface);
    }
  });

  // Pass 2: names in link order.
  const next: number[] = new Array<number>(n).fill(0);
  topo.links.forEach((link, li) => {
    for (const end of ['a', 'b'] as const) {
      const e = link[end];
      const ni = nodeIndex.get(e.node);
      if (ni === undefined) continue;
      const used = taken[ni] as Set<string>;
      let name: string;
      if (e.iface !== undefined && validIfName(e.iface) && e.iface !== 'lo' && givenBy[ni]?.get(e.iface) === link && !userToKernel[ni]?.has(e.iface)) {
        name = e.iface;
      } else {
        let k = next[ni] ?? 0;
        while (used.has(`eth${k}`)) k++;
        name = `eth${k}`;
        next[ni] = k + 1;
        used.add(name);
        if (e.iface !== undefined && !validIfName(e.iface)) {
          diags.note(
            'interface-renamed',
            `node "${e.node}": "${e.iface}" cannot be a Linux interface name (at most 15 bytes of A-Z a-z 0-9 _ . @ + -, not all digits); it is named "${name}"`,
            e.loc ?? link.loc,
          );
        }
      }
      if (e.iface !== undefined && !userToKernel[ni]?.has(e.iface)) userToKernel[ni]?.set(e.iface, name);
      byNode[ni]?.push({ name, link: li, end });
      if (end === 'a') aName[li] = name;
      else bName[li] = name;
    }
  });

  return { aName, bName, byNode, userToKernel };
}
