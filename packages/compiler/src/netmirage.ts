/**
 * NetMirage mode (reference/netmirage.md §4.4): a GraphML topology plus the core's view of
 * its edges → a Plan of ordinary ops, and the policy routing the runtime adds around them.
 *
 *   edges ─ vsubnets (explicit, else an even split of the global one) ─ clients per edge
 *     (round(c/E·(i+1)) − round(c/E·i), in node order) ─ one client subnet each
 *   topology ─ compile (namespaces `<prefix><key>`, routes to clients only, each client
 *     owning its subnet) ─ IPv4 only ─ + root namespace, client↔root veths, shaping
 *
 * What the Plan cannot say (routing tables other than main, policy rules, the edge NIC that
 * is moved into the root namespace) is returned beside it, as data, for the runtime.
 *
 * The root switch is in the plan too: Linux-native policy routing (rules and routes in
 * tables), or a private Open vSwitch (one `ovs` op: its daemons, bridge, ports and flows).
 */
import type { Diagnostic, Impairment, Topology } from '@dune/topology';
import { Diagnostics, sortDiagnostics, TopologyError } from '@dune/topology';
import { blockSize, carve, formatAddr, formatNetwork, overlaps, parseAddr, parsePrefix, rangeOf, type Prefix } from './cidr.js';
import { compileWithDiagnostics } from './compile.js';
import { ifAlias, labName, nodeKeys, validIfName } from './naming.js';
import { hasImpairment, ifaceRpFilterKey } from './ops.js';
import { expandRouteTables, type AdoptOp, type Op, type OvsOp, type Plan } from './plan.js';

export const NETMIRAGE_SWITCHES = ['linux', 'ovs'] as const;
export type NetmirageSwitch = (typeof NETMIRAGE_SWITCHES)[number];

export const NETMIRAGE_ROOT_NS = ['custom', 'init'] as const;
export type NetmirageRootNs = (typeof NETMIRAGE_ROOT_NS)[number];

/** `[0-9A-Za-z_-]`, as NetMirage allows for -p. */
export const NETNS_PREFIX_RE = /^[0-9A-Za-z_-]+$/;

/** Routing table of the client's self link (NetMirage's 120) and its rule priority. */
export const CLIENT_SELF_TABLE = 120;
export const CLIENT_SELF_RULE_PREF = 9999;
/** Root namespace: one table per client, from here, and the rules' priority. */
export const ROOT_TABLE_BASE = 10_000;
export const ROOT_RULE_PREF = 1000;

/** One edge as the core knows it (`-e IP,iface=,mac=,vsubnet=,rdev=,rapps=` or `[edge*]`). */
export interface NetmirageEdgeSpec {
  ip: string;
  iface?: string;
  mac?: string;
  vsubnet?: string;
  /** Only fill the printed edge command. */
  rdev?: string;
  rapps?: string;
  /** Configure this edge over SSH (`[user@]host[:port]`), with this private key: the runtime's business. */
  ssh?: string;
  sshKey?: string;
}

export interface NetmirageSettings {
  /** Namespace prefix, `[0-9A-Za-z_-]+` (default nm-). */
  prefix: string;
  /** Global client space, split among edges without their own (default 10.0.0.0/8). */
  vsubnet: string;
  edges: NetmirageEdgeSpec[];
  /** Default core interface facing the edges (-i). */
  iface?: string;
  /** Core IP written into the edge commands (-I). */
  routingIp?: string;
  rootNs: NetmirageRootNs;
  switch: NetmirageSwitch;
  /** MTU of the edge-facing interfaces (the runtime reads it), default 1500. */
  mtu?: number;
  /** Explicitly build without link delay and jitter (for kernels without netem). */
  withoutDelay?: boolean;
  /** Prefixes the internal addresses must avoid (the core NIC's subnets). */
  avoid?: string[];
  /**
   * The edge-facing interfaces as they are before the build (the runtime reads them): moved
   * into the root namespace by `adopt` ops that carry this, so down puts them back exactly.
   * An interface not listed is adopted with nothing saved (a dry run without it).
   */
  nics?: { name: string; saved: AdoptOp['saved'] }[];
  /** The private Open vSwitch of `switch: 'ovs'`: its directory (db, sockets, pids, logs) and schema. */
  ovs?: { dir: string; schema: string };
}

export const OVS_DEFAULTS = { dir: '/tmp/netmirage', schema: '/usr/share/openvswitch/vswitch.ovsschema' } as const;
export const OVS_BRIDGE = 'netmirage-br0';
/** The MAC the OVS switch answers with for the root IP. */
export const OVS_ROOT_MAC = '02:4e:ff:00:00:01';

export interface NetmirageClient {
  node: string;
  key: string;
  ns: string;
  /** Position among clients (0-based): names `node-<i>`, `self-<i>`. */
  index: number;
  edge: number;
  /** The client's subnet of its edge's vsubnet. */
  subnet: string;
  /** The client node's own address (on its lo; answers ARP on root and self). */
  ip: string;
  /** Root-namespace interfaces toward the client. */
  rootDev: string;
  selfDev: string;
  /** MACs: root-namespace ends, client ends. */
  rootDevMac: string;
  selfDevMac: string;
  clientRootMac: string;
  clientSelfMac: string;
  /** Root-namespace routing table for traffic coming from this client's applications. */
  table: number;
}

export interface NetmirageEdge {
  ip: string;
  iface: string;
  mac?: string;
  vsubnet: string;
  clients: number;
  clientSubnets: string[];
  /** The `netmirage-edge` argv (placeholders `<iface>`, `<core-ip>`, `<applications>` where unknown). */
  command: string[];
}

export interface NetmiragePlan {
  plan: Plan;
  lab: string;
  prefix: string;
  /** The root namespace, or null when it is the namespace the core runs in (`-r init`). */
  rootNs: string | null;
  /** The root namespace's address (on its lo): the clients' gateway. */
  rootIp: string;
  /** The edge-facing interfaces, each once, in edge order. */
  ifaces: string[];
  edges: NetmirageEdge[];
  clients: NetmirageClient[];
  /** Internal address pools chosen (disjoint from every vsubnet and edge). */
  pools: { nodeV4: string; linkV4: string };
  diagnostics: Diagnostic[];
}

/** The lab name NetMirage mode uses for marks and nftables tables: one per prefix. */
export function netmirageLab(prefix: string): string {
  return labName(`netmirage-${prefix}`);
}

export function netmirageRootNs(prefix: string): string {
  return `${prefix}root`;
}

/** Node pool, link pool: the first pair clear of everything the user's network uses. */
const POOL_CANDIDATES: [string, string][] = [
  ['100.64.0.0/11', '100.96.0.0/11'],
  ['172.16.0.0/13', '172.24.0.0/13'],
  ['198.18.0.0/16', '198.19.0.0/16'],
  ['192.168.0.0/17', '192.168.128.0/17'],
  ['10.0.0.0/9', '10.128.0.0/9'],
];

function prefixOf(text: string, what: string, diags: Diagnostics, hint: string): Prefix | undefined {
  const p = parsePrefix(text);
  if (typeof p === 'string' || p.family !== 4) {
    diags.error('bad-option', `${what}: ${typeof p === 'string' ? p : `"${text}" is not IPv4`}`, undefined, hint);
    return undefined;
  }
  if (!text.includes('/')) {
    diags.error('bad-option', `${what}: "${text}" has no prefix length`, undefined, hint);
    return undefined;
  }
  return { ...p, addr: rangeOf(p)[0] };
}

/** ⌈log2 n⌉ for n ≥ 1. */
function bitsFor(n: number): number {
  let b = 0;
  while (1 << b < n) b++;
  return b;
}

/** Splits `p` into `count` equal blocks (the next power of two), the first `count` of them. */
export function splitEvenly(p: Prefix, count: number): Prefix[] | undefined {
  const len = p.len + bitsFor(count);
  if (len > 32) return undefined;
  const size = blockSize(4, len);
  return Array.from({ length: count }, (_, i) => ({ family: 4 as const, addr: rangeOf(p)[0] + BigInt(i) * size, len }));
}

/** Clients per edge: edge i gets round(c/E·(i+1)) − round(c/E·i) (reference 4.4 step 7). */
export function clientsPerEdge(clients: number, edges: number): number[] {
  const r = (x: number) => Math.round(x);
  return Array.from({ length: edges }, (_, i) => r((clients / edges) * (i + 1)) - r((clients / edges) * i));
}

function mac(kind: number, i: number): string {
  const b = [0x02, 0x4e, kind, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const KIND_RANK: Record<Op['op'], number> = {
  netns: 0, adopt: 0.5, ovs: 7.7, withdraw: 7.6, veth: 1, vxlan: 1, vtep: 1, tap: 6, bridge: 1, enslave: 2, addr: 3, up: 4, sysctl: 5, impair: 6, nft: 6, route: 7, routes: 7, rule: 7.5, file: 8, exec: 9, process: 10,
};

/** What NetMirage sets in every namespace (reference 4.4 step 3), beyond dune's router sysctls. */
const NETMIRAGE_SYSCTLS: [string, string][] = [
  ['net.ipv4.ip_forward', '1'],
  ['net.ipv4.conf.all.rp_filter', '0'],
  ['net.ipv4.conf.default.rp_filter', '0'],
  ['net.ipv6.conf.all.disable_ipv6', '1'],
  ['net.ipv6.conf.default.disable_ipv6', '1'],
];

/** Topology + settings → the plan and the root's routing. Throws TopologyError with every problem found. */
export function compileNetmirage(topo: Topology, s: NetmirageSettings): NetmiragePlan {
  const diags = new Diagnostics();
  if (!NETNS_PREFIX_RE.test(s.prefix)) {
    diags.error('bad-option', `the namespace prefix "${s.prefix}" may only contain 0-9 A-Z a-z _ -`, undefined, 'e.g. -p nm-');
  }
  if (s.edges.length === 0) {
    diags.error('no-edges', 'no edge node is given', undefined, 'give each edge with -e IP[,iface=DEV][,vsubnet=CIDR], or in an [edge] group of the setup file');
  }
  const lab = netmirageLab(s.prefix);
  const rootNs = s.rootNs === 'custom' ? netmirageRootNs(s.prefix) : null;
  if (s.rootNs === 'init' && s.switch === 'ovs') {
    diags.error('bad-option', '--root-ns init with --switch ovs is not supported', undefined, 'use --root-ns custom (the default) or --switch linux');
  }

  // Edges: addresses, interfaces, vsubnets.
  const global = prefixOf(s.vsubnet, `--vsubnet ${s.vsubnet}`, diags, 'write a CIDR such as 10.0.0.0/8');
  const edgeIps: bigint[] = [];
  const explicit: (Prefix | undefined)[] = [];
  const ifaces: string[] = [];
  s.edges.forEach((e, i) => {
    const a = parseAddr(e.ip);
    if (a === undefined || a.family !== 4) diags.error('bad-edge', `edge ${i + 1}: "${e.ip}" is not an IPv4 address`, undefined, 'write -e 192.0.2.10[,iface=eth1]');
    else edgeIps.push(a.addr);
    const iface = e.iface ?? s.iface;
    if (iface === undefined) {
      diags.error('bad-edge', `edge ${e.ip} has no core interface`, undefined, 'give a default with -i DEV, or iface=DEV for this edge');
    } else if (!validIfName(iface)) {
      diags.error('bad-edge', `edge ${e.ip}: "${iface}" is not an interface name`, undefined, 'at most 15 characters of A-Z a-z 0-9 _ . @ + -');
    } else if (!ifaces.includes(iface)) ifaces.push(iface);
    if (e.mac !== undefined && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(e.mac)) {
      diags.error('bad-edge', `edge ${e.ip}: "${e.mac}" is not a MAC address`, undefined, 'write mac=aa:bb:cc:dd:ee:ff');
    }
    explicit.push(e.vsubnet === undefined ? undefined : prefixOf(e.vsubnet, `edge ${e.ip} vsubnet`, diags, 'write vsubnet=10.1.0.0/16'));
    if (e.rapps !== undefined && e.rapps !== 'max' && !/^[1-9]\d*$/.test(e.rapps)) {
      diags.error('bad-edge', `edge ${e.ip}: rapps=${e.rapps} is not a number of applications`, undefined, 'write rapps=N or rapps=max');
    }
  });
  for (const iface of ifaces) {
    if (/^(node|self)-\d+$/.test(iface) || iface === 'lo') {
      diags.error('bad-edge', `the core interface "${iface}" clashes with the names of the root namespace's own interfaces`, undefined, 'rename the interface');
    }
  }
  diags.throwIfErrors();

  // Vsubnets: explicit ones must not overlap; the others share the global space evenly.
  const vsub: Prefix[] = [];
  const without = explicit.map((p, i) => (p === undefined ? i : -1)).filter((i) => i >= 0);
  let carved: Prefix[] = [];
  if (without.length > 0 && global !== undefined) {
    // Explicit vsubnets inside the global space take a part of it each, so the even split
    // counts them too.
    const inside = explicit.filter((p): p is Prefix => p !== undefined && overlaps(p, global)).length;
    const len = global.len + bitsFor(without.length + inside);
    const reserved = explicit.filter((p): p is Prefix => p !== undefined).map(rangeOf);
    const r = len > 32 ? { ok: false as const, fitted: 0 } : carve(global, len, without.length, reserved);
    if (!r.ok) {
      diags.error('vsubnet-exhausted', `the global vsubnet ${s.vsubnet} cannot be split among ${without.length} edges (room for ${r.fitted} besides the edges' own vsubnets)`, undefined, 'give a larger --vsubnet, or vsubnet= per edge');
    } else carved = r.starts.map((addr) => ({ family: 4, addr, len }));
  }
  s.edges.forEach((_, i) => {
    const p = explicit[i] ?? carved[without.indexOf(i)];
    if (p !== undefined) vsub.push(p);
  });
  diags.throwIfErrors();
  for (let i = 0; i < vsub.length; i++) {
    for (let j = i + 1; j < vsub.length; j++) {
      if (overlaps(vsub[i] as Prefix, vsub[j] as Prefix)) {
        diags.error('vsubnet-overlap', `the vsubnets of edges ${s.edges[i]?.ip} (${formatNetwork(vsub[i] as Prefix)}) and ${s.edges[j]?.ip} (${formatNetwork(vsub[j] as Prefix)}) overlap`, undefined, 'give each edge its own vsubnet');
      }
    }
    for (const ip of edgeIps) {
      const [a, b] = rangeOf(vsub[i] as Prefix);
      if (ip >= a && ip <= b) diags.error('vsubnet-overlap', `edge address ${formatAddr(4, ip)} lies in the vsubnet ${formatNetwork(vsub[i] as Prefix)}`, undefined, 'the vsubnets are for applications: choose them apart from the edges\' own addresses');
    }
  }

  // Clients per edge.
  const clientNodes = topo.nodes.filter((n) => n.client);
  const perEdge = clientsPerEdge(clientNodes.length, s.edges.length);
  if (clientNodes.length < s.edges.length) {
    diags.error('too-few-clients', `the topology has ${clientNodes.length} client node${clientNodes.length === 1 ? '' : 's'} for ${s.edges.length} edges; each edge needs at least one`, undefined, topo.nodes.some((n) => n.ctx['type'] !== undefined) ? 'check --client-node (the `type` that marks clients)' : 'use fewer edges');
  }
  const subnets: Prefix[][] = vsub.map((p, i) => {
    const n = perEdge[i] ?? 0;
    if (n === 0) return [];
    const parts = splitEvenly(p, n);
    if (parts === undefined || (parts[0]?.len ?? 33) > 31) {
      diags.error('vsubnet-too-small', `edge ${s.edges[i]?.ip}'s vsubnet ${formatNetwork(p)} is too small for its ${n} clients`, undefined, 'give it a larger vsubnet');
      return [];
    }
    return parts;
  });
  const reservedNames = topo.nodes.filter((n) => n.id === 'root');
  if (reservedNames.length > 0 && rootNs !== null) {
    diags.error('reserved-node', `a node is named "root", like the root namespace ${rootNs}`, reservedNames[0]?.loc, 'rename the node');
  }
  diags.throwIfErrors();

  // Internal pools: clear of vsubnets, edges and the core NIC's subnets.
  const avoid: Prefix[] = [...vsub, ...edgeIps.map((a) => ({ family: 4 as const, addr: a, len: 32 }))];
  for (const t of s.avoid ?? []) {
    const p = parsePrefix(t);
    if (typeof p !== 'string' && p.family === 4) avoid.push(p);
  }
  if (s.routingIp !== undefined) {
    const a = parseAddr(s.routingIp);
    if (a === undefined || a.family !== 4) diags.error('bad-option', `--routing-ip "${s.routingIp}" is not an IPv4 address`, undefined, 'e.g. -I 192.0.2.1');
    else avoid.push({ family: 4, addr: a.addr, len: 32 });
  }
  const pair = POOL_CANDIDATES.find(([n, l]) => [n, l].every((t) => !avoid.some((a) => overlaps(parsePrefix(t) as Prefix, a))));
  if (pair === undefined) {
    diags.error('no-internal-pool', `every internal address pool (${POOL_CANDIDATES.flat().join(', ')}) overlaps a vsubnet or an edge`, undefined, 'use a smaller --vsubnet');
  }
  diags.throwIfErrors();
  const [nodePool, linkPool] = pair as [string, string];

  // The topology as the compiler sees it: each client owns its subnet (a lo prefix, which
  // the compiler routes to; the address itself is not configured), routes to clients only.
  const subnetOf = new Map<string, Prefix>();
  const edgeOf = new Map<string, number>();
  let k = 0;
  perEdge.forEach((n, e) => {
    for (let j = 0; j < n; j++) {
      const node = clientNodes[k++];
      if (node === undefined) continue;
      subnetOf.set(node.id, subnets[e]?.[j] as Prefix);
      edgeOf.set(node.id, e);
    }
  });
  const strip = (imp: Impairment): Impairment => {
    if (!s.withoutDelay) return { ...imp };
    const { delayUs: _d, jitterUs: _j, jitterDistribution: _jd, jitterCorrelationPct: _jc, ...rest } = imp;
    return rest;
  };
  const t: Topology = {
    ...topo,
    lab: { ...topo.lab, name: lab, routing: 'static', routeTo: 'clients', pools: { ...topo.lab.pools, nodeV4: nodePool, linkV4: linkPool, linkV4Len: 31 } },
    nodes: topo.nodes.map((n): Topology['nodes'][number] => {
      const sub = subnetOf.get(n.id);
      const addrs: Record<string, string[]> = sub === undefined ? {} : { lo: [formatNetwork(sub)] };
      return { ...n, addrs };
    }),
    links: topo.links.map((l) => ({ ...l, a: { ...l.a, impairment: strip(l.a.impairment) }, b: { ...l.b, impairment: strip(l.b.impairment) } })),
  };
  let compiled;
  try {
    compiled = compileWithDiagnostics(t, { nsPrefix: s.prefix, clientShapingApplied: true });
  } catch (e) {
    if (e instanceof TopologyError) throw new TopologyError([...diags.items, ...e.diagnostics]);
    throw e;
  }
  const plan = compiled.plan;
  const host = plan.hosts[0];
  if (host === undefined) throw new Error('internal: a NetMirage plan has one host');

  const keyOf = nodeKeys(topo.nodes.map((n) => n.id));
  const nsOf = new Map(plan.nodes.map((n) => [n.node, n]));
  const rootIp = formatAddr(4, rangeOf(parsePrefix(nodePool) as Prefix)[1] - 1n);
  const mtu = s.mtu ?? 1500;
  const rootNsOp = rootNs ?? '';

  // IPv4 only (NetMirage disables IPv6); the client subnets are routed, not configured.
  const ownSubnet = new Set([...subnetOf.entries()].map(([id, p]) => `${nsOf.get(id)?.ns}\0${formatNetwork(p)}`));
  const clientLoopbacks = new Set(clientNodes.map((n) => `${nsOf.get(n.id)?.v4}/32`));
  // Route tables as single routes, to filter (NetMirage plans keep one route op per route).
  const ops: Op[] = expandRouteTables(host.ops).filter((op) => {
    if (op.op === 'addr') return !op.cidr.includes(':') && !ownSubnet.has(`${op.ns}\0${op.cidr}`);
    if (op.op === 'route') return !op.dst.includes(':') && !clientLoopbacks.has(op.dst);
    if (op.op === 'sysctl') return !op.key.startsWith('net.ipv6.');
    // NetMirage writes no files (its nodes get no hosts files: it has no journal to remove them by).
    if (op.op === 'file') return false;
    return true;
  });
  for (const n of plan.nodes) for (const [key, value] of NETMIRAGE_SYSCTLS) if (key.includes('ipv6')) ops.push({ op: 'sysctl', ns: n.ns, key, value });

  // The root namespace.
  if (rootNs !== null) ops.push({ op: 'netns', ns: rootNs, node: 'root', alias: ifAlias(lab, 'root', 'lo') }, { op: 'up', ns: rootNs, dev: 'lo' });
  // In `init` mode the root is the core's own namespace: forward, but leave its IPv6 alone.
  // With Open vSwitch, the root's kernel must not route what the switch carries.
  for (const [key, value] of NETMIRAGE_SYSCTLS) {
    if (rootNs !== null || !key.includes('ipv6')) ops.push({ op: 'sysctl', ns: rootNsOp, key, value: s.switch === 'ovs' && key === 'net.ipv4.ip_forward' ? '0' : value });
  }
  if (s.switch === 'linux') ops.push({ op: 'addr', ns: rootNsOp, dev: 'lo', cidr: `${rootIp}/32` });

  // Client nodes: root and self links, shaping, the way back to the edges.
  const clients: NetmirageClient[] = [];
  clientNodes.forEach((node, i) => {
    const info = nsOf.get(node.id);
    const sub = subnetOf.get(node.id);
    if (info === undefined || sub === undefined) return;
    const key = keyOf.get(node.id) as string;
    const c: NetmirageClient = {
      node: node.id,
      key,
      ns: info.ns,
      index: i,
      edge: edgeOf.get(node.id) ?? 0,
      subnet: formatNetwork(sub),
      ip: info.v4 as string,
      rootDev: `node-${i}`,
      selfDev: `self-${i}`,
      rootDevMac: mac(0x10, i),
      clientRootMac: mac(0x11, i),
      selfDevMac: mac(0x20, i),
      clientSelfMac: mac(0x21, i),
      table: ROOT_TABLE_BASE + i,
    };
    clients.push(c);
    ops.push(
      { op: 'veth', ns: rootNsOp, name: c.rootDev, peerNs: c.ns, peerName: 'root', mtu, mac: c.rootDevMac, peerMac: c.clientRootMac, alias: ifAlias(lab, 'root', c.rootDev), peerAlias: ifAlias(lab, key, 'root') },
      { op: 'veth', ns: rootNsOp, name: c.selfDev, peerNs: c.ns, peerName: 'self', mtu, mac: c.selfDevMac, peerMac: c.clientSelfMac, alias: ifAlias(lab, 'root', c.selfDev), peerAlias: ifAlias(lab, key, 'self') },
    );
    for (const [ns, dev] of [[rootNsOp, c.rootDev], [rootNsOp, c.selfDev], [c.ns, 'root'], [c.ns, 'self']] as const) {
      ops.push({ op: 'up', ns, dev }, { op: 'sysctl', ns, key: ifaceRpFilterKey(dev), value: '0' });
    }
    const sh = node.shaping ?? {};
    const down: Impairment = {};
    const up: Impairment = {};
    if (sh.downBitsPerSec !== undefined) down.rateBitsPerSec = sh.downBitsPerSec;
    if (sh.upBitsPerSec !== undefined) up.rateBitsPerSec = sh.upBitsPerSec;
    if (sh.lossPct !== undefined) {
      down.lossPct = sh.lossPct;
      up.lossPct = sh.lossPct;
    }
    // Traffic to the applications leaves the client by `root`; traffic from them enters it
    // through the root namespace's `node-<i>`.
    if (hasImpairment(down)) ops.push({ op: 'impair', ns: c.ns, dev: 'root', link: `client:${key}:down`, impairment: down, mtu });
    if (hasImpairment(up)) ops.push({ op: 'impair', ns: rootNsOp, dev: c.rootDev, link: `client:${key}:up`, impairment: up, mtu });
    const self = sh.selfLink === undefined ? undefined : strip(sh.selfLink);
    if (self !== undefined && hasImpairment(self)) ops.push({ op: 'impair', ns: c.ns, dev: 'self', link: `client:${key}:self`, impairment: self, mtu });
    ops.push({ op: 'route', ns: c.ns, dst: `${rootIp}/32`, dev: 'root' }, { op: 'route', ns: c.ns, dst: c.subnet, via: rootIp, dev: 'root' });
  });
  // The edge-facing interfaces: into the root namespace (NetMirage's order: first of all, so
  // each keeps its ifindex), forwarding without reverse-path checks.
  for (const dev of ifaces) {
    const saved = s.nics?.find((n) => n.name === dev)?.saved ?? { mtu, up: true, addrs: [], routes: [] };
    if (rootNs !== null) ops.push({ op: 'adopt', ns: rootNs, dev, saved });
    ops.push({ op: 'sysctl', ns: rootNsOp, key: ifaceRpFilterKey(dev), value: '0' });
  }
  // The Linux root switch: policy routing in the root namespace.
  //   from an edge (iif NIC, from S_c) → table T_c: S_c via the client's self link, anything
  //   else via its root link; to an edge (main): the edge's vsubnet via the edge's address.
  if (s.switch === 'linux') {
    s.edges.forEach((e, i) => {
      const iface = (e.iface ?? s.iface) as string;
      ops.push({ op: 'route', ns: rootNsOp, dst: formatNetwork(vsub[i] as Prefix), via: e.ip, dev: iface });
    });
    for (const c of clients) {
      const iface = (s.edges[c.edge]?.iface ?? s.iface) as string;
      ops.push(
        { op: 'route', ns: rootNsOp, table: c.table, dst: c.subnet, via: c.ip, dev: c.selfDev, onlink: true },
        { op: 'route', ns: rootNsOp, table: c.table, dst: 'default', via: c.ip, dev: c.rootDev, onlink: true },
        { op: 'rule', ns: rootNsOp, priority: ROOT_RULE_PREF, table: c.table, src: c.subnet, iif: iface },
      );
    }
  }
  if (s.switch === 'ovs' && rootNs !== null) ops.push(ovsOp(s, rootNs, rootIp, ifaces, clients, vsub));
  // In each client: traffic for its own subnet that arrives on `self` goes back out by `self`.
  for (const c of clients) {
    ops.push(
      { op: 'route', ns: c.ns, table: CLIENT_SELF_TABLE, dst: `${rootIp}/32`, dev: 'self' },
      { op: 'route', ns: c.ns, table: CLIENT_SELF_TABLE, dst: c.subnet, via: rootIp, dev: 'self' },
      { op: 'rule', ns: c.ns, priority: CLIENT_SELF_RULE_PREF, table: CLIENT_SELF_TABLE, dst: c.subnet, iif: 'self' },
    );
  }
  ops.sort((a, b) => KIND_RANK[a.op] - KIND_RANK[b.op]);
  host.ops = ops;
  // IPv4 only: no node or link end shows an IPv6 address it does not have (dune status).
  for (const n of plan.nodes) delete n.v6;
  for (const l of plan.links) for (const e of [l.a, l.b]) delete e.v6;
  if (rootNs !== null) host.nodes.push({ node: 'root', ns: rootNs, cpus: [] });
  const count = (kind: Op['op']) => ops.reduce((n, o) => n + (o.op === kind ? 1 : 0), 0);
  // Routes: the nodes' own (main table); the root switch's and self links' (other tables, and the root's main table toward the edges) apart.
  const nodeRoutes = ops.filter((o) => o.op === 'route' && o.table === undefined && o.ns !== rootNsOp).length;
  Object.assign(plan.stats, {
    ops: ops.length, clients: clients.length, addrsV4: count('addr'), addrsV6: 0, routesV4: nodeRoutes, routesV6: 0, switchRoutes: count('route') - nodeRoutes,
    rules: count('rule'), adopted: count('adopt'), sysctls: count('sysctl'), impairments: count('impair'),
  });

  const edges: NetmirageEdge[] = s.edges.map((e, i) => {
    const own = vsub[i] as Prefix;
    const others = vsub.filter((_, j) => j !== i).map(formatNetwork);
    const command = ['netmirage-edge'];
    if (others.length > 0) command.push('-e', others.join(','));
    command.push('-c', String(perEdge[i] ?? 0), e.rdev ?? '<iface>', s.routingIp ?? '<core-ip>', formatNetwork(own), e.rapps ?? '<applications>');
    const edge: NetmirageEdge = {
      ip: e.ip,
      iface: (e.iface ?? s.iface) as string,
      vsubnet: formatNetwork(own),
      clients: perEdge[i] ?? 0,
      clientSubnets: (subnets[i] ?? []).map(formatNetwork),
      command,
    };
    if (e.mac !== undefined) edge.mac = e.mac.toLowerCase();
    return edge;
  });

  return {
    plan,
    lab,
    prefix: s.prefix,
    rootNs,
    rootIp,
    ifaces,
    edges,
    clients,
    pools: { nodeV4: nodePool, linkV4: linkPool },
    diagnostics: sortDiagnostics([...diags.items, ...compiled.diagnostics]),
  };
}

function hex(ip: string): string {
  return `0x${ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join('')}`;
}

/** A flow answering ARP requests for `ip` with `mac` (a MAC, or a token `{mac:DEV}`: `{machex:DEV}` is its 0x form). */
function arpResponder(ip: string, mac: string): string {
  const asHex = mac.startsWith('{mac:') ? `{machex:${mac.slice(5)}` : `0x${mac.replace(/:/g, '')}`;
  return (
    `priority=32668,arp,arp_op=1,arp_tpa=${ip},actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:${mac},load:0x2->NXM_OF_ARP_OP[],` +
    `move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],load:${asHex}->NXM_NX_ARP_SHA[],load:${hex(ip)}->NXM_OF_ARP_SPA[],in_port`
  );
}

/**
 * The Open vSwitch root switch (reference 4.4 steps 3 and 7). Ports with fixed numbers: the
 * NICs from 1, client i's node-<i> at 1000+2i and self-<i> at 1001+2i. Flows (all else is
 * dropped: the table starts empty):
 *   32668  ARP requests for a core NIC address or the root IP → answered by the switch
 *   16384  ip, in_port=NIC, from S_c to S_c → dl_dst = client's self MAC, out self-<c>
 *    8192  ip, in_port=NIC, from S_c        → dl_dst = client's root MAC, out node-<c>
 *    1000  in_port=NIC                      → drop (no edge-to-edge shortcut)
 *     128  ip, to an edge's vsubnet         → dl_src = NIC MAC, dl_dst = edge MAC, out NIC
 */
function ovsOp(s: NetmirageSettings, rootNs: string, rootIp: string, ifaces: readonly string[], clients: readonly NetmirageClient[], vsub: readonly Prefix[]): OvsOp {
  const port = new Map<string, number>();
  ifaces.forEach((n, i) => port.set(n, i + 1));
  for (const c of clients) {
    port.set(c.rootDev, 1000 + 2 * c.index);
    port.set(c.selfDev, 1001 + 2 * c.index);
  }
  const flows: string[] = [];
  for (const dev of ifaces) {
    for (const a of s.nics?.find((n) => n.name === dev)?.saved?.addrs ?? []) if (!a.includes(':')) flows.push(arpResponder(a.split('/')[0] as string, `{mac:${dev}}`));
  }
  flows.push(arpResponder(rootIp, OVS_ROOT_MAC));
  const ifaceOf = (i: number) => (s.edges[i]?.iface ?? s.iface) as string;
  for (const c of clients) {
    const nicPort = port.get(ifaceOf(c.edge)) as number;
    flows.push(`priority=16384,ip,in_port=${nicPort},nw_src=${c.subnet},nw_dst=${c.subnet},actions=mod_dl_dst:${c.clientSelfMac},output:${port.get(c.selfDev)}`);
    flows.push(`priority=8192,ip,in_port=${nicPort},nw_src=${c.subnet},actions=mod_dl_dst:${c.clientRootMac},output:${port.get(c.rootDev)}`);
  }
  for (const n of ifaces) flows.push(`priority=1000,in_port=${port.get(n)},actions=drop`);
  const learn: OvsOp['learn'] = [];
  s.edges.forEach((e, i) => {
    const dev = ifaceOf(i);
    if (e.mac === undefined) learn.push({ ip: e.ip, dev });
    flows.push(`priority=128,ip,nw_dst=${formatNetwork(vsub[i] as Prefix)},actions=mod_dl_src:{mac:${dev}},mod_dl_dst:${e.mac?.toLowerCase() ?? `{mac:${e.ip}}`},output:${port.get(dev)}`);
  });
  const o = s.ovs ?? OVS_DEFAULTS;
  return { op: 'ovs', ns: rootNs, dir: o.dir, schema: o.schema, bridge: OVS_BRIDGE, datapath: 'netdev', ports: [...port].map(([dev, ofport]) => ({ dev, ofport })), learn, flows };
}

/** The edge command as one printable line (NetMirage's format, reference 4.2). */
export function formatEdgeCommand(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_.,:/@%+=<>-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
