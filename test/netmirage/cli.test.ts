/** netmirage-core and netmirage-edge front ends: flags, setup files, precedence. No root needed. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appAddresses, coreMain, edgeOps, edgePlan, parseEdgeNode, parseIni, validateEdgeArgs, EDGE_DEFAULTS, type Io } from '@dune/netmirage';
import { DuneError } from '@dune/topology';
import type { Op, Plan } from '@dune/compiler';

const root = new URL('../../', import.meta.url).pathname;
const twelve = `${root}test/netmirage/twelve.graphml`;

function capture(): Io & { stdout: string; stderr: string } {
  const c = { stdout: '', stderr: '' } as Io & { stdout: string; stderr: string };
  c.out = (t) => (c.stdout += t.endsWith('\n') ? t : `${t}\n`);
  c.write = (t) => (c.stdout += t);
  c.err = (t) => (c.stderr += t.endsWith('\n') ? t : `${t}\n`);
  return c;
}

async function core(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = capture();
  const code = await coreMain(args, io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function setup(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nm-setup-'));
  made.push(dir);
  const f = join(dir, 'setup.cfg');
  writeFileSync(f, text);
  return f;
}

/** A dry run's edge commands: on standard error, beside the summary (standard output is the plan). */
const edgeLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('netmirage-edge'));

describe('netmirage-core flags and setup file', () => {
  it('parses -e edge specs and rejects unknown settings', () => {
    expect(parseEdgeNode('192.0.2.1,iface=eth1,mac=02:00:00:00:00:01,vsubnet=10.1.0.0/16,rdev=em1,rapps=8')).toEqual({
      ip: '192.0.2.1', iface: 'eth1', mac: '02:00:00:00:00:01', vsubnet: '10.1.0.0/16', rdev: 'em1', rapps: '8',
    });
    expect(() => parseEdgeNode('192.0.2.1,ifac=eth1')).toThrow(DuneError);
  });

  it('reads INI groups, comments and escapes', () => {
    const ini = parseIni('# c\n[emulator]\niface = eth1\n\n[edge1]\nip=192.0.2.1\n; also a comment\n[edge2]\nip=192.0.2.2\nrdev=a\\sb\n', 'x.cfg');
    expect(ini.groups.map((g) => [g.name, Object.fromEntries([...g.values].map(([k, v]) => [k, v.value]))])).toEqual([
      ['emulator', { iface: 'eth1' }],
      ['edge1', { ip: '192.0.2.1' }],
      ['edge2', { ip: '192.0.2.2', rdev: 'a b' }],
    ]);
    expect(() => parseIni('iface=eth1\n', 'x.cfg')).toThrow(/comes before any \[group\]/);
  });

  it('takes edges and options from the setup file, the command line winning', async () => {
    const f = setup('[emulator]\niface=nic9\nnetns-prefix=fromfile-\nclient-node=client\nrouting-ip=192.0.2.254\n[edge1]\nip=192.0.2.1\nrdev=em1\nrapps=4\n[node2]\nip=192.0.2.2\nvsubnet=10.200.0.0/16\n');
    const a = await core(['--dry-run', '-s', f, '-f', twelve]);
    expect(a.code).toBe(0);
    expect(a.stderr).toContain('namespaces: fromfile-<node>');
    expect((JSON.parse(a.stdout) as Plan).nsPrefix).toBe('fromfile-');
    expect(edgeLines(a.stderr)).toEqual([
      'netmirage-edge -e 10.200.0.0/16 -c 6 em1 192.0.2.254 10.0.0.0/9 4',
      'netmirage-edge -e 10.0.0.0/9 -c 6 <iface> 192.0.2.254 10.200.0.0/16 <applications>',
    ]);
    const b = await core(['--dry-run', '-s', f, '-f', twelve, '-p', 'cli-', '-e', '192.0.2.9', '-I', '192.0.2.1']);
    expect(b.code).toBe(0);
    expect(b.stderr).toContain('namespaces: cli-<node>');
    expect(edgeLines(b.stderr)).toEqual(['netmirage-edge -c 12 <iface> 192.0.2.1 10.0.0.0/8 <applications>']);
  });

  it('says what is wrong with a setup file, and a missing one given explicitly', async () => {
    const bad = await core(['--dry-run', '-s', setup('[emulator]\nifase=eth1\n'), '-f', twelve]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unknown option "ifase"[\s\S]*did you mean `iface`/);
    const missing = await core(['--dry-run', '-s', '/nonexistent/setup.cfg', '-f', twelve]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('error[setup-missing]');
  });

  it('validates the prefix and the choices', async () => {
    const p = await core(['--dry-run', '-p', 'a/b', '-i', 'x', '-e', '192.0.2.1', '-f', twelve]);
    expect(p.code).toBe(1);
    expect(p.stderr).toContain('may only contain 0-9 A-Z a-z _ -');
    const u = await core(['--dry-run', '-u', 'furlongs', '-f', twelve]);
    expect(u.code).not.toBe(0);
    expect(u.stderr).toContain('Allowed choices are shadow, KiB, modelnet, Kb');
  });

  it('applies --units to node bandwidths', async () => {
    const kib = await core(['--dry-run', '-i', 'x', '-e', '192.0.2.1', '--client-node', 'client', '-f', twelve]);
    const kb = await core(['--dry-run', '-i', 'x', '-e', '192.0.2.1', '--client-node', 'client', '-u', 'Kb', '-f', twelve]);
    expect(kib.stderr).toContain('rate 102.4mbit ×23, 10.24mbit ×1');
    expect(kb.stderr).toContain('rate 12.5mbit ×23, 1.25mbit ×1');
    const rates = (stdout: string) => (JSON.parse(stdout) as Plan).hosts[0]?.ops.flatMap((o) => (o.op === 'impair' && o.impairment.rateBitsPerSec !== undefined ? [o.impairment.rateBitsPerSec] : []));
    expect(new Set(rates(kib.stdout))).toEqual(new Set([12500 * 8192, 1250 * 8192]));
  });

  it('needs no -2: edges before nodes give the same plan with or without it, from a file or standard input', async () => {
    const text = readFileSync(twelve, 'utf8');
    const edgesFirst = text.replace(/((?:\s*<node [^\n]*\n)+)((?:\s*<edge [^\n]*\n)+)/, '$2$1');
    expect(edgesFirst.indexOf('<edge ')).toBeLessThan(edgesFirst.indexOf('<node '));
    const f = join(mkdtempSync(join(tmpdir(), 'nm-2-')), 'edges-first.graphml');
    made.push(dirname(f));
    writeFileSync(f, edgesFirst);
    const args = ['--dry-run', '-q', '-i', 'x', '-e', '192.0.2.1', '--client-node', 'client'];
    const plain = await core([...args, '-f', twelve]);
    const without = await core([...args, '-f', f]);
    const withTwoPass = await core([...args, '-2', '-f', f]);
    expect(without.code).toBe(0);
    // The plans differ only in the source file's name and hash.
    const body = (s: string) => {
      const { source: _source, ...rest } = JSON.parse(s) as Plan;
      return rest;
    };
    expect(body(without.stdout)).toEqual(body(plain.stdout));
    expect(body(withTwoPass.stdout)).toEqual(body(plain.stdout));
  });

  it('--dry-run with --switch ovs prints the Open vSwitch as an op of the plan, with --ovs-dir and --ovs-schema', async () => {
    const r = await core(['--dry-run', '-q', '-i', 'x', '-e', '192.0.2.1,mac=02:00:00:00:00:09', '--client-node', 'client', '--switch', 'ovs', '--ovs-dir', '/tmp/nm-cli-ovs', '--ovs-schema', '/x/vswitch.ovsschema', '-f', twelve]);
    expect(r.code).toBe(0);
    const ops = (JSON.parse(r.stdout) as Plan).hosts[0]?.ops ?? [];
    const sw = ops.filter((o) => o.op === 'ovs');
    expect(sw.map((o) => (o.op === 'ovs' ? `${o.ns} ${o.dir} ${o.schema} ${o.bridge} ${o.datapath}` : ''))).toEqual(['nm-root /tmp/nm-cli-ovs /x/vswitch.ovsschema netmirage-br0 netdev']);
    const op = sw[0];
    if (op?.op !== 'ovs') throw new Error('no ovs op');
    // Twelve clients on one edge: the NIC, then node-<i>/self-<i>; the given MAC in the edge's flow, nothing to learn.
    expect(op.ports).toHaveLength(1 + 2 * 12);
    expect(op.learn).toEqual([]);
    expect(op.flows.filter((f) => f.includes('mod_dl_dst:02:00:00:00:00:09,output:1'))).toHaveLength(1);
  });

  it('accepts the flags NetMirage has and this one does not need', async () => {
    const r = await core(['--dry-run', '-2', '-m', '4096', '-k', '-q', '-i', 'x', '-e', '192.0.2.1', '-f', twelve]);
    expect(r.code).toBe(0);
    expect(edgeLines(r.stderr)).toEqual([]);
  });
});

describe('netmirage-edge addresses and arguments', () => {
  it('allocates sequentially, or round-robin over the clients\' subnets', () => {
    expect(appAddresses('10.0.0.0/24', 3)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(appAddresses('10.0.0.0/9', 7, 6)).toEqual(['10.0.0.1', '10.16.0.1', '10.32.0.1', '10.48.0.1', '10.64.0.1', '10.80.0.1', '10.0.0.2']);
    expect(appAddresses('10.0.0.0/28', 'max')).toHaveLength(14);
    expect(() => appAddresses('10.0.0.0/28', 15)).toThrow(/room for 14/);
    expect(() => appAddresses('10.0.0.0/8', 'max')).toThrow(/more than 65536/);
  });

  it('checks in < out < other and the table id', () => {
    const a = { iface: 'eth1', coreIp: '192.0.2.1', vsubnet: '10.0.0.0/9', applications: 4, otherEdges: [], ...EDGE_DEFAULTS };
    expect(() => validateEdgeArgs(a)).not.toThrow();
    expect(() => validateEdgeArgs({ ...a, ruleOut: 20 })).toThrow(/in < out < other/);
    expect(() => validateEdgeArgs({ ...a, tableId: 254 })).toThrow(/not a free routing table/);
    expect(() => validateEdgeArgs({ ...a, vsubnet: '10.0.0.1' })).toThrow(/not an IPv4 subnet/);
  });

  it('is a small plan in the host namespace: addresses, withdrawn route, table routes, local rule moved (new one first), in and out rules', () => {
    const a = { iface: 'eth1', coreIp: '192.0.2.1', vsubnet: '10.0.0.0/9', applications: 2, otherEdges: ['10.128.0.0/9'], ...EDGE_DEFAULTS };
    const vsRoute = { family: 'inet' as const, table: 254, dst: '10.0.0.0/9', type: 1, scope: 253, protocol: 2 };
    const ops = edgeOps(a, appAddresses(a.vsubnet, 2), { vsubnetRoutes: [vsRoute], local0: { family: 'inet', priority: 0, table: 255, action: 'table' }, localOther: false });
    const line = (o: Op) => {
      if (o.op === 'addr') return `addr ${o.cidr} ${o.dev}${o.noPrefixRoute ? ' noprefixroute' : ''}`;
      if (o.op === 'route') return `route ${o.dst} via ${o.via} table ${o.table}`;
      if (o.op === 'rule') return `rule ${o.priority} ${o.dst ?? ''} ${o.iif ?? ''} lookup ${o.table}`;
      if (o.op === 'withdraw') return o.rule ? `withdraw rule ${o.rule.priority} lookup ${o.rule.table}` : `withdraw route ${o.route?.dst} dev ${o.route?.dev}`;
      return o.op;
    };
    expect(ops.every((o) => 'ns' in o && o.ns === '')).toBe(true);
    expect(ops.map(line)).toEqual([
      'addr 10.0.0.1/9 eth1 noprefixroute',
      'addr 10.0.0.2/9 eth1 noprefixroute',
      'withdraw route 10.0.0.0/9 dev eth1',
      'route 10.0.0.0/9 via 192.0.2.1 table 128',
      'route 10.128.0.0/9 via 192.0.2.1 table 128',
      'rule 15   lookup 255',
      'withdraw rule 0 lookup 255',
      'rule 5 10.0.0.0/9 eth1 lookup 255',
      'rule 10   lookup 128',
    ]);
    const plan = edgePlan('netmirage-edge-eth1', ops);
    expect(plan.hosts.map((h) => h.ops.length)).toEqual([ops.length]);
    expect(plan.nodes).toEqual([]);
    // A `lookup local` already at OTHER is not added twice; no local rule at 0, nothing moved.
    expect(edgeOps(a, [], { vsubnetRoutes: [], local0: { family: 'inet', priority: 0, table: 255, action: 'table' }, localOther: true }).map(line).filter((l) => l.includes('lookup 255'))).toEqual(['withdraw rule 0 lookup 255', 'rule 5 10.0.0.0/9 eth1 lookup 255']);
    expect(edgeOps(a, [], { vsubnetRoutes: [], localOther: false }).map(line).filter((l) => l.includes('lookup 255'))).toEqual(['rule 5 10.0.0.0/9 eth1 lookup 255']);
  });
});
