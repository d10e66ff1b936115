/**
 * A phynode's agent over SSH, from nothing to a live daemon:
 *
 *   connect (ssh.ts) ─► host check: node ≥ 20, iproute2, arch, root, sha256sum ─►
 *   agent cache: <cache>/<bundle id>/ checked by sha256sum, copied over SFTP only when
 *   missing or different (to a temp name, then renamed) ─► `node dune-agent.mjs start`
 *   (detached daemon, or the one already running this version) ─► its unix socket over
 *   the same connection (direct-streamlocal; `dune-agent connect` as a bridge where sshd
 *   forbids that) ─► JSON-lines calls
 *
 * A dropped connection or a dead daemon is re-established on the next call.
 */
import { PassThrough, type Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DuneError, type Impairment } from '@dune/topology';
import type { Plan } from '@dune/compiler';
import type { ChangeParams, ChangeResult, DownResult, NodeRoute, HelloResult, LabEvent, LabStatus, PreflightParams, PreflightResult, SetParams, UpResult } from '@dune/agent';
import { agentBundle, agentCacheRoot, BUNDLE_FILES, type AgentBundle } from './bundle.js';
import { spawnArgv, type AttachedIo, type ExitStatus, type HostAgent, type HostProcess, type SpawnSpec } from './host-agent.js';
import { AgentClient } from './rpc.js';
import { SshHost, type RemoteTarget, type SshOptions } from './ssh.js';

export interface RemoteAgentOptions extends SshOptions {
  /** Agent cache root on the hosts (default $DUNE_AGENT_CACHE, else /var/cache/dune/agent). */
  cacheRoot?: string;
  bundle?: AgentBundle;
  /** Idle deadline of up/down: no progress from the agent for this long fails (default 120 s). */
  idleTimeoutMs?: number;
  /** Reports steps while connecting (deploy, start). */
  onStep?: (phynode: string, step: string) => void;
}

export interface HostFacts {
  node: string;
  arch: string;
  uid: number;
  iproute2: string;
  kernel: string;
}

export const MIN_NODE_MAJOR = 20;

/**
 * One round trip in the common case (agent cached): host facts, the cached agent's sums,
 * and, when they match, the agent's daemon running (started if need be) and its socket. A
 * fixed script: the cache dir, bundle id, expected sums and whether to go through `start`
 * come in as positional parameters ($1..$5), never spliced into the text.
 */
const OPEN_SCRIPT = [
  'printf "node=%s\\n" "$(node --version 2>/dev/null)"',
  'printf "arch=%s\\n" "$(uname -m)"',
  'printf "kernel=%s\\n" "$(uname -r)"',
  'printf "uid=%s\\n" "$(id -u)"',
  'printf "ip=%s\\n" "$(ip -V 2>/dev/null)"',
  'printf "sha256sum=%s\\n" "$(command -v sha256sum)"',
  'a=$(sha256sum < "$1/dune-agent.mjs" 2>/dev/null | cut -c1-64)',
  'b=$(sha256sum < "$1/dune_native.node" 2>/dev/null | cut -c1-64)',
  'printf "sums=%s %s\\n" "$a" "$b"',
  // The agent's daemon, as `dune-agent start` would run it (its own session, cwd /, output to
  // its log), but started from here: one Node start on the host, not two. When its socket is
  // there (already running, or up within 4 s), the controller asks it for hello over this
  // connection; anything amiss (another version, stale, not answering) and the controller
  // runs this again with $5 set: `dune-agent start`, which replaces such a daemon, says hello.
  'd="${DUNE_STATE_DIR:-/run/dune}"; sock="$d/agent.sock"',
  'if [ "$a" = "$3" ] && [ "$b" = "$4" ] && [ "$(id -u)" = 0 ]; then',
  '  if [ -z "$5" ] && [ ! -S "$sock" ] && command -v setsid >/dev/null; then',
  '    mkdir -p -m 0755 "$d" && (umask 077 && : >> "$d/agent.log")',
  '    (cd / && DUNE_AGENT_DAEMON=1 exec setsid node "$1/dune-agent.mjs" daemon --version "$2" >> "$d/agent.log" 2>&1 < /dev/null) &',
  '    i=0; while [ ! -S "$sock" ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i + 1)); done',
  '  fi',
  '  if [ -z "$5" ] && [ -S "$sock" ]; then printf "sock=%s\\n" "$sock"',
  '  else printf "hello=%s\\n" "$(node "$1/dune-agent.mjs" start --version "$2" 2>&1 | tail -n 1)"; fi',
  'fi',
].join('\n');

const ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', arm: 'armv7l', ia32: 'i686', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

export class RemoteAgent implements HostAgent {
  readonly phynode: string;
  readonly remote = true;
  private readonly t: RemoteTarget;
  private readonly opts: RemoteAgentOptions;
  private ssh: SshHost | undefined;
  private rpc: AgentClient | undefined;
  private opening: Promise<AgentClient> | undefined;
  private dir = '';
  facts: HostFacts | undefined;
  hello: HelloResult | undefined;
  /** Whether the last open had to copy the agent (false: found in the cache). */
  copied = false;

  constructor(t: RemoteTarget, opts: RemoteAgentOptions = {}) {
    this.t = t;
    this.phynode = t.phynode;
    this.opts = opts;
  }

  get label(): string {
    return this.ssh?.target.label ?? `${this.t.user ?? ''}${this.t.user ? '@' : ''}${this.t.host}:${this.t.port ?? 22}`;
  }

  private who(): string {
    return `phynode ${this.phynode} (${this.label})`;
  }

  private step(s: string): void {
    this.opts.onStep?.(this.phynode, s);
  }

  /** SSH connection, host facts, the agent in the cache and running, its socket: ready for calls. */
  async open(): Promise<AgentClient> {
    if (this.rpc && !this.rpc.closed && this.ssh && !this.ssh.closed) return this.rpc;
    this.opening ??= this.doOpen().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async connection(): Promise<SshHost> {
    if (this.ssh && !this.ssh.closed) return this.ssh;
    this.step('connect');
    this.ssh = await SshHost.connect(this.t, this.opts);
    return this.ssh;
  }

  private checkFacts(kv: Record<string, string>): HostFacts {
    const facts: HostFacts = { node: kv['node'] ?? '', arch: kv['arch'] ?? '', uid: Number(kv['uid']), iproute2: kv['ip'] ?? '', kernel: kv['kernel'] ?? '' };
    const problems: string[] = [];
    const major = Number(/^v(\d+)\./.exec(facts.node)?.[1] ?? 0);
    if (facts.node === '') problems.push(`node is not installed (or not in PATH for SSH commands); the agent needs Node.js ≥ ${MIN_NODE_MAJOR}`);
    else if (major < MIN_NODE_MAJOR) problems.push(`node is ${facts.node}; the agent needs Node.js ≥ ${MIN_NODE_MAJOR}`);
    if (facts.iproute2 === '') problems.push('iproute2 (`ip`) is not installed');
    if (kv['sha256sum'] === '') problems.push('sha256sum (coreutils) is not installed');
    if (facts.uid !== 0) problems.push(`the SSH user has uid ${facts.uid}; the agent needs root (set user = "root" on the phynode)`);
    const mine = ARCH[process.arch] ?? process.arch;
    if (facts.arch !== mine) problems.push(`the host is ${facts.arch}, but the agent's native addon is built for ${mine}`);
    if (problems.length > 0) {
      throw new DuneError('host-unfit', `${this.who()} cannot run the agent:\n  ${problems.join('\n  ')}`, {
        hint: 'install what is missing there (Debian: apt-get install nodejs iproute2 coreutils), then run `dune check` again',
      });
    }
    return facts;
  }

  private parseHello(text: string, stderr = ''): HelloResult {
    const line = text.trim();
    if (line.startsWith('{') && !line.startsWith('{"ok":false')) return JSON.parse(line) as HelloResult;
    const err = /\{.*\}/.exec(`${line}\n${stderr}`)?.[0];
    let msg = err ?? `${line} ${stderr}`.trim();
    try {
      if (err) msg = (JSON.parse(err) as { error?: { message?: string } }).error?.message ?? err;
    } catch {
      // not JSON: shown as it is
    }
    throw new DuneError('agent-start-failed', `${this.who()}: the agent did not start: ${msg || 'no output'}`, { hint: 'see /run/dune/agent.log there' });
  }

  private async doOpen(): Promise<AgentClient> {
    this.rpc = undefined;
    const ssh = await this.connection();
    const bundle = this.opts.bundle ?? agentBundle();
    const root = this.opts.cacheRoot ?? agentCacheRoot();
    this.dir = join(root, bundle.id);
    const files = BUNDLE_FILES.map((f) => join(this.dir, f));
    this.step('agent');
    const openScript = async (start: boolean): Promise<Record<string, string>> => {
      const out = await ssh.run(['sh', '-c', OPEN_SCRIPT, 'sh', this.dir, bundle.id, bundle.sha256['dune-agent.mjs'], bundle.sha256['dune_native.node'], start ? 'start' : ''], { timeoutMs: 30_000 });
      const kv: Record<string, string> = {};
      for (const l of out.split('\n')) if (l.includes('=')) kv[l.slice(0, l.indexOf('='))] = l.slice(l.indexOf('=') + 1);
      return kv;
    };
    let kv = await openScript(false);
    this.facts = this.checkFacts(kv);
    this.copied = false;
    if (kv['sock'] !== undefined) {
      // The daemon running there, if it is this agent and fit to work, serves without a
      // `node … start` on the host (one Node start less on every command).
      const rpc = await this.attachRunning(ssh, kv['sock'], bundle.id);
      if (rpc !== undefined) return rpc;
      kv = await openScript(true);
    }
    if (kv['hello'] !== undefined) {
      this.hello = this.parseHello(kv['hello']);
    } else {
      this.step('copy agent');
      await ssh.run(['mkdir', '-p', '-m', '0700', '--', this.dir], { timeoutMs: 20_000 });
      const tag = randomBytes(4).toString('hex');
      await Promise.all(BUNDLE_FILES.map((f) => ssh.put(join(bundle.dir, f), join(this.dir, `.${f}.${tag}`), 0o600)));
      // Renamed into place: a concurrent controller never runs a half-copied file.
      await ssh.run(['sh', '-c', 'mv -f -- "$1" "$2" && mv -f -- "$3" "$4"', 'sh',
        join(this.dir, `.${BUNDLE_FILES[0]}.${tag}`), files[0] as string, join(this.dir, `.${BUNDLE_FILES[1]}.${tag}`), files[1] as string], { timeoutMs: 20_000 });
      const sums = await ssh.exec(['sha256sum', '--', ...files], { timeoutMs: 30_000 });
      const got = new Map(sums.stdout.split('\n').filter(Boolean).map((l) => [l.slice(66), l.slice(0, 64)]));
      if (!BUNDLE_FILES.every((f, i) => got.get(files[i] as string) === bundle.sha256[f])) {
        throw new DuneError('agent-copy-failed', `${this.who()}: the agent copied to ${this.dir} does not match its checksum`, { hint: 'check the disk there, then run the command again' });
      }
      this.copied = true;
      this.step('start agent');
      const r = await ssh.exec(['node', files[0] as string, 'start', '--version', bundle.id], { timeoutMs: 30_000 });
      this.hello = this.parseHello(r.stdout.trim().split('\n').pop() ?? '', r.stderr);
    }
    let stream: Duplex;
    try {
      stream = await ssh.streamLocal(this.hello.socket);
    } catch (e) {
      // sshd may forbid streamlocal forwarding: `dune-agent connect` bridges stdio instead.
      if (!/prohibited|denied|open failed/i.test((e as Error).message)) throw e;
      stream = await ssh.channel(['node', files[0] as string, 'connect']);
    }
    this.rpc = new AgentClient(stream, this.who());
    return this.rpc;
  }

  /**
   * A client of the daemon listening on `sock` there when it runs this agent's version and
   * is fit (not stale); undefined otherwise (the connection closed), for a `start` to settle.
   */
  private async attachRunning(ssh: SshHost, sock: string, version: string): Promise<AgentClient | undefined> {
    let rpc: AgentClient | undefined;
    try {
      rpc = new AgentClient(await ssh.streamLocal(sock), this.who());
      const hello = await rpc.call('hello', {}, { timeoutMs: 10_000 });
      if (hello.version === version && hello.stale === undefined) {
        this.hello = hello;
        this.rpc = rpc;
        return rpc;
      }
    } catch {
      // not listening after all, streamlocal refused, or a daemon that does not answer
    }
    rpc?.close();
    return undefined;
  }

  private async call<T>(fn: (c: AgentClient) => Promise<T>): Promise<T> {
    return fn(await this.open());
  }

  preflight(p: PreflightParams): Promise<PreflightResult> {
    return this.call((c) => c.call('preflight', p, { timeoutMs: 60_000 }));
  }

  up(plan: Plan, onEvent: (e: LabEvent) => void): Promise<UpResult> {
    return this.call((c) => c.call('up', { plan }, { idleTimeoutMs: this.opts.idleTimeoutMs ?? 120_000, onEvent }));
  }

  down(lab: string, onEvent: (e: LabEvent) => void): Promise<DownResult> {
    return this.call((c) => c.call('down', { lab }, { idleTimeoutMs: this.opts.idleTimeoutMs ?? 120_000, onEvent }));
  }

  status(lab: string): Promise<LabStatus> {
    return this.call((c) => c.call('status', { lab }, { timeoutMs: 60_000 }));
  }

  set(p: SetParams): Promise<Impairment> {
    return this.call((c) => c.call('set', p, { timeoutMs: 60_000 }));
  }

  labs(): Promise<string[]> {
    return this.call((c) => c.call('labs', {}, { timeoutMs: 20_000 }));
  }

  plan(lab: string): Promise<Plan> {
    return this.call((c) => c.call('plan', { lab }, { timeoutMs: 60_000 }));
  }

  routes(lab: string, node: string): Promise<NodeRoute[]> {
    return this.call((c) => c.call('routes', { lab, node }, { timeoutMs: 60_000 }));
  }

  change(p: ChangeParams): Promise<ChangeResult> {
    return this.call((c) => c.call('change', p, { timeoutMs: 60_000 }));
  }

  /**
   * An SSH exec channel per process. The remote shell runs a fixed script that prints its
   * pid on the first line of stdout and then execs the command (every later exec keeps
   * that pid); the line is taken off the stream before the caller sees it.
   */
  async spawn(spec: SpawnSpec): Promise<HostProcess> {
    const ssh = await this.connection();
    const ch = await ssh.channel(['/bin/sh', '-c', 'cd -- "$1" || exit 126; shift; echo "dune-pid $$"; exec "$@"', 'sh', spec.cwd ?? '/', ...spawnArgv(spec)]);
    const stdout = new PassThrough();
    const exited = new Promise<ExitStatus>((resolve) => {
      let status: ExitStatus = { code: 255, signal: null };
      ch.on('exit', (code: number | null, signal?: string) => {
        status = signal ? { code: null, signal: signal.startsWith('SIG') ? signal : `SIG${signal}` } : { code, signal: null };
      });
      ch.on('close', () => resolve(status));
    });
    const pid = await new Promise<number>((resolve, reject) => {
      let head = '';
      const onData = (d: Buffer): void => {
        head += d.toString('latin1');
        const nl = head.indexOf('\n');
        if (nl < 0) return;
        ch.off('data', onData);
        const m = /^dune-pid (\d+)$/.exec(head.slice(0, nl));
        if (!m) {
          reject(new DuneError('spawn-failed', `${this.who()}: the process did not start (${head.slice(0, 200)})`));
          return;
        }
        const rest = Buffer.from(head.slice(nl + 1), 'latin1');
        if (rest.length > 0) stdout.write(rest);
        ch.pipe(stdout);
        resolve(Number(m[1]));
      };
      ch.on('data', onData);
      void exited.then(() => reject(new DuneError('spawn-failed', `${this.who()}: the process ended before it started`)));
    });
    let done = false;
    void exited.then(() => (done = true));
    return {
      pid,
      stdin: ch,
      stdout,
      stderr: ch.stderr,
      exited,
      // The SSH connection is the lab's, held open while the Lab is: nothing to do per process.
      ref: () => undefined,
      unref: () => undefined,
      kill: async (signal: NodeJS.Signals = 'SIGTERM') => {
        if (done) return;
        await ssh.exec(['kill', '-s', signal.replace(/^SIG/, ''), String(pid)], { timeoutMs: 20_000 });
      },
    };
  }

  async exec(ns: string, argv: readonly string[], io: AttachedIo): Promise<number> {
    const ssh = await this.connection();
    return ssh.execAttached(['ip', 'netns', 'exec', ns, ...argv], io);
  }

  /** The SSH connection (tests cut it). */
  get connectionForTests(): SshHost | undefined {
    return this.ssh;
  }

  close(): void {
    this.rpc?.close();
    this.ssh?.close();
    this.rpc = undefined;
    this.ssh = undefined;
  }
}
