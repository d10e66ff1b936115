/**
 * `antispoof`: a switch whose ports towards routers (hosts) admit only what the topology
 * declares for that host's interface, like Packetgraph's antispoof brick: its MAC, and as
 * source its IPv4 and IPv6 addresses (the segment's, its loopbacks, its `addrs`, and the
 * link-local address its MAC gives). ARP is checked too (sender MAC and address) and IPv6
 * neighbour advertisements (target address). Everything else from that port is dropped and
 * counted, per port and per reason, in `dune status`.
 *
 *   [topology.nodes.sw]
 *   kind = "antispoof"
 *   guard = ["h1", "h2"]     # the neighbours whose ports are guarded (default: every router)
 *
 * The MAC of a guarded interface is the link end's `mac` when the topology gives one, else a
 * fixed one derived from the node and interface (so the rule can name it before the lab runs).
 */
import { formatAddr, formatV6, parseAddr } from '../../cidr.js';
import { shortHash } from '../../naming.js';
import type { NftCounter } from '../../plan.js';
import { bridgePhases } from './bridge.js';
import { BRICK_TABLE, brickOp, counterDecls, nftString, portFacing, unknownKindKeys } from './nft.js';
import { nodeKind, type KindPort } from './types.js';

export interface GuardedPort {
  port: KindPort;
  mac: string;
  v4: string[];
  v6: string[];
}

export const ANTISPOOF_KEYS = ['guard'] as const;

/** A locally administered unicast MAC, fixed for a node's interface. */
export function derivedMac(node: string, dev: string): string {
  const h = shortHash(`${node}\0${dev}`, 10);
  return `02:${h.match(/../g)?.join(':')}`;
}

/** fe80::/64 with the modified EUI-64 of a MAC (RFC 4291): what the kernel gives an interface by default. */
export function linkLocal(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  const eui = [(b[0] ?? 0) ^ 0x02, b[1] ?? 0, b[2] ?? 0, 0xff, 0xfe, b[3] ?? 0, b[4] ?? 0, b[5] ?? 0];
  let v = 0xfe80n << 112n;
  for (let i = 0; i < 8; i++) v |= BigInt(eui[i] as number) << BigInt(8 * (7 - i));
  return formatV6(v);
}

/** An IPv6 address as nft's 128-bit integer constant, to compare a raw payload with. */
function hex128(v6: string): string {
  return `0x${(parseAddr(v6)?.addr ?? 0n).toString(16).padStart(32, '0')}`;
}

export const antispoof = nodeKind<GuardedPort[]>({
  description: 'a switch whose router ports admit only the declared MAC and addresses (ARP and IPv6 ND included)',
  layer: 2,
  keys: ANTISPOOF_KEYS,
  options(c) {
    unknownKindKeys(c, ANTISPOOF_KEYS);
    const routers = c.ports.filter((p) => c.segs.isL2[p.peerV] !== 1);
    let chosen = routers;
    const g = c.ctx['guard'];
    if (g !== undefined) {
      const list = Array.isArray(g) ? g : [g];
      chosen = [];
      list.forEach((x: unknown, i) => {
        const key = Array.isArray(g) ? `guard.${i}` : 'guard';
        const p = portFacing(c, key, x);
        if (p === undefined) return;
        if (c.segs.isL2[p.peerV] === 1) {
          c.diags.error('bad-value', `${key} = "${p.peer}" of node "${c.node.id}" is a ${c.topo.nodes[p.peerV]?.kind}: only a router's port has addresses to guard`, c.loc(key), 'guard the ports of hosts (routers)');
          return;
        }
        chosen.push(p);
      });
    }
    return chosen.map((p) => {
      const mac = c.macOf(p.link, p.peerEnd) ?? derivedMac(p.peer, p.peerDev);
      c.setMac(p.link, p.peerEnd, mac);
      const { addr } = c;
      const user = addr.user[p.peerV];
      const own = [
        p.peerEnd === 'a' ? addr.v4a[p.link] : addr.v4b[p.link],
        p.peerEnd === 'a' ? addr.v6a[p.link] : addr.v6b[p.link],
        addr.nodeV4[p.peerV],
        addr.nodeV6[p.peerV],
        ...(user?.get(p.peerDev) ?? []),
        ...(user?.get('lo') ?? []),
      ].filter((x): x is string => x !== undefined && x !== '').map((x) => x.split('/')[0] as string);
      const parsed = own.map((x) => parseAddr(x)).filter((x) => x !== undefined);
      const v4 = [...new Set(parsed.filter((x) => x.family === 4).map((x) => formatAddr(4, x.addr)))];
      const v6 = [...new Set([...parsed.filter((x) => x.family === 6).map((x) => formatAddr(6, x.addr)), linkLocal(mac)])];
      return { port: p, mac, v4, v6 };
    });
  },
  phases: {
    ...bridgePhases(),
    filters(n, out) {
      if (n.options.length === 0) return;
      const counters: NftCounter[] = [];
      const chains: string[] = [];
      const sets: string[] = [];
      const jumps: string[] = [];
      n.options.forEach((g, i) => {
        const p = `p${i}`;
        const who = `${g.port.peer}:${g.port.peerDev}`;
        counters.push(
          { table: BRICK_TABLE, name: `${p}_passed`, label: `${who}: passed` },
          { table: BRICK_TABLE, name: `${p}_mac`, label: `${who}: dropped, source MAC not ${g.mac}` },
          { table: BRICK_TABLE, name: `${p}_arp`, label: `${who}: dropped, spoofed ARP` },
          { table: BRICK_TABLE, name: `${p}_ip`, label: `${who}: dropped, spoofed IPv4/IPv6 source` },
          { table: BRICK_TABLE, name: `${p}_nd`, label: `${who}: dropped, spoofed neighbour advertisement` },
        );
        // ARP probes and DAD come from 0.0.0.0 and :: (RFC 5227, RFC 4862).
        sets.push(
          `  set ${p}_v4 { type ipv4_addr; elements = { ${[...g.v4, '0.0.0.0'].join(', ')} } }`,
          `  set ${p}_v6 { type ipv6_addr; elements = { ${[...g.v6, '::'].join(', ')} } }`,
        );
        jumps.push(`    iifname ${nftString(g.port.name)} jump ${p}`);
        chains.push(
          `  chain ${p} {`,
          `    ether saddr != ${g.mac} counter name "${p}_mac" drop`,
          `    ether type arp arp saddr ether != ${g.mac} counter name "${p}_arp" drop`,
          `    ether type arp arp saddr ip != @${p}_v4 counter name "${p}_arp" drop`,
          `    ether type ip ip saddr != @${p}_v4 counter name "${p}_ip" drop`,
          `    ether type ip6 ip6 saddr != @${p}_v6 counter name "${p}_ip" drop`,
          // The advertised target (8 bytes into the ICMPv6 header): this nft has no `icmpv6 taddr`.
          `    ether type ip6 icmpv6 type nd-neighbor-advert @th,64,128 != { ${g.v6.map(hex128).join(', ')} } counter name "${p}_nd" drop`,
          `    counter name "${p}_passed"`,
          '  }',
        );
      });
      out.push(brickOp(n, [BRICK_TABLE], [
        `table ${BRICK_TABLE} {`,
        ...counterDecls(counters, BRICK_TABLE),
        ...sets,
        '  chain guard {',
        '    type filter hook prerouting priority -200; policy accept;',
        ...jumps,
        '  }',
        ...chains,
        '}',
      ], counters));
    },
  },
});
