/**
 * Stage 7: the per-phynode operation lists.
 *
 * Order (each kind needs the ones before it):
 *   netns → veth/vxlan → bridge → addr → enslave → up (lo, then bridge, then links) → sysctl
 *     → impair → route → file → exec → process
 * A switch or hub (node-kinds.ts) gets a bridge with every link end enslaved, and no
 * addresses, forwarding sysctls or routes.
 * Within a kind: node order, then the node's interfaces in link order (links: link order).
 *
 * Route ops are the bulk (Kdl, all nodes: ~1.1 M). They are made here, straight into the
 * host's list, from routing's compact next-hop tables; their strings are shared, not copied.
 */
import type { Impairment, Topology } from '@dune/topology';
import { bridgeAgeingTimeCs, IMPAIRMENT_KEYS } from '@dune/topology';
import type { Addressing } from './addressing.js';
import type { NetworkGraph } from './graph.js';
import type { Interfaces } from './interfaces.js';
import type { LinkCarriers } from './links.js';
import { ifAlias } from './naming.js';
import type { Placement } from './placement.js';
import type { HostPlan, HostTarget, LinkInfo, NodeInfo, Op, RouteOp, SysctlOp } from './plan.js';
import type { Rendered } from './template.js';
import type { Routes } from './routing.js';
import type { Segments } from './segments.js';

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
}

/** The bridge of an L2 node: `br0`, or the first `br<N>` none of its links is named. */
export function bridgeName(ifs: Interfaces, v: number): string {
  const used = new Set((ifs.byNode[v] ?? []).map((i) => i.name));
  let k = 0;
  while (used.has(`br${k}`)) k++;
  return `br${k}`;
}

/** What every node gets so it forwards, and so asymmetric paths are not dropped. */
export const ROUTER_SYSCTLS: readonly [string, string][] = [
  ['net.ipv4.ip_forward', '1'],
  ['net.ipv6.conf.all.forwarding', '1'],
  ['net.ipv4.conf.all.rp_filter', '0'],
  ['net.ipv4.conf.default.rp_filter', '0'],
];

/**
 * The interface's own rp_filter: the kernel uses max(all, iface), and an interface takes the
 * namespace's `default` when it is created, which a new namespace inherits from the host
 * (often 2 on systemd distributions). The interfaces exist before the sysctl ops run.
 * An interface name may contain dots, so such keys use sysctl's slash form.
 */
export function ifaceRpFilterKey(iface: string): string {
  return iface.includes('.') ? `net/ipv4/conf/${iface}/rp_filter` : `net.ipv4.conf.${iface}.rp_filter`;
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
  const { topo, lab, keys, ns, ifs, addr, net, placement, carriers, routes, rendered, segs } = a;
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
      const va = net.aNode[li] as number;
      const vb = net.bNode[li] as number;
      const aName = ifs.aName[li] as string;
      const bName = ifs.bName[li] as string;
      if (carriers.kind[li] === 'veth') {
        ops.push({
          op: 'veth',
          ns: ns[va] as string,
          name: aName,
          peerNs: ns[vb] as string,
          peerName: bName,
          ...(link.mtu !== undefined ? { mtu: link.mtu } : {}),
          ...(link.a.mac !== undefined ? { mac: link.a.mac } : {}),
          ...(link.b.mac !== undefined ? { peerMac: link.b.mac } : {}),
          alias: ifAlias(lab, keys[va] as string, aName),
          peerAlias: ifAlias(lab, keys[vb] as string, bName),
        });
        continue;
      }
      for (const end of ['a', 'b'] as const) {
        const v = end === 'a' ? va : vb;
        const peer = end === 'a' ? vb : va;
        if (placement.hostOf[v] !== h) continue;
        const own = placement.phynodes[h];
        const other = placement.phynodes[placement.hostOf[peer] as number];
        const name = end === 'a' ? aName : bName;
        const mac = link[end].mac;
        ops.push({
          op: 'vxlan',
          ns: ns[v] as string,
          name,
          vni: carriers.vni[li] as number,
          local: own?.underlay ?? '',
          remote: other?.underlay ?? '',
          port: topo.lab.vxlanPort,
          ...(own?.iface !== undefined ? { underlayDev: own.iface } : {}),
          mtu: carriers.mtu[li] as number,
          ...(mac !== undefined ? { mac } : {}),
          alias: ifAlias(lab, keys[v] as string, name),
        });
      }
    }

    for (const v of on) {
      if (!segs.isL2[v]) continue;
      const ageing = bridgeAgeingTimeCs(topo.nodes[v]?.kind);
      const br = bridges[v] as string;
      ops.push({ op: 'bridge', ns: ns[v] as string, name: br, alias: ifAlias(lab, keys[v] as string, br), ...(ageing !== undefined ? { ageingTimeCs: ageing } : {}) });
    }

    for (const v of on) {
      if (segs.isL2[v]) continue;
      const nsv = ns[v] as string;
      const user = addr.user[v] as Map<string, string[]>;
      const addrOp = (dev: string, cidr: string) => {
        ops.push({ cidr, dev, ns: nsv, op: 'addr' });
        if (cidr.includes(':')) stats.addrsV6++;
        else stats.addrsV4++;
      };
      addrOp('lo', `${addr.nodeV4[v]}/32`);
      addrOp('lo', `${addr.nodeV6[v]}/128`);
      for (const c of user.get('lo') ?? []) addrOp('lo', c);
      for (const i of ifs.byNode[v] ?? []) {
        const isA = i.end === 'a';
        addrOp(i.name, `${isA ? addr.v4a[i.link] : addr.v4b[i.link]}/${addr.v4Len[i.link]}`);
        addrOp(i.name, `${isA ? addr.v6a[i.link] : addr.v6b[i.link]}/${addr.v6Len[i.link]}`);
        for (const c of user.get(i.name) ?? []) addrOp(i.name, c);
      }
    }

    for (const v of on) {
      if (!segs.isL2[v]) continue;
      for (const i of ifs.byNode[v] ?? []) ops.push({ op: 'enslave', ns: ns[v] as string, dev: i.name, master: bridges[v] as string });
    }

    for (const v of on) {
      const nsv = ns[v] as string;
      ops.push({ dev: 'lo', ns: nsv, op: 'up' });
      if (segs.isL2[v]) ops.push({ dev: bridges[v] as string, ns: nsv, op: 'up' });
      for (const i of ifs.byNode[v] ?? []) ops.push({ dev: i.name, ns: nsv, op: 'up' });
    }

    for (const v of on) {
      const node = topo.nodes[v];
      if (node === undefined) continue;
      const nsv = ns[v] as string;
      const userKeys = new Set(Object.keys(node.sysctls));
      const sys = (key: string, value: string) => {
        ops.push({ key, ns: nsv, op: 'sysctl', value } satisfies SysctlOp);
        stats.sysctls++;
      };
      // A switch forwards frames in its bridge, not packets: it needs none of the router's.
      if (!segs.isL2[v]) for (const [key, value] of ROUTER_SYSCTLS) if (!userKeys.has(key)) sys(key, value);
      for (const i of segs.isL2[v] ? [] : (ifs.byNode[v] ?? [])) {
        const key = ifaceRpFilterKey(i.name);
        if (!userKeys.has(key)) sys(key, '0');
      }
      // The user's last: theirs win.
      for (const [key, value] of Object.entries(node.sysctls)) sys(key, value);
    }

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

    if (routes) for (const v of on) routes.emit(v, ops as RouteOp[]);

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
    const info: LinkInfo = { index: link.index, a: end('a'), b: end('b'), kind: carriers.kind[li] as 'veth' | 'vxlan' };
    if (carriers.kind[li] === 'vxlan') info.vni = carriers.vni[li] as number;
    return info;
  });

  return { hosts, nodes, links, stats };
}
