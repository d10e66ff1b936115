/**
 * The lab as a library, through its public package only (`@dune/lab`), on real namespaces:
 * every call of the API contract, nemu's Popen semantics, live changes, attach and
 * fromFile, errors located at the caller's line, and labs that a script leaves behind when
 * it ends in every way a script can end.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, TopologyError, type LabNode } from '@dune/lab';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(REPO, 'packages/cli/dist/bin/dune.js');
const LAB_DIST = join(REPO, 'packages/lab/dist/index.js');
const SCRIPT = fileURLToPath(new URL('./fixtures/script-lab.mjs', import.meta.url));
const THIS_FILE = fileURLToPath(import.meta.url);
const isRoot = process.getuid?.() === 0;
const built = existsSync(CLI) && existsSync(LAB_DIST);
const skip = !isRoot ? 'needs root (namespaces, veth, htb)' : !built ? 'needs `npm run build` (scripts import the built package)' : '';

function namespaces(lab: string): string[] {
  const out = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`dune.${lab}.`));
}

/** What of a lab is left: namespaces, journal, processes in no namespace any more are the kernel's. */
async function leftovers(lab: string, waitMs = 5000): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const left = [...namespaces(lab), ...(existsSync(`/run/dune/${lab}`) ? [`/run/dune/${lab}`] : [])];
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function dune(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function procStatus(pid: number, key: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${key}:`));
  return (line ?? '').split(/\s+/)[1] ?? '';
}

async function pingOk(from: LabNode, to: string): Promise<boolean> {
  const r = await from.run(['ping', '-c', '1', '-W', '1', to]);
  return r.code === 0;
}

describe.skipIf(skip !== '')(`@dune/lab on real namespaces ${skip}`, () => {
  beforeAll(() => {
    for (const l of ['apinemu', 'apilive', 'apifile', 'apiattach', 'apix11']) dune(['down', '--lab', l]);
  });

  describe("nemu's sample: three nodes, a switch, ping, iperf3 through a rate limit", () => {
    const lab = new Lab({ name: 'apinemu' });
    const a = lab.node('a');
    const b = lab.node('b');
    const r = lab.node('r');
    const s = lab.switch('s');
    const ar = lab.link(a, r, { latency: '2ms', bw: '10mbit' });
    lab.link(b, s);
    lab.link('r', s);

    beforeAll(async () => {
      await lab.up();
    }, 60_000);
    afterAll(async () => {
      await lab.down();
      expect(await leftovers('apinemu')).toEqual([]);
    });

    it('nodes have their own IPv4 and IPv6 addresses, as status reports them', async () => {
      const st = await lab.status();
      const byNode = Object.fromEntries(st.nodes.map((n) => [n.node, [n.v4, n.v6]]));
      expect([a.address(4), a.address(6)]).toEqual(byNode['a']);
      expect([b.address(4), b.address(6)]).toEqual(byNode['b']);
      expect(() => s.address(4)).toThrow(/no IPv4 address/);
      expect(st.phase).toBe('up');
    });

    it('run: ping over IPv4 and IPv6 through the router and the switch; { code, signal, stdout, stderr }', async () => {
      const r4 = await a.run(['ping', '-c', '3', '-i', '0.2', b.address(4)]);
      expect(r4.code).toBe(0);
      expect(r4.signal).toBeNull();
      expect(r4.stdout).toMatch(/3 packets transmitted, 3 received/);
      // 2 ms of latency on a's egress: the echo request waits for it.
      const avg = Number(/= [\d.]+\/([\d.]+)\//.exec(r4.stdout)?.[1]);
      expect(avg).toBeGreaterThanOrEqual(2);
      const r6 = await a.run(['ping', '-6', '-c', '1', b.address(6)]);
      expect(r6.code).toBe(0);
    });

    it('names resolve inside nodes: ping b from a, by the API and through `dune exec`', async () => {
      const byName = await a.run(['ping', '-4', '-c', '1', '-W', '2', 'b']);
      expect(byName.code, byName.stderr).toBe(0);
      expect(byName.stdout).toContain(`(${b.address(4)})`);
      const viaCli = dune(['exec', '--lab', 'apinemu', 'a', '--', 'getent', 'ahostsv4', 'r']);
      expect(viaCli.code, viaCli.err).toBe(0);
      expect(viaCli.out.split(/\s+/)).toContain(r.address(4));
    });

    it('spawn: iperf3 server as nobody with an empty environment in /, the client through 10 Mbit/s', async () => {
      const srv = await b.spawn(['iperf3', '-s', '-1'], { user: 'nobody', env: {}, cwd: '/' });
      expect(srv.pid).toBeGreaterThan(1);
      await new Promise((res) => setTimeout(res, 300));
      expect(procStatus(srv.pid, 'Uid')).toBe('65534');
      expect(readFileSync(`/proc/${srv.pid}/environ`, 'utf8')).toBe('');
      expect(readlinkSync(`/proc/${srv.pid}/cwd`)).toBe('/');
      // The process is in b's namespace, not ours.
      expect(readlinkSync(`/proc/${srv.pid}/ns/net`)).not.toBe(readlinkSync('/proc/self/ns/net'));
      const c = await a.run(['iperf3', '-c', b.address(4), '-t', '3', '-J'], { timeoutMs: 30_000 });
      expect(c.code).toBe(0);
      const mbps = (JSON.parse(c.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e6;
      // htb at 10 Mbit/s meters whole frames: goodput 10 × 1448/1514 = 9.56 (short test: some slack).
      expect(mbps).toBeGreaterThan(8.0);
      expect(mbps).toBeLessThan(10.1);
      expect(await srv.wait()).toEqual({ code: 0, signal: null });
      expect(srv.returncode).toBe(0);
    });

    it('tcpdump in a node sees the traffic of another node', async () => {
      const cap = await r.spawn(['tcpdump', '-l', '-n', '-c', '2', '-i', ar.ends[1].name, 'icmp']);
      let out = '';
      cap.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      await new Promise<void>((res) => cap.stderr.setEncoding('utf8').on('data', (d: string) => d.includes('listening on') && res()));
      await a.run(['ping', '-c', '1', b.address(4)]);
      expect(await cap.wait()).toEqual({ code: 0, signal: null });
      expect(out).toMatch(new RegExp(`${a.address(4).replace(/\./g, '\\.')} > ${b.address(4).replace(/\./g, '\\.')}: ICMP echo request`));
    });

    it("Popen semantics: exit status, signals, stdin, poll, a string runs through sh, timeouts, another user's id", async () => {
      const r1 = await a.run(['sh', '-c', 'echo out; echo err >&2; exit 7']);
      expect(r1).toEqual({ code: 7, signal: null, stdout: 'out\n', stderr: 'err\n' });
      const sl = await a.spawn(['sleep', '60']);
      expect(sl.poll()).toBeUndefined();
      await sl.kill('SIGTERM');
      expect(await sl.wait()).toEqual({ code: null, signal: 'SIGTERM' });
      expect(sl.returncode).toBe(143);
      expect((await a.run(['cat'], { input: 'through stdin' })).stdout).toBe('through stdin');
      expect((await a.run('echo $((6*7)) | tr 4 X')).stdout).toBe('X2\n');
      await expect(a.run(['sleep', '30'], { timeoutMs: 300 })).rejects.toMatchObject({ code: 'run-timeout' });
      await expect(a.run(['false'], { check: true })).rejects.toMatchObject({ code: 'run-failed' });
      expect((await a.run(['id', '-u'], { user: 'nobody' })).stdout).toBe('65534\n');
      const bad = await a.run(['id'], { user: 'no-such-user-here' });
      expect(bad.code).toBe(127);
      expect(bad.stderr).toMatch(/no user no-such-user-here/);
      expect((await a.run(['env'], { env: { ONLY: 'this' } })).stdout).toBe('ONLY=this\n');
      expect((await a.run(['sh', '-c', 'echo $DUNE_LAB $DUNE_NODE'])).stdout).toBe('apinemu a\n');
    });
  });

  describe('live changes: impairments, link failure and repair, addresses and routes, all journaled', () => {
    const lab = new Lab({ name: 'apilive' });
    const a = lab.node('a');
    const r = lab.node('r');
    const b = lab.node('b');
    const ar = lab.link(a, r);
    const rb = lab.link(r, b);

    beforeAll(async () => {
      await lab.up();
    }, 60_000);
    afterAll(async () => {
      await lab.down();
      expect(await leftovers('apilive')).toEqual([]);
    });

    it('set: one direction with { from }, then both; keys not given are kept; none removes', async () => {
      const [fromA] = await ar.set({ loss: '100%', bw: '50mbit' }, { from: a });
      expect(fromA).toEqual({ lossPct: 100, rateBitsPerSec: 50_000_000 });
      expect(await pingOk(a, b.address(4))).toBe(false);
      const st = await lab.status();
      expect(st.links.filter((l) => l.impairment.lossPct === 100).map((l) => l.node)).toEqual(['a']);
      expect(await ar.set({ loss: null })).toEqual([{ rateBitsPerSec: 50_000_000 }, {}]);
      expect(await pingOk(a, b.address(4))).toBe(true);
    });

    it('down() cuts a link (both families), up() repairs it with its routes and addresses', async () => {
      await rb.down();
      expect(await pingOk(a, b.address(4))).toBe(false);
      const st = await lab.status();
      expect(st.links.filter((l) => l.up === false).map((l) => `${l.node}:${l.dev}`).sort()).toEqual([`b:${rb.ends[1].name}`, `r:${rb.ends[0].name}`].sort());
      await rb.up();
      expect(await pingOk(a, b.address(4))).toBe(true);
      expect((await a.run(['ping', '-6', '-c', '1', '-W', '2', b.address(6)])).code).toBe(0);
    });

    it('addAddress and addRoute: a new prefix reached across a router; journaled, so attach sees them and down removes them', async () => {
      await b.iface('lo').addAddress('192.0.2.7/32');
      expect((await b.iface('lo').addresses()).map((x) => x.address)).toContain('192.0.2.7');
      // a → r over ar, r → b over rb: the next hops are the far ends of the links.
      await a.addRoute({ to: '192.0.2.7/32', via: ar.ends[1].address(4) });
      await r.addRoute({ to: '192.0.2.7/32', via: rb.ends[1].address(4) });
      const ping = await a.run(['ping', '-c', '1', '-W', '2', '-I', a.address(4), '192.0.2.7']);
      expect(ping.code, ping.stdout + ping.stderr).toBe(0);
      expect((await a.routes()).some((x) => x['dst'] === '192.0.2.7')).toBe(true);
      const other = await Lab.attach('apilive');
      try {
        const ops = other.plan.hosts.flatMap((h) => h.ops);
        expect(ops.some((o) => o.op === 'route' && o.dst === '192.0.2.7/32' && o.ns === a.ns)).toBe(true);
        expect(ops.some((o) => o.op === 'addr' && o.cidr === '192.0.2.7/32')).toBe(true);
        // A second up of the same declarations keeps what was changed at runtime.
        await lab.up();
        expect((await a.run(['ping', '-c', '1', '-W', '2', '-I', a.address(4), '192.0.2.7'])).code).toBe(0);
      } finally {
        other.close();
      }
      await a.delRoute({ to: '192.0.2.7/32', via: ar.ends[1].address(4) });
      expect((await a.run(['ping', '-c', '1', '-W', '1', '-I', a.address(4), '192.0.2.7'])).code).not.toBe(0);
    });

    it('bad runtime input is an error with a code and a fix, and changes nothing', async () => {
      await expect(a.iface('eth0').addAddress('300.1.2.3/24')).rejects.toMatchObject({ code: 'bad-address' });
      await expect(a.addRoute({ to: '198.51.100.0/24' })).rejects.toMatchObject({ code: 'bad-route' });
      await expect(a.addRoute({ to: 'nowhere', via: '10.0.0.1' })).rejects.toMatchObject({ code: 'bad-route' });
      await expect(ar.set({ latency: '5 parsecs' })).rejects.toBeInstanceOf(TopologyError);
      await expect(ar.set({ loss: '1%' }, { from: b })).rejects.toMatchObject({ code: 'not-an-end' });
    });
  });

  describe('a lab from a file, added to; a lab made by `dune up`, attached', () => {
    it('fromFile: the file\'s nodes and links, plus a node and a link added by calls', async () => {
      const lab = await Lab.fromFile(join(REPO, 'test/e2e/reach/line5.toml'), { name: 'apifile' });
      const first = lab.allNodes()[0] as LabNode;
      const x = lab.node('x');
      lab.link(first, x, { bw: '20mbit' });
      try {
        await lab.up();
        expect(lab.plan.nodes.map((n) => n.node)).toContain('x');
        expect(await pingOk(x, lab.allNodes()[4]?.address(4) as string)).toBe(true);
      } finally {
        await lab.down();
      }
      expect(await leftovers('apifile')).toEqual([]);
    }, 60_000);

    it('attach: run, set and down on a lab `dune up` built', async () => {
      expect(dune(['up', join(REPO, 'test/e2e/reach/line5.toml'), '--lab', 'apiattach']).code).toBe(0);
      const lab = await Lab.attach('apiattach');
      const nodes = lab.allNodes();
      expect(nodes.length).toBe(5);
      const [n0, n4] = [nodes[0] as LabNode, nodes[4] as LabNode];
      expect(await pingOk(n0, n4.address(4))).toBe(true);
      const routes = JSON.parse(dune(['routes', '--lab', 'apiattach', n0.name, '--json']).out) as { dst: string; protocol: string }[];
      expect(routes.find((x) => x.dst === `${n4.address(4)}/32`)?.protocol).toBe('dune');
      const dev = n0.interfaces()[0]?.name as string;
      expect(await n0.iface(dev).set({ bw: '5mbit' })).toMatchObject({ rateBitsPerSec: 5_000_000 });
      expect(() => lab.node('new')).toThrow(/attached/);
      await lab.down();
      expect(await leftovers('apiattach')).toEqual([]);
      await expect(Lab.attach('apiattach')).rejects.toMatchObject({ code: 'no-such-lab' });
    }, 60_000);
  });

  describe('errors name the line of the call that caused them', () => {
    it('a link to an undeclared node, a bad unit: every error, at the user\'s own lines', async () => {
      const lab = new Lab({ name: 'apierr' });
      lab.node('a');
      const lineOfBadLink = Number(new Error().stack?.split('\n')[1]?.match(/:(\d+):\d+\)?$/)?.[1]) + 1;
      lab.link('a', 'nobody-here');
      lab.link('a', lab.node('b'), { latency: '5 parsecs' });
      let err: unknown;
      try {
        await lab.up();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TopologyError);
      const ds = (err as TopologyError).diagnostics.filter((d: { severity: string }) => d.severity === 'error');
      expect(ds.map((d) => d.code).sort()).toEqual(['bad-unit', 'unknown-node'].sort());
      for (const d of ds) expect(d.loc?.file).toBe(THIS_FILE);
      expect(ds.find((d) => d.code === 'unknown-node')?.loc?.line).toBe(lineOfBadLink);
      expect(ds.find((d) => d.code === 'bad-unit')?.loc?.line).toBe(lineOfBadLink + 1);
      expect(namespaces('apierr')).toEqual([]);
    });

    it('using a lab that is not up, or a lab that does not exist, says what to do', async () => {
      const lab = new Lab({ name: 'apinotup' });
      const a = lab.node('a');
      await expect(a.run(['true'])).rejects.toMatchObject({ code: 'lab-not-up' });
      expect(() => a.address(4)).toThrow(/not up/);
      await expect(Lab.attach('apinosuchlab')).rejects.toMatchObject({ code: 'no-such-lab' });
      expect(() => lab.node('a', { kind: 'switch' })).toThrow(/already has a node "a"/);
    });
  });

  const hasX = ['Xvfb', 'xdpyinfo', 'xauth', 'mcookie'].every((b) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', b]).status === 0);
  describe.skipIf(!hasX)(`x11: a node's programs reach this process's display (nemu's forward_X11)${hasX ? '' : ' (skipped: Xvfb, xdpyinfo, xauth or mcookie missing; scripts/setup installs them)'}`, () => {
    const DISPLAY = ':57';
    const dir = mkdtempSync(join(tmpdir(), 'dune-x11-'));
    const auth = join(dir, 'Xauthority');
    let xvfb: ReturnType<typeof spawn> | undefined;
    const saved = { DISPLAY: process.env['DISPLAY'], XAUTHORITY: process.env['XAUTHORITY'] };
    const lab = new Lab({ name: 'apix11' });
    const x = lab.node('x', { x11: true });
    const y = lab.node('y');
    lab.link(x, y);

    beforeAll(async () => {
      const cookie = spawnSync('mcookie', { encoding: 'utf8' }).stdout.trim();
      expect(spawnSync('xauth', ['-f', auth, 'add', DISPLAY, '.', cookie]).status).toBe(0);
      // With a cookie, the server refuses a client without it: the test shows XAUTHORITY arrives.
      xvfb = spawn('Xvfb', [DISPLAY, '-auth', auth, '-nolisten', 'tcp'], { stdio: 'ignore' });
      const deadline = Date.now() + 10_000;
      while (!existsSync('/tmp/.X11-unix/X57') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      process.env['DISPLAY'] = DISPLAY;
      process.env['XAUTHORITY'] = auth;
      await lab.up();
    }, 60_000);
    afterAll(async () => {
      await lab.down();
      xvfb?.kill('SIGTERM');
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      rmSync(dir, { recursive: true, force: true });
      expect(await leftovers('apix11')).toEqual([]);
    });

    it('xdpyinfo in the node, as root and as nobody, describes the display; a node without x11 has none', async () => {
      const root = await x.run(['xdpyinfo']);
      expect(root.code, root.stderr).toBe(0);
      expect(root.stdout).toMatch(/^name of display:\s+:57/m);
      const nobody = await x.run(['xdpyinfo'], { user: 'nobody' });
      expect(nobody.code, nobody.stderr).toBe(0);
      expect(nobody.stdout).toMatch(/^name of display:\s+:57/m);
      const plain = await y.run(['xdpyinfo']);
      expect(plain.code).not.toBe(0);
    });
  });

  describe('a script that ends leaves nothing behind, however it ends', () => {
    function script(name: string, how: string): Promise<{ code: number | null; signal: string | null; out: string; err: string; pid: number }> {
      return new Promise((resolve) => {
        const c = spawn(process.execPath, [SCRIPT, name, how], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        c.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if (how === 'sigwait' && out.includes('up ')) c.kill('SIGTERM');
          if (how === 'sigkill' && out.includes('up ')) c.kill('SIGKILL');
        });
        c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
        c.on('close', (code, signal) => resolve({ code, signal, out, err, pid: c.pid as number }));
      });
    }

    function alive(pid: number): boolean {
      try {
        process.kill(pid, 0);
        return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');
      } catch {
        return false;
      }
    }

    it.each([
      ['normal', 'its last line, without down()', { code: 0, signal: null }],
      ['sigwait', 'SIGTERM', { code: null, signal: 'SIGTERM' }],
      ['exit', 'process.exit(3)', { code: 3, signal: null }],
      ['throw', 'an uncaught exception', { code: 1, signal: null }],
    ])('%s: %s tears the lab down, its programs included', async (how, _what, status) => {
      const name = `apiexit${how}`;
      const r = await script(name, how);
      expect({ code: r.code, signal: r.signal }, r.err).toEqual(status);
      const pid = Number(/up (\d+)/.exec(r.out)?.[1]);
      expect(pid).toBeGreaterThan(1);
      expect(await leftovers(name)).toEqual([]);
      expect(alive(pid)).toBe(false);
    }, 60_000);

    it('SIGKILL: the lab stays, and `dune down --all` removes it', async () => {
      const r = await script('apiexitkill', 'sigkill');
      expect(r.signal).toBe('SIGKILL');
      const pid = Number(/up (\d+)/.exec(r.out)?.[1]);
      expect(namespaces('apiexitkill').length).toBe(2);
      const d = dune(['down', '--all']);
      expect(d.code, d.err).toBe(0);
      expect(d.out).toMatch(/lab apiexitkill removed/);
      expect(await leftovers('apiexitkill')).toEqual([]);
      expect(alive(pid)).toBe(false);
    }, 60_000);

    it('keep: true leaves the lab running for `dune` to use', async () => {
      const r = await script('apiexitkeep', 'keep');
      expect(r.code).toBe(0);
      expect(namespaces('apiexitkeep').length).toBe(2);
      expect(dune(['exec', '--lab', 'apiexitkeep', 'a', '--', 'true']).code).toBe(0);
      expect(dune(['down', '--lab', 'apiexitkeep']).code).toBe(0);
      expect(await leftovers('apiexitkeep')).toEqual([]);
    }, 60_000);
  });
});
