/**
 * A multi-host test bed on one machine: N "phynodes", each as close to a separate host as
 * one kernel allows, reached by the CLI only over SSH.
 *
 *   host namespace                 dunetest-ul (underlay namespace)          dunetest-phN
 *   dunetest-h0 198.51.100.1 ──veth── h0 ─┐                              ┌─ eth0 198.51.100.1N
 *                                         br0 (Linux bridge) ── phN ─veth┘   sshd -D on :22
 *                                                                             own mount namespace:
 *                                                                             /run (tmpfs), /sys, cache dir
 *
 * Each phynode is a network namespace plus a mount namespace of its own (`unshare --mount
 * --propagation slave`), with a fresh tmpfs on /run, so `ip netns add x` in phN creates
 * /run/netns/x that only phN sees, and the agent's /run/dune is phN's alone. Slave (not
 * private) propagation: the copy of the host's mount table the new namespace starts with
 * includes every `/run/netns/*` bind mount of the host; as a slave it still receives the
 * host's unmounts, so a host namespace deleted later is freed, not pinned by our copy.
 * /sys is remounted so it shows phN's own interfaces, as `ip netns exec` does.
 *
 * Only one interface is added to the host namespace: the veth the CLI reaches the sshd
 * servers through. Its subnet must be on no host interface, and `ip route get` must leave
 * through it before any packet is sent (the host's eth0 is on a real network).
 *
 * Each phynode also has a user `dunesudo` (uid 4242) of its own, with passwordless sudo:
 * /etc/passwd, /etc/group, /etc/shadow and /etc/sudoers.d are bind-mounted copies inside
 * the phynode's mount namespace, so the host's are never touched. `onlyThrough(ph, bastion)`
 * makes a phynode's sshd unreachable from the controller (an nftables rule in the
 * phynode's namespace), so it is reached through the bastion's (ProxyJump).
 *
 * Nothing here goes through a shell with a variable in the script: the one `sh -c` gets its
 * paths as positional parameters.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TESTBED_PREFIX = 'dunetest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** The built CLI and agent bundle the multi-host e2e tests drive, and whether they can run. */
export const CLI = join(REPO, 'packages/cli/dist/bin/dune.js');
export const BUNDLE = join(REPO, 'packages/transport/dist/agent/dune-agent.mjs');
export const isRoot = process.getuid?.() === 0;
export const built = existsSync(CLI) && existsSync(BUNDLE);
export const REASON = !isRoot ? 'needs root (namespaces, sshd)' : 'needs the built CLI and agent bundle (npm run build)';

/** What a `dune` process printed and how it ended. */
export interface CliRun {
  code: number;
  out: string;
  err: string;
  ms: number;
}
/** The login user with passwordless sudo in every phynode. */
export const SUDO_USER = 'dunesudo';
const SUDO_UID = 4242;
/**
 * The bed's own namespace names, exactly: other suites also use the `dunetest` prefix
 * (e.g. `dunetest-impair-*`), and cleanup must never touch theirs.
 */
const OUR_NS = new RegExp(`^${TESTBED_PREFIX}-(ul|ph\\d+)$`);
const UNDERLAY_NS = `${TESTBED_PREFIX}-ul`;
const HOST_IF = `${TESTBED_PREFIX}-h0`;

export interface TestbedOptions {
  /** Number of phynodes (1..50). */
  count: number;
  /** First three octets of the underlay /24 (default 198.51.100, TEST-NET-2). */
  subnet?: string;
  /** Underlay MTU (default 1500). */
  mtu?: number;
  /** sshd port inside each phynode (default 22). */
  sshPort?: number;
}

export interface TestPhynode {
  /** `ph1`, `ph2`, ... */
  name: string;
  /** The network namespace (host's /run/netns). */
  ns: string;
  /** Underlay address; also where sshd listens. */
  underlay: string;
  /** An IPv6 underlay address too (a ULA, only inside the bed): for IPv6-underlay VXLAN. */
  underlay6: string;
  sshPort: number;
  /** `ssh-ed25519 AAAA...` */
  hostKey: string;
  /** The sshd listener's pid; its mount namespace is the phynode's. */
  sshdPid: number;
  dir: string;
}

export interface RunResult {
  code: number;
  out: string;
  err: string;
}

function run(argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): RunResult {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd ?? '', args, { encoding: 'utf8', input: opts.input ?? '', timeout: opts.timeoutMs ?? 30_000 });
  return { code: r.status ?? (r.error ? 127 : 128), out: r.stdout ?? '', err: `${r.stderr ?? ''}${r.error ? String(r.error.message) : ''}` };
}

function must(argv: readonly string[], input?: string): string {
  const r = run(argv, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`testbed: \`${argv.join(' ')}\` failed (${r.code}): ${r.err.trim()}`);
  return r.out;
}

/** Every IPv4 address on the host namespace's interfaces, with the interface. */
function hostV4(): { ifname: string; local: string; prefixlen: number }[] {
  const j = JSON.parse(must(['ip', '-j', '-4', 'addr', 'show'])) as { ifname: string; addr_info: { local: string; prefixlen: number }[] }[];
  return j.flatMap((i) => i.addr_info.map((a) => ({ ifname: i.ifname, local: a.local, prefixlen: a.prefixlen })));
}

function v4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

function overlaps(a: string, alen: number, b: string, blen: number): boolean {
  const len = Math.min(alen, blen);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return ((v4ToInt(a) & mask) >>> 0) === ((v4ToInt(b) & mask) >>> 0);
}

/** The device `ip route get` picks from the host namespace, or undefined when unroutable. */
export function routeDev(addr: string): string | undefined {
  const r = run(['ip', '-j', 'route', 'get', addr]);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.out) as { dev?: string }[])[0]?.dev;
}

function nsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** `/proc/<pid>/ns/<kind>` → inode, or undefined when the process is gone. */
function procNs(pid: number | string, kind: 'net' | 'mnt'): number | undefined {
  try {
    const m = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/${kind}`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function pids(): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** SIGKILLs every pid, then waits until they are gone (zombies of others count as gone). */
async function killAll(list: readonly number[], timeoutMs = 5000): Promise<void> {
  const live = new Set(list.filter((p) => p !== process.pid));
  for (const p of live) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      live.delete(p);
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (live.size > 0 && Date.now() < deadline) {
    await sleep(20);
    for (const p of [...live]) {
      try {
        const st = readFileSync(`/proc/${p}/stat`, 'utf8');
        if (st.slice(st.lastIndexOf(')') + 2).startsWith('Z')) live.delete(p);
      } catch {
        live.delete(p);
      }
    }
  }
}

function tcpOpen(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port, timeout: timeoutMs });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}

/**
 * Processes that belong to a phynode: in its mount namespace (sshd, sessions, the agent
 * daemon), in its network namespace, or in any network namespace it created (lab processes
 * started by `ip netns exec`, which get a mount namespace of their own).
 */
function phynodeProcesses(ph: { ns: string; sshdPid: number; mntIno?: number }): number[] {
  const nets = new Set<number>();
  const own = nsInode(`/run/netns/${ph.ns}`);
  if (own !== undefined) nets.add(own);
  const inner = `/proc/${ph.sshdPid}/root/run/netns`;
  try {
    for (const n of readdirSync(inner)) {
      const ino = nsInode(join(inner, n));
      if (ino !== undefined) nets.add(ino);
    }
  } catch {
    // sshd is gone: its mount namespace may be gone too
  }
  const mnt = ph.mntIno ?? procNs(ph.sshdPid, 'mnt');
  return pids().filter((p) => {
    const n = procNs(p, 'net');
    if (n !== undefined && nets.has(n)) return true;
    return mnt !== undefined && procNs(p, 'mnt') === mnt;
  });
}

export class Testbed {
  readonly dir: string;
  readonly phynodes: TestPhynode[] = [];
  /** The controller's side of the underlay. */
  readonly controllerAddr: string;
  readonly clientKey: string;
  readonly knownHosts: string;
  /** Per phynode a tmpfs of its own at this path: the agent cache for tests. */
  readonly cacheDir: string;
  private readonly opts: Required<TestbedOptions>;
  private readonly mnt = new Map<string, number>();
  private made: { hostIf: boolean; underlayNs: boolean; ns: string[] } = { hostIf: false, underlayNs: false, ns: [] };

  private constructor(opts: Required<TestbedOptions>) {
    this.opts = opts;
    this.dir = mkdtempSync(join(tmpdir(), `${TESTBED_PREFIX}-`));
    // Traversable (not listable): sshd reads a user's authorized keys as that user.
    chmodSync(this.dir, 0o711);
    this.controllerAddr = `${opts.subnet}.1`;
    this.clientKey = join(this.dir, 'id_ed25519');
    this.knownHosts = join(this.dir, 'known_hosts');
    this.cacheDir = join(this.dir, 'cache');
  }

  static async create(o: TestbedOptions): Promise<Testbed> {
    if (process.getuid?.() !== 0) throw new Error('the multi-host test bed needs root');
    if (!(o.count >= 1 && o.count <= 50)) throw new Error(`testbed: count ${o.count} is not within 1..50`);
    const opts: Required<TestbedOptions> = { subnet: '198.51.100', mtu: 1500, sshPort: 22, ...o };
    await cleanupStale();
    const tb = new Testbed(opts);
    try {
      tb.build();
      for (let i = 1; i <= opts.count; i++) await tb.startSsh(tb.phynodes[i - 1] as TestPhynode);
      return tb;
    } catch (e) {
      await tb.teardown();
      throw e;
    }
  }

  private build(): void {
    const { subnet, count, mtu } = this.opts;
    // The subnet must be nobody's: no host interface may have an address in it.
    const clash = hostV4().find((a) => overlaps(a.local, a.prefixlen, `${subnet}.0`, 24));
    if (clash) throw new Error(`testbed: ${subnet}.0/24 overlaps ${clash.local}/${clash.prefixlen} on ${clash.ifname}; pick another subnet`);
    if (!existsSync('/usr/sbin/sshd')) throw new Error('testbed: /usr/sbin/sshd is missing (apt-get install openssh-server)');

    must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'dunetest-client', '-f', this.clientKey]);
    const keys = join(this.dir, 'keys');
    mkdirSync(keys, { mode: 0o711 });
    for (const u of ['root', SUDO_USER]) writeFileSync(join(keys, u), readFileSync(`${this.clientKey}.pub`), { mode: 0o600 });
    chownSync(join(keys, SUDO_USER), SUDO_UID, 65534);
    // The phynodes' own account files: the host's plus the sudo user.
    const etc = join(this.dir, 'etc');
    mkdirSync(join(etc, 'sudoers.d'), { recursive: true, mode: 0o755 });
    writeFileSync(join(etc, 'passwd'), `${readFileSync('/etc/passwd', 'utf8')}${SUDO_USER}:x:${SUDO_UID}:65534:dune test sudo user:/tmp:/bin/sh\n`, { mode: 0o644 });
    writeFileSync(join(etc, 'shadow'), `${readFileSync('/etc/shadow', 'utf8')}${SUDO_USER}:*:19000:0:99999:7:::\n`, { mode: 0o640 });
    writeFileSync(join(etc, 'sudoers.d', 'dunetest'), `${SUDO_USER} ALL=(root) NOPASSWD: ALL\n`, { mode: 0o440 });
    mkdirSync(this.cacheDir, { mode: 0o700 });

    must(['ip', 'netns', 'add', UNDERLAY_NS]);
    this.made.underlayNs = true;
    must(['ip', '-n', UNDERLAY_NS, 'link', 'add', 'br0', 'mtu', String(mtu), 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    must(['ip', '-n', UNDERLAY_NS, 'link', 'set', 'br0', 'up']);

    must(['ip', 'link', 'add', HOST_IF, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'h0', 'netns', UNDERLAY_NS]);
    this.made.hostIf = true;
    run(['sysctl', '-qw', `net.ipv6.conf.${HOST_IF}.disable_ipv6=1`]);
    must(['ip', '-n', UNDERLAY_NS, 'link', 'set', 'h0', 'master', 'br0', 'up']);
    must(['ip', 'addr', 'add', `${this.controllerAddr}/24`, 'dev', HOST_IF]);
    must(['ip', 'link', 'set', HOST_IF, 'up']);

    for (let i = 1; i <= count; i++) {
      const name = `ph${i}`;
      const ns = `${TESTBED_PREFIX}-${name}`;
      const underlay = `${subnet}.${10 + i}`;
      const underlay6 = `fd51:dbe::${10 + i}`;
      must(['ip', 'netns', 'add', ns]);
      this.made.ns.push(ns);
      must(['ip', '-n', UNDERLAY_NS, 'link', 'add', name, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      must(['ip', '-n', UNDERLAY_NS, 'link', 'set', name, 'master', 'br0', 'up']);
      must(['ip', '-n', ns, 'addr', 'add', `${underlay}/24`, 'dev', 'eth0']);
      must(['ip', '-n', ns, 'addr', 'add', `${underlay6}/64`, 'dev', 'eth0', 'nodad']);
      must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      must(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
      // The phynode's way back to the controller is the underlay itself: no default route.
      const dir = join(this.dir, name);
      mkdirSync(dir, { mode: 0o700 });
      const key = join(dir, 'ssh_host_ed25519_key');
      must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `dunetest-${name}`, '-f', key]);
      const hostKey = readFileSync(`${key}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
      writeFileSync(join(dir, 'sshd_config'), this.sshdConfig(dir, underlay), { mode: 0o600 });
      this.phynodes.push({ name, ns, underlay, underlay6, sshPort: this.opts.sshPort, hostKey, sshdPid: -1, dir });
    }
    // Before any packet: the underlay must be reached through our veth, not eth0.
    for (const ph of this.phynodes) {
      const dev = routeDev(ph.underlay);
      if (dev !== HOST_IF) throw new Error(`testbed: ip route get ${ph.underlay} leaves through ${dev ?? 'nothing'}, not ${HOST_IF}; refusing to send`);
    }
    writeFileSync(this.knownHosts, this.phynodes.map((p) => `${this.hostPattern(p)} ${p.hostKey}\n`).join(''), { mode: 0o600 });
  }

  /** known_hosts host pattern: `addr`, or `[addr]:port` off port 22. */
  hostPattern(p: TestPhynode): string {
    return p.sshPort === 22 ? p.underlay : `[${p.underlay}]:${p.sshPort}`;
  }

  private sshdConfig(dir: string, underlay: string): string {
    return [
      `Port ${this.opts.sshPort}`,
      `ListenAddress ${underlay}`,
      `HostKey ${join(dir, 'ssh_host_ed25519_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(this.dir, 'keys', '%u')}`,
      // The key files live under /tmp (mode 1777), which StrictModes' path check rejects;
      // they are root's and 0600 themselves.
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'AllowTcpForwarding yes',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'AllowStreamLocalForwarding yes',
      'X11Forwarding no',
      'PrintMotd no',
      'MaxSessions 32',
      'LoginGraceTime 20',
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      '',
    ].join('\n');
  }

  /** Starts (or restarts) the phynode's sshd in a fresh mount namespace and waits for it. */
  async startSsh(ph: TestPhynode): Promise<void> {
    if (ph.sshdPid > 0) throw new Error(`testbed: sshd of ${ph.name} is running already`);
    const log = openSync(join(ph.dir, 'sshd.log'), 'a', 0o600);
    // nsenter and unshare exec (no --fork), then sh execs sshd: the pid is sshd's own.
    const script = [
      'set -e',
      'mount -t tmpfs -o mode=0755,size=4g dunetest-run /run', // a 900-node plan journal is ~200 MB
      'mkdir -p /run/netns /run/dune /run/sshd',
      'mount -t sysfs dunetest-sys /sys',
      'mount -t tmpfs -o mode=0700,size=256m dunetest-cache "$1"',
      'mount --bind "$2/passwd" /etc/passwd',
      'mount --bind "$2/shadow" /etc/shadow',
      'mount --bind "$2/sudoers.d" /etc/sudoers.d',
      'shift 2',
      'exec "$@"',
    ].join('\n');
    const child = spawn(
      'nsenter',
      [`--net=/run/netns/${ph.ns}`, '--', 'unshare', '--mount', '--propagation', 'slave', '--', '/bin/sh', '-c', script, 'sh', this.cacheDir, join(this.dir, 'etc'),
        '/usr/sbin/sshd', '-D', '-e', '-f', join(ph.dir, 'sshd_config')],
      { detached: true, stdio: ['ignore', log, log] },
    );
    closeSync(log);
    child.unref();
    ph.sshdPid = child.pid ?? -1;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (await tcpOpen(ph.underlay, ph.sshPort, 500)) {
        const m = procNs(ph.sshdPid, 'mnt');
        if (m !== undefined) this.mnt.set(ph.name, m);
        return;
      }
      if (child.exitCode !== null) break;
      await sleep(50);
    }
    const tail = readFileSync(join(ph.dir, 'sshd.log'), 'utf8').trim().split('\n').slice(-5).join('\n');
    throw new Error(`testbed: sshd of ${ph.name} did not come up on ${ph.underlay}:${ph.sshPort}:\n${tail}`);
  }

  /** Stops the phynode's sshd listener and every SSH session of it (not the agent daemon). */
  async stopSsh(ph: TestPhynode): Promise<void> {
    await this.cutConnections(ph);
    if (ph.sshdPid > 0) await killAll([ph.sshdPid]);
    ph.sshdPid = -1;
  }

  /** Kills the per-connection sshd processes of a phynode: its SSH connections drop, the listener stays. */
  async cutConnections(ph: TestPhynode): Promise<number> {
    const mnt = this.mnt.get(ph.name);
    const sessions = pids().filter((p) => {
      if (p === ph.sshdPid || mnt === undefined || procNs(p, 'mnt') !== mnt) return false;
      try {
        return /^sshd\b/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0]?.split('/').pop() ?? '');
      } catch {
        return false;
      }
    });
    await killAll(sessions);
    return sessions.length;
  }

  /**
   * Runs a command inside the phynode (its network and mount namespaces), bypassing SSH:
   * for tests that check what is left there.
   */
  inPhynode(ph: TestPhynode, argv: readonly string[]): RunResult {
    if (ph.sshdPid <= 0) throw new Error(`testbed: ${ph.name} has no sshd to enter through`);
    return run(['nsenter', '-t', String(ph.sshdPid), '-m', '-n', '--', ...argv]);
  }

  /**
   * Makes `ph`'s sshd unreachable from the controller: an nftables table in ph's own
   * namespace drops TCP to its SSH port from the controller's address. Other phynodes (a
   * bastion) still reach it. Gone with the namespace.
   */
  onlyThrough(ph: TestPhynode): void {
    must(['ip', 'netns', 'exec', ph.ns, 'nft', '-f', '-'], [
      'table inet dunetest_bastion {',
      '  chain input {',
      '    type filter hook input priority 0;',
      `    ip saddr ${this.controllerAddr} tcp dport ${ph.sshPort} drop`,
      '  }',
      '}',
      '',
    ].join('\n'));
  }

  /** Processes of the phynode other than its sshd listener. */
  processes(ph: TestPhynode): number[] {
    const mnt = this.mnt.get(ph.name);
    return phynodeProcesses({ ns: ph.ns, sshdPid: ph.sshdPid, ...(mnt !== undefined ? { mntIno: mnt } : {}) }).filter((p) => p !== ph.sshdPid);
  }

  /** `[infrastructure.nodes.phN]` tables for a topology file using this bed. */
  infrastructureToml(extra: (ph: TestPhynode) => string = () => ''): string {
    return this.phynodes
      .map((p) => [
        `[infrastructure.nodes.${p.name}]`,
        `host = "${p.underlay}"`,
        `port = ${p.sshPort}`,
        'user = "root"',
        `identity = "${this.clientKey}"`,
        `underlay = "${p.underlay}"`,
        extra(p),
        '',
      ].join('\n'))
      .join('\n');
  }

  /** Environment for the CLI to use this bed's known_hosts and agent cache. */
  env(): Record<string, string> {
    return { DUNE_KNOWN_HOSTS: this.knownHosts, DUNE_AGENT_CACHE: this.cacheDir, DUNE_CONTROLLER_STATE: join(this.dir, 'controller') };
  }

  /** The built CLI as a user runs it, a fresh process with this bed's environment (plus `env`). */
  dune(args: string[], o: { env?: Record<string, string>; timeoutMs?: number } = {}): CliRun {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...this.env(), ...o.env }, timeout: o.timeoutMs ?? 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr, ms: Date.now() - t0 };
  }

  /** Removes everything: processes of every phynode, namespaces, the host veth, files. */
  async teardown(): Promise<void> {
    for (const ph of this.phynodes) {
      const mnt = this.mnt.get(ph.name);
      await killAll(phynodeProcesses({ ns: ph.ns, sshdPid: ph.sshdPid, ...(mnt !== undefined ? { mntIno: mnt } : {}) }));
      ph.sshdPid = -1;
    }
    for (const ns of this.made.ns.reverse()) run(['ip', 'netns', 'del', ns]);
    this.made.ns = [];
    if (this.made.hostIf) run(['ip', 'link', 'del', HOST_IF]);
    this.made.hostIf = false;
    if (this.made.underlayNs) run(['ip', 'netns', 'del', UNDERLAY_NS]);
    this.made.underlayNs = false;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** What of any test bed is on this machine: namespaces, the host veth, sshd processes. */
export function testbedLeftovers(): string[] {
  const left: string[] = [];
  try {
    for (const n of readdirSync('/run/netns')) if (OUR_NS.test(n)) left.push(`namespace ${n}`);
  } catch {
    // no /run/netns
  }
  if (run(['ip', 'link', 'show', HOST_IF]).code === 0) left.push(`interface ${HOST_IF}`);
  for (const p of pids()) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd.some((w) => w.includes(`/${TESTBED_PREFIX}-`) && w.endsWith('sshd_config'))) left.push(`sshd pid ${p}`);
    } catch {
      // gone
    }
  }
  return left;
}

/** Removes what a crashed earlier run left: only objects with the test bed's names. */
export async function cleanupStale(): Promise<void> {
  const left = testbedLeftovers();
  if (left.length === 0) return;
  const ours = pids().filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').some((w) => w.includes(`/${TESTBED_PREFIX}-`) && w.endsWith('sshd_config'));
    } catch {
      return false;
    }
  });
  const nss = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => OUR_NS.test(n)) : [];
  const victims = new Set<number>();
  for (const sshd of ours) {
    for (const p of phynodeProcesses({ ns: '', sshdPid: sshd })) victims.add(p);
    victims.add(sshd);
  }
  for (const ns of nss) for (const p of phynodeProcesses({ ns, sshdPid: -1 })) victims.add(p);
  await killAll([...victims]);
  for (const ns of nss) run(['ip', 'netns', 'del', ns]);
  run(['ip', 'link', 'del', HOST_IF]);
}
