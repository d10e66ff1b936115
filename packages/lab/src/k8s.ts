/**
 * dune on Kubernetes (docs/kubernetes.md), the manifests half: pure functions from options
 * and plans to Kubernetes objects, and those objects to YAML. Nothing here talks to a
 * cluster.
 *
 *   agentManifests({ namespace, image })  → Namespace?, ServiceAccount, ClusterRole,
 *                                           ClusterRoleBinding, DaemonSet, the two CRDs
 *   labResources(plan)                    → one LabNode per node, one LabLink per link
 *   toYaml(objects)                       → a multi-document YAML stream
 *
 * A lab is never one object: etcd refuses a request over `--max-request-bytes` (1.5 MiB by
 * default), so every node and every link is its own small object, and `labResources`
 * refuses to produce one above OBJECT_BUDGET_BYTES.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import { DuneError, FOLLOWER_FIELDS, IMPAIRMENT_KEYS, JITTER_DISTRIBUTIONS, type Impairment } from '@dune/topology';
import type { AddrOp, BridgeOp, ExecOp, FileOp, ImpairOp, Op, Plan, ProcessOp, RouteOp, SysctlOp, VethOp, VxlanOp } from '@dune/compiler';
import { expandRoutes, fileContentBase64 } from '@dune/compiler';

export const K8S_GROUP = 'dune.dev';
export const K8S_VERSION = 'v1alpha1';
export const K8S_API_VERSION = `${K8S_GROUP}/${K8S_VERSION}`;
export const LAB_LABEL = `${K8S_GROUP}/lab`;
export const DEFAULT_K8S_NAMESPACE = 'dune-system';
export const DEFAULT_AGENT_IMAGE = 'ghcr.io/dune-emu/dune-agent:0.1.0';
/** etcd's default `--max-request-bytes`. */
export const ETCD_REQUEST_LIMIT_BYTES = 1.5 * 1024 * 1024;
/**
 * The most `labResources` puts in one object: two thirds of etcd's limit, leaving room for
 * what the API server adds (managedFields, status).
 */
export const OBJECT_BUDGET_BYTES = 1024 * 1024;

/** A Kubernetes object as plain JSON. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The subset of OpenAPI v3 the CRD schemas use (structural: every node typed). */
export interface Schema {
  type: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: (string | number)[];
  minimum?: number;
  maximum?: number;
  pattern?: string;
  maxLength?: number;
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

/**
 * One dot-free part of a resource name. Lab names and node keys are `[A-Za-z0-9_-]`
 * (compiler naming.ts); a resource name is lowercase without `_`. A part that had to change
 * gets a short hash of the original, so `R1` and `r1` stay two names.
 */
export function k8sNamePart(s: string): string {
  if (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s) && s.length <= 63) return s;
  const folded = s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 50);
  const hash = createHash('sha256').update(s, 'utf8').digest('hex').slice(0, 6);
  return folded.length > 0 ? `${folded}-${hash}` : `x-${hash}`;
}

export function labNodeName(lab: string, node: string): string {
  return `${k8sNamePart(lab)}.${k8sNamePart(node)}`;
}

export function labLinkName(lab: string, index: number): string {
  return `${k8sNamePart(lab)}.link-${index}`;
}

/** The value of the `dune.dev/lab` label: the lab name itself whenever a label can hold it. */
export function labLabel(lab: string): string {
  return lab.length <= 63 && LABEL_VALUE.test(lab) ? lab : k8sNamePart(lab);
}

// ---------------------------------------------------------------------------------------
// CRD schemas
// ---------------------------------------------------------------------------------------

const str = (description?: string): Schema => ({ type: 'string', ...(description !== undefined ? { description } : {}) });
const int = (minimum?: number, maximum?: number, description?: string): Schema => ({
  type: 'integer',
  ...(minimum !== undefined ? { minimum } : {}),
  ...(maximum !== undefined ? { maximum } : {}),
  ...(description !== undefined ? { description } : {}),
});
const obj = (properties: Record<string, Schema>, required: string[] = [], description?: string): Schema => ({
  type: 'object',
  properties,
  ...(required.length > 0 ? { required } : {}),
  ...(description !== undefined ? { description } : {}),
});
const arr = (items: Schema, description?: string): Schema => ({ type: 'array', items, ...(description !== undefined ? { description } : {}) });
const pct = (): Schema => ({ type: 'number', minimum: 0, maximum: 100 });
const nonNeg = (): Schema => ({ type: 'number', minimum: 0 });

const CIDR = '^[0-9A-Fa-f:.]+/[0-9]{1,3}$';
const IP = '^[0-9A-Fa-f:.]+$';
const MAC = '^([0-9a-f]{2}:){5}[0-9a-f]{2}$';
const IFNAME = '^[^/\\s]{1,15}$';
const PHASES = ['Pending', 'Applying', 'Ready', 'Failed', 'Deleting'];

/** One direction of a link: the egress of one end (topology `Impairment`, units in the names). */
export const IMPAIRMENT_SCHEMA: Schema = obj(
  {
    delayUs: nonNeg(),
    jitterUs: nonNeg(),
    jitterDistribution: { type: 'string', enum: [...JITTER_DISTRIBUTIONS] },
    jitterCorrelationPct: pct(),
    lossPct: pct(),
    lossCorrelationPct: pct(),
    lossGilbertElliott: obj({ pPct: pct(), rPct: pct(), oneMinusHPct: pct(), oneMinusKPct: pct() }, ['pPct', 'rPct', 'oneMinusHPct', 'oneMinusKPct']),
    duplicatePct: pct(),
    corruptPct: pct(),
    reorderPct: pct(),
    reorderGap: int(1),
    rateBitsPerSec: nonNeg(),
    queuePackets: int(1),
    queueBytes: int(1),
    // Every model field but the trace followers' (TypeScript asks for a new one here).
  } satisfies Record<Exclude<keyof Impairment, (typeof FOLLOWER_FIELDS)[number]>, Schema>,
  [],
  'impairment on traffic leaving this end (netem/htb semantics; absent keys: not impaired)',
);

const ENV = arr(obj({ name: str(), value: str() }, ['name', 'value']));
const ARGV = arr(str());

const STATUS: Schema = obj({
  phase: { type: 'string', enum: PHASES },
  message: str(),
  observedGeneration: int(0),
});

export const LAB_NODE_SCHEMA: Schema = obj(
  {
    apiVersion: str(),
    kind: str(),
    metadata: { type: 'object' },
    spec: obj(
      {
        lab: str('the lab this node belongs to'),
        node: str('the node key (compiler naming.ts)'),
        kind: { type: 'string', enum: ['router', 'switch', 'hub'] },
        k8sNode: str('the Kubernetes node whose agent builds this node'),
        namespace: { type: 'string', pattern: '^dune\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$', description: 'network namespace name (/run/netns)' },
        loopback: obj({ v4: { type: 'string', pattern: IP }, v6: { type: 'string', pattern: IP } }, [], "the node's own addresses, without prefix length"),
        addresses: arr(obj({ dev: { type: 'string', pattern: IFNAME }, cidr: { type: 'string', pattern: CIDR } }, ['dev', 'cidr']), 'every address of the node, per interface (lo included)'),
        cores: arr(int(0), 'CPU cores the node was given'),
        sysctls: arr(obj({ key: str(), value: str() }, ['key', 'value'])),
        routes: arr(
          obj(
            {
              dev: { type: 'string', pattern: IFNAME },
              via: { type: 'string', pattern: IP },
              src: { type: 'string', pattern: IP },
              metric: int(0),
              to: arr({ type: 'string', pattern: `${CIDR}|^default$` }),
            },
            ['dev', 'to'],
          ),
          'the routing table grouped by next hop: every prefix in `to` goes out `dev` via `via`',
        ),
        bridge: obj({ name: { type: 'string', pattern: IFNAME }, ageingTimeCs: int(0), ports: arr({ type: 'string', pattern: IFNAME }) }, ['name', 'ports'], 'the bridge of a switch or hub'),
        files: arr(obj({ path: { type: 'string', pattern: '^/' }, mode: int(0, 0o7777), contentBase64: str() }, ['path', 'mode', 'contentBase64'])),
        exec: arr(obj({ argv: ARGV, env: ENV }, ['argv']), 'one-shot commands, in order, after the network is up'),
        processes: arr(
          obj(
            { name: str(), argv: ARGV, env: ENV, cpus: arr(int(0)), postUp: arr(ARGV), preDown: arr(ARGV), down: ARGV },
            ['name', 'argv'],
          ),
        ),
      },
      ['lab', 'node', 'kind', 'k8sNode', 'namespace'],
    ),
    status: STATUS,
  },
  ['spec'],
);

const LINK_END: Schema = obj(
  {
    node: str(),
    k8sNode: str(),
    namespace: str(),
    interface: { type: 'string', pattern: IFNAME },
    addresses: arr({ type: 'string', pattern: CIDR }),
    mac: { type: 'string', pattern: MAC },
    impairment: IMPAIRMENT_SCHEMA,
  },
  ['node', 'k8sNode', 'namespace', 'interface'],
);

export const LAB_LINK_SCHEMA: Schema = obj(
  {
    apiVersion: str(),
    kind: str(),
    metadata: { type: 'object' },
    spec: obj(
      {
        lab: str(),
        index: int(0, undefined, "the link's index in the topology file"),
        kind: { type: 'string', enum: ['veth', 'vxlan'], description: 'veth when both ends are on one Kubernetes node, vxlan otherwise' },
        mtu: int(68, 65535),
        vni: int(1, 16777215, 'the compiled VNI; the one in use is status.vni'),
        vxlanPort: int(1, 65535),
        a: LINK_END,
        b: LINK_END,
      },
      ['lab', 'index', 'kind', 'a', 'b'],
    ),
    status: obj({ ...STATUS.properties, vni: int(1, 16777215, 'the VNI allocated at up') }),
  },
  ['spec'],
);

function crd(kind: string, plural: string, shortName: string, schema: Schema, columns: { name: string; type: string; jsonPath: string }[]): K8sObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${K8S_GROUP}`, labels: { 'app.kubernetes.io/part-of': 'dune' } },
    spec: {
      group: K8S_GROUP,
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), shortNames: [shortName], categories: ['dune'] },
      // Cluster-scoped: namespace and interface names are per host, so a lab name is
      // per cluster; two Kubernetes namespaces cannot both hold a lab "x".
      scope: 'Cluster',
      versions: [
        {
          name: K8S_VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: schema },
          subresources: { status: {} },
          additionalPrinterColumns: [...columns, { name: 'Phase', type: 'string', jsonPath: '.status.phase' }],
        },
      ],
    },
  };
}

export function labNodeCrd(): K8sObject {
  return crd('LabNode', 'labnodes', 'lnode', LAB_NODE_SCHEMA, [
    { name: 'Lab', type: 'string', jsonPath: '.spec.lab' },
    { name: 'Node', type: 'string', jsonPath: '.spec.node' },
    { name: 'K8s-Node', type: 'string', jsonPath: '.spec.k8sNode' },
  ]);
}

export function labLinkCrd(): K8sObject {
  return crd('LabLink', 'lablinks', 'llink', LAB_LINK_SCHEMA, [
    { name: 'Lab', type: 'string', jsonPath: '.spec.lab' },
    { name: 'A', type: 'string', jsonPath: '.spec.a.node' },
    { name: 'B', type: 'string', jsonPath: '.spec.b.node' },
    { name: 'Kind', type: 'string', jsonPath: '.spec.kind' },
    { name: 'VNI', type: 'integer', jsonPath: '.status.vni' },
  ]);
}

// ---------------------------------------------------------------------------------------
// The agent: DaemonSet and RBAC
// ---------------------------------------------------------------------------------------

export interface ManifestOptions {
  /** Kubernetes namespace of the agent (default `dune-system`). */
  namespace?: string;
  /** Container image holding `dune-agent` (default DEFAULT_AGENT_IMAGE). */
  image?: string;
}

/** Capabilities the agent uses (docs/kubernetes.md); listed although the container is privileged. */
export const AGENT_CAPABILITIES = ['SYS_ADMIN', 'NET_ADMIN', 'NET_RAW', 'SYS_PTRACE', 'KILL', 'SYS_NICE'] as const;

/** Host paths the agent mounts, and how (the table of docs/kubernetes.md). */
export const AGENT_MOUNTS = [
  { name: 'netns', path: '/run/netns', hostType: 'DirectoryOrCreate', propagation: 'Bidirectional', readOnly: false },
  { name: 'dune-run', path: '/run/dune', hostType: 'DirectoryOrCreate', propagation: undefined, readOnly: false },
  { name: 'modules', path: '/lib/modules', hostType: 'Directory', propagation: undefined, readOnly: true },
] as const;

const AGENT = 'dune-agent';
const PART_OF = { 'app.kubernetes.io/part-of': 'dune' };

export function agentManifests(opts: ManifestOptions = {}): K8sObject[] {
  const namespace = opts.namespace ?? DEFAULT_K8S_NAMESPACE;
  const image = opts.image ?? DEFAULT_AGENT_IMAGE;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) || namespace.length > 63) {
    throw new DuneError('bad-k8s-namespace', `"${namespace}" is not a Kubernetes namespace name`, { hint: 'lowercase letters, digits and "-", at most 63 characters, e.g. dune-system' });
  }
  if (image.length === 0 || /\s/.test(image)) {
    throw new DuneError('bad-image', `"${image}" is not a container image reference`, { hint: 'e.g. registry.example/dune-agent:0.1.0' });
  }
  const labels = { 'app.kubernetes.io/name': AGENT, ...PART_OF };
  const out: K8sObject[] = [];
  if (namespace !== 'kube-system' && namespace !== 'default') {
    out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { ...PART_OF } } });
  }
  // CRDs before anything that names them; the DaemonSet last, once its account exists.
  out.push(labNodeCrd(), labLinkCrd());
  out.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: AGENT, namespace, labels } });
  out.push({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: AGENT, labels },
    rules: [
      // Watch its objects; remove its finalizer when it has torn an object down.
      { apiGroups: [K8S_GROUP], resources: ['labnodes', 'lablinks'], verbs: ['get', 'list', 'watch', 'update', 'patch'] },
      { apiGroups: [K8S_GROUP], resources: ['labnodes/status', 'lablinks/status'], verbs: ['get', 'update', 'patch'] },
      { apiGroups: [K8S_GROUP], resources: ['labnodes/finalizers', 'lablinks/finalizers'], verbs: ['update'] },
      // VXLAN endpoints are the nodes' InternalIP.
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
    ],
  });
  out.push({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: AGENT, labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: AGENT },
    subjects: [{ kind: 'ServiceAccount', name: AGENT, namespace }],
  });
  out.push({
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: AGENT, namespace, labels },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': AGENT } },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: AGENT,
          hostNetwork: true,
          hostPID: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          // A lab may be placed on any node, control plane included.
          tolerations: [{ operator: 'Exists' }],
          containers: [
            {
              name: AGENT,
              image,
              command: ['dune-agent', 'watch'],
              env: [{ name: 'DUNE_K8S_NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
              securityContext: { privileged: true, capabilities: { add: [...AGENT_CAPABILITIES] } },
              volumeMounts: AGENT_MOUNTS.map((m) => ({
                name: m.name,
                mountPath: m.path,
                ...(m.readOnly ? { readOnly: true } : {}),
                ...(m.propagation !== undefined ? { mountPropagation: m.propagation } : {}),
              })),
            },
          ],
          volumes: AGENT_MOUNTS.map((m) => ({ name: m.name, hostPath: { path: m.path, type: m.hostType } })),
        },
      },
    },
  });
  return out;
}

// ---------------------------------------------------------------------------------------
// A lab as LabNode and LabLink objects
// ---------------------------------------------------------------------------------------

export interface LabResourceOptions {
  /** Phynode name → Kubernetes node name. Absent entries: the phynode's own name. */
  nodeMap?: Record<string, string>;
}

export interface LabResources {
  nodes: K8sObject[];
  links: K8sObject[];
  /** The largest object's JSON size in bytes, and its name. */
  largest: { name: string; bytes: number };
}

interface NodeSpec {
  lab: string;
  node: string;
  kind: 'router' | 'switch' | 'hub';
  k8sNode: string;
  namespace: string;
  loopback?: { v4?: string; v6?: string };
  addresses: { dev: string; cidr: string }[];
  cores: number[];
  sysctls: { key: string; value: string }[];
  routes: { dev: string; via?: string; src?: string; metric?: number; to: string[] }[];
  bridge?: { name: string; ageingTimeCs?: number; ports: string[] };
  files: { path: string; mode: number; contentBase64: string }[];
  exec: { argv: string[]; env?: { name: string; value: string }[] }[];
  processes: Record<string, unknown>[];
}

const envList = (env: Record<string, string>): { name: string; value: string }[] => Object.keys(env).map((name) => ({ name, value: env[name] as string }));

function unsupported(op: Op, why: string): DuneError {
  return new DuneError('k8s-unsupported', `the plan holds an operation the Kubernetes resources cannot carry: ${why} (${JSON.stringify(op).slice(0, 200)})`, {
    hint: 'build this lab over SSH (`dune up`); LabNode/LabLink carry routers, switches and hubs with their links, addresses, routes, files and processes',
  });
}

/**
 * The LabNode and LabLink objects of a compiled lab. Every op of the plan ends up in
 * exactly one object (`up` ops are implied: every interface is up) or the call fails with
 * `k8s-unsupported`, so the agents can rebuild the same ops from the objects.
 */
export function labResources(plan: Plan, opts: LabResourceOptions = {}): LabResources {
  const k8sNodeOf = (phynode: string): string => opts.nodeMap?.[phynode] ?? phynode;
  const lab = plan.lab;
  const labels = { [LAB_LABEL]: labLabel(lab) };
  const byNs = new Map<string, NodeSpec>();
  for (const n of plan.nodes) {
    // An L2 node (switch, hub) has no loopback address: the plan gives it none or "".
    const loopback = { ...(n.v4 ? { v4: n.v4 } : {}), ...(n.v6 ? { v6: n.v6 } : {}) };
    byNs.set(n.ns, {
      lab,
      node: n.node,
      kind: 'router',
      k8sNode: k8sNodeOf(n.phynode),
      namespace: n.ns,
      ...(Object.keys(loopback).length > 0 ? { loopback } : {}),
      addresses: [],
      cores: [...n.cpus],
      sysctls: [],
      routes: [],
      files: [],
      exec: [],
      processes: [],
    });
  }
  const byNode = new Map([...byNs.values()].map((s) => [s.node, s]));
  // Per (ns, dev): the link end's addresses, MAC, MTU and impairment.
  const ends = new Map<string, { addresses: string[]; mac?: string; mtu?: number; vni?: number; port?: number; impairment?: Impairment }>();
  const end = (ns: string, dev: string) => {
    const k = `${ns}\0${dev}`;
    let e = ends.get(k);
    if (e === undefined) ends.set(k, (e = { addresses: [] }));
    return e;
  };
  const impairByLink = new Map<string, Impairment>();
  const routeGroups = new Map<NodeSpec, Map<string, NodeSpec['routes'][number]>>();

  for (const h of plan.hosts) {
    for (const op of h.ops) {
      if (op.op === 'file') {
        const f = op as FileOp;
        const spec = byNode.get(f.node);
        if (spec === undefined) throw unsupported(op, f.node === '' ? "a phynode's own bind file" : `a file for unknown node "${f.node}"`);
        spec.files.push({ path: f.path, mode: f.mode, contentBase64: fileContentBase64(plan, f) });
        continue;
      }
      const spec = op.ns === null ? undefined : byNs.get(op.ns);
      if (spec === undefined) throw unsupported(op, `namespace ${String(op.ns)} is no node's`);
      switch (op.op) {
        case 'netns':
        case 'up':
        case 'enslave':
          if (op.op === 'enslave') {
            if (spec.bridge === undefined || spec.bridge.name !== op.master) throw unsupported(op, 'a port of a bridge not created before it');
            spec.bridge.ports.push(op.dev);
          }
          break;
        case 'veth': {
          const v = op as VethOp;
          const a = end(v.ns, v.name);
          const b = end(v.peerNs, v.peerName);
          if (v.mac !== undefined) a.mac = v.mac;
          if (v.peerMac !== undefined) b.mac = v.peerMac;
          if (v.mtu !== undefined) a.mtu = b.mtu = v.mtu;
          break;
        }
        case 'vxlan': {
          const v = op as VxlanOp;
          const e = end(v.ns, v.name);
          if (v.mac !== undefined) e.mac = v.mac;
          e.mtu = v.mtu;
          e.vni = v.vniRequest ?? v.vni;
          e.port = v.port;
          break;
        }
        case 'bridge': {
          const b = op as BridgeOp;
          if (spec.bridge !== undefined) throw unsupported(op, 'a second bridge in one node');
          spec.kind = b.ageingTimeCs === 0 ? 'hub' : 'switch';
          spec.bridge = { name: b.name, ...(b.ageingTimeCs !== undefined ? { ageingTimeCs: b.ageingTimeCs } : {}), ports: [] };
          break;
        }
        case 'addr': {
          const a = op as AddrOp;
          spec.addresses.push({ dev: a.dev, cidr: a.cidr });
          end(a.ns, a.dev).addresses.push(a.cidr);
          break;
        }
        case 'route':
        case 'routes': {
          for (const r of op.op === 'routes' ? expandRoutes(op) : [op as RouteOp]) {
            const key = `${r.dev}\0${r.via ?? ''}\0${r.src ?? ''}\0${r.metric ?? ''}`;
            let groups = routeGroups.get(spec);
            if (groups === undefined) routeGroups.set(spec, (groups = new Map()));
            let g = groups.get(key);
            if (g === undefined) {
              g = { dev: r.dev, ...(r.via !== undefined ? { via: r.via } : {}), ...(r.src !== undefined ? { src: r.src } : {}), ...(r.metric !== undefined ? { metric: r.metric } : {}), to: [] };
              groups.set(key, g);
              spec.routes.push(g);
            }
            g.to.push(r.dst);
          }
          break;
        }
        case 'sysctl': {
          const s = op as SysctlOp;
          spec.sysctls.push({ key: s.key, value: s.value });
          break;
        }
        case 'impair': {
          const i = op as ImpairOp;
          impairByLink.set(i.link, i.impairment);
          break;
        }
        case 'exec': {
          const x = op as ExecOp;
          spec.exec.push({ argv: x.argv, ...(x.env !== undefined ? { env: envList(x.env) } : {}) });
          break;
        }
        case 'process': {
          const p = op as ProcessOp;
          spec.processes.push({
            name: p.name,
            argv: p.argv,
            env: envList(p.env),
            cpus: p.cpus,
            postUp: p.postUp,
            preDown: p.preDown,
            ...(p.down !== undefined ? { down: p.down } : {}),
          });
          break;
        }
        default:
          throw unsupported(op, `op "${(op as Op).op}"`);
      }
    }
  }

  const nodes: K8sObject[] = [...byNs.values()].map((spec) => ({
    apiVersion: K8S_API_VERSION,
    kind: 'LabNode',
    metadata: { name: labNodeName(lab, spec.node), labels },
    spec: dropEmpty(spec),
  }));

  const links: K8sObject[] = plan.links.map((l) => {
    const ea = end(l.a.ns, l.a.dev);
    const eb = end(l.b.ns, l.b.dev);
    const side = (s: typeof l.a, e: typeof ea, dir: 'a' | 'b') => {
      const imp = impairByLink.get(`${l.index}:${dir}`);
      return {
        node: s.node,
        k8sNode: k8sNodeOf(s.phynode),
        namespace: s.ns,
        interface: s.dev,
        ...(e.addresses.length > 0 ? { addresses: e.addresses } : {}),
        ...(e.mac !== undefined ? { mac: e.mac } : {}),
        ...(imp !== undefined && Object.keys(imp).length > 0 ? { impairment: pickImpairment(imp) } : {}),
      };
    };
    if (l.kind === 'vxlan' && k8sNodeOf(l.a.phynode) === k8sNodeOf(l.b.phynode)) {
      throw new DuneError('k8s-node-shared', `link #${l.index} (${l.a.node} – ${l.b.node}) joins phynodes ${l.a.phynode} and ${l.b.phynode} over VXLAN, but both are placed on Kubernetes node ${k8sNodeOf(l.a.phynode)}`, {
        hint: 'map each phynode to its own Kubernetes node with --k8s-node, or put both nodes on one phynode in the topology',
      });
    }
    const mtu = ea.mtu ?? eb.mtu;
    const vni = l.vni ?? ea.vni ?? eb.vni;
    const port = ea.port ?? eb.port;
    return {
      apiVersion: K8S_API_VERSION,
      kind: 'LabLink',
      metadata: { name: labLinkName(lab, l.index), labels },
      spec: {
        lab,
        index: l.index,
        kind: l.kind,
        ...(mtu !== undefined ? { mtu } : {}),
        ...(l.kind === 'vxlan' && vni !== undefined ? { vni } : {}),
        ...(l.kind === 'vxlan' && port !== undefined ? { vxlanPort: port } : {}),
        a: side(l.a, ea, 'a'),
        b: side(l.b, eb, 'b'),
      },
    };
  });

  let largest = { name: '', bytes: 0 };
  const seen = new Set<string>();
  for (const o of [...nodes, ...links]) {
    if (seen.has(o.metadata.name)) {
      throw new DuneError('k8s-name-clash', `two objects of lab "${lab}" would both be named ${o.metadata.name}`, { hint: 'rename one of the nodes: resource names are lowercase' });
    }
    seen.add(o.metadata.name);
    const bytes = Buffer.byteLength(JSON.stringify(o));
    if (bytes > largest.bytes) largest = { name: o.metadata.name, bytes };
  }
  if (largest.bytes > OBJECT_BUDGET_BYTES) {
    throw new DuneError(
      'k8s-object-too-large',
      `${largest.name} is ${(largest.bytes / 1024).toFixed(0)} KiB of JSON; one object may hold at most ${OBJECT_BUDGET_BYTES / 1024} KiB (etcd refuses requests over ${ETCD_REQUEST_LIMIT_BYTES / 1024} KiB)`,
      { hint: 'a node this large holds big template files or a very long process list: move file contents out of the topology (binds on the hosts)' },
    );
  }
  return { nodes, links, largest };
}

function pickImpairment(imp: Impairment): Impairment {
  const out: Record<string, unknown> = {};
  for (const k of IMPAIRMENT_KEYS) if (imp[k] !== undefined) out[k] = imp[k];
  return out as Impairment;
}

/** Without empty lists, so objects stay small and `kubectl get -o yaml` readable. */
function dropEmpty(spec: NodeSpec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec)) {
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    out[k] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------------------

/** One YAML document. */
export function objectYaml(o: K8sObject): string {
  // lineWidth 0: never fold long strings (base64 file contents, argv).
  return stringify(o, { lineWidth: 0, aliasDuplicateObjects: false });
}

/** A multi-document YAML stream, `kubectl apply -f -` ready. */
export function toYaml(objects: readonly K8sObject[]): string {
  return objects.map(objectYaml).join('---\n');
}

/** A file name for an object: `<kind>-<name>.yaml`, lowercase. */
export function objectFileName(o: K8sObject): string {
  return `${o.kind.toLowerCase()}-${o.metadata.name}.yaml`;
}
