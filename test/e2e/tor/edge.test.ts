/**
 * `dune tor init --ip-file`: the Tor network as NetMirage's users ran it on an edge, every
 * process on one machine bound to the virtual addresses `netmirage-edge --ip-file` listed.
 * The "edge" here is one lab node holding those addresses, so nothing touches the host:
 * start.sh runs in it, the network bootstraps, a client fetches web through an exit, no
 * socket uses an address outside the ip file, and stop.sh stops exactly what it started.
 *
 * Root and the kernel lock: flock /tmp/dune-kernel.lock npx vitest run test/e2e/tor
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downAndCheck, duneOk, isRoot, pidAlive, removeTemp, requireBuilt, ROOT_REASON, tempDir } from '../helpers.js';

const LAB = 'toredge';
const has = (cmd: string) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd]).status === 0;
const SKIP = !isRoot ? ROOT_REASON : !has('tor') || !has('tor-gencert') ? 'skipped: Debian\'s tor is not installed (scripts/setup installs it)' : !has('curl') ? 'skipped: curl is not installed (scripts/setup installs it)' : '';
const IPS = Array.from({ length: 10 }, (_, i) => `10.77.0.${i + 10}`);

interface Net {
  dir: string;
  nodes: { name: string; role: string; addr: string }[];
  web: { url: string; addr: string; root: string };
}

describe.skipIf(SKIP !== '')(`tor network on NetMirage edge addresses ${SKIP}`, () => {
  let dir = '';
  let net: Net;
  const pids: number[] = [];

  beforeAll(async () => {
    requireBuilt();
    dir = tempDir('tor-edge');
    writeFileSync(join(dir, 'ips.txt'), `${IPS.join('\n')}\n`);
    await duneOk(['tor', 'init', '-o', join(dir, 'net'), '--ip-file', join(dir, 'ips.txt'), '--authorities', '3', '--relays', '3', '--exits', '1', '--clients', '1'], { timeoutMs: 120_000 });
    net = JSON.parse(readFileSync(join(dir, 'net', 'network.json'), 'utf8')) as Net;
    // The edge: a node with the virtual addresses (what netmirage-edge adds to its NIC), linked to a core.
    writeFileSync(join(dir, 'edge.toml'), [
      '[topology]', `lab = "${LAB}"`, 'links = [{ endpoints = ["core", "edge"] }]',
      '[topology.nodes.core]', '[topology.nodes.edge]', `addrs.lo = [${IPS.map((a) => `"${a}/32"`).join(', ')}]`, '',
    ].join('\n'));
    await duneOk(['up', join(dir, 'edge.toml')], { timeoutMs: 120_000 });
  }, 300_000);

  afterAll(async () => {
    const left = await downAndCheck(LAB);
    if (dir) removeTemp(dir);
    expect(left).toEqual([]);
    expect(pids.filter(pidAlive)).toEqual([]);
  }, 120_000);

  it('start.sh starts every tor and web on the edge; the client bootstraps', async () => {
    const r = await duneOk(['exec', '--lab', LAB, 'edge', '--', join(net.dir, 'start.sh')]);
    expect(r.stdout).toContain(`started ${net.nodes.length} tor processes and web`);
    for (const n of [...net.nodes.map((x) => x.name), 'web']) pids.push(Number(readFileSync(join(net.dir, 'nodes', n, 'pid'), 'utf8')));
    expect(pids.filter(pidAlive)).toHaveLength(net.nodes.length + 1);
    const w = await duneOk(['tor', 'wait', '--dir', net.dir, '--timeout', '240'], { timeoutMs: 260_000 });
    expect(w.stdout).toMatch(/bootstrapped: client0 in/);
  }, 280_000);

  it('client0 fetches web through an exit, over its virtual SOCKS address', async () => {
    const client = net.nodes.find((n) => n.role === 'client');
    const page = readFileSync(join(net.web.root, 'index.html'), 'utf8');
    let body = '';
    const errors: string[] = [];
    for (let i = 0; i < 6 && body !== page; i++) {
      const r = spawnSync('ip', ['netns', 'exec', `dune.${LAB}.edge`, 'curl', '-sS', '-m', '30', '--socks5-hostname', `${client?.addr}:9050`, net.web.url], { encoding: 'utf8', timeout: 45_000 });
      body = r.stdout ?? '';
      if (body !== page) {
        errors.push(`try ${i + 1}: ${r.status} ${r.stderr}`);
        await new Promise((res) => setTimeout(res, 5000));
      }
    }
    expect(body, errors.join('\n')).toBe(page);
    const exits = net.nodes.filter((n) => n.role === 'exit').map((n) => n.addr);
    const webLog = readFileSync(join(net.dir, 'web', 'server.log'), 'utf8');
    const from = [...webLog.matchAll(/^(\S+) - - \[[^\]]*\] "GET \/ HTTP/gm)].map((m) => m[1]);
    expect(exits).toContain(from[from.length - 1]);
  }, 300_000);

  it('no tor or web socket is on an address outside the ip file', () => {
    // ss: every TCP socket in the edge, listening or connected, with its process.
    const ss = spawnSync('ip', ['netns', 'exec', `dune.${LAB}.edge`, 'ss', '-Htanp'], { encoding: 'utf8' });
    expect(ss.status).toBe(0);
    const ours = ss.stdout.split('\n').filter((l) => /users:\(\("(tor|python[\d.]*)"/.test(l));
    expect(ours.length).toBeGreaterThan(net.nodes.length);
    const allowed = new Set(IPS);
    for (const l of ours) {
      const local = l.trim().split(/\s+/)[3] ?? '';
      expect(allowed.has(local.replace(/:\d+$/, '')), l).toBe(true);
    }
  });

  it('stop.sh stops exactly what start.sh started', async () => {
    await duneOk(['exec', '--lab', LAB, 'edge', '--', join(net.dir, 'stop.sh')]);
    const deadline = Date.now() + 15_000;
    while (pids.some(pidAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(pids.filter(pidAlive)).toEqual([]);
  }, 30_000);
});
