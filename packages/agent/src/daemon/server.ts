/**
 * The agent daemon: one per host, serving the protocol of `protocol.ts` on a unix socket.
 * The lab's state is the journal under /run/dune/<lab>, not the daemon's memory, so a
 * daemon can be stopped, killed or replaced by a newer one while labs keep running.
 *
 * It exits by itself after a `down` that leaves no lab on the host (nothing of dune keeps
 * running where no lab is), and on `shutdown`.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { DuneError } from '@dune/topology';
import { change, down, labPlan, listLabs, routes, set, status, up, type ChangeParams } from '../lab/lab.js';
import { STATE_ROOT } from '../lab/journal.js';
import { preflight } from './preflight.js';
import { NetnsGuard } from './netns-guard.js';
import { native } from '../native.js';
import {
  AGENT_METHODS, AGENT_PROTOCOL, agentPidPath, agentSocketPath,
  type AgentErrorBody, type AgentMethod, type AgentReply, type AgentRequest, type HelloResult,
} from './protocol.js';
import type { LabEvent } from '../lab/lab.js';

export interface ServeOptions {
  socket?: string;
  version?: string;
  /** Stay up when no lab is left (default: exit after the last `down`). */
  stay?: boolean;
  log?: (line: string) => void;
  /** Judges whether the daemon is in its host's network namespace (tests pass their own). */
  guard?: NetnsGuard;
}

/** Methods a stale daemon still answers: to say what it is, and to be replaced. */
const ALWAYS = new Set<AgentMethod>(['hello', 'shutdown']);

/** The pid that connected a unix socket, or undefined when it cannot be known. */
function peerPid(s: Socket): number | undefined {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    const pid = native().peerPid(fd);
    return pid > 0 ? pid : undefined; // 0: a process of another pid namespace
  } catch {
    return undefined;
  }
}

/** Whether something answers on the socket (a live daemon), within timeoutMs. */
export function socketAlive(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(path)) return resolve(false);
    const s = createConnection(path);
    const t = setTimeout(() => done(false), timeoutMs);
    function done(ok: boolean): void {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    }
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * A lab's lock file (lab.ts: /run/dune/.<lab>.lock) left by a daemon that was killed: its
 * pid may still be a zombie for a while (until whoever inherited it reaps it), which
 * `kill(pid, 0)` reports as alive. The rollback that follows such a kill must not be
 * refused as `lab-busy`: a zombie or a vanished holder releases the lock here.
 */
function clearDeadLock(lab: string): void {
  const p = join(STATE_ROOT, `.${lab}.lock`);
  let pid: number;
  try {
    pid = Number(readFileSync(p, 'utf8'));
  } catch {
    return;
  }
  if (!(pid > 0) || pid === process.pid) return;
  let state: string | undefined;
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    state = st.slice(st.lastIndexOf(')') + 2)[0];
  } catch {
    state = undefined;
  }
  if (state === undefined || state === 'Z' || state === 'X') rmSync(p, { force: true });
}

function errorBody(e: unknown): AgentErrorBody {
  if (e instanceof DuneError) return { code: e.code, message: e.message, ...(e.hint !== undefined ? { hint: e.hint } : {}) };
  const err = e as Error;
  return { code: 'agent-internal', message: `${err?.message ?? String(e)}${err?.stack ? `\n${err.stack.split('\n').slice(1, 6).join('\n')}` : ''}` };
}

export class AgentServer {
  private readonly socketPath: string;
  private readonly version: string;
  private readonly opts: ServeOptions;
  private server: Server | undefined;
  private readonly startedAt = new Date().toISOString();
  /** One change per lab at a time (the journal's lock file would let this same process in twice). */
  private readonly labQueues = new Map<string, Promise<unknown>>();
  private inFlight = 0;
  private readonly clients = new Set<Socket>();
  private readonly peers = new WeakMap<Socket, number>();
  private readonly guard: NetnsGuard;
  private closing = false;
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;

  constructor(opts: ServeOptions = {}) {
    this.opts = opts;
    this.socketPath = opts.socket ?? agentSocketPath();
    this.version = opts.version ?? 'dev';
    this.guard = opts.guard ?? new NetnsGuard();
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  /** Beside the socket: /run/dune/agent.pid for the real one. */
  private pidPath(): string {
    return this.socketPath === agentSocketPath() ? agentPidPath() : join(dirname(this.socketPath), 'agent.pid');
  }

  private log(line: string): void {
    this.opts.log?.(`${new Date().toISOString()} ${line}`);
  }

  /** Listens; fails with `agent-running` when another daemon already serves the socket. */
  async listen(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true, mode: 0o755 });
    if (existsSync(this.socketPath)) {
      if (await socketAlive(this.socketPath)) {
        throw new DuneError('agent-running', `another agent already serves ${this.socketPath}`, { hint: 'stop it first (dune-agent stop)' });
      }
      rmSync(this.socketPath, { force: true });
    }
    const server = createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Only root may talk to it: create the socket under a umask that leaves it 0600.
      const old = process.umask(0o177);
      server.listen(this.socketPath, () => {
        process.umask(old);
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.socketPath, 0o600);
    writeFileSync(this.pidPath(), `${process.pid}\n`);
    this.log(`listening on ${this.socketPath} (version ${this.version}, pid ${process.pid})`);
  }

  private accept(s: Socket): void {
    this.clients.add(s);
    const peer = peerPid(s);
    if (peer !== undefined) this.peers.set(s, peer);
    s.setEncoding('utf8');
    // A plan is one line of tens of MB: keep the pieces and look for the newline only in
    // what just arrived (rescanning the whole buffer per chunk is quadratic).
    let parts: string[] = [];
    s.on('data', (d: string) => {
      for (let nl = d.indexOf('\n'); nl >= 0; nl = d.indexOf('\n')) {
        parts.push(d.slice(0, nl));
        const line = parts.join('');
        parts = [];
        d = d.slice(nl + 1);
        if (line.trim() !== '') void this.handle(s, line);
      }
      if (d !== '') parts.push(d);
    });
    s.on('error', () => undefined);
    s.on('close', () => this.clients.delete(s));
  }

  private send(s: Socket, msg: AgentReply): void {
    if (!s.destroyed && s.writable) s.write(`${JSON.stringify(msg)}\n`);
  }

  private async handle(s: Socket, line: string): Promise<void> {
    let req: AgentRequest;
    try {
      req = JSON.parse(line) as AgentRequest;
    } catch {
      this.send(s, { id: -1, ok: false, error: { code: 'bad-request', message: 'not a JSON line' } });
      return;
    }
    const id = typeof req.id === 'number' ? req.id : -1;
    if (!AGENT_METHODS.includes(req.method)) {
      this.send(s, { id, ok: false, error: { code: 'unknown-method', message: `unknown method ${String(req.method)}`, hint: `methods: ${AGENT_METHODS.join(', ')}` } });
      return;
    }
    this.inFlight++;
    const t0 = performance.now();
    try {
      if (!ALWAYS.has(req.method)) this.guard.check(this.peers.get(s));
      const result = await this.dispatch(req.method, req.params ?? {}, (e) => this.send(s, { id, event: e }), this.peers.get(s));
      this.send(s, { id, ok: true, result });
      this.log(`${req.method} ok (${Math.round(performance.now() - t0)} ms)`);
    } catch (e) {
      this.send(s, { id, ok: false, error: errorBody(e) });
      this.log(`${req.method} failed: ${(e as Error).message}`);
    } finally {
      this.inFlight--;
    }
    if (req.method === 'shutdown' || (req.method === 'down' && !this.opts.stay && this.inFlight === 0 && listLabs().length === 0)) {
      // Let the reply reach the client first.
      setTimeout(() => void this.close(), 50);
    }
  }

  private serial<T>(lab: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.labQueues.get(lab) ?? Promise.resolve();
    const run = (): Promise<T> => {
      clearDeadLock(lab);
      return fn();
    };
    const next = prev.then(run, run);
    const tail = next.catch(() => undefined);
    this.labQueues.set(lab, tail);
    void tail.then(() => {
      if (this.labQueues.get(lab) === tail) this.labQueues.delete(lab);
    });
    return next;
  }

  private async dispatch(method: AgentMethod, params: unknown, emit: (e: LabEvent) => void, peer?: number): Promise<unknown> {
    const p = params as Record<string, unknown>;
    switch (method) {
      case 'hello': {
        const stale = this.guard.problem(peer);
        const r: HelloResult = { protocol: AGENT_PROTOCOL, version: this.version, pid: process.pid, node: process.version, startedAt: this.startedAt, socket: this.socketPath, labs: listLabs(), ...(stale !== undefined ? { stale } : {}) };
        return r;
      }
      case 'labs':
        return listLabs();
      case 'preflight':
        return preflight(params as import('./protocol.js').PreflightParams);
      case 'up': {
        const plan = p['plan'] as import('@dune/compiler').Plan;
        return this.serial(plan.lab, () => up(plan, { onEvent: emit }));
      }
      case 'down': {
        const lab = String(p['lab']);
        return this.serial(lab, () => down(lab, { onEvent: emit }));
      }
      case 'status':
        return status(String(p['lab']));
      case 'set': {
        const q = params as import('./protocol.js').SetParams;
        return this.serial(q.lab, () => set(q.lab, q.node, q.dev, q.changes, q.removed));
      }
      case 'plan':
        return labPlan(String(p['lab']));
      case 'routes':
        return routes(String(p['lab']), String(p['node']));
      case 'change': {
        const q = params as ChangeParams;
        return this.serial(q.lab, () => change(q));
      }
      case 'shutdown':
        return { pid: process.pid };
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.log('exiting');
    // Replies already written are flushed by end(); a client that lingers is cut.
    for (const c of this.clients) {
      c.end();
      setTimeout(() => c.destroy(), 200).unref();
    }
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    rmSync(this.socketPath, { force: true });
    rmSync(this.pidPath(), { force: true });
    this.resolveClosed();
  }
}
