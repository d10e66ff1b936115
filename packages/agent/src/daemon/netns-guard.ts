/**
 * The daemon's check that it works in its host's network namespace. A daemon is stale when
 * the namespace it runs in is not the one its callers and the host live in: started inside
 * a phynode's namespace that was since deleted and recreated (the new sshd reaches the old
 * daemon through a socket file they share), started under `ip netns exec` or `unshare -n`,
 * or moved since it started. Such a daemon would build VXLAN sockets, host interfaces and
 * nftables rules in the wrong place, so it refuses every method but `hello` and `shutdown`
 * (which lets a new daemon replace it), with `agent-stale-netns`.
 *
 * Three checks, each against an inode of /proc/<pid>/ns/net:
 *   - its own namespace now against the one it recorded at start;
 *   - against the caller's, the process at the other end of the socket (SO_PEERCRED; sshd's
 *     session for a remote controller), when that pid is visible from here;
 *   - against pid 1's, when the daemon shares pid 1's mount namespace (the host as a
 *     whole: a daemon with a mount namespace of its own, a container or a test bed's
 *     phynode, has another host than pid 1's and is judged by the first two).
 */
import { readlinkSync } from 'node:fs';
import { DuneError } from '@dune/topology';

/** The inode of a process's namespace of `kind`, or undefined when it cannot be read. */
export function nsInode(pid: number | 'self', kind: 'net' | 'mnt' = 'net'): number | undefined {
  try {
    const m = /\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/${kind}`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export class NetnsGuard {
  /** The network namespace the daemon started in. */
  readonly home: number | undefined;
  private readonly read: (pid: number | 'self', kind: 'net' | 'mnt') => number | undefined;

  constructor(read: (pid: number | 'self', kind: 'net' | 'mnt') => number | undefined = nsInode) {
    this.read = read;
    this.home = read('self', 'net');
  }

  /** Why the daemon must not work for a caller with this pid (undefined: unknown), or undefined when it may. */
  problem(peerPid?: number): string | undefined {
    const self = this.read('self', 'net');
    if (self === undefined) return undefined; // no /proc: nothing to judge by
    if (this.home !== undefined && self !== this.home) {
      return `the agent daemon (pid ${process.pid}) is in network namespace net:[${self}], not net:[${this.home}] where it started`;
    }
    if (peerPid !== undefined && peerPid > 0) {
      const peer = this.read(peerPid, 'net');
      if (peer !== undefined && peer !== self) {
        return `the agent daemon (pid ${process.pid}) is in network namespace net:[${self}], its caller (pid ${peerPid}) in net:[${peer}]: the daemon is stale (its host's namespace was recreated, or it was started inside another namespace)`;
      }
    }
    const mnt = this.read('self', 'mnt');
    if (mnt !== undefined && mnt === this.read(1, 'mnt')) {
      const init = this.read(1, 'net');
      if (init !== undefined && init !== self) {
        return `the agent daemon (pid ${process.pid}) is in network namespace net:[${self}], not the host's net:[${init}] (pid 1's)`;
      }
    }
    return undefined;
  }

  /** Throws `agent-stale-netns` when problem() has one. */
  check(peerPid?: number): void {
    const why = this.problem(peerPid);
    if (why === undefined) return;
    throw new DuneError('agent-stale-netns', `${why}; it refuses to work there`, {
      hint: 'stop it (`dune-agent stop`, or kill the pid) and connect again: the controller starts a new daemon in the host\'s namespace (labs live in /run/dune, not in the daemon)',
    });
  }
}
