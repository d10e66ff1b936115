/**
 * Configuring the edges from the core over SSH (dune's transport: ssh2, host keys checked
 * against known_hosts). An edge given `ssh=[user@]host[:port]` (and optionally
 * `ssh-key=FILE`) gets its printed `netmirage-edge` command run there, argv quoted for the
 * remote shell by the transport; `--destroy` runs `netmirage-edge --remove IFACE` on it.
 * `netmirage-edge` must be installed on the edge (or named with --edge-bin).
 */
import { SshHost, type SshOptions } from '@dune/transport';
import { DuneError } from '@dune/topology';
import type { Log } from './util.js';

export interface SshEdge {
  /** The edge's address in the emulation, for messages. */
  ip: string;
  /** `[user@]host[:port]` */
  ssh: string;
  identity?: string;
  /** The edge's interface (the command's IFACE): what --remove needs. */
  iface: string;
}

export interface SshEdgeOptions {
  edgeBin: string;
  knownHostsFile?: string;
  acceptNewHostKeys?: boolean;
}

export function parseSshTarget(text: string): { host: string; user?: string; port?: number } {
  const m = /^(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s]+)(?::(\d+))?$/.exec(text);
  if (m === null) throw new DuneError('bad-edge', `ssh=${text} is not [user@]host[:port]`, { hint: 'e.g. ssh=root@192.0.2.10:22' });
  const out: { host: string; user?: string; port?: number } = { host: (m[2] as string).replace(/^\[|\]$/g, '') };
  if (m[1] !== undefined) out.user = m[1];
  if (m[3] !== undefined) out.port = Number(m[3]);
  return out;
}

async function onEdge<T>(e: SshEdge, o: SshEdgeOptions, fn: (h: SshHost) => Promise<T>): Promise<T> {
  const t = parseSshTarget(e.ssh);
  const opts: SshOptions = { sshConfigFile: null };
  if (o.knownHostsFile !== undefined) opts.knownHostsFile = o.knownHostsFile;
  if (o.acceptNewHostKeys) opts.acceptNewHostKeys = true;
  const h = await SshHost.connect({ phynode: `edge ${e.ip}`, ...t, ...(e.identity !== undefined ? { identity: e.identity } : {}) }, opts);
  try {
    return await fn(h);
  } finally {
    h.close();
  }
}

/** Runs the edge's command there; throws with its stderr when it fails. */
export async function configureSshEdge(e: SshEdge, argv: readonly string[], o: SshEdgeOptions, log: Log): Promise<void> {
  if (argv.some((a) => /^<.*>$/.test(a))) {
    throw new DuneError('bad-edge', `edge ${e.ip} is to be configured over SSH, but its command still has placeholders: ${argv.join(' ')}`, {
      hint: 'give rdev= and rapps= for it (and -I if the core address cannot be found)',
    });
  }
  await onEdge(e, o, (h) => h.run([o.edgeBin, ...argv.slice(1)], { timeoutMs: 120_000 }));
  log('info', `edge ${e.ip} configured over SSH (${e.ssh})`);
}

export async function removeSshEdge(e: SshEdge, o: SshEdgeOptions, log: Log): Promise<void> {
  await onEdge(e, o, (h) => h.run([o.edgeBin, '--remove', e.iface], { timeoutMs: 120_000 }));
  log('info', `edge ${e.ip} restored over SSH (${e.ssh})`);
}
