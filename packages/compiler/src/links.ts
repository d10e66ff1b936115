/**
 * Stage 6: what carries each link: the first link kind (kinds/links) that fits it. Both
 * ends on one phynode: a veth pair. Ends on two phynodes: VXLAN, with a VNI per link
 * (sequential from 1000, in link order).
 */
import type { Diagnostics, Topology } from '@dune/topology';
import type { NetworkGraph } from './graph.js';
import { LINK_KIND_NAMES, linkKinds, type LinkKind } from './kinds/links/index.js';
import type { Placement } from './placement.js';

export const FIRST_VNI = 1000;
export { DEFAULT_MTU, VXLAN_DEFAULT_MTU } from './kinds/links/index.js';

export interface LinkCarriers {
  kind: LinkKind[];
  /** Per link: its VNI, 0 for a kind without one. */
  vni: number[];
  /** Per link: the MTU its devices get (the link's, else its kind's default). */
  mtu: number[];
  vxlanCount: number;
}

export function planLinks(topo: Topology, net: NetworkGraph, placement: Placement, diags: Diagnostics): LinkCarriers {
  const out: LinkCarriers = { kind: [], vni: [], mtu: [], vxlanCount: 0 };
  const hostsOf = (li: number): [number, number] => [placement.hostOf[net.aNode[li] as number] as number, placement.hostOf[net.bNode[li] as number] as number];
  const byKind = new Map<LinkKind, number[]>();
  let tunnels = 0;
  topo.links.forEach((link, li) => {
    const [ha, hb] = hostsOf(li);
    const fit = { link, sameHost: ha === hb };
    const kind = LINK_KIND_NAMES.find((k) => linkKinds[k].fits(fit)) ?? 'veth';
    const def = linkKinds[kind];
    out.kind.push(kind);
    out.vni.push(def.vni === true ? FIRST_VNI + tunnels++ : 0);
    out.mtu.push(link.mtu ?? def.defaultMtu);
    const list = byKind.get(kind);
    if (list) list.push(li);
    else byKind.set(kind, [li]);
  });
  out.vxlanCount = byKind.get('vxlan')?.length ?? 0;
  for (const [kind, lis] of byKind) linkKinds[kind].check?.(lis, { topo, placement, hostsOf, diags });
  return out;
}
