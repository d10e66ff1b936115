/**
 * One SSH connection per phynode (ssh2), multiplexed: command channels, SFTP and the
 * agent's unix socket (direct-streamlocal) share it.
 *
 *   target (topology) ─► ~/.ssh/config for what the topology leaves out ─► TCP, or a
 *   channel through each `ProxyJump` host in turn (each one an SshHost of its own, host key
 *   checked the same way) ─► host key checked against known_hosts (unknown or changed:
 *   refused with the fingerprint) ─► keys: the phynode's `identity`, IdentityFile lines,
 *   ssh-agent, ~/.ssh/id_* ─► a user other than root: `sudo -n true` must pass ─► ready
 *
 * A user other than root works through sudo without a password: every command is run as
 * `sudo -n -- argv`, files are copied over SFTP to a directory of the user's and moved into
 * place by sudo, and the agent's socket (root's, 0600) is reached through `dune-agent
 * connect` instead of direct-streamlocal.
 *
 * Everything has a deadline: the connection (handshake and authentication included), every
 * command, every channel. Passwords are never asked for nor read.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Duplex, Readable, Writable } from 'node:stream';
import type { AnyAuthMethod, Client, ClientChannel, ConnectConfig, ServerHostKeyAlgorithm, SFTPWrapper } from 'ssh2';
import { DuneError } from '@dune/topology';
import { KnownHosts, fingerprint, keyBlobType, knownHostName } from './known-hosts.js';
import { shJoin } from './quote.js';
import { resolveSshConfig, type JumpHost, type SshConfigEntry } from './ssh-config.js';

/**
 * ssh2, loaded on the first connection: a lab on this machine alone never needs it, and it
 * costs ~75 ms of every command's start (with its crypto) otherwise.
 */
let ssh2Module: typeof import('ssh2') | undefined;
async function loadSsh2(): Promise<typeof import('ssh2')> {
  ssh2Module ??= ((await import('ssh2')) as unknown as { default: typeof import('ssh2') }).default;
  return ssh2Module;
}

/** Where a phynode is, as the topology says (HostPlan.target) plus its name for messages. */
export interface RemoteTarget {
  phynode: string;
  host: string;
  port?: number;
  user?: string;
  identity?: string;
}

export interface SshOptions {
  /** known_hosts to verify against (default: $DUNE_KNOWN_HOSTS, else ~/.ssh/known_hosts). */
  knownHostsFile?: string;
  /** Trust and record the key of a host known_hosts has no key for (never a changed key). */
  acceptNewHostKeys?: boolean;
  /** ~/.ssh/config, or null to read none. */
  sshConfigFile?: string | null;
  /** Connect, handshake and authenticate within this (default 10 s). */
  connectTimeoutMs?: number;
  /** Default deadline of a command (default 60 s). */
  commandTimeoutMs?: number;
  /** ssh-agent socket (default $SSH_AUTH_SOCK); null: no agent. */
  agentSocket?: string | null;
  /** Called when a host key is first recorded. */
  onHostKeyAdded?: (phynode: string, name: string, fp: string) => void;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** What connecting resolved: for messages and records. */
export interface ResolvedTarget {
  phynode: string;
  host: string;
  port: number;
  user: string;
  /** `user@host:port` */
  label: string;
}

/** ProxyJump hops followed through the jump hosts' own configs, at most (a loop in ~/.ssh/config ends here). */
const MAX_JUMP_DEPTH = 4;

/** OpenSSH's sshd allows 10 sessions per connection by default (MaxSessions); stay under it. */
const MAX_CHANNELS = 8;

const HOST_KEY_ALGOS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

function errnoText(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is sshd running and listening there?)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'no route to the host';
    case 'ETIMEDOUT':
      return 'the connection timed out';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    default:
      return e.message;
  }
}

/** Private keys to offer, in order: the phynode's, the config's, the usual defaults. */
function keyFiles(target: RemoteTarget, cfg: SshConfigEntry): string[] {
  if (target.identity !== undefined) return [target.identity.startsWith('~/') ? join(homedir(), target.identity.slice(2)) : target.identity];
  if (cfg.identityFiles.length > 0) return cfg.identityFiles;
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => join(homedir(), '.ssh', f)).filter((f) => existsSync(f));
}

class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async acquire(): Promise<() => void> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiting.shift()?.();
    };
  }
}

export class SshHost {
  readonly target: ResolvedTarget;
  private readonly client: Client;
  private readonly opts: SshOptions;
  private readonly channels = new Semaphore(MAX_CHANNELS);
  private sftpP: Promise<SFTPWrapper> | undefined;
  private closedWith: Error | undefined;
  private readonly closeListeners = new Set<(e: Error) => void>();
  /** Commands go through `sudo -n` (the user is not root). */
  readonly sudo: boolean;
  /** The ProxyJump host this connection goes through, closed with it. */
  private readonly via: SshHost | undefined;

  private constructor(client: Client, target: ResolvedTarget, opts: SshOptions, via?: SshHost) {
    this.client = client;
    this.target = target;
    this.opts = opts;
    this.sudo = target.user !== 'root';
    this.via = via;
    const onGone = (e?: Error): void => {
      if (this.closedWith) return;
      this.closedWith = new DuneError('ssh-closed', `the SSH connection to phynode ${target.phynode} (${target.label}) closed${e ? `: ${e.message}` : ''}`, {
        hint: 'run the command again: it reconnects',
      });
      for (const l of this.closeListeners) l(this.closedWith);
    };
    client.on('close', () => onGone());
    client.on('error', (e) => onGone(e));
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Called once when the connection goes away (closed by us, the server, or the network). */
  onClose(fn: (e: Error) => void): () => void {
    if (this.closedWith) {
      fn(this.closedWith);
      return () => undefined;
    }
    this.closeListeners.add(fn);
    return () => this.closeListeners.delete(fn);
  }

  static async connect(t: RemoteTarget, opts: SshOptions = {}): Promise<SshHost> {
    const h = await SshHost.open(t, opts, undefined, 0, false);
    if (h.sudo) {
      const r = await h.execRaw(['sudo', '-n', 'true'], 20_000).catch((e: Error) => ({ code: -1, stderr: e.message }));
      if (r.code !== 0) {
        h.close();
        throw new DuneError('sudo-failed', `phynode ${t.phynode} (${h.target.label}): ${h.target.user} cannot run commands as root without a password (sudo -n true: ${r.stderr.trim() || `exit ${r.code}`})`, {
          hint: `log in as root (user = "root"), or give ${h.target.user} passwordless sudo there, e.g. /etc/sudoers.d/dune: \`${h.target.user} ALL=(root) NOPASSWD: ALL\``,
        });
      }
    }
    return h;
  }

  /** Connects the ProxyJump hops in turn, each through the one before; returns the last. */
  private static async jumpChain(t: RemoteTarget, hops: readonly JumpHost[], opts: SshOptions, depth: number): Promise<SshHost> {
    if (depth >= MAX_JUMP_DEPTH) {
      throw new DuneError('ssh-jump-loop', `phynode ${t.phynode}: ProxyJump nests deeper than ${MAX_JUMP_DEPTH} hosts in ~/.ssh/config`, { hint: 'check the ProxyJump lines for a loop (a Host * block giving one to the jump host itself?)' });
    }
    let prev: SshHost | undefined;
    try {
      for (const [i, hop] of hops.entries()) {
        const jt: RemoteTarget = { phynode: `${t.phynode} (jump host ${hop.host})`, host: hop.host, ...(hop.port !== undefined ? { port: hop.port } : {}), ...(hop.user !== undefined ? { user: hop.user } : {}), ...(t.identity !== undefined ? { identity: t.identity } : {}) };
        // The first hop follows its own ProxyJump, if any; later ones are reached through the chain.
        prev = await SshHost.open(jt, opts, prev, depth + 1, i > 0);
      }
    } catch (e) {
      prev?.close();
      throw e;
    }
    return prev as SshHost;
  }

  /** A TCP connection from the host to host:port, as a stream (for the next ProxyJump hop). */
  forwardOut(host: string, port: number, timeoutMs = 10_000): Promise<Duplex> {
    if (this.closedWith) this.gone();
    return withTimeout(
      new Promise<Duplex>((resolve, reject) => {
        this.client.forwardOut('127.0.0.1', 0, host, port, (err, ch) =>
          err ? reject(new DuneError('ssh-jump-failed', `jump host ${this.target.label} cannot reach ${host}:${port}: ${err.message}`, { hint: 'check that the jump host reaches that address and allows TCP forwarding (AllowTcpForwarding)', cause: err })) : resolve(ch),
        );
      }),
      timeoutMs,
      () => new DuneError('remote-timeout', `jump host ${this.target.label}: no channel to ${host}:${port} within ${timeoutMs / 1000} s`),
    );
  }

  private static async open(t: RemoteTarget, opts: SshOptions, via: SshHost | undefined, depth: number, noJump: boolean): Promise<SshHost> {
    const cfg = resolveSshConfig(t.host, { file: opts.sshConfigFile === undefined ? undefined : opts.sshConfigFile });
    if (cfg.proxyJump !== undefined && via === undefined && !noJump) {
      const jump = await SshHost.jumpChain(t, cfg.proxyJump, opts, depth);
      try {
        return await SshHost.open(t, opts, jump, depth, true);
      } catch (e) {
        jump.close();
        throw e;
      }
    }
    if (cfg.unsupported.length > 0) {
      throw new DuneError('ssh-config-unsupported', `~/.ssh/config gives host ${t.host} ${cfg.unsupported.join(', ')}, which dune does not follow`, {
        hint: `make phynode ${t.phynode} reachable directly, or give its address as host in the topology`,
      });
    }
    const host = cfg.hostName ?? t.host;
    const port = t.port ?? cfg.port ?? 22;
    const user = t.user ?? cfg.user ?? userInfo().username;
    const label = `${user}@${host}:${port}${via ? ` via ${via.target.label}` : ''}`;
    const target: ResolvedTarget = { phynode: t.phynode, host, port, user, label };
    const timeoutMs = opts.connectTimeoutMs ?? (cfg.connectTimeoutSec !== undefined ? cfg.connectTimeoutSec * 1000 : 10_000);
    const known = new KnownHosts(opts.knownHostsFile ?? cfg.userKnownHostsFile);

    const { Client: SshClient, utils } = await loadSsh2();
    const auths: AnyAuthMethod[] = [];
    const keyProblems: string[] = [];
    for (const f of keyFiles(t, cfg)) {
      let text: Buffer;
      try {
        text = readFileSync(f);
      } catch (e) {
        keyProblems.push(`${f}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        continue;
      }
      const parsed = utils.parseKey(text);
      if (parsed instanceof Error) {
        keyProblems.push(/encrypted|passphrase/i.test(parsed.message) ? `${f} is encrypted (load it into ssh-agent with ssh-add)` : `${f}: ${parsed.message}`);
        continue;
      }
      auths.push({ type: 'publickey', username: user, key: text });
    }
    const agent = opts.agentSocket === undefined ? process.env['SSH_AUTH_SOCK'] : opts.agentSocket;
    if (agent && !(cfg.identitiesOnly && t.identity === undefined && cfg.identityFiles.length > 0)) auths.push({ type: 'agent', username: user, agent });
    if (auths.length === 0) {
      throw new DuneError('ssh-no-key', `no usable SSH key for phynode ${t.phynode} (${label})${keyProblems.length ? `: ${keyProblems.join('; ')}` : ''}`, {
        hint: 'set identity = "<private key file>" on the phynode, or run an ssh-agent holding the key (SSH_AUTH_SOCK)',
      });
    }

    const prefer = known.knownTypes(host, port).flatMap((k) => HOST_KEY_ALGOS[k] ?? []);
    let refusal: DuneError | undefined;
    const client = new SshClient();
    const sock = via ? await via.forwardOut(host, port, timeoutMs) : undefined;
    const config: ConnectConfig = {
      host,
      port,
      ...(sock ? { sock } : {}),
      username: user,
      readyTimeout: timeoutMs,
      keepaliveInterval: 5000,
      keepaliveCountMax: 3,
      authHandler: auths,
      // Ask for the key types known_hosts has for this host first, as OpenSSH does: a host
      // known by its RSA key must not be refused for offering an Ed25519 one first.
      ...(prefer.length > 0 ? { algorithms: { serverHostKey: [...new Set([...prefer, ...Object.values(HOST_KEY_ALGOS).flat()])] as ServerHostKeyAlgorithm[] } } : {}),
      hostVerifier: (key: Buffer): boolean => {
        const v = known.verify(host, port, key);
        const fp = fingerprint(key);
        const name = knownHostName(host, port);
        const type = keyBlobType(key);
        if (v.status === 'known') return true;
        if (v.status === 'unknown' && opts.acceptNewHostKeys) {
          known.add(host, port, key);
          opts.onHostKeyAdded?.(t.phynode, name, fp);
          return true;
        }
        if (v.status === 'unknown') {
          refusal = new DuneError('host-key-unknown', `phynode ${t.phynode} (${label}) presented a ${type} host key that ${known.file} does not know: ${fp}`, {
            hint: `compare it with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_${hostKeyFileKind(type)}_key.pub there), then rerun with --accept-new-host-keys to record it in ${known.file}`,
          });
        } else if (v.status === 'changed') {
          refusal = new DuneError('host-key-changed', `the ${type} host key of phynode ${t.phynode} (${label}) has CHANGED: it is now ${fp}, not the one at ${known.file}:${v.lines.join(',')}. Someone may be intercepting the connection, or the host was reinstalled`, {
            hint: `if the change is expected, remove the old key (ssh-keygen -R '${name}' -f ${known.file}) and rerun with --accept-new-host-keys`,
          });
        } else {
          refusal = new DuneError('host-key-revoked', `phynode ${t.phynode} (${label}) presented a host key revoked at ${known.file}:${v.line}: ${fp}`, {
            hint: 'the host must be given a new host key',
          });
        }
        return false;
      },
    };

    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (e?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (e) {
          client.end();
          client.destroy();
          reject(e);
        } else resolve();
      };
      const timer = setTimeout(() => {
        finish(new DuneError('host-unreachable', `phynode ${t.phynode} (${label}): no SSH session within ${(timeoutMs / 1000).toFixed(1)} s`, {
          hint: 'check that the host is up and reachable on that port (firewall, address), or raise --connect-timeout',
        }));
      }, timeoutMs + 500);
      client.once('ready', () => finish());
      client.once('error', (e: Error & { level?: string; code?: string }) => {
        if (refusal) return finish(refusal);
        if (e.level === 'client-authentication') {
          return finish(new DuneError('ssh-auth-failed', `phynode ${t.phynode} (${label}) refused every key offered${keyProblems.length ? ` (${keyProblems.join('; ')})` : ''}`, {
            hint: `check that the key's public half is in ~${user}/.ssh/authorized_keys there, and the phynode's user and identity`,
          }));
        }
        if (e.level === 'client-timeout' || /Timed out while waiting for handshake/.test(e.message)) {
          return finish(new DuneError('host-unreachable', `phynode ${t.phynode} (${label}): no SSH handshake within ${(timeoutMs / 1000).toFixed(1)} s`, {
            hint: 'check that the host is up and reachable on that port (firewall, address), or raise --connect-timeout',
          }));
        }
        if (e.code !== undefined) {
          return finish(new DuneError('host-unreachable', `phynode ${t.phynode} (${label}): ${errnoText(e as NodeJS.ErrnoException)}`, {
            hint: 'check the phynode\'s host and port, and that sshd runs there',
            cause: e,
          }));
        }
        finish(new DuneError('ssh-failed', `phynode ${t.phynode} (${label}): ${e.message}`, { cause: e }));
      });
      client.once('close', () => finish(refusal ?? new DuneError('ssh-failed', `phynode ${t.phynode} (${label}) closed the connection during the handshake`)));
      client.connect(config);
    });
    return new SshHost(client, target, opts, via);
  }

  private gone(): never {
    throw this.closedWith ?? new DuneError('ssh-closed', `the SSH connection to ${this.target.phynode} is closed`);
  }

  /** argv as root: through `sudo -n` when the user is not root. */
  private asRoot(argv: readonly string[]): readonly string[] {
    return this.sudo ? ['sudo', '-n', '--', ...argv] : argv;
  }

  /** Runs argv (as root: see asRoot) and collects its output. Rejects only on transport failures and timeouts. */
  exec(argv: readonly string[], o: { timeoutMs?: number; stdin?: string | Buffer } = {}): Promise<ExecResult> {
    return this.execRaw(this.asRoot(argv), o.timeoutMs, o.stdin);
  }

  /** Runs argv as the login user (quoted for the remote shell). */
  private async execRaw(argv: readonly string[], timeoutMsArg?: number, stdin?: string | Buffer): Promise<ExecResult> {
    const o = { timeoutMs: timeoutMsArg, stdin };
    if (this.closedWith) this.gone();
    const release = await this.channels.acquire();
    const cmd = shJoin(argv);
    const timeoutMs = o.timeoutMs ?? this.opts.commandTimeoutMs ?? 60_000;
    try {
      return await new Promise<ExecResult>((resolve, reject) => {
        let ch: ClientChannel | undefined;
        let stdout = '';
        let stderr = '';
        let code: number | null = null;
        let signal: string | null = null;
        const timer = setTimeout(() => {
          ch?.close();
          reject(new DuneError('remote-timeout', `phynode ${this.target.phynode}: \`${cmd}\` did not finish within ${(timeoutMs / 1000).toFixed(0)} s`, {
            hint: 'the host may be overloaded or the command stuck; check it there',
          }));
        }, timeoutMs);
        const unlisten = this.onClose((e) => {
          clearTimeout(timer);
          reject(e);
        });
        this.client.exec(cmd, (err, channel) => {
          if (err) {
            clearTimeout(timer);
            unlisten();
            reject(new DuneError('ssh-channel', `phynode ${this.target.phynode}: cannot run \`${cmd}\`: ${err.message}`, { cause: err }));
            return;
          }
          ch = channel;
          channel.setEncoding('utf8');
          channel.stderr.setEncoding('utf8');
          channel.on('data', (d: string) => (stdout += d));
          channel.stderr.on('data', (d: string) => (stderr += d));
          channel.on('exit', (c: number | null, s?: string) => {
            code = c;
            signal = s ?? null;
          });
          channel.on('close', () => {
            clearTimeout(timer);
            unlisten();
            resolve({ code, signal, stdout, stderr });
          });
          channel.end(o.stdin ?? '');
        });
      });
    } finally {
      release();
    }
  }

  /** Like exec, but fails with the command's stderr when it exits non-zero. */
  async run(argv: readonly string[], o: { timeoutMs?: number; stdin?: string | Buffer } = {}): Promise<string> {
    const r = await this.exec(argv, o);
    if (r.code !== 0) {
      throw new DuneError('remote-command-failed', `phynode ${this.target.phynode}: \`${shJoin(argv)}\` exited ${r.code ?? `on signal ${r.signal}`}${r.stderr.trim() ? `: ${r.stderr.trim().slice(-1000)}` : ''}`);
    }
    return r.stdout;
  }

  /**
   * Runs argv with the caller's streams attached (for `dune exec`); resolves with the exit
   * code (128+n for a signal, as a shell reports it).
   */
  async execAttached(argv: readonly string[], io: { stdin?: Readable; stdout: Writable; stderr: Writable; pty?: boolean }): Promise<number> {
    if (this.closedWith) this.gone();
    const release = await this.channels.acquire();
    const cmd = shJoin(this.asRoot(argv));
    try {
      return await new Promise<number>((resolve, reject) => {
        const unlisten = this.onClose(reject);
        this.client.exec(cmd, io.pty ? { pty: { term: process.env['TERM'] ?? 'xterm' } } : {}, (err, ch) => {
          if (err) {
            unlisten();
            reject(new DuneError('ssh-channel', `phynode ${this.target.phynode}: cannot run \`${cmd}\`: ${err.message}`, { cause: err }));
            return;
          }
          let code = 255;
          ch.on('exit', (c: number | null, s?: string) => {
            code = c ?? 128 + (s ? (SIGNALS[s] ?? 1) : 1);
          });
          ch.pipe(io.stdout, { end: false });
          ch.stderr.pipe(io.stderr, { end: false });
          if (io.stdin) io.stdin.pipe(ch);
          else ch.end();
          ch.on('close', () => {
            if (io.stdin) io.stdin.unpipe(ch);
            unlisten();
            resolve(code);
          });
        });
      });
    } finally {
      release();
    }
  }

  /**
   * An exec channel as a raw duplex stream (a long-lived bridge such as `dune-agent
   * connect`). It holds one of the connection's channel slots until it closes.
   */
  async channel(argv: readonly string[], timeoutMs = 10_000): Promise<ClientChannel> {
    if (this.closedWith) this.gone();
    const release = await this.channels.acquire();
    const cmd = shJoin(this.asRoot(argv));
    try {
      const ch = await withTimeout(
        new Promise<ClientChannel>((resolve, reject) => {
          this.client.exec(cmd, (err, c) => (err ? reject(new DuneError('ssh-channel', `phynode ${this.target.phynode}: cannot run \`${cmd}\`: ${err.message}`, { cause: err })) : resolve(c)));
        }),
        timeoutMs,
        () => new DuneError('remote-timeout', `phynode ${this.target.phynode}: opening \`${cmd}\` took over ${timeoutMs / 1000} s`),
      );
      ch.on('close', release);
      return ch;
    } catch (e) {
      release();
      throw e;
    }
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpP ??= new Promise<SFTPWrapper>((resolve, reject) => {
      this.client.sftp((err, s) => (err ? reject(new DuneError('sftp-failed', `phynode ${this.target.phynode}: no SFTP session: ${err.message}`, { hint: 'enable the sftp subsystem in sshd_config', cause: err })) : resolve(s)));
    });
    this.sftpP.catch(() => (this.sftpP = undefined));
    return this.sftpP;
  }

  /**
   * Copies a local file to the host over SFTP, with a deadline. Without root, SFTP writes as
   * the user: into a fresh directory of the user's, then moved into place (root's) by sudo.
   */
  async put(local: string, remote: string, mode: number, timeoutMs = 120_000): Promise<void> {
    if (!this.sudo) return this.sftpPut(local, remote, mode, timeoutMs);
    const r = await this.execRaw(['mktemp', '-d'], 20_000);
    const dir = r.stdout.trim();
    if (r.code !== 0 || !dir.startsWith('/')) throw new DuneError('sftp-failed', `phynode ${this.target.phynode}: mktemp -d failed: ${r.stderr.trim()}`, { hint: 'the user needs a writable TMPDIR there' });
    try {
      const tmp = `${dir}/upload`;
      await this.sftpPut(local, tmp, mode, timeoutMs);
      const mv = await this.exec(['sh', '-c', 'mv -f -- "$1" "$2" && chown 0:0 -- "$2" && chmod "$3" -- "$2"', 'sh', tmp, remote, mode.toString(8)], { timeoutMs: 20_000 });
      if (mv.code !== 0) throw new DuneError('sftp-failed', `phynode ${this.target.phynode}: moving ${tmp} to ${remote} failed: ${mv.stderr.trim()}`);
    } finally {
      await this.execRaw(['rm', '-rf', '--', dir], 20_000).catch(() => undefined);
    }
  }

  private async sftpPut(local: string, remote: string, mode: number, timeoutMs: number): Promise<void> {
    if (this.closedWith) this.gone();
    const sftp = await this.sftp();
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        sftp.fastPut(local, remote, { mode }, (err) => (err ? reject(new DuneError('sftp-failed', `phynode ${this.target.phynode}: copying ${local} to ${remote} failed: ${err.message}`, { cause: err })) : resolve()));
      }),
      timeoutMs,
      () => new DuneError('remote-timeout', `phynode ${this.target.phynode}: copying ${local} did not finish within ${timeoutMs / 1000} s`),
    );
  }

  /** A stream to a unix socket on the host (OpenSSH's direct-streamlocal). */
  async streamLocal(path: string, timeoutMs = 10_000): Promise<ClientChannel> {
    if (this.closedWith) this.gone();
    if (this.sudo) {
      // sshd opens the socket as the login user: root's 0600 socket is denied to anyone else.
      throw new DuneError('ssh-streamlocal', `phynode ${this.target.phynode}: ${path} is root's, access denied to ${this.target.user}`, { hint: 'reach it through a command run with sudo (`dune-agent connect`)' });
    }
    return withTimeout(
      new Promise<ClientChannel>((resolve, reject) => {
        this.client.openssh_forwardOutStreamLocal(path, (err, ch) =>
          err ? reject(new DuneError('ssh-streamlocal', `phynode ${this.target.phynode}: cannot open ${path}: ${err.message}`, { cause: err })) : resolve(ch),
        );
      }),
      timeoutMs,
      () => new DuneError('remote-timeout', `phynode ${this.target.phynode}: opening ${path} took over ${timeoutMs / 1000} s`),
    );
  }

  close(): void {
    this.client.end();
    this.via?.close();
  }

  /** Drops the connection at once (tests: a cut connection). */
  destroy(): void {
    this.client.destroy();
  }
}

function hostKeyFileKind(type: string): string {
  if (type.startsWith('ecdsa-')) return 'ecdsa';
  if (type === 'ssh-rsa') return 'rsa';
  return type.replace(/^ssh-/, '');
}

const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, SEGV: 11, PIPE: 13, ALRM: 14, TERM: 15 };

export function withTimeout<T>(p: Promise<T>, ms: number, err: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(err()), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
