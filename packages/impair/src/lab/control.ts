/**
 * The control channel of a lab's engine: a unix socket speaking JSON lines (protocol.ts).
 * Requests that change pipes are queued and run one at a time; the others answer at once.
 * A malformed line gets an error reply and the connection stays usable; a line over
 * MAX_LINE_BYTES closes the connection.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { LabEngine } from './lab-engine.js';
import {
  LAB_METHODS, LabEngineError, MUTATING, type LabMethod, type LabReply, type LabRequest, type LabPipeSpec, type PipeRef, type SetParams, type ShutdownParams,
  type SyncParams,
} from './protocol.js';

/** A Kdl-sized sync (1,800 pipes) is about 300 KB; this leaves room for far bigger labs. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new LabEngineError('bad-request', `${what}: expected a JSON object`);
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, k: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v === '') throw new LabEngineError('bad-request', `"${k}" must be a non-empty string`);
  return v;
}

/** Is something answering on `path`? */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(path)) {
      resolve(false);
      return;
    }
    const s = createConnection(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.end();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export class LabControlServer {
  private server: Server | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly sockets = new Set<Socket>();
  /** Called once a shutdown request has been answered. */
  onShutdown: (opts: ShutdownParams) => void = () => undefined;

  constructor(
    private readonly lab: LabEngine,
    readonly path: string,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  async listen(): Promise<void> {
    if (existsSync(this.path)) {
      if (await socketAnswers(this.path)) {
        throw new LabEngineError('engine-running', `an engine already answers on ${this.path}`, 'stop it first (dune down), or talk to it');
      }
      unlinkSync(this.path);
    }
    const server = createServer((sock) => this.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
    try {
      unlinkSync(this.path);
    } catch {
      // gone already
    }
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.setEncoding('utf8');
    let buf = '';
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_LINE_BYTES) {
        sock.end(`${JSON.stringify({ id: 0, ok: false, error: { code: 'too-large', message: `a request line over ${MAX_LINE_BYTES} bytes` } })}\n`);
        buf = '';
        return;
      }
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line !== '') this.request(sock, line);
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => this.sockets.delete(sock));
  }

  private reply(sock: Socket, r: LabReply): void {
    if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`);
  }

  private request(sock: Socket, line: string): void {
    let req: LabRequest;
    try {
      req = JSON.parse(line) as LabRequest;
      obj(req, 'the request');
    } catch (e) {
      this.reply(sock, { id: 0, ok: false, error: { code: 'bad-request', message: `not a JSON object: ${(e as Error).message}` } });
      return;
    }
    const id = typeof req.id === 'number' ? req.id : 0;
    if (!(LAB_METHODS as readonly string[]).includes(req.method)) {
      this.reply(sock, { id, ok: false, error: { code: 'unknown-method', message: `unknown method ${JSON.stringify(req.method)}; methods: ${LAB_METHODS.join(', ')}` } });
      return;
    }
    const run = async (): Promise<void> => {
      try {
        const result = await this.dispatch(req.method, req.params ?? {});
        this.reply(sock, { id, ok: true, result });
        if (req.method === 'shutdown') this.onShutdown(req.params as ShutdownParams);
      } catch (e) {
        if (e instanceof LabEngineError) {
          this.reply(sock, { id, ok: false, error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}), ...(e.problems ? { problems: e.problems } : {}) } });
        } else {
          this.log(`${req.method} failed: ${(e as Error).stack ?? String(e)}`);
          this.reply(sock, { id, ok: false, error: { code: 'internal', message: (e as Error).message } });
        }
      }
    };
    if (MUTATING.has(req.method)) this.chain = this.chain.then(run, run);
    else void run();
  }

  private async dispatch(method: LabMethod, params: unknown): Promise<unknown> {
    const p = obj(params, `${method}'s params`);
    switch (method) {
      case 'hello':
        return this.lab.hello();
      case 'counters':
        await this.lab.refresh();
        return this.lab.status();
      case 'sync': {
        const s = p as unknown as SyncParams;
        if (!Array.isArray(s.pipes)) throw new LabEngineError('bad-request', 'sync needs "pipes": an array of {ns, dev, link, params}');
        const r = await this.lab.sync(s.pipes, s.recover === true);
        this.log(`sync: ${JSON.stringify(r)}`);
        return r;
      }
      case 'add': {
        const spec = obj(p['pipe'], 'add\'s "pipe"') as unknown as LabPipeSpec;
        const r = await this.lab.add(spec);
        this.log(`add ${spec.ns}/${spec.dev}: queue ${r.nfqueue}`);
        return r;
      }
      case 'remove': {
        const r = p as unknown as PipeRef;
        return this.lab.remove(str(p, 'ns'), str(p, 'dev')).then((x) => {
          this.log(`remove ${r.ns}/${r.dev}: ${x.removed ? 'removed' : 'not there'}`);
          return x;
        });
      }
      case 'set': {
        const s = p as unknown as SetParams;
        const r = await this.lab.set(str(p, 'ns'), str(p, 'dev'), s.params, {
          ...(typeof s.link === 'string' ? { link: s.link } : {}), create: s.create === true,
          ...(typeof s.ingress?.ns === 'string' && typeof s.ingress.dev === 'string' ? { ingress: { ns: s.ingress.ns, dev: s.ingress.dev, ...(s.ingress.all === true ? { all: true } : {}) } } : {}),
        });
        this.log(`set ${s.ns}/${s.dev} ${JSON.stringify(s.params)}${r.created ? ` (added, queue ${r.nfqueue})` : ''}`);
        return r;
      }
      case 'shutdown':
        return {};
    }
  }
}
