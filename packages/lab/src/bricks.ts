/**
 * Bricks changed while a lab runs: a firewall's rules replaced as a whole, in one nftables
 * transaction on the node's host (the agent's runtime change of its `nft` op, journaled, so
 * `dune status`, a later change and `dune up` all see the new rules).
 *
 *   rules (plain values, as in the topology) ─readFirewall─▶ spec ─firewallOp(ports of the plan)─▶
 *     nft op ─agent.change─▶ applied atomically, the plan's op replaced
 */
import { BRICK_INET_TABLE, firewallOp, readFirewall, type FirewallSpec, type NftOp, type Plan } from '@dune/compiler';
import { DuneError } from '@dune/topology';
import * as transport from '@dune/transport';
import { labPlan } from './engine.js';

/** What a firewall's rules are made of: the topology's keys of a firewall node. */
export interface FirewallInput {
  policy?: 'allow' | 'deny';
  stateful?: boolean;
  rules?: Record<string, unknown>[];
}

/** The firewall's nft op for `input`, from the running lab's plan; a DuneError listing every problem in the rules. */
export function firewallChange(plan: Plan, node: string, input: FirewallInput): { op: NftOp; spec: FirewallSpec } {
  const info = plan.nodes.find((n) => n.node === node);
  if (info === undefined) {
    throw new DuneError('no-such-node', `lab ${plan.lab} has no node "${node}"`, { hint: `firewalls here: ${firewallsOf(plan).join(', ') || 'none'}` });
  }
  const current = plan.hosts.flatMap((h) => h.ops).find((o): o is NftOp => o.op === 'nft' && o.ns === info.ns);
  if (current === undefined || !current.tables.includes(BRICK_INET_TABLE)) {
    throw new DuneError('not-a-firewall', `node "${node}" of lab ${plan.lab} is not a firewall`, { hint: `firewalls here: ${firewallsOf(plan).join(', ') || 'none'} (kind = "firewall" in the topology)` });
  }
  const ports: { name: string; peer: string }[] = [];
  for (const l of plan.links) {
    if (l.a.node === node) ports.push({ name: l.a.dev, peer: l.b.node });
    if (l.b.node === node) ports.push({ name: l.b.dev, peer: l.a.node });
  }
  const problems: string[] = [];
  const spec = readFirewall(input as Record<string, unknown>, ports.map((p) => p.peer), (path, message, hint) => problems.push(`${message}${hint ? ` (${hint})` : ''}`));
  if (problems.length > 0) {
    throw new DuneError('bad-firewall', `the rules of firewall "${node}" are not valid: ${problems.join('; ')}`, { hint: 'rules are tables such as { action = "allow", proto = "tcp", from = "client", dport = 80 }' });
  }
  return { op: firewallOp(spec, ports, info.ns, node), spec };
}

function firewallsOf(plan: Plan): string[] {
  const ns = new Set(plan.hosts.flatMap((h) => h.ops).flatMap((o) => (o.op === 'nft' && o.tables.includes(BRICK_INET_TABLE) ? [o.ns] : [])));
  return plan.nodes.filter((n) => ns.has(n.ns)).map((n) => n.node);
}

/** Replaces a running firewall's rules (and policy, statefulness) in one transaction on its host. */
export async function setFirewall(loc: transport.LabLocation, node: string, input: FirewallInput, opts: transport.OrchestrateOptions = {}): Promise<FirewallSpec> {
  const hosts = opts.hosts ?? new transport.LabHosts(loc.hosts, opts);
  try {
    const { op, spec } = firewallChange(await labPlan(loc, { ...opts, hosts }), node, input);
    const { m } = hosts.node(loc, node);
    await m.agent.change({ lab: loc.lab, apply: [op], remove: [] });
    return spec;
  } finally {
    if (!opts.hosts) hosts.close();
  }
}
