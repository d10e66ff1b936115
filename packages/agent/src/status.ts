/** Reading kernel state for `status`: links with counters, addresses, routes, qdiscs. */
import { getAddrDump, getRouteDump, parseAddr, parseRoute, type AddrInfo, type RouteInfo } from './netlink/addr-route.js';
import { NLM_F_ACK, NLM_F_REQUEST, RT_TABLE_MAIN } from './netlink/constants.js';
import { getLink, parseLink, type LinkInfoMsg } from './netlink/link.js';
import { NlSocket } from './netlink/socket.js';
import { getClasses, getQdiscs, parseTc, type TcEntry } from './netlink/tc.js';
import { nsPath } from './netns.js';

export type { LinkInfoMsg as LinkStatus, AddrInfo, RouteInfo, TcEntry };

/** Runs `fn` with a routing socket inside `ns` (null: this process's namespace). */
export function withNsSocket<T>(ns: string | null, fn: (s: NlSocket) => T): T {
  const s = NlSocket.open(ns === null ? null : nsPath(ns), ns ?? 'host');
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

export function dumpLinks(s: NlSocket): LinkInfoMsg[] {
  return s.dump((w, seq, flags) => getLink(w, seq, flags), 'links').map(parseLink);
}

/** Every interface in `ns`: name, alias, state, MTU, and 64-bit rx/tx counters. */
export function readLinks(ns: string | null): LinkInfoMsg[] {
  return withNsSocket(ns, dumpLinks);
}

export function readAddrs(ns: string | null): (AddrInfo & { dev: string })[] {
  return withNsSocket(ns, (s) => {
    const names = new Map(dumpLinks(s).map((l) => [l.index, l.name]));
    return s
      .dump((w, seq, flags) => getAddrDump(w, seq, flags), 'addresses')
      .map(parseAddr)
      .map((a) => ({ ...a, dev: names.get(a.ifindex) ?? String(a.ifindex) }));
  });
}

/** Routes of the main table (both families), with device names. */
export function readRoutes(ns: string | null): (RouteInfo & { dev?: string })[] {
  return withNsSocket(ns, (s) => {
    const names = new Map(dumpLinks(s).map((l) => [l.index, l.name]));
    return s
      .dump((w, seq, flags) => getRouteDump(w, seq, flags), 'routes')
      .map(parseRoute)
      .filter((r) => r.table === RT_TABLE_MAIN)
      .map((r) => {
        const dev = r.oif !== undefined ? names.get(r.oif) : undefined;
        return dev !== undefined ? { ...r, dev } : r;
      });
  });
}

/** Qdiscs and classes of one interface (by index), as decoded options. */
export function dumpTc(s: NlSocket, ifindex: number): { qdiscs: TcEntry[]; classes: TcEntry[] } {
  const qdiscs = s
    .dump((w, seq, flags) => getQdiscs(w, seq, flags, ifindex), 'qdiscs')
    .map((m) => parseTc(m, false))
    .filter((q) => q.ifindex === ifindex);
  const classes = s.dump((w, seq, flags) => getClasses(w, seq, flags, ifindex), 'classes').map((m) => parseTc(m, true));
  return { qdiscs, classes };
}

export function linkByName(s: NlSocket, dev: string): LinkInfoMsg {
  const replies = s.call((w, seq) => getLink(w, seq, NLM_F_REQUEST | NLM_F_ACK, { name: dev }), `get link ${dev}`);
  const m = replies[0];
  if (!m) throw new Error(`no interface ${dev} in ${s.label}`);
  return parseLink(m);
}
