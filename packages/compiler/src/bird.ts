/**
 * Stage 6b: routing daemons. With `routing = "ospf"` or `"bgp"`, every router node runs
 * BIRD 2 (reference/bird.md), configured here:
 *
 *   /etc/netns/<ns>/bird/bird.conf   the configuration (a file op: `down` removes it)
 *   /etc/netns/<ns>/bird/bird.ctl    the control socket (`birdc -s ...`)
 *   process `<key>.bird`             bird -f -c CONF -s SOCK, in the node
 *
 * `ip netns exec` mounts /etc/netns/<ns>/bird over /etc/bird for everything started in the
 * node, so inside it `birdc -s /etc/bird/bird.ctl` reaches the node's own daemon.
 *
 * OSPF: OSPFv2 and OSPFv3 over every link (point-to-point, or broadcast on an L2 segment),
 * the loopbacks as stub networks, hello 1 s / dead 3 s. Each interface's cost is the link's
 * routing weight (the one the static compiler uses) scaled to integers, so OSPF's shortest
 * paths are the static plan's; `ecmp no`, so one path per destination as in the static plan
 * (ties may still fall the other way).
 *
 * BGP: one AS per node unless nodes carry `asn`; eBGP over every link between two ASes
 * (over the link's own addresses, one session per address family), and inside an AS iBGP
 * between loopbacks in a full mesh, with OSPF as the AS's IGP over its internal links. Each
 * node originates its loopbacks (static blackhole routes the kernel protocol does not
 * export). Paths then follow the fewest ASes, not the link weights.
 */
import type { Diagnostics, Topology } from '@dune/topology';
import type { Addressing } from './addressing.js';
import type { NetworkGraph } from './graph.js';
import type { Interfaces } from './interfaces.js';
import { netnsEtcPath } from './hosts.js';
import type { FileOp, ProcessOp } from './plan.js';
import type { Weights } from './routing.js';
import type { Segments } from './segments.js';
import { FILE_MODE } from './template.js';

const LEARNED = '[ RTS_OSPF, RTS_OSPF_IA, RTS_OSPF_EXT1, RTS_OSPF_EXT2, RTS_BGP ]';
/** OSPF interface costs are 16 bits. */
const MAX_COST = 65535;
/** Private 2-byte ASNs (RFC 6996) while they last, then 4-byte ones. */
const ASN_BASE_2 = 64512;
const ASN_BASE_4 = 4_200_000_000;

export interface DaemonInputs {
  topo: Topology;
  keys: string[];
  ns: string[];
  ifs: Interfaces;
  addr: Addressing;
  net: NetworkGraph;
  segs: Segments;
  weights: Weights;
}

export interface Daemons {
  files: FileOp[][];
  processes: ProcessOp[][];
}

export function birdPaths(ns: string): { conf: string; socket: string } {
  return { conf: netnsEtcPath(ns, 'bird/bird.conf'), socket: netnsEtcPath(ns, 'bird/bird.ctl') };
}

/** Integer OSPF costs proportional to the routing weights (at least 1 each). */
export function ospfCosts(weights: Weights, links: number): number[] {
  if (weights.kind === 'hops') return new Array<number>(links).fill(1);
  const w = [...weights.perLink];
  const max = Math.max(0, ...w);
  const integral = w.every((x) => Number.isInteger(x));
  // Latency in ms: µs resolution while the largest link fits in 16 bits.
  const scale = integral && max <= MAX_COST ? 1 : max === 0 ? 1 : Math.min(1000, MAX_COST / max);
  return w.map((x) => Math.min(MAX_COST, Math.max(1, Math.round(x * scale))));
}

/** Each node's AS: its `asn` when it has a valid one, else one of its own. */
export function asNumbers(topo: Topology, diags: Diagnostics): number[] {
  const n = topo.nodes.length;
  return topo.nodes.map((node, v) => {
    const raw = node.ctx['asn'];
    if (raw === undefined) return n <= 1022 ? ASN_BASE_2 + v : ASN_BASE_4 + v;
    const asn = typeof raw === 'string' ? Number(raw) : raw;
    if (typeof asn !== 'number' || !Number.isInteger(asn) || asn < 1 || asn > 4294967294) {
      diags.error('bad-asn', `node "${node.id}" has asn = ${JSON.stringify(raw)}, which is not an AS number`, node.loc, 'write an integer from 1 to 4294967294, e.g. asn = 65001');
      return 0;
    }
    return asn;
  });
}

export function birdDaemons(input: DaemonInputs, diags: Diagnostics): Daemons {
  const { topo, keys, ns, segs, weights } = input;
  const mode = topo.lab.routing;
  const cost = ospfCosts(weights, topo.links.length);
  const asn = mode === 'bgp' ? asNumbers(topo, diags) : [];
  if (mode === 'bgp' && topo.nodes.some((_, v) => segs.isL2[v])) {
    diags.error('bgp-segment', 'routing = "bgp" does not support switches or hubs (L2 segments) yet', topo.nodes.find((_, v) => segs.isL2[v])?.loc, 'use routing = "ospf", or join the routers with links');
  }
  const files: FileOp[][] = [];
  const processes: ProcessOp[][] = [];
  topo.nodes.forEach((node, v) => {
    files.push([]);
    processes.push([]);
    if (segs.isL2[v]) return;
    const paths = birdPaths(ns[v] as string);
    const conf = mode === 'bgp' ? bgpConfig(input, v, cost, asn) : ospfConfig(input, v, cost, () => true);
    (files[v] as FileOp[]).push({ op: 'file', node: node.id, path: paths.conf, contentBase64: Buffer.from(conf, 'utf8').toString('base64'), mode: FILE_MODE });
    (processes[v] as ProcessOp[]).push({
      op: 'process',
      ns: ns[v] as string,
      node: node.id,
      name: `${keys[v]}.bird`,
      argv: ['bird', '-f', '-c', paths.conf, '-s', paths.socket],
      env: {},
      cpus: [],
      postUp: [],
      preDown: [],
      control: { kind: 'bird', socket: paths.socket },
    });
  });
  return { files, processes };
}

function header(input: DaemonInputs, v: number): string[] {
  const { topo, addr } = input;
  return [
    `# BIRD 2 configuration of node ${JSON.stringify(topo.nodes[v]?.id)}, written by dune (routing = "${topo.lab.routing}")`,
    `router id ${addr.nodeV4[v]};`,
    'log stderr { warning, error, fatal, bug };',
    'protocol device { scan time 10; }',
    // Only learned routes go to the kernel (the loopbacks' blackholes stay in BIRD), with the
    // node's loopback as their source address, as the static plan's routes have: replies
    // then come back even where only loopbacks are routed (BGP).
    `protocol kernel k4 { ipv4 { import none; export filter { if source ~ ${LEARNED} then { krt_prefsrc = ${addr.nodeV4[v]}; accept; } reject; }; }; }`,
    `protocol kernel k6 { ipv6 { import none; export filter { if source ~ ${LEARNED} then { krt_prefsrc = ${addr.nodeV6[v]}; accept; } reject; }; }; }`,
  ];
}

/** OSPFv2 + OSPFv3 over the interfaces `inside` accepts (BGP: the AS's internal links). */
function ospfConfig(input: DaemonInputs, v: number, cost: number[], inside: (link: number) => boolean, withHeader = true): string {
  const { ifs, addr, segs, net } = input;
  const lines = withHeader ? header(input, v) : [];
  const iface = (name: string, link: number) => {
    const a = net.aNode[link] as number;
    const b = net.bNode[link] as number;
    const onSegment = segs.isL2[a] === 1 || segs.isL2[b] === 1;
    const type = onSegment ? 'broadcast' : 'ptp';
    return `    interface "${name}" { type ${type}; cost ${cost[link]}; hello 1; dead 3; retransmit 2; wait 2; };`;
  };
  const own = (ifs.byNode[v] ?? []).filter((i) => inside(i.link));
  const loV6 = [`${addr.nodeV6[v]}/128`, ...(addr.loNetsV6[v] ?? [])];
  lines.push(
    'protocol ospf v2 ospf4 {',
    '  ecmp no;',
    '  ipv4 { import all; export none; };',
    '  area 0 {',
    '    interface "lo" { stub yes; };',
    ...own.map((i) => iface(i.name, i.link)),
    '  };',
    '}',
    'protocol ospf v3 ospf6 {',
    '  ecmp no;',
    '  ipv6 { import all; export none; };',
    '  area 0 {',
    // OSPFv3 skips lo (no link-local address): its prefixes are stub networks.
    ...loV6.map((p) => `    stubnet ${p} { cost 0; };`),
    ...own.map((i) => iface(i.name, i.link)),
    '  };',
    '}',
  );
  return `${lines.join('\n')}\n`;
}

function bgpConfig(input: DaemonInputs, v: number, cost: number[], asn: number[]): string {
  const { topo, ifs, addr, net } = input;
  const me = asn[v] as number;
  const peerOf = (link: number) => ((net.aNode[link] as number) === v ? (net.bNode[link] as number) : (net.aNode[link] as number));
  const internal = (link: number) => asn[peerOf(link)] === me;
  const lines = header(input, v);
  const lo4 = [`${addr.nodeV4[v]}/32`, ...(addr.loNetsV4[v] ?? [])];
  const lo6 = [`${addr.nodeV6[v]}/128`, ...(addr.loNetsV6[v] ?? [])];
  lines.push(
    `protocol static lo4 { ipv4; ${lo4.map((p) => `route ${p} blackhole;`).join(' ')} }`,
    `protocol static lo6 { ipv6; ${lo6.map((p) => `route ${p} blackhole;`).join(' ')} }`,
    'template bgp lab { hold time 3; keepalive time 1; connect delay time 1; connect retry time 2; error wait time 1, 5; }',
  );
  const mates = topo.nodes.map((_, u) => u).filter((u) => u !== v && asn[u] === me && !input.segs.isL2[u]);
  const exp = 'export where source ~ [ RTS_STATIC, RTS_BGP ];';
  // The AS's other loopbacks are best known by OSPF (preference 150 over iBGP's 100), and only
  // best routes are exported: eBGP must take them by prefix, or other ASes never learn them.
  const matesNets = (family: 4 | 6) => mates.flatMap((u) => (family === 4 ? [`${addr.nodeV4[u]}/32`, ...(addr.loNetsV4[u] ?? [])] : [`${addr.nodeV6[u]}/128`, ...(addr.loNetsV6[u] ?? [])]));
  const ebgpExp = (family: 4 | 6) => (mates.length === 0 ? exp : `export where source ~ [ RTS_STATIC, RTS_BGP ] || net ~ [ ${matesNets(family).join(', ')} ];`);
  for (const i of ifs.byNode[v] ?? []) {
    if (internal(i.link)) continue;
    const p = peerOf(i.link);
    const mine = i.end === 'a';
    const [l4, r4] = mine ? [addr.v4a[i.link], addr.v4b[i.link]] : [addr.v4b[i.link], addr.v4a[i.link]];
    const [l6, r6] = mine ? [addr.v6a[i.link], addr.v6b[i.link]] : [addr.v6b[i.link], addr.v6a[i.link]];
    const name = `e${i.link}`;
    lines.push(
      `protocol bgp ${name}_4 from lab { description "${topo.nodes[p]?.id.replace(/["\\\n]/g, '_')} over ${i.name}"; local ${l4} as ${me}; neighbor ${r4} as ${asn[p]}; ipv4 { import all; ${ebgpExp(4)} }; }`,
      `protocol bgp ${name}_6 from lab { local ${l6} as ${me}; neighbor ${r6} as ${asn[p]}; ipv6 { import all; ${ebgpExp(6)} }; }`,
    );
  }
  for (const u of mates) {
    lines.push(
      `protocol bgp i${u}_4 from lab { local ${addr.nodeV4[v]} as ${me}; neighbor ${addr.nodeV4[u]} as ${me}; ipv4 { import all; ${exp} next hop self; }; }`,
      `protocol bgp i${u}_6 from lab { local ${addr.nodeV6[v]} as ${me}; neighbor ${addr.nodeV6[u]} as ${me}; ipv6 { import all; ${exp} next hop self; }; }`,
    );
  }
  let text = `${lines.join('\n')}\n`;
  // The AS's IGP: iBGP between loopbacks needs routes to them.
  if (mates.length > 0) text += ospfConfig(input, v, cost, internal, false);
  return text;
}
