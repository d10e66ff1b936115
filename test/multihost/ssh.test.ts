/**
 * The SSH transport against real sshd servers of the test bed: host keys (known, unknown,
 * changed), multiplexed channels, quoting, SFTP, unix sockets, unreachable hosts.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuneError } from '@dune/topology';
import { SshHost, fingerprint, type RemoteTarget } from '@dune/transport';
import { Testbed, type TestPhynode } from './testbed.js';

const isRoot = process.getuid?.() === 0;
const REASON = 'the multi-host test bed needs root (namespaces, sshd)';

describe.skipIf(!isRoot)(`SSH transport on the test bed (${REASON})`, () => {
  let tb: Testbed;
  let scratch: string;
  const target = (ph: TestPhynode, extra: Partial<RemoteTarget> = {}): RemoteTarget => ({ phynode: ph.name, host: ph.underlay, port: ph.sshPort, user: 'root', identity: tb.clientKey, ...extra });
  const opts = () => ({ knownHostsFile: tb.knownHosts, sshConfigFile: null, agentSocket: null, connectTimeoutMs: 5000 });

  beforeAll(async () => {
    tb = await Testbed.create({ count: 2 });
    scratch = mkdtempSync(join(tmpdir(), 'dune-ssh-test-'));
  });
  afterAll(async () => {
    await tb?.teardown();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('runs commands over one connection, many channels at once, words intact', async () => {
    const ph = tb.phynodes[0] as TestPhynode;
    const h = await SshHost.connect(target(ph), opts());
    try {
      const words = ['', "it's", '$(id)', '`id`', 'a b', ';rm -rf /', '"', '\\', '~', '*'];
      const runs = await Promise.all(Array.from({ length: 10 }, () => h.exec(['printf', '%s\\0', ...words])));
      for (const r of runs) {
        expect(r.code).toBe(0);
        expect(r.stdout.split('\0').slice(0, -1)).toEqual(words);
      }
      const r = await h.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
      expect(r).toEqual({ code: 3, signal: null, stdout: 'out\n', stderr: 'err\n' });
      expect(await h.run(['cat'], { stdin: 'piped' })).toBe('piped');
      await expect(h.run(['false'])).rejects.toThrow(/`false` exited 1/);
    } finally {
      h.close();
    }
  });

  it('gives every command a deadline', async () => {
    const h = await SshHost.connect(target(tb.phynodes[0] as TestPhynode), opts());
    try {
      const t0 = Date.now();
      await expect(h.exec(['sleep', '30'], { timeoutMs: 500 })).rejects.toThrow(/did not finish within/);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      h.close();
    }
  });

  it('copies files over SFTP and reaches unix sockets', async () => {
    const ph = tb.phynodes[1] as TestPhynode;
    const h = await SshHost.connect(target(ph), opts());
    try {
      const local = join(scratch, 'payload');
      writeFileSync(local, 'x'.repeat(300_000));
      const remote = join(tb.cacheDir, 'payload');
      await h.put(local, remote, 0o640);
      expect((await h.run(['stat', '-c', '%s %a', remote])).trim()).toBe('300000 640');
      // The cache dir is a tmpfs of ph2's own: the host sees no file there.
      expect(() => readFileSync(remote)).toThrow();
      // A unix socket served inside the phynode, reached through the connection.
      const sock = '/run/dune/test.sock';
      const serverJs = `const net=require('net');const s=net.createServer(c=>c.on('data',d=>{c.end(String(d).toUpperCase());s.close()}));s.listen(${JSON.stringify(sock)},()=>console.log('ready'))`;
      const server = h.exec(['timeout', '10', 'node', '-e', serverJs]);
      let ch;
      for (let i = 0; i < 50 && ch === undefined; i++) {
        try {
          ch = await h.streamLocal(sock);
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(ch).toBeDefined();
      const reply = await new Promise<string>((resolve) => {
        let got = '';
        ch!.on('data', (d: Buffer) => (got += d.toString()));
        ch!.on('close', () => resolve(got));
        ch!.end('hello');
      });
      expect(reply).toBe('HELLO');
      const done = await server;
      expect(done.stdout).toBe('ready\n');
      expect(done.code).toBe(0);
    } finally {
      h.close();
    }
  });

  it('follows a ~/.ssh/config alias: HostName, User, IdentityFile', async () => {
    const ph = tb.phynodes[1] as TestPhynode;
    const cfg = join(scratch, 'ssh_config');
    writeFileSync(cfg, `Host lab-ph2\n  HostName ${ph.underlay}\n  User root\n  IdentityFile ${tb.clientKey}\n`);
    const h = await SshHost.connect({ phynode: 'ph2', host: 'lab-ph2' }, { ...opts(), sshConfigFile: cfg });
    try {
      expect(h.target.label).toBe(`root@${ph.underlay}:22`);
      expect((await h.run(['hostname', '-I'])).trim()).toContain(ph.underlay);
    } finally {
      h.close();
    }
  });

  it('authenticates with a key held by ssh-agent (SSH_AUTH_SOCK), no key file named', async () => {
    const ph = tb.phynodes[0] as TestPhynode;
    const sock = join(scratch, 'agent.sock');
    const { spawnSync } = await import('node:child_process');
    const started = spawnSync('ssh-agent', ['-a', sock, '-s'], { encoding: 'utf8' });
    const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(started.stdout)?.[1]);
    expect(pid).toBeGreaterThan(0);
    try {
      expect(spawnSync('ssh-add', [tb.clientKey], { env: { ...process.env, SSH_AUTH_SOCK: sock }, encoding: 'utf8' }).status).toBe(0);
      // No identity and no config: the usual ~/.ssh/id_* files (if any) are refused, the agent's key is taken.
      const h = await SshHost.connect({ phynode: ph.name, host: ph.underlay, user: 'root' }, { ...opts(), agentSocket: sock });
      expect((await h.run(['id', '-u'])).trim()).toBe('0');
      h.close();
    } finally {
      process.kill(pid, 'SIGTERM');
    }
  });

  it('refuses an unknown host key, with its fingerprint and how to accept it', async () => {
    const ph = tb.phynodes[0] as TestPhynode;
    const kh = join(scratch, 'empty_known_hosts');
    writeFileSync(kh, '');
    const err = await SshHost.connect(target(ph), { ...opts(), knownHostsFile: kh }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DuneError);
    const fp = fingerprint(Buffer.from(ph.hostKey.split(' ')[1] as string, 'base64'));
    expect((err as DuneError).code).toBe('host-key-unknown');
    expect((err as DuneError).message).toBe(`phynode ph1 (root@${ph.underlay}:22) presented a ssh-ed25519 host key that ${kh} does not know: ${fp}`);
    expect((err as DuneError).hint).toMatch(/--accept-new-host-keys/);
    expect(readFileSync(kh, 'utf8')).toBe('');
  });

  it('records a first-contact key with --accept-new-host-keys, then trusts it', async () => {
    const ph = tb.phynodes[0] as TestPhynode;
    const kh = join(scratch, 'accept_known_hosts');
    const added: string[] = [];
    const h = await SshHost.connect(target(ph), { ...opts(), knownHostsFile: kh, acceptNewHostKeys: true, onHostKeyAdded: (p, n, fp) => added.push(`${p} ${n} ${fp}`) });
    h.close();
    expect(readFileSync(kh, 'utf8')).toBe(`${ph.underlay} ${ph.hostKey}\n`);
    expect(added).toEqual([`ph1 ${ph.underlay} ${fingerprint(Buffer.from(ph.hostKey.split(' ')[1] as string, 'base64'))}`]);
    (await SshHost.connect(target(ph), { ...opts(), knownHostsFile: kh })).close();
  });

  it('refuses a changed host key even with --accept-new-host-keys', async () => {
    const [a, b] = tb.phynodes as [TestPhynode, TestPhynode];
    const kh = join(scratch, 'wrong_known_hosts');
    // ph1's address with ph2's key: what a man in the middle (or a reinstall) looks like.
    writeFileSync(kh, `${a.underlay} ${b.hostKey}\n`);
    const err = (await SshHost.connect(target(a), { ...opts(), knownHostsFile: kh, acceptNewHostKeys: true }).catch((e: unknown) => e)) as DuneError;
    expect(err.code).toBe('host-key-changed');
    expect(err.message).toMatch(/has CHANGED: it is now SHA256:/);
    expect(err.hint).toContain(`ssh-keygen -R '${a.underlay}'`);
    copyFileSync(kh, `${kh}.after`);
    expect(readFileSync(`${kh}.after`, 'utf8')).toBe(`${a.underlay} ${b.hostKey}\n`);
  });

  it('says so within the timeout when a host does not answer', async () => {
    const ph = tb.phynodes[0] as TestPhynode;
    const t0 = Date.now();
    // An address on the underlay subnet that nobody holds: ARP gets no answer.
    const err = (await SshHost.connect({ ...target(ph), host: '198.51.100.99' }, { ...opts(), connectTimeoutMs: 2000 }).catch((e: unknown) => e)) as DuneError;
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(err.code).toBe('host-unreachable');
    expect(err.message).toMatch(/^phynode ph1 \(root@198\.51\.100\.99:22\): (no SSH handshake within 2\.0 s|no route to the host|the connection timed out|no SSH session within)/);
    // A port nobody listens on: refused at once.
    const e2 = (await SshHost.connect({ ...target(ph), port: 2999 }, opts()).catch((e: unknown) => e)) as DuneError;
    expect(e2.message).toBe(`phynode ph1 (root@${ph.underlay}:2999): connection refused (is sshd running and listening there?)`);
  });

  it('refuses a key the host does not authorise', async () => {
    const ph = tb.phynodes[0] as TestPhynode;
    const other = join(scratch, 'other_key');
    const { spawnSync } = await import('node:child_process');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const err = (await SshHost.connect(target(ph, { identity: other }), opts()).catch((e: unknown) => e)) as DuneError;
    expect(err.code).toBe('ssh-auth-failed');
  });
});
