/**
 * A program running in a node: nemu's Popen in TypeScript. Streams, wait, poll, signal,
 * communicate; the same object whether the node is on this machine or another host.
 */
import type { Readable, Writable } from 'node:stream';
import { constants } from 'node:os';
import type { ExitStatus, HostProcess } from '@dune/transport';

export interface RunResult {
  /** Exit code; null when a signal ended the program. */
  code: number | null;
  /** The signal that ended it (`SIGTERM`), or null. */
  signal: string | null;
  stdout: string;
  stderr: string;
}

export class LabProcess {
  /** The pid on the node's host. */
  readonly pid: number;
  readonly node: string;
  readonly argv: readonly string[];
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  private readonly p: HostProcess;
  private status: ExitStatus | undefined;

  constructor(node: string, argv: readonly string[], p: HostProcess) {
    this.node = node;
    this.argv = argv;
    this.p = p;
    this.pid = p.pid;
    this.stdin = p.stdin;
    this.stdout = p.stdout;
    this.stderr = p.stderr;
    // A program that exits before its input is written would fail the write: not the caller's error.
    this.stdin.on('error', () => undefined);
    void p.exited.then((s) => (this.status = s));
    // A program left running does not keep the script alive: when the script ends, its lab
    // (and the program with it) is torn down. Waiting for it holds the script (wait()).
    p.unref();
  }

  /** Waits for the end: { code, signal }. */
  async wait(): Promise<ExitStatus> {
    this.p.ref();
    try {
      return await this.p.exited;
    } finally {
      this.p.unref();
    }
  }

  /** The exit status if it has ended, else undefined (nemu's poll()). */
  poll(): ExitStatus | undefined {
    return this.status;
  }

  /** Exit status as a shell reports it (128 + signal number), or undefined while it runs. */
  get returncode(): number | undefined {
    const s = this.status;
    if (s === undefined) return undefined;
    if (s.code !== null) return s.code;
    return 128 + ((s.signal && constants.signals[s.signal as NodeJS.Signals]) || 1);
  }

  /** Sends a signal (default SIGTERM); nothing happens when it has ended already. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.status !== undefined) return;
    await this.p.kill(signal);
  }

  /** nemu's signal(): kill() by another name. */
  signal(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return this.kill(signal);
  }

  /** Writes `input` (if any), closes stdin, and collects the output until the program ends. */
  async communicate(input?: string | Buffer): Promise<RunResult> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    this.stdout.on('data', (d: Buffer) => out.push(Buffer.from(d)));
    this.stderr.on('data', (d: Buffer) => err.push(Buffer.from(d)));
    if (input !== undefined) this.stdin.write(input);
    this.stdin.end();
    this.p.ref();
    const s = await this.wait();
    return { code: s.code, signal: s.signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  }
}
