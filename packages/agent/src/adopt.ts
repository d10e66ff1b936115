/**
 * What a lab's down must undo by hand because deleting its namespaces does not: interfaces
 * it adopted (moved in from the host's namespace: a namespace deleted with a veth inside
 * destroys it, with a NIC it forgets its addresses) go back with what they had, and the
 * rules, routes and addresses it added in the host's own namespace are deleted.
 */
import { closeSync, existsSync } from 'node:fs';
import type { AdoptOp, Op, Plan } from '@dune/compiler';
import { DuneError } from '@dune/topology';
import { RTPROT_DUNE } from './netlink/constants.js';
import { setLink } from './netlink/link.js';
import { addrMsg, moveLinkMsg, ourRoute, parseTableRoute, ruleMsg, RTPROT_KERNEL, tableRouteMsg } from './netlink/rule.js';
import { getAddrDump, getRouteDump, newAddr, newRoute, parseAddr } from './netlink/addr-route.js';
import { describeAck, NlSocket } from './netlink/socket.js';
import { nsPath, openNsFd } from './netns.js';
import { dumpLinks } from './status.js';
import { describeOp } from './errors.js';

/** EEXIST (already back), and ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL (already gone). */
const FINE_BACK = new Set([17]);
const GONE = new Set([2, 3, 19, 99]);

function failures<R>(s: NlSocket<R>, fine: Set<number>): { ref: R; text: string }[] {
  return s.takeFailures().filter((f) => !fine.has(Math.abs(f.ack.errno))).map((f) => ({ ref: f.ref, text: describeAck(f.ack) }));
}

/** Moves every adopted interface back to the host's namespace and gives it back what it had. Returns the errors. */
export function releaseAdopted(ops: readonly Op[], hostNs: string | null = null): string[] {
  const errors: string[] = [];
  const adopts = ops.filter((o): o is AdoptOp => o.op === 'adopt');
  for (const op of adopts) {
    if (!existsSync(nsPath(op.ns))) continue;
    const inner = NlSocket.open<string>(nsPath(op.ns), op.ns);
    const fd = openNsFd(hostNs);
    try {
      const inside = op.name ?? op.dev;
      const l = dumpLinks(inner as unknown as NlSocket).find((x) => x.name === inside);
      if (l === undefined) continue;
      inner.queue('down', (w, seq) => setLink(w, seq, { index: l.index, up: false }));
      // Out of any bridge first: a port keeps its master's settings otherwise.
      inner.queue('release', (w, seq) => setLink(w, seq, { index: l.index, master: 0 }));
      inner.queue('move', (w, seq) => moveLinkMsg(w, seq, l.index, fd, op.name !== undefined ? op.dev : undefined));
      inner.drain();
      for (const f of failures(inner, GONE)) errors.push(`move ${op.dev} back out of ${op.ns}: ${f.text}`);
    } finally {
      closeSync(fd);
      inner.close();
    }
    const host = NlSocket.open<string>(hostNs === null ? null : nsPath(hostNs), hostNs ?? 'host');
    try {
      const l = dumpLinks(host as unknown as NlSocket).find((x) => x.name === op.dev);
      if (l === undefined) {
        errors.push(`${op.dev} did not come back from ${op.ns}`);
        continue;
      }
      const saved = op.saved ?? { mtu: l.mtu ?? 1500, up: false, addrs: [], routes: [] };
      if (l.mtu !== saved.mtu) host.queue('mtu', (w, seq) => setLink(w, seq, { index: l.index, mtu: saved.mtu }));
      for (const a of saved.addrs) host.queue(`address ${a}`, (w, seq) => addrMsg(w, seq, { ifindex: l.index, cidr: a }));
      if (saved.up) host.queue('up', (w, seq) => setLink(w, seq, { index: l.index, up: true }));
      host.drain();
      for (const r of saved.routes) host.queue(`route ${r.dst}`, (w, seq) => tableRouteMsg(w, seq, { ...r, oif: l.index }));
      host.drain();
      for (const f of failures(host, FINE_BACK)) errors.push(`restore ${op.dev}: ${f.ref}: ${f.text}`);
    } finally {
      host.close();
    }
  }
  return errors;
}

/** Deletes the lab's rules, routes and addresses in the host's own namespace (ops with ns ""). Returns the errors. */
export function undoHostOps(ops: readonly Op[], hostNs: string | null = null): string[] {
  const mine = ops.filter((o) => (o.op === 'rule' || o.op === 'route' || o.op === 'addr') && o.ns === '');
  if (mine.length === 0) return [];
  const s = NlSocket.open<Op>(hostNs === null ? null : nsPath(hostNs), hostNs ?? 'host');
  try {
    const index = new Map(dumpLinks(s as unknown as NlSocket).map((l) => [l.name, l.index]));
    for (const op of mine) {
      if (op.op === 'rule') {
        s.queue(op, (w, seq) => ruleMsg(w, seq, { family: 'inet', priority: op.priority, table: op.table, action: 'table', protocol: RTPROT_DUNE, ...(op.src !== undefined ? { src: op.src } : {}), ...(op.dst !== undefined ? { dst: op.dst } : {}), ...(op.iif !== undefined ? { iif: op.iif } : {}) }, true));
      } else if (op.op === 'route') {
        const oif = index.get(op.dev);
        if (oif === undefined) continue;
        if (op.table !== undefined || op.onlink === true) s.queue(op, (w, seq) => tableRouteMsg(w, seq, ourRoute(op.table ?? 254, op.dst, oif, op.via, op.onlink === true), true));
        else s.queue(op, (w, seq) => newRoute(w, seq, { dst: op.dst, oif, ...(op.via !== undefined ? { via: op.via } : {}), ...(op.metric !== undefined ? { metric: op.metric } : {}) }, true));
      } else if (op.op === 'addr') {
        const i = index.get(op.dev);
        if (i !== undefined) s.queue(op, (w, seq) => newAddr(w, seq, i, op.cidr, true));
      }
    }
    s.drain();
    return failures(s, GONE).map((f) => `undo ${describeOp(f.ref)}: ${f.text}`);
  } finally {
    s.close();
  }
}

/**
 * What an `adopt` op saves of an interface of `ns` (null: this namespace): MTU, state, IPv4
 * and global IPv6 addresses, and its routes other than the kernel's own (which come back with
 * the addresses). Undefined when there is no such interface.
 */
export function savedInterface(ns: string | null, dev: string): AdoptOp['saved'] | undefined {
  const s = NlSocket.open(ns === null ? null : nsPath(ns), ns ?? 'host');
  try {
    const l = dumpLinks(s).find((x) => x.name === dev);
    if (l === undefined) return undefined;
    const addrs = s
      .dump((w, seq, f) => getAddrDump(w, seq, f), 'addresses')
      .map(parseAddr)
      .filter((a) => a.ifindex === l.index && (a.family === 'inet' || !a.cidr.startsWith('fe80:')))
      .map((a) => a.cidr);
    const routes = s
      .dump((w, seq, f) => getRouteDump(w, seq, f), 'routes')
      .map(parseTableRoute)
      .filter((r) => r.oif === l.index && r.protocol !== RTPROT_KERNEL && r.type === 1 && !(r.family === 'inet6' && r.dst.startsWith('fe80:')))
      .map((r) => {
        const { oif: _oif, ...rest } = r;
        return rest;
      });
    return { mtu: l.mtu ?? 1500, up: l.up, addrs, routes };
  } finally {
    s.close();
  }
}

/**
 * The plan with every `adopt` op that came without `saved` (a `nic` brick: the compiler
 * cannot see the host) given what its interface has now, read before anything is built so
 * the journaled plan holds it (a down after a kill -9 still restores it). An interface the
 * lab already holds (a second `up`) keeps what the last plan saved. An interface found
 * nowhere is a DuneError naming it.
 */
export function saveAdopted(plan: Plan, old: Plan | undefined): Plan {
  if (!plan.hosts.some((h) => h.ops.some((o) => o.op === 'adopt' && o.saved === undefined))) return plan;
  const before = new Map<string, AdoptOp['saved']>();
  for (const h of old?.hosts ?? []) for (const o of h.ops) if (o.op === 'adopt' && o.saved !== undefined) before.set(`${o.ns}/${o.dev}`, o.saved);
  const hosts = plan.hosts.map((h) => ({
    ...h,
    ops: h.ops.map((o): Op => {
      if (o.op !== 'adopt' || o.saved !== undefined) return o;
      const saved = savedInterface(null, o.dev) ?? before.get(`${o.ns}/${o.dev}`);
      if (saved === undefined) {
        throw new DuneError('no-such-interface', `interface ${o.dev} (for ${o.ns}) is not on this host`, {
          hint: 'name an interface of the host namespace (`ip link`); a nic brick takes an existing one',
        });
      }
      return { ...o, saved };
    }),
  }));
  return { ...plan, hosts };
}
