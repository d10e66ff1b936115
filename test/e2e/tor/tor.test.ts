/**
 * A private Tor network on a lab, with real tor: 3 authorities, 8 relays (2 exits), 2
 * clients, web and an onion service. `dune tor init`, `dune up`, `dune tor wait`, then a
 * client fetches web's page through a 3-hop circuit and through the onion service, and
 * `dune down` leaves nothing.
 *
 * Root and the kernel lock: flock /tmp/dune-kernel.lock npx vitest run test/e2e/tor
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downAndCheck, duneOk, dune, isRoot, removeTemp, requireBuilt, ROOT_REASON, status, tempDir, REPO } from '../helpers.js';

const LAB = 'tore2e';
const has = (cmd: string) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd]).status === 0;
const SKIP = !isRoot ? ROOT_REASON : !has('tor') || !has('tor-gencert') ? 'skipped: Debian\'s tor is not installed (scripts/setup installs it)' : !has('curl') ? 'skipped: curl is not installed (scripts/setup installs it)' : '';
const CIRCUITS = join(REPO, 'test/e2e/tor/circuits.mjs');

interface Net {
  nodes: { name: string; role: string; addr: string; dataDir: string }[];
  web: { url: string; addr: string; root: string };
  onion?: { hostnameFile: string };
}

/** web's process log (where python's http.server writes one line per request), from `dune status --json`. */
async function webLogText(): Promise<string> {
  const s = await status(LAB);
  const web = s.processes.find((p) => p.node === 'web') as { log?: string } | undefined;
  return readFileSync(web?.log as string, 'utf8');
}

/** curl through client0's SocksPort; a Tor network keeps settling after bootstrap, so a few tries. */
async function fetchVia(client: string, url: string, tries: number): Promise<{ body: string; log: string[] }> {
  const log: string[] = [];
  for (let i = 0; i < tries; i++) {
    const r = await dune(['exec', '--lab', LAB, client, '--', 'curl', '-sS', '-m', '30', '--socks5-hostname', '127.0.0.1:9050', url], { timeoutMs: 45_000 });
    if (r.code === 0) return { body: r.stdout, log };
    log.push(`try ${i + 1}: exit ${r.code}: ${r.stderr.trim()}`);
    await new Promise((res) => setTimeout(res, 5000));
  }
  return { body: '', log };
}

describe.skipIf(SKIP !== '')(`tor network on a lab ${SKIP}`, () => {
  let dir = '';
  let net: Net;
  let onion = '';

  beforeAll(async () => {
    requireBuilt();
    dir = tempDir('tor');
    await duneOk(['tor', 'init', '-o', join(dir, 'net'), '--authorities', '3', '--relays', '8', '--exits', '2', '--clients', '2', '--onion', '--lab', LAB], { timeoutMs: 120_000 });
    net = JSON.parse(readFileSync(join(dir, 'net', 'network.json'), 'utf8')) as Net;
    await duneOk(['up', join(dir, 'net', 'tor.toml')], { timeoutMs: 120_000 });
  }, 300_000);

  afterAll(async () => {
    const left = await downAndCheck(LAB);
    if (dir) removeTemp(dir);
    expect(left).toEqual([]);
  }, 120_000);

  it('runs one tor per Tor node and web, all alive', async () => {
    const s = await status(LAB);
    const tors = s.processes.filter((p) => p.argv[0] === 'tor');
    expect(tors.map((p) => p.node).sort()).toEqual(net.nodes.map((n) => n.name).sort());
    expect(s.processes.filter((p) => !p.alive)).toEqual([]);
    expect(s.processes.find((p) => p.node === 'web')?.argv.slice(0, 3)).toEqual(['python3', '-m', 'http.server']);
  });

  it('dune tor wait --lab: every client bootstraps, and the onion address is printed', async () => {
    const r = await duneOk(['tor', 'wait', '--lab', LAB, '--timeout', '240'], { timeoutMs: 260_000 });
    expect(r.stdout).toMatch(/bootstrapped: client0, client1 in [\d.]+ s/);
    expect(r.stderr).toMatch(/client0: 100% \(done\): Done — ready/);
    const m = /onion service: http:\/\/([a-z2-7]{56}\.onion)\//.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    onion = m?.[1] as string;
    expect(readFileSync(net.onion?.hostnameFile as string, 'utf8').trim()).toBe(onion);
    // dune status shows it too.
    expect((await duneOk(['status', '--lab', LAB])).stdout).toContain(`onion service: http://${onion}/`);
  }, 280_000);

  it('client0 fetches web through an exit, over a 3-hop circuit', async () => {
    const page = readFileSync(join(net.web.root, 'index.html'), 'utf8');
    const r = await fetchVia('client0', net.web.url, 6);
    expect(r.body, r.log.join('\n')).toBe(page);

    // web saw the request come from an exit's address (exits bind OutboundBindAddress)...
    const webLog = await webLogText();
    const exits = net.nodes.filter((n) => n.role === 'exit');
    // (python's http.server listens on ::, so IPv4 peers show as ::ffff:a.b.c.d)
    const from = [...webLog.matchAll(/^(?:::ffff:)?(\S+) - - \[[^\]]*\] "GET \/ HTTP/gm)].map((m) => m[1]);
    expect(from.length).toBeGreaterThan(0);
    expect(exits.map((e) => e.addr)).toContain(from[from.length - 1]);

    // ...and client0's tor has a built general-purpose circuit of 3 relays ending at an exit.
    const c0 = net.nodes.find((n) => n.name === 'client0');
    const cr = await duneOk(['exec', '--lab', LAB, 'client0', '--', process.execPath, CIRCUITS, c0?.dataDir as string]);
    const circuits = JSON.parse(cr.stdout) as { status: string; purpose: string; hops: string[] }[];
    const general = circuits.filter((c) => c.status === 'BUILT' && c.purpose === 'GENERAL');
    expect(general.length, cr.stdout).toBeGreaterThan(0);
    // (one-hop directory tunnels are GENERAL too: look for the 3-hop exit circuit)
    expect(general.some((c) => c.hops.length === 3 && exits.some((e) => e.name === c.hops[2])), cr.stdout).toBe(true);
  }, 300_000);

  it('client1 fetches the same page through the onion service', async () => {
    expect(onion).not.toBe('');
    const page = readFileSync(join(net.web.root, 'index.html'), 'utf8');
    const r = await fetchVia('client1', `http://${onion}/`, 6);
    expect(r.body, r.log.join('\n')).toBe(page);
    // The onion service connects to web from its own address.
    const webLog = await webLogText();
    const onionNode = net.nodes.find((n) => n.role === 'onion');
    expect(webLog).toContain(`${onionNode?.addr} - - [`);
  }, 300_000);
});
