/**
 * Stage 6: what carries each link. Both ends on one phynode: a veth pair. Ends on two
 * phynodes: a VXLAN device on each side, same VNI (sequential from 1000, in link order),
 * tunnelled between the phynodes' underlay addresses.
 */
import type { Diagnostics, Link, Topology } from '@dune/topology';
import { parseAddr } from './cidr.js';
import type { NetworkGraph } from './graph.js';
import { describeLink } from './interfaces.js';
import type { Placement } from './placement.js';

export const FIRST_VNI = 1000;
export const DEFAULT_MTU = 1500;
/** A 1500-byte underlay minus VXLAN's 50 bytes (outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8). */
export const VXLAN_DEFAULT_MTU = 1450;

export interface LinkCarriers {
  kind: ('veth' | 'vxlan')[];
  /** Per link: its VNI, 0 for veth. */
  vni: number[];
  /** Per link: the MTU its devices get (the link's, else 1500, or 1450 over VXLAN). */
  mtu: number[];
  vxlanCount: number;
}

export function planLinks(topo: Topology, net: NetworkGraph, placement: Placement, diags: Diagnostics): LinkCarriers {
  const out: LinkCarriers = { kind: [], vni: [], mtu: [], vxlanCount: 0 };
  const needUnderlay = new Map<number, number[]>();
  let defaultedMtu = 0;
  topo.links.forEach((link, li) => {
    const ha = placement.hostOf[net.aNode[li] as number] as number;
    const hb = placement.hostOf[net.bNode[li] as number] as number;
    if (ha === hb) {
      out.kind.push('veth');
      out.vni.push(0);
      out.mtu.push(link.mtu ?? DEFAULT_MTU);
      return;
    }
    out.kind.push('vxlan');
    out.vni.push(FIRST_VNI + out.vxlanCount++);
    if (link.mtu === undefined) defaultedMtu++;
    out.mtu.push(link.mtu ?? VXLAN_DEFAULT_MTU);
    for (const h of [ha, hb]) needUnderlay.set(h, [...(needUnderlay.get(h) ?? []), li]);
  });

  for (const [h, lis] of needUnderlay) {
    const ph = placement.phynodes[h];
    if (ph === undefined) continue;
    const shown = lis.slice(0, 3).map((li) => describeLink(topo.links[li] as Link)).join('; ');
    const more = lis.length > 3 ? `; … ${lis.length} in all` : '';
    if (ph.underlay === undefined) {
      diags.error(
        'missing-underlay',
        `phynode ${ph.name} carries links to other phynodes over VXLAN (${shown}${more}), but has no underlay address`,
        ph.loc,
        `set underlay = "<this host's address facing the other phynodes>" under [infrastructure.nodes.${ph.name}]`,
      );
    } else if (parseAddr(ph.underlay) === undefined) {
      diags.error('invalid-underlay', `phynode ${ph.name}: underlay "${ph.underlay}" is not an IPv4 or IPv6 address`, ph.loc, 'write the address itself, not a host name');
    }
  }
  const families = new Set<string>();
  topo.links.forEach((link, li) => {
    if (out.kind[li] !== 'vxlan') return;
    const ends = [net.aNode[li], net.bNode[li]].map((v) => placement.phynodes[placement.hostOf[v as number] as number]);
    const fam = ends.map((ph) => (ph?.underlay === undefined ? undefined : parseAddr(ph.underlay)?.family));
    if (fam[0] !== undefined && fam[1] !== undefined && fam[0] !== fam[1]) {
      const key = `${ends[0]?.name}\0${ends[1]?.name}`;
      if (families.has(key)) return;
      families.add(key);
      diags.error('underlay-family', `${describeLink(link)} joins phynodes ${ends[0]?.name} (underlay IPv${fam[0]}) and ${ends[1]?.name} (underlay IPv${fam[1]}); a VXLAN tunnel needs one family`, ends[0]?.loc, 'give both phynodes underlay addresses of the same family');
    }
  });
  if (defaultedMtu > 0) {
    diags.note(
      'vxlan-mtu',
      `${defaultedMtu} link${defaultedMtu === 1 ? '' : 's'} between phynodes run over VXLAN with MTU ${VXLAN_DEFAULT_MTU}: VXLAN adds 50 bytes, which a 1500-byte underlay must carry`,
      undefined,
      'set mtu on those links if the underlay carries jumbo frames',
    );
  }
  return out;
}
