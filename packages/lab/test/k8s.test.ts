/**
 * The Kubernetes manifests and a lab's LabNode/LabLink objects (k8s.ts). Pure: no cluster,
 * no kernel objects. The objects are checked against the CRDs' own schemas with a small
 * validator (openapi-subset.ts), after a round trip through the YAML they are written as.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { countRoutes, type Plan } from '@dune/compiler';
import {
  agentManifests,
  compileLoaded,
  DuneError,
  ETCD_REQUEST_LIMIT_BYTES,
  isDns1123Subdomain,
  k8sNamePart,
  LAB_LABEL,
  labResources,
  loadTopology,
  OBJECT_BUDGET_BYTES,
  toYaml,
  type K8sObject,
} from '../src/index.js';
import { structuralProblems, validate } from './openapi-subset.js';

const repo = (p: string): string => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
const LINE5 = repo('test/e2e/reach/line5.toml');
const ABILENE = repo('topologies/zoo/Abilene.graphml');
const HUB = repo('test/e2e/switch/hub.toml');

const planOf = (file: string): Plan => compileLoaded(loadTopology(file)).plan;
const roundTrip = (objs: readonly K8sObject[]): K8sObject[] =>
  parseAllDocuments(toYaml(objs)).map((d) => {
    expect(d.errors).toEqual([]);
    return d.toJS() as K8sObject;
  });

type S = Record<string, unknown>;
const manifests = roundTrip(agentManifests());
const crdSchema = (kind: string): S => {
  const crd = manifests.find((o) => o.kind === 'CustomResourceDefinition' && (o['spec'] as { names: { kind: string } }).names.kind === kind);
  if (crd === undefined) throw new Error(`no CRD for ${kind}`);
  return (crd['spec'] as { versions: { schema: { openAPIV3Schema: S } }[] }).versions[0]!.schema.openAPIV3Schema;
};
const schemaFor = (o: K8sObject): S => crdSchema(o.kind);

function checkLab(objs: K8sObject[]): void {
  for (const o of objs) {
    expect(validate(o, schemaFor(o)), o.metadata.name).toEqual([]);
    expect(isDns1123Subdomain(o.metadata.name), o.metadata.name).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(o))).toBeLessThan(OBJECT_BUDGET_BYTES);
  }
}

/** Everything the plan asks for, counted from the ops, and from the objects. */
function opCounts(plan: Plan): Record<string, number> {
  const c: Record<string, number> = {};
  // A `routes` op (a route table) counts as the routes it holds.
  for (const h of plan.hosts) for (const op of h.ops) c[op.op === 'routes' ? 'route' : op.op] = (c[op.op === 'routes' ? 'route' : op.op] ?? 0) + (op.op === 'routes' ? countRoutes(op) : 1);
  return c;
}

describe('dune k8s manifests', () => {
  it('gives every object an apiVersion, a kind and a name', () => {
    expect(manifests.map((o) => o.kind)).toEqual(['Namespace', 'CustomResourceDefinition', 'CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'DaemonSet']);
    for (const o of manifests) {
      expect(typeof o.apiVersion).toBe('string');
      expect(o.apiVersion.length).toBeGreaterThan(0);
      expect(typeof o.kind).toBe('string');
      expect(isDns1123Subdomain(o.metadata.name), o.metadata.name).toBe(true);
    }
  });

  it('writes CRDs whose schemas are structural, closed everywhere but metadata', () => {
    for (const kind of ['LabNode', 'LabLink']) {
      const s = crdSchema(kind);
      expect(structuralProblems(s, new Set(['metadata'])), kind).toEqual([]);
      expect(JSON.stringify(s)).not.toContain('x-kubernetes-preserve-unknown-fields');
      expect((s['properties'] as S)['spec']).toBeDefined();
      expect((s['properties'] as S)['status']).toBeDefined();
    }
    const crd = manifests.find((o) => o.metadata.name === 'lablinks.dune.dev')!;
    const spec = crd['spec'] as { group: string; scope: string; versions: { subresources: unknown; served: boolean; storage: boolean }[] };
    expect(spec.group).toBe('dune.dev');
    expect(spec.scope).toBe('Cluster');
    expect(spec.versions[0]!.subresources).toEqual({ status: {} });
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
  });

  it('finds what the structural check is for: untyped nodes, stray keywords, open objects', () => {
    const bad = { type: 'object', properties: { a: { description: 'no type' }, b: { type: 'array' }, c: { type: 'object' }, d: { type: 'string', 'x-kubernetes-preserve-unknown-fields': true } }, required: ['z'] };
    const p = structuralProblems(bad, new Set());
    expect(p).toEqual(
      expect.arrayContaining([
        'a: no valid type',
        'b: array without items',
        'c: object without properties',
        'd: keyword "x-kubernetes-preserve-unknown-fields"',
        '<root>: required "z" is not a property',
      ]),
    );
  });

  it('runs the agent with host network and PID, privileged, with the documented mounts', () => {
    const ds = manifests.find((o) => o.kind === 'DaemonSet')!;
    const pod = (ds['spec'] as { template: { spec: Record<string, unknown> } }).template.spec as {
      hostNetwork: boolean;
      hostPID: boolean;
      serviceAccountName: string;
      containers: { securityContext: { privileged: boolean; capabilities: { add: string[] } }; volumeMounts: { name: string; mountPath: string; mountPropagation?: string; readOnly?: boolean }[]; image: string }[];
      volumes: { name: string; hostPath: { path: string; type: string } }[];
    };
    expect(pod.hostNetwork).toBe(true);
    expect(pod.hostPID).toBe(true);
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0]!;
    expect(c.securityContext.privileged).toBe(true);
    expect(c.securityContext.capabilities.add).toEqual(expect.arrayContaining(['SYS_ADMIN', 'NET_ADMIN', 'NET_RAW', 'SYS_PTRACE', 'KILL', 'SYS_NICE']));
    const mount = (path: string) => c.volumeMounts.find((m) => m.mountPath === path);
    const volume = (name: string) => pod.volumes.find((v) => v.name === name)!.hostPath;
    expect(mount('/run/netns')?.mountPropagation).toBe('Bidirectional');
    expect(volume(mount('/run/netns')!.name)).toEqual({ path: '/run/netns', type: 'DirectoryOrCreate' });
    expect(mount('/run/dune')).toBeDefined();
    expect(mount('/run/dune')?.mountPropagation).toBeUndefined();
    expect(volume(mount('/run/dune')!.name)).toEqual({ path: '/run/dune', type: 'DirectoryOrCreate' });
    expect(mount('/lib/modules')?.readOnly).toBe(true);
    expect(volume(mount('/lib/modules')!.name).path).toBe('/lib/modules');
    // Bidirectional propagation only where the doc asks for it.
    expect(c.volumeMounts.filter((m) => m.mountPropagation === 'Bidirectional').map((m) => m.mountPath)).toEqual(['/run/netns']);
    // The pod runs as the account the binding grants the role to.
    const sa = manifests.find((o) => o.kind === 'ServiceAccount')!;
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
    const binding = manifests.find((o) => o.kind === 'ClusterRoleBinding')!;
    expect(binding['subjects']).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    const role = manifests.find((o) => o.kind === 'ClusterRole')!;
    expect((binding['roleRef'] as { name: string }).name).toBe(role.metadata.name);
    const rules = role['rules'] as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    const can = (group: string, resource: string, verb: string) => rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    expect(can('dune.dev', 'labnodes', 'watch') && can('dune.dev', 'lablinks', 'watch')).toBe(true);
    expect(can('dune.dev', 'labnodes/status', 'patch') && can('dune.dev', 'lablinks/status', 'patch')).toBe(true);
    expect(can('', 'nodes', 'list')).toBe(true);
    expect(can('dune.dev', 'labnodes', 'delete')).toBe(false);
  });

  it('takes the namespace and the image, and refuses ones Kubernetes would', () => {
    const objs = agentManifests({ namespace: 'kube-system', image: 'registry.example/dune-agent:1' });
    expect(objs.some((o) => o.kind === 'Namespace')).toBe(false);
    expect(objs.filter((o) => o.metadata.namespace !== undefined).every((o) => o.metadata.namespace === 'kube-system')).toBe(true);
    expect(JSON.stringify(objs)).toContain('"image":"registry.example/dune-agent:1"');
    expect(() => agentManifests({ namespace: 'Dune_System' })).toThrow(DuneError);
    expect(() => agentManifests({ image: 'a b' })).toThrow(/container image/);
  });
});

describe('dune k8s lab', () => {
  it('makes line5 one LabNode per node and one LabLink per link, valid against the CRDs', () => {
    const plan = planOf(LINE5);
    const r = labResources(plan);
    expect(r.nodes).toHaveLength(5);
    expect(r.links).toHaveLength(4);
    const objs = roundTrip([...r.nodes, ...r.links]);
    checkLab(objs);
    expect(objs.map((o) => o.metadata.name)).toEqual(['line5.n1', 'line5.n2', 'line5.n3', 'line5.n4', 'line5.n5', 'line5.link-0', 'line5.link-1', 'line5.link-2', 'line5.link-3']);
    for (const o of objs) expect(o.metadata.labels?.[LAB_LABEL]).toBe('line5');
    // Nothing of the plan is lost: every address, route and sysctl op is in some LabNode.
    const c = opCounts(plan);
    const specs = objs.filter((o) => o.kind === 'LabNode').map((o) => o['spec'] as { addresses: unknown[]; sysctls: unknown[]; routes: { dev: string; via: string; to: string[] }[] });
    expect(specs.reduce((n, s) => n + s.addresses.length, 0)).toBe(c['addr']);
    expect(specs.reduce((n, s) => n + s.sysctls.length, 0)).toBe(c['sysctl']);
    expect(specs.reduce((n, s) => n + s.routes.reduce((m, g) => m + g.to.length, 0), 0)).toBe(c['route']);
    // n1 reaches everything through n2: one group per family.
    const n1 = specs[0]!;
    expect(n1.routes.map((g) => [g.dev, g.via, g.to.length])).toEqual([
      ['eth0', '10.128.0.1', 4],
      ['eth0', 'fd7a:de00::1', 4],
    ]);
    const l0 = objs.find((o) => o.metadata.name === 'line5.link-0')!['spec'] as { kind: string; a: { node: string; interface: string; addresses: string[] }; b: { node: string } };
    expect(l0.kind).toBe('veth');
    expect([l0.a.node, l0.a.interface, l0.b.node]).toEqual(['n1', 'eth0', 'n2']);
    expect(l0.a.addresses).toEqual(['10.128.0.0/31', 'fd7a:de00::/127']);
  });

  it('carries Abilene with its per-direction delays and folds its name for Kubernetes', () => {
    const plan = planOf(ABILENE);
    const r = labResources(plan, { nodeMap: { local: 'worker-1' } });
    expect(r.nodes).toHaveLength(plan.nodes.length);
    expect(r.links).toHaveLength(plan.links.length);
    const objs = roundTrip([...r.nodes, ...r.links]);
    checkLab(objs);
    // The label keeps the lab's own name; resource names are lowercase, so the lab part folds.
    expect(objs[0]!.metadata.labels?.[LAB_LABEL]).toBe('Abilene');
    expect(objs[0]!.metadata.name).toMatch(/^abilene-[0-9a-f]{6}\.0$/);
    // Node "0" stays the string "0" through YAML.
    expect((objs[0]!['spec'] as { node: unknown }).node).toBe('0');
    expect(objs.every((o) => JSON.stringify(o).includes('"k8sNode":"worker-1"'))).toBe(true);
    const impaired = objs.filter((o) => o.kind === 'LabLink').flatMap((o) => {
      const s = o['spec'] as { a: { impairment?: { delayUs: number } }; b: { impairment?: { delayUs: number } } };
      return [s.a.impairment, s.b.impairment].filter((x) => x !== undefined);
    });
    expect(impaired).toHaveLength(opCounts(plan)['impair'] ?? -1);
    expect(impaired.every((i) => i.delayUs > 0)).toBe(true);
    expect(r.largest.bytes).toBeLessThan(ETCD_REQUEST_LIMIT_BYTES / 100);
  });

  it('gives a hub its bridge and ports, with no addresses on them', () => {
    const objs = roundTrip((({ nodes, links }) => [...nodes, ...links])(labResources(planOf(HUB))));
    checkLab(objs);
    const hub = objs.find((o) => o.metadata.name === 'hub.hub')!['spec'] as { kind: string; bridge: { ageingTimeCs: number; ports: string[] }; routes?: unknown };
    expect(hub.kind).toBe('hub');
    expect(hub.bridge.ageingTimeCs).toBe(0);
    expect(hub.bridge.ports).toHaveLength(4);
    expect(hub.routes).toBeUndefined();
  });

  describe('across two Kubernetes nodes, with files, commands, processes and every impairment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dune-k8s-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'conf.tmpl'), 'router {{node}}\n');
    writeFileSync(
      join(dir, 'two.toml'),
      `[infrastructure.nodes.ph1]
host = "198.51.100.1"
underlay = "198.51.100.1"
cores = [[0, 1]]
[infrastructure.nodes.ph2]
host = "198.51.100.2"
underlay = "198.51.100.2"

[topology]
lab = "two_Hosts"
routing_weight = "hops"

[topology.nodes.a]
phynode = "ph1"
templates = { "./conf.tmpl" = "/etc/dune/{{node}}.conf" }
exec = ["echo up"]
[[topology.nodes.a.pinned]]
cmd = ["sleep", "1000"]
environ = { CORE = "{{core_0}}" }
post_up = ["echo started"]
[topology.nodes.b]
phynode = "ph2"

[[topology.links]]
endpoints = ["a:eth0", "b:eth0"]
latency = "10ms"
jitter = "1ms"
jitter_distribution = "normal"
loss_model = { p = "1%", r = "10%", one_minus_h = "90%" }
duplicate = "0.1%"
corrupt = "0.01%"
reorder = "5%"
reorder_gap = 5
bw = "100mbit"
queue = "100p"
mtu = 1400
`,
    );

    it('makes a VXLAN LabLink whose ends are on the mapped nodes, and keeps everything valid', () => {
      const plan = planOf(join(dir, 'two.toml'));
      const r = labResources(plan, { nodeMap: { ph1: 'worker-1', ph2: 'worker-2' } });
      const objs = roundTrip([...r.nodes, ...r.links]);
      checkLab(objs);
      expect(objs.map((o) => o.metadata.name)).toEqual([`${k8sNamePart('two_Hosts')}.a`, `${k8sNamePart('two_Hosts')}.b`, `${k8sNamePart('two_Hosts')}.link-0`]);
      const link = objs[2]!['spec'] as { kind: string; vni: number; vxlanPort: number; mtu: number; a: { k8sNode: string; impairment: Record<string, unknown> }; b: { k8sNode: string } };
      expect(link.kind).toBe('vxlan');
      expect(link.vni).toBeGreaterThan(0);
      expect(link.vxlanPort).toBe(4789);
      expect(link.mtu).toBe(1400);
      expect([link.a.k8sNode, link.b.k8sNode]).toEqual(['worker-1', 'worker-2']);
      expect(Object.keys(link.a.impairment).sort()).toEqual(
        ['corruptPct', 'delayUs', 'duplicatePct', 'jitterDistribution', 'jitterUs', 'lossGilbertElliott', 'queuePackets', 'rateBitsPerSec', 'reorderGap', 'reorderPct'].sort(),
      );
      const a = objs[0]!['spec'] as { k8sNode: string; files: { path: string; contentBase64: string }[]; exec: { argv: string[] }[]; processes: { argv: string[]; env: { name: string; value: string }[]; cpus: number[]; postUp: string[][] }[]; cores: number[] };
      expect(a.k8sNode).toBe('worker-1');
      // Besides the node's hosts file (every node has one: names resolve in nodes).
      expect(a.files.filter((f) => !f.path.startsWith('/etc/netns/')).map((f) => [f.path, Buffer.from(f.contentBase64, 'base64').toString()])).toEqual([['/etc/dune/a.conf', 'router a\n']]);
      expect(a.files.map((f) => f.path)).toContain('/etc/netns/dune.two_Hosts.a/hosts');
      // DUNE's command strings run through sh -c.
      expect(a.exec.map((x) => x.argv)).toEqual([['sh', '-c', 'echo up']]);
      expect(a.processes).toHaveLength(1);
      expect(a.processes[0]!.argv).toEqual(['sleep', '1000']);
      expect(a.processes[0]!.postUp).toEqual([['sh', '-c', 'echo started']]);
      expect(a.processes[0]!.env.find((e) => e.name === 'CORE')?.value).toBe(String(a.processes[0]!.cpus[0]));
    });

    it('refuses to put both ends of a VXLAN link on one Kubernetes node', () => {
      const plan = planOf(join(dir, 'two.toml'));
      expect(() => labResources(plan, { nodeMap: { ph1: 'worker-1', ph2: 'worker-1' } })).toThrow(expect.objectContaining({ code: 'k8s-node-shared' }));
    });
  });

  it('refuses an object etcd would refuse, naming it', () => {
    const plan = planOf(LINE5);
    plan.hosts[0]!.ops.push({ op: 'file', node: 'n3', path: '/big', contentBase64: 'A'.repeat(OBJECT_BUDGET_BYTES), mode: 0o644 });
    expect(() => labResources(plan)).toThrow(/line5\.n3 is 10\d\d KiB/);
    try {
      labResources(plan);
    } catch (e) {
      expect((e as DuneError).code).toBe('k8s-object-too-large');
    }
  });

  it('refuses ops it cannot carry instead of dropping them', () => {
    const plan = planOf(LINE5);
    plan.hosts[0]!.ops.push({ op: 'file', node: '', path: '/opt/tool', contentBase64: '', mode: 0o755 });
    expect(() => labResources(plan)).toThrow(expect.objectContaining({ code: 'k8s-unsupported' }));
  });

  it('catches objects that break the schema (the validator is not a rubber stamp)', () => {
    const [node] = roundTrip(labResources(planOf(LINE5)).nodes);
    const spec = node!['spec'] as Record<string, unknown>;
    const broken = (change: (s: Record<string, unknown>) => void): string[] => {
      const o = structuredClone(node!) as K8sObject;
      change(o['spec'] as Record<string, unknown>);
      return validate(o, schemaFor(o));
    };
    expect(spec['kind']).toBe('router');
    expect(broken((s) => (s['kind'] = 'firewall'))).toEqual([expect.stringContaining('is not one of')]);
    expect(broken((s) => delete s['k8sNode'])).toEqual(['spec: missing required "k8sNode"']);
    expect(broken((s) => (s['extra'] = 1))).toEqual(['spec: unknown field "extra"']);
    expect(broken((s) => (s['cores'] = [-1]))).toEqual(['spec.cores[0]: -1 < minimum 0']);
    expect(broken((s) => (s['cores'] = [1.5]))).toEqual(['spec.cores[0]: expected integer, got number']);
    expect(broken((s) => ((s['addresses'] as { cidr: string }[])[0]!.cidr = '10.0.0.1'))).toEqual([expect.stringContaining('does not match')]);
    expect(broken((s) => (s['routes'] = 'all'))).toEqual(['spec.routes: expected array, got string']);
  });

  it('folds names to DNS-1123 without merging two of them', () => {
    for (const s of ['Abilene', 'two_Hosts', '_x_', 'R1', 'r1', '0']) expect(isDns1123Subdomain(k8sNamePart(s)), s).toBe(true);
    expect(k8sNamePart('r1')).toBe('r1');
    expect(k8sNamePart('R1')).not.toBe(k8sNamePart('r1'));
    expect(k8sNamePart('a_b')).not.toBe(k8sNamePart('a-b'));
    expect(existsSync(ABILENE)).toBe(true);
  });
});
