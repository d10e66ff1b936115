/**
 * A lab as a picture's data: nodes by kind and host, links with each direction's
 * impairments, cut links and stopped nodes. A pure function of a plan (and, for a running
 * lab, its status); dot.ts, mermaid.ts, svg.ts and html.ts draw it.
 *
 *   plan (+ status) ──graphModel──▶ GraphModel ──toDot | toMermaid | toSvg(layoutGraph) | toHtml
 */
import { labelImpairment, type Impairment } from '@dune/topology';
import { CAPTURE_TAG, type Plan } from '@dune/compiler';
import type { LabStatus } from '@dune/agent';

export type GraphNodeKind = 'router' | 'switch' | 'hub' | (string & {});

export interface GraphNode {
  id: string;
  kind: GraphNodeKind;
  phynode: string;
  v4?: string;
  v6?: string;
  /** `dune node stop` (status only). */
  stopped: boolean;
  /** The namespace is missing (status only). */
  missing: boolean;
}

export interface GraphEnd {
  node: string;
  dev: string;
  /** The impairment of traffic leaving through this end. */
  impairment: Impairment;
  /** Set down (`dune link down`): from the status when there is one, else from the plan. */
  down: boolean;
  txPackets?: number | null;
  rxPackets?: number | null;
  txDropped?: number | null;
}

export interface GraphLink {
  index: number;
  kind: 'veth' | 'vxlan' | (string & {});
  a: GraphEnd;
  b: GraphEnd;
  /** Either end down: the link carries nothing. */
  cut: boolean;
}

export interface GraphModel {
  lab: string;
  /** Phynodes in plan order. */
  hosts: string[];
  nodes: GraphNode[];
  links: GraphLink[];
}

/**
 * A node's kind: the plan's own when it has one, else what its ops say (a brick's filters name
 * it; a device brick's device: a vtep, a nic's adopted port, a tap (vnet_hdr: vhost), a
 * capture's tcpdump; a bridge is a switch; one that ages MACs at once, a hub).
 */
function kindOf(plan: Plan, node: Plan['nodes'][number]): GraphNodeKind {
  const own = (node as { kind?: string }).kind;
  if (own !== undefined) return own;
  let bridged: GraphNodeKind | undefined;
  for (const h of plan.hosts) {
    for (const op of h.ops) {
      if (op.op === 'nft' && op.ns === node.ns) return op.kind;
      if (op.op === 'vtep' && op.ns === node.ns) return 'vtep';
      if (op.op === 'tap' && op.ns === node.ns) return op.vnetHdr ? 'vhost' : 'tap';
      if (op.op === 'adopt' && op.bare === true && op.ns === node.ns) return 'nic';
      if (op.op === 'process' && op.ns === node.ns && op.argv[3] === CAPTURE_TAG) return 'capture';
      if (op.op === 'bridge' && op.ns === node.ns) bridged = op.ageingTimeCs === 0 ? 'hub' : 'switch';
    }
  }
  return bridged ?? 'router';
}

export function graphModel(plan: Plan, status?: LabStatus): GraphModel {
  const impair = new Map<string, Impairment>();
  const upOps = new Set<string>();
  for (const h of plan.hosts) {
    for (const op of h.ops) {
      if (op.op === 'impair') impair.set(`${op.ns}/${op.dev}`, op.impairment);
      if (op.op === 'up') upOps.add(`${op.ns}/${op.dev}`);
    }
  }
  const stNodes = new Map((status?.nodes ?? []).map((n) => [n.node, n]));
  const stLinks = new Map((status?.links ?? []).map((l) => [`${l.node}:${l.dev}`, l]));
  const hosts = [...new Set([...plan.hosts.map((h) => h.phynode), ...plan.nodes.map((n) => n.phynode)])];
  const nodes: GraphNode[] = plan.nodes.map((n) => {
    const s = stNodes.get(n.node);
    return {
      id: n.node,
      kind: kindOf(plan, n),
      phynode: n.phynode,
      ...(n.v4 !== undefined ? { v4: n.v4 } : {}),
      ...(n.v6 !== undefined ? { v6: n.v6 } : {}),
      stopped: s?.stopped === true,
      missing: s !== undefined && !s.present,
    };
  });
  const end = (e: Plan['links'][number]['a']): GraphEnd => {
    const s = stLinks.get(`${e.node}:${e.dev}`);
    // Impairments change live (`dune set`): the status has the current ones.
    const out: GraphEnd = {
      node: e.node,
      dev: e.dev,
      impairment: s?.impairment ?? impair.get(`${e.ns}/${e.dev}`) ?? {},
      down: s !== undefined && s.up !== null ? !s.up : !upOps.has(`${e.ns}/${e.dev}`),
    };
    if (s !== undefined) Object.assign(out, { txPackets: s.txPackets, rxPackets: s.rxPackets, txDropped: s.txDropped });
    return out;
  };
  const links: GraphLink[] = plan.links.map((l) => {
    const a = end(l.a);
    const b = end(l.b);
    return { index: l.index, kind: l.kind, a, b, cut: a.down || b.down };
  });
  return { lab: plan.lab, hosts, nodes, links };
}

/** A direction's impairment in a few words: `5ms ±1ms 1% loss 10Mbit` (each key's label is in the impairment key table). */
export function impairmentLabel(i: Impairment): string {
  return labelImpairment(i);
}

/** A link's label: one text when both directions are the same, else `a→b: …; b→a: …`; `cut` first when cut. */
export function linkLabel(l: GraphLink): string {
  const la = impairmentLabel(l.a.impairment);
  const lb = impairmentLabel(l.b.impairment);
  const body = la === lb ? la : [la && `${l.a.node}→${l.b.node}: ${la}`, lb && `${l.b.node}→${l.a.node}: ${lb}`].filter(Boolean).join('; ');
  return [l.cut ? 'CUT' : '', body].filter(Boolean).join(' ');
}
