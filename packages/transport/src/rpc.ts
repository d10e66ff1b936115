/**
 * The controller's end of the agent protocol (@dune/agent daemon/protocol.ts): JSON lines
 * over any duplex stream (an SSH streamlocal channel, or an exec channel running
 * `dune-agent connect`). Every call has a deadline; long calls (`up`, `down`) have an idle
 * deadline instead, renewed by every event the agent streams back.
 */
import type { Duplex } from 'node:stream';
import { DuneError } from '@dune/topology';
import type { AgentMethod, AgentMethods, AgentReply, LabEvent } from '@dune/agent';

export interface CallOptions {
  /** Fails when no reply came within this (default 60 s). */
  timeoutMs?: number;
  /** Fails when neither an event nor the reply came within this (replaces timeoutMs). */
  idleTimeoutMs?: number;
  onEvent?: (e: LabEvent) => void;
}

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onEvent: ((e: LabEvent) => void) | undefined;
  arm: () => void;
  timer: NodeJS.Timeout | undefined;
}

export class AgentClient {
  private readonly stream: Duplex;
  /** For messages: `phynode ph1 (root@198.51.100.11:22)`. */
  private readonly who: string;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private parts: string[] = [];
  private gone: Error | undefined;

  constructor(stream: Duplex, who: string) {
    this.stream = stream;
    this.who = who;
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => this.onData(d));
    const end = (why: string): void => this.fail(new DuneError('agent-gone', `the agent on ${who} went away (${why})`, { hint: 'run the command again: it reconnects and restarts the agent if needed' }));
    stream.on('close', () => end('connection closed'));
    stream.on('end', () => end('connection closed'));
    stream.on('error', (e: Error) => end(e.message));
  }

  get closed(): boolean {
    return this.gone !== undefined;
  }

  private fail(e: Error): void {
    if (this.gone) return;
    this.gone = e;
    for (const [id, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new DuneError((e as DuneError).code ?? 'agent-gone', `${e.message} during ${p.method}`, { hint: (e as DuneError).hint ?? '' }));
    }
  }

  private onData(d: string): void {
    // Only the new chunk is searched for a newline: a status reply can be megabytes long.
    for (let nl = d.indexOf('\n'); nl >= 0; nl = d.indexOf('\n')) {
      this.parts.push(d.slice(0, nl));
      const line = this.parts.join('');
      this.parts = [];
      d = d.slice(nl + 1);
      if (line.trim() === '') continue;
      let msg: AgentReply;
      try {
        msg = JSON.parse(line) as AgentReply;
      } catch {
        this.fail(new DuneError('agent-protocol', `the agent on ${this.who} sent something that is not a JSON line: ${line.slice(0, 200)}`));
        this.stream.destroy();
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) continue;
      if ('event' in msg) {
        p.arm();
        p.onEvent?.(msg.event);
        continue;
      }
      if (p.timer) clearTimeout(p.timer);
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new DuneError(msg.error.code, msg.error.message, msg.error.hint !== undefined ? { hint: msg.error.hint } : {}));
    }
    if (d !== '') this.parts.push(d);
  }

  call<M extends AgentMethod>(method: M, params: AgentMethods[M][0], o: CallOptions = {}): Promise<AgentMethods[M][1]> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    const idle = o.idleTimeoutMs !== undefined;
    const ms = o.idleTimeoutMs ?? o.timeoutMs ?? 60_000;
    return new Promise<AgentMethods[M][1]>((resolve, reject) => {
      const p: Pending = {
        method,
        resolve: resolve as (v: unknown) => void,
        reject,
        onEvent: o.onEvent,
        timer: undefined,
        arm: () => {
          if (!idle && p.timer) return;
          if (p.timer) clearTimeout(p.timer);
          p.timer = setTimeout(() => {
            this.pending.delete(id);
            reject(new DuneError('agent-timeout', `the agent on ${this.who} did not ${idle ? 'report progress on' : 'answer'} ${method} within ${(ms / 1000).toFixed(0)} s`, {
              hint: 'the host may be overloaded or stuck; check it, then run the command again',
            }));
          }, ms);
        },
      };
      this.pending.set(id, p);
      p.arm();
      this.stream.write(`${JSON.stringify({ id, method, params })}\n`);
    });
  }

  close(): void {
    this.stream.end();
  }
}
