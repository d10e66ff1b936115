/**
 * Routing daemons in a lab (the compiler's `routing = "ospf" | "bgp"`: BIRD 2 in every router,
 * each a process op with a `control` socket):
 *
 *   waitConverged  after `up` starts them: every node's table holds a route to every other
 *                  node's loopbacks it is connected to, or an error naming who lacks what
 *   daemonStates   for `status`: each daemon's protocols (`birdc show protocols`) and OSPF
 *                  neighbours (`show ospf neighbors`)
 *   nodeRoutes     one node's kernel table, each route with the protocol that put it there
 *
 * birdc is run with argv only; its socket path comes from the plan.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { DuneError } from '@dune/topology';
import type { Plan, ProcessOp } from '@dune/compiler';
import { readRoutes, type RouteInfo } from '../status.js';

export interface BirdProtocol {
  name: string;
  proto: string;
  table: string;
  state: string;
  since: string;
  info: string;
}

export interface OspfNeighbour {
  routerId: string;
  state: string;
  iface: string;
  address: string;
  /** The OSPF instance (`ospf4`, `ospf6`). */
  protocol: string;
}

export interface DaemonState {
  node: string;
  daemon: 'bird';
  socket: string;
  /** Whether the daemon answered on its control socket. */
  running: boolean;
  protocols: BirdProtocol[];
  neighbours: OspfNeighbour[];
  /** What birdc said when the daemon did not answer. */
  error?: string;
}

export interface NodeRoute {
  family: 'inet' | 'inet6';
  dst: string;
  via?: string;
  dev?: string;
  metric?: number;
  /** The kernel's protocol field, named: `kernel`, `dune` (static plan), `bird`, ... */
  protocol: string;
  /** For a daemon's route: the daemon's protocol instance that chose it (`ospf4`, `e3_4`). */
  source?: string;
}

/** rtnetlink protocol numbers (rtnetlink.h, iproute2's rt_protos). */
const RTPROT_NAMES: Record<number, string> = { 1: 'redirect', 2: 'kernel', 3: 'boot', 4: 'static', 12: 'bird', 0x44: 'dune', 186: 'bgp', 187: 'isis', 188: 'ospf', 189: 'rip' };

export function protocolName(n: number): string {
  return RTPROT_NAMES[n] ?? String(n);
}

function birdc(socket: string, args: readonly string[]): { ok: boolean; out: string } {
  const r = spawnSync('birdc', ['-s', socket, ...args], { encoding: 'utf8', timeout: 10_000 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { ok: r.status === 0 && !/Unable to connect/.test(out), out };
}

/** `birdc show protocols` → its rows. */
export function parseProtocols(out: string): BirdProtocol[] {
  const rows: BirdProtocol[] = [];
  for (const line of out.split('\n')) {
    if (/^(BIRD|Name\s)/.test(line) || line.trim() === '') continue;
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (m) rows.push({ name: m[1]!, proto: m[2]!, table: m[3]!, state: m[4]!, since: m[5]!, info: m[6]!.trim() });
  }
  return rows;
}

/** `birdc show ospf neighbors` → one row per neighbour, with the instance it belongs to. */
export function parseOspfNeighbours(out: string): OspfNeighbour[] {
  const rows: OspfNeighbour[] = [];
  let protocol = '';
  for (const line of out.split('\n')) {
    const head = /^(\S+):\s*$/.exec(line);
    if (head) {
      protocol = head[1]!;
      continue;
    }
    const m = /^(\d+\.\d+\.\d+\.\d+)\s+\d+\s+(\S+)\s+\S+\s+(\S+)\s+(\S+)\s*$/.exec(line.trim());
    if (m) rows.push({ routerId: m[1]!, state: m[2]!, iface: m[3]!, address: m[4]!, protocol });
  }
  return rows;
}

/** `birdc show route` → destination → the protocol instance of its best route. */
export function parseRouteSources(out: string): Map<string, string> {
  const sources = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^(\S+\/\d+)\s+\S+\s+\[(\S+)/.exec(line);
    if (m && !sources.has(m[1]!)) sources.set(m[1]!, m[2]!);
  }
  return sources;
}

/** The routing daemons of the plan's ops (any host's). */
export function daemonOps(ops: readonly { op: string }[]): ProcessOp[] {
  return ops.filter((o): o is ProcessOp => o.op === 'process' && (o as ProcessOp).control !== undefined);
}

/** The BGP sessions of a daemon whose configuration has any, that are not Established (none: no BGP). */
function bgpSessionsDown(op: ProcessOp): string[] {
  const conf = op.argv[op.argv.indexOf('-c') + 1];
  let text = '';
  try {
    text = conf !== undefined ? readFileSync(conf, 'utf8') : '';
  } catch {
    return [];
  }
  if (!/^protocol bgp /m.test(text)) return [];
  const st = daemonState(op);
  if (!st.running) return [`daemon not answering: ${st.error ?? ''}`];
  return st.protocols.filter((p) => p.proto === 'BGP' && !/^Established/.test(p.info)).map((p) => `${p.name} ${p.info}`.trim());
}

export function daemonState(op: ProcessOp): DaemonState {
  const socket = op.control?.socket as string;
  const p = birdc(socket, ['show', 'protocols']);
  const base = { node: op.node, daemon: 'bird' as const, socket };
  if (!p.ok) return { ...base, running: false, protocols: [], neighbours: [], error: p.out.trim().split('\n').slice(-1)[0] ?? '' };
  const n = birdc(socket, ['show', 'ospf', 'neighbors']);
  return { ...base, running: true, protocols: parseProtocols(p.out), neighbours: n.ok ? parseOspfNeighbours(n.out) : [] };
}

/** One node's main table, each route with its protocol, and the daemon's source when it has one. */
export function nodeRoutes(plan: Plan, ns: string): NodeRoute[] {
  const daemon = plan.hosts.flatMap((h) => daemonOps(h.ops)).find((o) => o.ns === ns);
  const sources = new Map<string, string>();
  if (daemon?.control !== undefined) {
    for (const t of ['master4', 'master6']) {
      const r = birdc(daemon.control.socket, ['show', 'route', 'table', t]);
      if (r.ok) for (const [k, v] of parseRouteSources(r.out)) sources.set(k, v);
    }
  }
  return readRoutes(ns).map((r: RouteInfo & { dev?: string }) => {
    const out: NodeRoute = { family: r.family, dst: r.dst, protocol: protocolName(r.protocol) };
    if (r.via !== undefined) out.via = r.via;
    if (r.dev !== undefined) out.dev = r.dev;
    if (r.metric !== undefined) out.metric = r.metric;
    const src = r.protocol === 12 ? sources.get(r.dst) : undefined;
    if (src !== undefined) out.source = src;
    return out;
  });
}

/**
 * The loopbacks each node must reach: every other addressed node joined to it by links
 * (through switches too). A lab in several parts does not wait for routes across them.
 */
export function expectedRoutes(plan: Plan): Map<string, string[]> {
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.has(r) && parent.get(r) !== r) r = parent.get(r) as string;
    return r;
  };
  for (const n of plan.nodes) parent.set(n.node, n.node);
  for (const l of plan.links) parent.set(find(l.a.node), find(l.b.node));
  const out = new Map<string, string[]>();
  for (const n of plan.nodes) {
    if (!n.v4) continue;
    const want: string[] = [];
    for (const m of plan.nodes) {
      if (m === n || !m.v4 || find(m.node) !== find(n.node)) continue;
      want.push(`${m.v4}/32`);
      if (m.v6) want.push(`${m.v6}/128`);
    }
    out.set(n.ns, want);
  }
  return out;
}

export interface ConvergeOptions {
  timeoutMs?: number;
  pollMs?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Waits until the daemons of `ops` (this host's) have given each of their nodes a route to
 * every loopback it should reach. Fails at the deadline naming the nodes still missing routes.
 */
export async function waitConverged(plan: Plan, ops: readonly { op: string }[], opts: ConvergeOptions = {}): Promise<{ ms: number }> {
  const t0 = performance.now();
  const daemons = daemonOps(ops);
  if (daemons.length === 0) return { ms: 0 };
  const expected = expectedRoutes(plan);
  const timeoutMs = opts.timeoutMs ?? Math.max(60_000, 250 * plan.nodes.length);
  const pending = new Map(daemons.map((d) => [d.ns, d]));
  const missing = new Map<string, string[]>();
  const sessionsDown = new Map<string, string[]>();
  for (;;) {
    for (const [ns, d] of pending) {
      const have = new Set(readRoutes(ns).map((r) => r.dst));
      const lack = (expected.get(ns) ?? []).filter((x) => !have.has(x));
      if (lack.length > 0) {
        missing.set(ns, lack);
        continue;
      }
      missing.delete(ns);
      // Every route can be there before every session is: an iBGP session between loopbacks
      // that tried before OSPF knew the way is still Active while its routes come through
      // another peer. Converged means both.
      const down = bgpSessionsDown(d);
      if (down.length > 0) {
        sessionsDown.set(ns, down);
        continue;
      }
      sessionsDown.delete(ns);
      pending.delete(ns);
    }
    opts.onProgress?.(daemons.length - pending.size, daemons.length);
    if (pending.size === 0) return { ms: performance.now() - t0 };
    if (performance.now() - t0 > timeoutMs) break;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
  }
  const rows = [...pending.values()].slice(0, 8).map((d) => {
    const lack = missing.get(d.ns) ?? [];
    const st = daemonState(d);
    const protos = st.running ? st.protocols.filter((p) => p.proto === 'OSPF' || p.proto === 'BGP').map((p) => `${p.name} ${p.state}${p.info ? ` ${p.info}` : ''}`).join(', ') : `daemon not answering: ${st.error}`;
    if (lack.length === 0) return `${d.node}: BGP sessions not established: ${(sessionsDown.get(d.ns) ?? []).join(', ')} (${protos})`;
    return `${d.node}: no route to ${lack.slice(0, 4).join(', ')}${lack.length > 4 ? ` and ${lack.length - 4} more` : ''} (${protos})`;
  });
  throw new DuneError(
    'routing-not-converged',
    `routing did not converge in ${Math.round(timeoutMs / 1000)} s: ${pending.size} of ${daemons.length} nodes lack routes or sessions:\n  ${rows.join('\n  ')}${pending.size > 8 ? `\n  and ${pending.size - 8} more` : ''}`,
    { hint: `each daemon logs to /run/dune/${plan.lab}/logs/<node>.bird.log; inside a node, \`birdc -s /etc/bird/bird.ctl show protocols\`` },
  );
}
