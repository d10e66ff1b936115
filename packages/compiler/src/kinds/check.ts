/**
 * Stage 2b: each node's kind reads its own keys (kinds/nodes, `options`), after addressing
 * so a kind can use the addresses of its neighbours. Also checks the ports a kind needs.
 */
import type { Diagnostics, Topology } from '@dune/topology';
import type { Addressing } from '../addressing.js';
import type { NetworkGraph } from '../graph.js';
import { describeLink, type Interfaces } from '../interfaces.js';
import { kindOf, type KindPort } from './nodes/index.js';
import type { Segments } from '../segments.js';

export interface KindState {
  /** Per node: what its kind's `options` returned (undefined for kinds without keys). */
  options: unknown[];
  /** MACs kinds gave link ends the topology left without one: `<link>:<end>` → MAC. */
  macs: Map<string, string>;
}

/** A node's interfaces with what is at their other end. */
export function portsOf(v: number, ifs: Interfaces, net: NetworkGraph, topo: Topology): KindPort[] {
  return (ifs.byNode[v] ?? []).map((i) => {
    const peerEnd = i.end === 'a' ? 'b' : 'a';
    const peerV = (peerEnd === 'a' ? net.aNode[i.link] : net.bNode[i.link]) as number;
    const peerDev = (peerEnd === 'a' ? ifs.aName[i.link] : ifs.bName[i.link]) as string;
    return { ...i, peer: topo.nodes[peerV]?.id as string, peerV, peerEnd, peerDev };
  });
}

export function readKinds(c: { topo: Topology; ifs: Interfaces; net: NetworkGraph; segs: Segments; addr: Addressing }, diags: Diagnostics): KindState {
  const { topo } = c;
  const state: KindState = { options: new Array<unknown>(topo.nodes.length), macs: new Map() };
  topo.nodes.forEach((node, v) => {
    const def = kindOf(node);
    if (def.options === undefined && def.ports === undefined) return;
    const ports = portsOf(v, c.ifs, c.net, topo);
    const want = def.ports;
    if (want?.exactly !== undefined && ports.length !== want.exactly) {
      const links = ports.map((p) => describeLink(topo.links[p.link] as Topology['links'][number]));
      diags.error('kind-ports', `node "${node.id}" is a ${node.kind} and needs exactly ${want.exactly} links; it has ${ports.length}${links.length ? ` (${links.join('; ')})` : ''}`,
        node.kindLoc ?? node.loc, `a ${node.kind} has ${want.exactly} ports: link it to exactly ${want.exactly} nodes`);
      return;
    }
    if (want?.min !== undefined && ports.length < want.min) {
      diags.error('kind-ports', `node "${node.id}" is a ${node.kind} and needs at least ${want.min} links; it has ${ports.length}`, node.kindLoc ?? node.loc,
        `link it to at least ${want.min} nodes`);
      return;
    }
    if (def.options === undefined) return;
    state.options[v] = def.options({
      v,
      node,
      ctx: node.ctx,
      loc: (path) => node.optionLocs?.[path] ?? node.optionLocs?.[path.split('.')[0] as string] ?? node.loc,
      diags,
      topo,
      ifs: c.ifs,
      net: c.net,
      segs: c.segs,
      addr: c.addr,
      ports,
      setMac: (link, end, mac) => {
        if (topo.links[link]?.[end].mac === undefined) state.macs.set(`${link}:${end}`, mac);
      },
      macOf: (link, end) => topo.links[link]?.[end].mac ?? state.macs.get(`${link}:${end}`),
    });
  });
  sameHostDevice(topo, state, diags);
  return state;
}

/**
 * Two `nic` bricks cannot take the same host interface: the second would find it gone (moved
 * into the first brick's namespace). Nodes not pinned to a phynode may land on any host, so
 * they clash with every node naming the same interface unless both are pinned apart.
 */
function sameHostDevice(topo: Topology, state: KindState, diags: Diagnostics): void {
  const seen = new Map<string, { id: string; phynode: string | undefined }[]>();
  topo.nodes.forEach((node, v) => {
    if (node.kind !== 'nic') return;
    const dev = (state.options[v] as { dev?: string } | undefined)?.dev;
    if (dev === undefined) return;
    const others = seen.get(dev) ?? [];
    const clash = others.find((o) => o.phynode === undefined || node.phynode === undefined || o.phynode === node.phynode);
    if (clash !== undefined) {
      const where = clash.phynode !== undefined && clash.phynode === node.phynode ? ` on phynode "${node.phynode}"` : '';
      diags.error('nic-taken', `nodes "${clash.id}" and "${node.id}" both take host interface "${dev}"${where}: an interface can be moved into one brick only`,
        node.optionLocs?.['dev'] ?? node.loc, node.phynode === undefined || clash.phynode === undefined
          ? `give each nic its own interface, or pin them to different hosts (phynode = "…") if each host has a "${dev}"`
          : 'give each nic its own interface');
    }
    others.push({ id: node.id, phynode: node.phynode });
    seen.set(dev, others);
  });
}
