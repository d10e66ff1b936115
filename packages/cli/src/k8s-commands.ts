/**
 * `dune k8s`: the Kubernetes manifests of the agent, and a lab as LabNode/LabLink custom
 * resources (docs/kubernetes.md). Parsing and printing only; the objects are @dune/lab's
 * (k8s.ts). Nothing here talks to a cluster: the output is for `kubectl apply`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { DuneError } from '@dune/topology';
import {
  agentManifests,
  compileLoaded,
  DEFAULT_AGENT_IMAGE,
  DEFAULT_K8S_NAMESPACE,
  ETCD_REQUEST_LIMIT_BYTES,
  labResources,
  loadTopology,
  objectFileName,
  toYaml,
  type K8sObject,
} from '@dune/lab';
import { printDiagnostics, type Output } from './output.js';
import { addReaderOptions, readerOptions, type ReaderFlags } from './reader-options.js';

function writeDir(dir: string, files: { name: string; objects: K8sObject[] }[]): void {
  try {
    mkdirSync(dir, { recursive: true });
    for (const f of files) writeFileSync(join(dir, f.name), toYaml(f.objects));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new DuneError('output-unwritable', `cannot write into ${dir}: ${code}`, { hint: 'choose a directory you can write to with -o' });
  }
}

/** The manifests, as files ordered for `kubectl apply -f DIR` (it applies them by name). */
function manifestFiles(objects: K8sObject[]): { name: string; objects: K8sObject[] }[] {
  const of = (pred: (o: K8sObject) => boolean) => objects.filter(pred);
  const files = [
    { name: '00-namespace.yaml', objects: of((o) => o.kind === 'Namespace') },
    { name: '01-crd-labnodes.yaml', objects: of((o) => o.kind === 'CustomResourceDefinition' && o.metadata.name.startsWith('labnodes.')) },
    { name: '02-crd-lablinks.yaml', objects: of((o) => o.kind === 'CustomResourceDefinition' && o.metadata.name.startsWith('lablinks.')) },
    { name: '03-rbac.yaml', objects: of((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) },
    { name: '04-daemonset.yaml', objects: of((o) => o.kind === 'DaemonSet') },
  ];
  return files.filter((f) => f.objects.length > 0);
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function nodeMap(pairs: string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const p of pairs) {
    const m = /^([^=]+)=([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(p);
    if (m === null) {
      throw new DuneError('bad-k8s-node', `--k8s-node ${p} is not PHYNODE=NODE`, { hint: 'e.g. --k8s-node ph1=worker-1 (a Kubernetes node name: lowercase letters, digits, "-" and ".")' });
    }
    map[m[1] as string] = m[2] as string;
  }
  return map;
}

export function registerK8sCommands(program: Command, o: Output): void {
  const k8s = program
    .command('k8s')
    .description('Kubernetes: the agent as a DaemonSet, a lab as LabNode/LabLink custom resources (docs/kubernetes.md)');

  k8s
    .command('manifests')
    .description('write the agent DaemonSet, its ServiceAccount and RBAC, and the LabNode/LabLink CRDs as YAML')
    .option('-o, --output <dir>', 'write one file per part into this directory (default: one YAML stream on stdout)')
    .option('--namespace <ns>', 'Kubernetes namespace of the agent', DEFAULT_K8S_NAMESPACE)
    .option('--image <image>', 'container image holding dune-agent', DEFAULT_AGENT_IMAGE)
    .addHelpText('after', '\nExamples:\n  dune k8s manifests | kubectl apply -f -\n  dune k8s manifests -o deploy/ --image registry.example/dune-agent:0.1.0')
    .action((flags: { output?: string; namespace: string; image: string }) => {
      const objects = agentManifests({ namespace: flags.namespace, image: flags.image });
      if (flags.output === undefined) {
        o.write(toYaml(objects));
        return;
      }
      const files = manifestFiles(objects);
      writeDir(flags.output, files);
      o.err(`wrote ${objects.length} objects in ${files.length} files to ${flags.output}: ${files.map((f) => f.name).join(', ')}`);
    });

  addReaderOptions(
    k8s
      .command('lab')
      .description('turn a topology into its LabNode and LabLink custom resources (one per node, one per link)')
      .argument('<file>', 'topology file (.toml or .graphml)')
      .option('-o, --output <dir>', 'write one file per object into this directory (default: one YAML stream on stdout)')
      .option('--k8s-node <phynode=node>', 'place the nodes of a phynode on this Kubernetes node (repeatable; default: the phynode name)', collect, [])
      .addHelpText('after', '\nExamples:\n  dune k8s lab line5.toml --k8s-node local=worker-1 | kubectl apply --server-side -f -\n  dune k8s lab Abilene.graphml -o abilene/'),
  ).action((file: string, flags: ReaderFlags & { output?: string; k8sNode: string[] }) => {
    const loaded = loadTopology(file, readerOptions(flags));
    const { plan, diagnostics } = compileLoaded(loaded, flags.lab);
    printDiagnostics(o, diagnostics);
    const r = labResources(plan, { nodeMap: nodeMap(flags.k8sNode) });
    const objects = [...r.nodes, ...r.links];
    if (flags.output === undefined) {
      o.write(toYaml(objects));
      return;
    }
    writeDir(
      flags.output,
      objects.map((x) => ({ name: objectFileName(x), objects: [x] })),
    );
    o.err(
      `wrote ${r.nodes.length} LabNode and ${r.links.length} LabLink objects of lab ${plan.lab} to ${flags.output}; ` +
        `the largest, ${r.largest.name}, is ${(r.largest.bytes / 1024).toFixed(1)} KiB of JSON (etcd's limit: ${ETCD_REQUEST_LIMIT_BYTES / 1024} KiB)`,
    );
  });
}
