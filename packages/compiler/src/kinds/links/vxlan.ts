/**
 * `vxlan`: ends on two phynodes: a VXLAN device on each side, same VNI (sequential from 1000,
 * in link order), tunnelled between the phynodes' underlay addresses. Its UDP socket lives in
 * the host namespace; the device is moved into the node's.
 */
import type { Link } from '@dune/topology';
import { parseAddr } from '../../cidr.js';
import { describeLink } from '../../interfaces.js';
import type { LinkKindDef } from './types.js';

/** A 1500-byte underlay minus VXLAN's 50 bytes (outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8). */
export const VXLAN_DEFAULT_MTU = 1450;

export const vxlan: LinkKindDef = {
  description: 'a VXLAN tunnel between two phynodes',
  fits: (l) => !l.sameHost,
  defaultMtu: VXLAN_DEFAULT_MTU,
  vni: true,
  check(lis, { topo, placement, hostsOf, diags }) {
    const needUnderlay = new Map<number, number[]>();
    let defaultedMtu = 0;
    for (const li of lis) {
      if (topo.links[li]?.mtu === undefined) defaultedMtu++;
      for (const h of hostsOf(li)) {
        const list = needUnderlay.get(h);
        if (list) list.push(li);
        else needUnderlay.set(h, [li]);
      }
    }
    for (const [h, list] of needUnderlay) {
      const ph = placement.phynodes[h];
      if (ph === undefined) continue;
      const shown = list.slice(0, 3).map((li) => describeLink(topo.links[li] as Link)).join('; ');
      const more = list.length > 3 ? `; … ${list.length} in all` : '';
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
    for (const li of lis) {
      const link = topo.links[li] as Link;
      const ends = hostsOf(li).map((h) => placement.phynodes[h]);
      const fam = ends.map((ph) => (ph?.underlay === undefined ? undefined : parseAddr(ph.underlay)?.family));
      if (fam[0] !== undefined && fam[1] !== undefined && fam[0] !== fam[1]) {
        const key = `${ends[0]?.name}\0${ends[1]?.name}`;
        if (families.has(key)) continue;
        families.add(key);
        diags.error('underlay-family', `${describeLink(link)} joins phynodes ${ends[0]?.name} (underlay IPv${fam[0]}) and ${ends[1]?.name} (underlay IPv${fam[1]}); a VXLAN tunnel needs one family`, ends[0]?.loc, 'give both phynodes underlay addresses of the same family');
      }
    }
    if (defaultedMtu > 0) {
      diags.note(
        'vxlan-mtu',
        `${defaultedMtu} link${defaultedMtu === 1 ? '' : 's'} between phynodes run over VXLAN with MTU ${VXLAN_DEFAULT_MTU}: VXLAN adds 50 bytes, which a 1500-byte underlay must carry`,
        undefined,
        'set mtu on those links if the underlay carries jumbo frames',
      );
    }
  },
  ops(l, out) {
    for (const end of ['a', 'b'] as const) {
      const me = l.ends[end];
      const peer = l.ends[end === 'a' ? 'b' : 'a'];
      if (me.host !== l.h) continue;
      const own = l.placement.phynodes[me.host];
      const other = l.placement.phynodes[peer.host];
      out.push({
        op: 'vxlan',
        ns: me.ns,
        name: me.dev,
        vni: l.vni,
        local: own?.underlay ?? '',
        remote: other?.underlay ?? '',
        port: l.vxlanPort,
        ...(own?.iface !== undefined ? { underlayDev: own.iface } : {}),
        mtu: l.mtu,
        ...(me.mac !== undefined ? { mac: me.mac } : {}),
        alias: me.alias,
      });
    }
  },
};
