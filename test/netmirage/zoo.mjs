#!/usr/bin/env node
// Builds one GraphML file for real with netmirage-core (every node a client, one edge),
// pings between the applications of the first and the last client through the emulated
// network, then removes it all. As root; namespaces `nmzoo-*` stand for the hosts.
//
//   node test/netmirage/zoo.mjs topologies/zoo/Abilene.graphml [--without-delay] [--switch ovs]
//
// Prints one JSON object: node count, build and destroy times, the ping, failed checks.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = new URL('../../', import.meta.url).pathname;
const CORE_BIN = join(root, 'packages/netmirage/dist/bin/netmirage-core.js');
const EDGE_BIN = join(root, 'packages/netmirage/dist/bin/netmirage-edge.js');
const args = process.argv.slice(2);
const file = resolve(args[0] ?? '');
const sw = args.includes('--switch') ? args[args.indexOf('--switch') + 1] : 'linux';
const CORE = 'nmzoo-core';
const EDGE = 'nmzoo-e1';
const PREFIX = 'nmzoo-x-';
const work = mkdtempSync(join(tmpdir(), 'nm-zoo-'));
const result = { file: args[0], switch: sw, failures: [] };

const run = (argv, allowFail = false) => {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 1_800_000, maxBuffer: 64 << 20 });
  if (r.status !== 0 && !allowFail) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r;
};
const inNs = (ns, argv) => ['nsenter', `--net=/run/netns/${ns}`, '--', ...argv];
const check = (name, ok, detail) => ok || result.failures.push(`${name}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
const ours = () => run(['ip', 'netns', 'list']).stdout.split('\n').filter((l) => l.startsWith(PREFIX)).length;

let built = false;
try {
  for (const ns of [CORE, EDGE]) {
    run(['ip', 'netns', 'add', ns]);
    // No IPv6 link-local address appearing (a moment after carrier) between the snapshots.
    for (const k of ['all', 'default']) run(inNs(ns, ['sysctl', '-q', '-w', `net.ipv6.conf.${k}.disable_ipv6=1`]));
  }
  run(['ip', '-n', CORE, 'link', 'add', 'nic1', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', EDGE]);
  run(['ip', '-n', CORE, 'addr', 'add', '198.51.100.1/30', 'dev', 'nic1']);
  run(['ip', '-n', EDGE, 'addr', 'add', '198.51.100.2/30', 'dev', 'eth1']);
  for (const [ns, d] of [[CORE, 'lo'], [CORE, 'nic1'], [EDGE, 'lo'], [EDGE, 'eth1']]) run(['ip', '-n', ns, 'link', 'set', d, 'up']);
  const before = run(['ip', '-n', CORE, 'addr']).stdout.replace(/@if\d+| link-netns \S+|NO-CARRIER,| state \S+/g, '');

  const nodes = (readFileSync(file, 'utf8').match(/<node[\s>]/g) ?? []).length;
  result.nodes = nodes;
  const coreArgs = ['-p', PREFIX, '-f', file, '-e', `198.51.100.2,iface=nic1,rdev=eth1,rapps=${nodes}`, '--switch', sw, '--ovs-dir', join(work, 'ovs'), '-E', join(work, 'edges.txt')];
  if (args.includes('--without-delay')) coreArgs.push('--without-delay');
  let t = performance.now();
  const c = run(inNs(CORE, ['node', CORE_BIN, ...coreArgs]), true);
  built = true;
  result.buildMs = Math.round(performance.now() - t);
  check('netmirage-core builds', c.status === 0, c.stderr.slice(-2000));
  if (c.status !== 0) throw new Error('build failed');
  result.namespaces = ours();
  check('one namespace per node, plus root', result.namespaces === nodes + 1, result.namespaces);

  const line = readFileSync(join(work, 'edges.txt'), 'utf8').trim();
  const ipFile = join(work, 'ips.txt');
  // The line is this program's own output of safe tokens.
  const e = run(inNs(EDGE, ['node', EDGE_BIN, ...line.split(' ').slice(1), '-I', ipFile]), true);
  check('edge configured', e.status === 0, e.stderr);
  const ips = readFileSync(ipFile, 'utf8').trim().split('\n');
  // --settle S: wait before measuring (a userspace OVS datapath is still taking its ports).
  if (args.includes('--settle')) await new Promise((r) => setTimeout(r, 1000 * Number(args[args.indexOf('--settle') + 1])));
  const p = run(inNs(EDGE, ['ping', '-n', '-q', '-c', '3', '-i', '0.2', '-W', '3', '-I', ips[0], ips[ips.length - 1]]), true);
  result.ping = { src: ips[0], dst: ips[ips.length - 1], out: /rtt.*|100% packet loss/.exec(p.stdout)?.[0] };
  check('the first and the last client reach each other', p.status === 0, p.stdout);
  const r = run(inNs(EDGE, ['node', EDGE_BIN, '--remove', 'eth1']), true);
  check('edge --remove', r.status === 0, r.stderr);

  t = performance.now();
  const d = run(inNs(CORE, ['node', CORE_BIN, '-d', '-p', PREFIX, '--ovs-dir', join(work, 'ovs')]), true);
  built = false;
  result.destroyMs = Math.round(performance.now() - t);
  check('destroy', d.status === 0, d.stderr);
  check('nothing left with the prefix', ours() === 0, ours());
  const after = run(['ip', '-n', CORE, 'addr']).stdout.replace(/@if\d+| link-netns \S+|NO-CARRIER,| state \S+/g, '');
  check('the core host as before', after === before, { before, after });
} catch (err) {
  result.failures.push(`aborted: ${err.message}`);
} finally {
  if (built) run(inNs(CORE, ['node', CORE_BIN, '-d', '-p', PREFIX, '--ovs-dir', join(work, 'ovs')]), true);
  for (const ns of [CORE, EDGE]) run(['ip', 'netns', 'del', ns], true);
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exitCode = result.failures.length === 0 ? 0 : 1;
