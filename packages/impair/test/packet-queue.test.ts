/**
 * packet_queue as a drop-in: its command names run ours, and a client script written for
 * its REST API (test/fixtures/packet_queue_client.py: PUT/GET/DELETE /pipes, GET /events)
 * runs unchanged against them, through the UDP proxy and (as root) through NFQUEUE.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { echoServer } from './helpers.js';

const BIN = (name: string) => fileURLToPath(new URL(`../dist/bin/${name}.js`, import.meta.url));
const CLIENT = fileURLToPath(new URL('./fixtures/packet_queue_client.py', import.meta.url));
const NAMES = ['impaired_network_server', 'impaired_network_shell', 'impaired_network_clear_iptables', 'impaired_network_clear_ip_tables'];
const built = NAMES.every((n) => existsSync(BIN(n)));
const python = spawnSync('python3', ['--version']).status === 0;
const isRoot = process.getuid?.() === 0;
const skip = !built ? ' (skipped: run `npm run build` first)' : !python ? ' (skipped: python3 is absent)' : '';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGTERM');
});

function start(argv: string[]): { child: ChildProcess; waitFor: (re: RegExp) => Promise<RegExpExecArray>; output: () => string; exit: Promise<number | null> } {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const waitFor = async (re: RegExp) => {
    for (let i = 0; i < 400; i++) {
      const m = re.exec(out);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`timed out waiting for ${re} in: ${out}`);
  };
  return { child, waitFor, output: () => out, exit };
}

async function runClient(argv: string[]): Promise<{ code: number | null; out: string }> {
  const c = start(argv);
  const code = await c.exit;
  return { code, out: c.output() };
}

describe.skipIf(skip !== '')(`packet_queue's commands and API${skip}`, () => {
  it('its four command names are declared bins, beside ours', () => {
    const bins = (JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as { bin: Record<string, string> }).bin;
    for (const n of [...NAMES, 'impaired-network-server', 'impaired-network-shell', 'impaired-network-clear-iptables']) expect(bins[n]).toBeDefined();
    expect(execFileSync(process.execPath, [BIN('impaired_network_clear_ip_tables'), '--help'], { encoding: 'utf8' })).toContain('Usage: impaired_network_clear_ip_tables');
  });

  it('its client script runs unchanged against the proxy (-l user)', async () => {
    const echo = await echoServer();
    try {
      const s = start([process.execPath, BIN('impaired_network_server'), '-l', 'user', '-t', 'udp', '-p', String(echo.port), '-x', '0', '-a', '0']);
      const api = (await s.waitFor(/Packet Queue is running\. Configure at (http:\/\/localhost:\d+)/))[1]!;
      const proxyPort = (/through a proxy on port (\d+)/.exec(s.output()) ?? [])[1]!;
      const r = await runClient(['python3', CLIENT, api, proxyPort]);
      expect(r.out).toMatch(/\nOK\n$/);
      expect(r.code).toBe(0);
      s.child.kill('SIGINT');
      expect(await s.exit).toBe(0);
    } finally {
      await echo.close();
    }
  }, 30_000);

  it('our command keeps our bodies: per direction, and unknown keys warned about, or refused with --strict', async () => {
    const s = start([process.execPath, BIN('impaired-network-server'), '-l', 'user', '-t', 'udp', '-p', '9', '-x', '0', '-a', '0', '--strict']);
    const api = (await s.waitFor(/Configure at (http:\/\/\S+?)\/? /))[1]!.replace(/\/$/, '');
    expect(await (await fetch(`${api}/pipes`)).json()).toEqual({ up: {}, down: {}, notes: [] });
    const strict = await fetch(`${api}/pipes`, { method: 'PUT', body: JSON.stringify({ delay: 0.01, colour: 1 }) });
    expect(strict.status).toBe(400);
    const lax = await fetch(`${api}/pipes?strict=0`, { method: 'PUT', body: JSON.stringify({ delay: 0.01, colour: 1 }) });
    expect(lax.status).toBe(200);
    expect(lax.headers.get('warning')).toMatch(/^299 impaired-network "colour: unknown key \\"colour\\" ignored/);
    expect(((await lax.json()) as { up: unknown }).up).toEqual({ delayUs: 10_000 });
    const pq = await (await fetch(`${api}/events?form=packet_queue`)).json();
    expect(pq).toEqual({ now: expect.any(Number), events: [] });
  }, 30_000);

  describe.skipIf(!isRoot)('through NFQUEUE (root, in a namespace)', () => {
    const ns = `dunetest-impair-pq${process.pid}`;
    afterAll(() => {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // not created
      }
    });

    it('its client script runs unchanged against the kernel level, and clear_iptables finds nothing left', async () => {
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const inNs = (...argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];
      const echoPort = 7411;
      const echo = start(inNs('python3', '-c', [
        'import socket', 's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)', `s.bind(("127.0.0.1", ${echoPort}))`, 'print("ready", flush=True)',
        'while True:', '  d, a = s.recvfrom(4096)', '  s.sendto(d, a)',
      ].join('\n')));
      await echo.waitFor(/ready/);
      const s = start(inNs(process.execPath, BIN('impaired_network_server'), '-t', 'udp', '-p', String(echoPort), '-a', '9000'));
      const api = (await s.waitFor(/Packet Queue is running\. Configure at (http:\/\/localhost:\d+)/))[1]!;
      const r = await runClient(inNs('python3', CLIENT, api, String(echoPort)));
      expect(r.out).toMatch(/\nOK\n$/);
      expect(r.code).toBe(0);
      s.child.kill('SIGTERM');
      expect(await s.exit).toBe(0);
      echo.child.kill('SIGTERM');
      const out = execFileSync(process.execPath, [BIN('impaired_network_clear_iptables'), '--netns', ns], { encoding: 'utf8' });
      expect(out).toContain('impaired_network_clear_iptables: 0 rules removed');
    }, 30_000);
  });
});
