/**
 * What the orchestration needs of one phynode's agent, local or remote: the same calls,
 * with the same results, whether the agent runs in this process or behind SSH.
 */
import type { Readable, Writable } from 'node:stream';
import type { Impairment } from '@dune/topology';
import type { Plan } from '@dune/compiler';
import type { ChangeParams, ChangeResult, DownResult, LabEvent, LabStatus, NodeRoute, PreflightParams, PreflightResult, SetParams, UpResult } from '@dune/agent';

export interface AttachedIo {
  stdin?: Readable;
  stdout: Writable;
  stderr: Writable;
  pty?: boolean;
}

/** A program to start inside a node's namespace. */
export interface SpawnSpec {
  ns: string;
  argv: readonly string[];
  /** The whole environment of the program (nothing else is passed). */
  env: Readonly<Record<string, string>>;
  /** Working directory (the spawner changes to it before `ip netns exec`); absent: `/`. */
  cwd?: string;
  /** Run as this user (name or uid) with its primary group and supplementary groups. */
  user?: string;
}

export interface ExitStatus {
  /** The exit code, or null when a signal ended it. */
  code: number | null;
  /** The signal's name (`SIGTERM`), or null. */
  signal: string | null;
}

/** A program running in a node, wherever the node is. */
export interface HostProcess {
  /** Its pid on the node's host. */
  readonly pid: number;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves when it has ended and its output streams are closed. */
  readonly exited: Promise<ExitStatus>;
  /** Sends a signal (default SIGTERM). A process that is gone is not an error. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Whether it keeps the caller's event loop alive (as a child process does by default). */
  ref(): void;
  unref(): void;
}

export interface HostAgent {
  readonly phynode: string;
  /** `root@198.51.100.11:22`, or `this machine`. */
  readonly label: string;
  readonly remote: boolean;
  preflight(p: PreflightParams): Promise<PreflightResult>;
  up(plan: Plan, onEvent: (e: LabEvent) => void): Promise<UpResult>;
  down(lab: string, onEvent: (e: LabEvent) => void): Promise<DownResult>;
  status(lab: string): Promise<LabStatus>;
  set(p: SetParams): Promise<Impairment>;
  /** The lab's journaled plan: this host's part. */
  plan(lab: string): Promise<Plan>;
  /** A runtime change (addresses, routes, link state), applied and journaled. */
  change(p: ChangeParams): Promise<ChangeResult>;
  labs(): Promise<string[]>;
  /** A node's routing table, each route with its protocol (the static plan's, a daemon's, the kernel's). */
  routes(lab: string, node: string): Promise<NodeRoute[]>;
  /** Runs argv inside a lab namespace with the caller's streams; resolves with its exit code. */
  exec(ns: string, argv: readonly string[], io: AttachedIo): Promise<number>;
  /** Starts a program inside a lab namespace, its streams piped back to the caller. */
  spawn(spec: SpawnSpec): Promise<HostProcess>;
  close(): void;
}

/**
 * The command that starts a SpawnSpec on its host: `ip netns exec` (which also bind-mounts
 * /etc/netns/<ns>/* over /etc, e.g. the node's hosts file), `env -i` with exactly the given
 * environment and directory, and for another user `setpriv` with that user's groups. Each
 * of them execs the next, so the pid of the first is the program's. User strings are argv
 * words only: the one shell script here is fixed text and takes the user as "$1".
 */
export function spawnArgv(spec: SpawnSpec): string[] {
  if (spec.argv.length === 0) throw new TypeError('an empty command');
  const env = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
  // The working directory is the spawner's to set (`env -C` would add PWD to the environment).
  const program = ['/usr/bin/env', '-i', ...env, ...spec.argv];
  if (spec.user === undefined) return ['ip', 'netns', 'exec', spec.ns, ...program];
  // The user switch comes first, so that nothing (not even the shell's PWD) gets between
  // `env -i` and the program.
  return [
    'ip', 'netns', 'exec', spec.ns, '/bin/sh', '-c',
    'u=$1; shift; g=$(id -g -- "$u" 2>/dev/null) || { echo "dune: no user $u on this host" >&2; exit 127; }; exec /usr/bin/setpriv --reuid="$u" --regid="$g" --init-groups -- "$@"',
    'sh', spec.user, ...program,
  ];
}
