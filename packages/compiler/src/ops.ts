/**
 * Stage 7: the per-phynode operation lists.
 *
 * Order (each kind needs the ones before it):
 *   netns → links (link kinds: veth/vxlan) → node phases: devices (bridge) → addrs → enslave
 *     → up (lo, then the kind's: bridge, links) → sysctls (the kind's, then the user's)
 *     → impair → filters (nft) → route → file → exec → process
 * What a node of each kind adds in each phase is its kind's (kinds/nodes); what carries a
 * link is its link kind's (kinds/links). Within a phase: node order, then the node's
 * interfaces in link order (links: link order).
 *
 * Route ops are the bulk (Kdl, all nodes: ~1.1 M). They are made here, straight into the
 * host's list, from routing's compact next-hop tables; their strings are shared, not copied.
 */
import type { Impairment, Topology } from '@dune/topology';
import { IMPAIRMENT_KEYS } from '@dune/topology';
import type { Addressing } from './addressing.js';
import type { NetworkGraph } from './graph.js';
import type { Interfaces } from './interfaces.js';
import type { KindState } from './kinds/check.js';
import { portsOf } from './kinds/check.js';
import { linkKinds } from './kinds/links/index.js';
import { kindOf, NODE_PHASES, type KindNode, type NodePhase } from './kinds/nodes/index.js';
import type { LinkCarriers } from './links.js';
import { ifAlias } from './naming.js';
import type { Placement } from './placement.js';
import type { HostPlan, HostTarget, LinkInfo, NodeInfo, Op, RoutesOp, SysctlOp } from './plan.js';
import type { Rendered } from './template.js';
import type { Routes } from './routing.js';
import type { Segments } from './segments.js';

export { ifaceRpFilterKey, ROUTER_SYSCTLS } from './sysctls.js';

export interface Assembly {
  topo: Topology;
  lab: string;
  keys: string[];
  ns: string[];
  ifs: Interfaces;
  addr: Addressing;
  net: NetworkGraph;
  placement: Placement;
  carriers: LinkCarriers;
  /** Undefined with routing `none`. */
  routes: Routes | undefined;
  rendered: Rendered;
  segs: Segments;
  /** What each node's kind read from its keys (kinds/check.ts). */
  kinds: KindState;
}

/** The bridge of an L2 node: `br0`, or the first `br<N>` none of its links is named. */
export function bridgeName(ifs: Interfaces, v: number): string {
  const used = new Set((ifs.byNode[v] ?? []).map((i) => i.name));
  let k = 0;
  while (used.has(`br${k}`)) k++;
  return `br${k}`;
}

export function hasImpairment(imp: Impairment): boolean {
  return IMPAIRMENT_KEYS.some((k) => imp[k] !== undefined);
}

function cleanImpairment(imp: Impairment): Impairment {
  const out: Record<string, unknown> = {};
  for (const k of IMPAIRMENT_KEYS) if (imp[k] !== undefined) out[k] = imp[k];
  return out as Impairment;
}

function target(ph: Placement['phynodes'][number]): HostTarget {
  const t: HostTarget = {};
  if (ph.host !== undefined) t.host = ph.host;
  if (ph.port !== undefined) t.port = ph.port;
  if (ph.user !== undefined) t.user = ph.user;
  if (ph.identity !== undefined) t.identity = ph.identity;
  if (ph.underlay !== undefined) t.underlay = ph.underlay;
  return t;
}

export interface Assembled {
  hosts: HostPlan[];
  nodes: NodeInfo[];
  links: LinkInfo[];
  stats: Record<string, number>;
}

export function assemble(a: Assembly): Assembled {
  const { topo, lab, keys, ns, ifs, addr, net, placement, carriers, routes, rendered, segs, kinds } = a;
  const bridges = topo.nodes.map((_, v) => (segs.isL2[v] ? bridgeName(ifs, v) : ''));
  const H = placement.phynodes.length;
  const nodesOn: number[][] = Array.from({ length: H }, () => []);
  topo.nodes.forEach((_, v) => nodesOn[placement.hostOf[v] as number]?.push(v));
  const linksOn: number[][] = Array.from({ length: H }, () => []);
  topo.links.forEach((_, li) => {
    const ha = placement.hostOf[net.aNode[li] as number] as number;
    const hb = placement.hostOf[net.bNode[li] as number] as number;
    linksOn[ha]?.push(li);
    if (hb !== ha) linksOn[hb]?.push(li);
  });
  const nodeCpus = placement.cpus.map((ps) => ps.flat());

  const stats = {
    phynodes: H,
    nodes: topo.nodes.length,
    links: topo.links.length,
    vethLinks: 0,
    vxlanLinks: carriers.vxlanCount,
    addrsV4: 0,
    addrsV6: 0,
    routesV4: routes?.v4 ?? 0,
    routesV6: routes?.v6 ?? 0,
    routeDestinations: routes?.dests.length ?? 0,
    unroutedPairs: routes?.unroutedPairs ?? 0,
    components: routes?.components ?? 0,
    impairments: 0,
    sysctls: 0,
    files: 0,
    execs: 0,
    processes: 0,
    pinnedCpus: nodeCpus.reduce((s, c) => s + c.length, 0),
    ops: 0,
  };
  stats.vethLinks = topo.links.length - carriers.vxlanCount;

  const hosts: HostPlan[] = placement.phynodes.map((ph, h) => {
    const on = nodesOn[h] as number[];
    const ops: Op[] = [];
    const push = (list: readonly Op[]) => {
      for (let i = 0; i < list.length; i++) ops.push(list[i] as Op);
    };

    for (const v of on) ops.push({ op: 'netns', ns: ns[v] as string, node: topo.nodes[v]?.id as string, alias: ifAlias(lab, keys[v] as string, 'lo') });

    for (const li of linksOn[h] as number[]) {
      const link = topo.links[li];
      if (link === undefined) continue;
      const end = (e: 'a' | 'b') => {
        const v = (e === 'a' ? net.aNode[li] : net.bNode[li]) as number;
        const dev = (e === 'a' ? ifs.aName[li] : ifs.bName[li]) as string;
        return { ns: ns[v] as string, dev, host: placement.hostOf[v] as number, mac: link[e].mac ?? kinds.macs.get(`${li}:${e}`), alias: ifAlias(lab, keys[v] as string, dev) };
      };
      linkKinds[carriers.kind[li] as keyof typeof linkKinds].ops({
        li, link, h, ends: { a: end('a'), b: end('b') }, mtu: carriers.mtu[li] as number, vni: carriers.vni[li] as number, placement, vxlanPort: topo.lab.vxlanPort,
      }, ops);
    }

    // Each node's kind, phase by phase; `lo` comes up first, the user's sysctls last (theirs win).
    const kindNodes = on.map((v): KindNode => {
      const node = topo.nodes[v] as Topology['nodes'][number];
      return {
        v,
        node,
        ns: ns[v] as string,
        key: keys[v] as string,
        lab,
        ports: portsOf(v, ifs, net, topo),
        bridge: bridges[v] as string,
        options: kinds.options[v],
        alias: (dev) => ifAlias(lab, keys[v] as string, dev),
        addr,
        userSysctls: new Set(Object.keys(node.sysctls)),
      };
    });
    const phase = (p: NodePhase) => {
      for (const n of kindNodes) {
        if (p === 'up') ops.push({ dev: 'lo', ns: n.ns, op: 'up' });
        kindOf(n.node).phases[p]?.(n, ops, stats);
        if (p === 'sysctls') {
          for (const [key, value] of Object.entries(n.node.sysctls)) {
            ops.push({ key, ns: n.ns, op: 'sysctl', value } satisfies SysctlOp);
            stats.sysctls++;
          }
        }
      }
    };
    for (const p of NODE_PHASES) if (p !== 'filters') phase(p);

    for (const v of on) {
      for (const i of ifs.byNode[v] ?? []) {
        const link = topo.links[i.link];
        const imp = link?.[i.end].impairment;
        if (imp === undefined || !hasImpairment(imp)) continue;
        // The device's real MTU: over VXLAN that is 1450 unless the link says otherwise.
        ops.push({ op: 'impair', ns: ns[v] as string, dev: i.name, link: `${link?.index}:${i.end}`, impairment: cleanImpairment(imp), mtu: carriers.mtu[i.link] as number });
        stats.impairments++;
      }
    }

    phase('filters');

    if (routes) for (const v of on) routes.emit(v, ops as RoutesOp[]);

    push(rendered.hostFiles[h] ?? []);
    for (const v of on) push(rendered.files[v] ?? []);
    for (const v of on) push(rendered.execs[v] ?? []);
    for (const v of on) push(rendered.processes[v] ?? []);
    stats.files += (rendered.hostFiles[h]?.length ?? 0) + on.reduce((s, v) => s + (rendered.files[v]?.length ?? 0), 0);
    stats.execs += on.reduce((s, v) => s + (rendered.execs[v]?.length ?? 0), 0);
    stats.processes += on.reduce((s, v) => s + (rendered.processes[v]?.length ?? 0), 0);
    stats.ops += ops.length;

    return {
      phynode: ph.name,
      target: target(ph),
      nodes: on.map((v) => ({ node: topo.nodes[v]?.id as string, ns: ns[v] as string, cpus: nodeCpus[v] as number[] })),
      ops,
    };
  });

  const nodes: NodeInfo[] = topo.nodes.map((node, v) => ({
    node: node.id,
    ...(node.aliases !== undefined && node.aliases.length > 0 ? { aliases: [...node.aliases] } : {}),
    ns: ns[v] as string,
    phynode: placement.phynodes[placement.hostOf[v] as number]?.name as string,
    v4: segs.isL2[v] ? '' : (addr.nodeV4[v] as string),
    v6: segs.isL2[v] ? '' : (addr.nodeV6[v] as string),
    cpus: nodeCpus[v] as number[],
  }));

  const links: LinkInfo[] = topo.links.map((link, li) => {
    const end = (e: 'a' | 'b') => {
      const v = (e === 'a' ? net.aNode[li] : net.bNode[li]) as number;
      return {
        node: link[e].node,
        ns: ns[v] as string,
        dev: (e === 'a' ? ifs.aName[li] : ifs.bName[li]) as string,
        phynode: placement.phynodes[placement.hostOf[v] as number]?.name as string,
        v4: (e === 'a' ? addr.v4a[li] : addr.v4b[li]) as string,
        v6: (e === 'a' ? addr.v6a[li] : addr.v6b[li]) as string,
      };
    };
    const kind = carriers.kind[li] as LinkInfo['kind'];
    const info: LinkInfo = { index: link.index, a: end('a'), b: end('b'), kind };
    if (linkKinds[kind].vni === true) info.vni = carriers.vni[li] as number;
    return info;
  });

  return { hosts, nodes, links, stats };
}
