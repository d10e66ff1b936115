/**
 * VNIs of cross-host links, allocated against what other labs use on the same hosts.
 *
 * The compiler numbers a lab's VXLAN links from FIRST_VNI in link order: that number is the
 * link's *request*, and plans stay deterministic. The kernel refuses two VXLAN devices with
 * the same VNI on the same UDP port (and address family) in one host namespace, whatever
 * their local and remote addresses, so two labs sharing a host and a port would clash. At
 * `up` the controller asks each host which VNIs its labs hold (the agents' journals:
 * /run/dune/<lab>/vnis.json) and gives each link a VNI free on both of its hosts:
 *
 *   - the VNI this lab already had for the link (a second `up` changes nothing), if no
 *     other lab holds it on either host;
 *   - else its request, if free on both hosts;
 *   - else the lowest VNI ≥ FIRST_VNI free on both hosts.
 *
 * "Free" counts other labs on the two hosts and this lab's links already given a VNI on
 * either of them: allocation is per host pair, and a VNI may repeat in a lab between
 * disjoint pairs. Links are taken in plan order, so the result is a function of the plan
 * and of what the hosts report. A VXLAN op whose VNI differs from its request carries the
 * request (`vniRequest`), so the journal maps one to the other.
 */
import type { Plan, VxlanOp } from './plan.js';
import { FIRST_VNI } from './links.js';

export const MAX_VNI = 0xffffff;

/** One VNI a lab holds on a host: from a journal's vnis.json. */
export interface VniUse {
  lab: string;
  port: number;
  vni: number;
  /** The link's request (its compiled VNI). */
  request: number;
}

/** The request of a VXLAN op: its compiled VNI. */
export function vniRequest(op: VxlanOp): number {
  return op.vniRequest ?? op.vni;
}

/**
 * The plan with every cross-host link's VNI allocated; `used` is, per phynode, what that
 * host's journals hold (every lab, this one included). Returns the plan itself when nothing
 * changes.
 */
export function allocateVnis(plan: Plan, used: ReadonlyMap<string, readonly VniUse[]>): Plan {
  const port = new Map<number, number>(); // request → port
  for (const h of plan.hosts) for (const op of h.ops) if (op.op === 'vxlan') port.set(vniRequest(op), op.port);
  if (port.size === 0) return plan;

  const taken = new Map<string, Set<string>>(); // phynode → `port/vni` held by other labs or already given
  const previous = new Map<number, number>(); // request → this lab's VNI (agreed by both hosts)
  const prevSeen = new Map<number, number[]>();
  const key = (p: number, v: number): string => `${p}/${v}`;
  const on = (ph: string): Set<string> => {
    let s = taken.get(ph);
    if (!s) taken.set(ph, (s = new Set()));
    return s;
  };
  for (const [ph, uses] of used) {
    for (const u of uses) {
      if (u.lab === plan.lab) prevSeen.set(u.request, [...(prevSeen.get(u.request) ?? []), u.vni]);
      else on(ph).add(key(u.port, u.vni));
    }
  }
  for (const [req, vs] of prevSeen) if (vs.every((v) => v === vs[0])) previous.set(req, vs[0] as number);

  const given = new Map<number, number>(); // request → VNI
  for (const link of plan.links) {
    if (link.kind !== 'vxlan' || link.vni === undefined) continue;
    const req = link.vni;
    const p = port.get(req);
    if (p === undefined) continue;
    const a = on(link.a.phynode);
    const b = on(link.b.phynode);
    const free = (v: number): boolean => !a.has(key(p, v)) && !b.has(key(p, v));
    let v = previous.get(req);
    if (v === undefined || !free(v)) v = free(req) ? req : undefined;
    if (v === undefined) {
      for (let c = FIRST_VNI; c <= MAX_VNI; c++) {
        if (free(c)) {
          v = c;
          break;
        }
      }
    }
    if (v === undefined) throw new Error(`no free VNI between ${link.a.phynode} and ${link.b.phynode}`);
    a.add(key(p, v));
    b.add(key(p, v));
    given.set(req, v);
  }
  if ([...given].every(([r, v]) => r === v)) return plan;
  return {
    ...plan,
    links: plan.links.map((l) => (l.kind === 'vxlan' && l.vni !== undefined && given.has(l.vni) ? { ...l, vni: given.get(l.vni) as number } : l)),
    hosts: plan.hosts.map((h) => ({
      ...h,
      ops: h.ops.map((op) => {
        if (op.op !== 'vxlan') return op;
        const req = vniRequest(op);
        const v = given.get(req) ?? op.vni;
        if (v === req) {
          const { vniRequest: _drop, ...rest } = op;
          return { ...rest, vni: v };
        }
        return { ...op, vni: v, vniRequest: req };
      }),
    })),
  };
}

/** What a host's part of a plan holds, for its journal (vnis.json). */
export function vniUses(plan: Plan): VniUse[] {
  const out: VniUse[] = [];
  for (const h of plan.hosts) for (const op of h.ops) if (op.op === 'vxlan') out.push({ lab: plan.lab, port: op.port, vni: op.vni, request: vniRequest(op) });
  return out;
}
