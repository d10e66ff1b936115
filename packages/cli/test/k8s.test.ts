/** `dune k8s manifests` and `dune k8s lab`: what reaches stdout and the -o directory. No cluster, no kernel objects. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { main } from '../src/dune.js';
import { capture } from './helpers.js';

const root = new URL('../../../', import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), 'dune-k8s-cli-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const o = capture();
  const code = await main(argv, o);
  return { code, out: o.stdout, err: o.stderr };
}

const docs = (yaml: string) =>
  parseAllDocuments(yaml).map((d) => {
    expect(d.errors).toEqual([]);
    return d.toJS() as { kind: string; metadata: { name: string; namespace?: string } };
  });

describe('dune k8s manifests', () => {
  it('prints one YAML stream with the namespace, CRDs, RBAC and DaemonSet', async () => {
    const r = await run('k8s', 'manifests', '--namespace', 'labs', '--image', 'registry.example/dune-agent:2');
    expect(r.code, r.err).toBe(0);
    const objs = docs(r.out);
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'Namespace/labs',
      'CustomResourceDefinition/labnodes.dune.dev',
      'CustomResourceDefinition/lablinks.dune.dev',
      'ServiceAccount/dune-agent',
      'ClusterRole/dune-agent',
      'ClusterRoleBinding/dune-agent',
      'DaemonSet/dune-agent',
    ]);
    expect(r.out).toContain('image: registry.example/dune-agent:2');
  });

  it('writes files kubectl applies in a working order with -o', async () => {
    const dir = join(out, 'manifests');
    const r = await run('k8s', 'manifests', '-o', dir);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('');
    expect(readdirSync(dir).sort()).toEqual(['00-namespace.yaml', '01-crd-labnodes.yaml', '02-crd-lablinks.yaml', '03-rbac.yaml', '04-daemonset.yaml']);
    expect(docs(readFileSync(join(dir, '03-rbac.yaml'), 'utf8')).map((o) => o.kind)).toEqual(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding']);
    expect(r.err).toMatch(/wrote 7 objects in 5 files/);
  });

  it('refuses a namespace Kubernetes would refuse, with a hint', async () => {
    const r = await run('k8s', 'manifests', '--namespace', 'Not_Valid');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error\[bad-k8s-namespace\].*\n\s+hint: lowercase/);
    expect(r.out).toBe('');
  });
});

describe('dune k8s lab', () => {
  it('prints a LabNode per node and a LabLink per link', async () => {
    const r = await run('k8s', 'lab', join(root, 'test/e2e/reach/line5.toml'), '--k8s-node', 'local=worker-1');
    expect(r.code, r.err).toBe(0);
    const objs = docs(r.out);
    expect(objs.filter((o) => o.kind === 'LabNode')).toHaveLength(5);
    expect(objs.filter((o) => o.kind === 'LabLink')).toHaveLength(4);
    expect(r.out).toContain('k8sNode: worker-1');
    expect(r.out).not.toContain('k8sNode: local');
  });

  it('writes one file per object with -o and reports the largest', async () => {
    const dir = join(out, 'abilene');
    const r = await run('k8s', 'lab', join(root, 'topologies/zoo/Abilene.graphml'), '-o', dir, '--lab', 'abilene');
    expect(r.code, r.err).toBe(0);
    const files = readdirSync(dir);
    expect(files.filter((f) => f.startsWith('labnode-'))).toHaveLength(11);
    expect(files.filter((f) => f.startsWith('lablink-'))).toHaveLength(14);
    expect(files).toContain('labnode-abilene.0.yaml');
    expect(r.err).toMatch(/wrote 11 LabNode and 14 LabLink objects of lab abilene to .*; the largest, abilene\.\d+, is \d+\.\d KiB of JSON/);
  });

  it('refuses a malformed --k8s-node', async () => {
    const r = await run('k8s', 'lab', join(root, 'test/e2e/reach/line5.toml'), '--k8s-node', 'worker-1');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error\[bad-k8s-node\]: --k8s-node worker-1 is not PHYNODE=NODE/);
  });
});
