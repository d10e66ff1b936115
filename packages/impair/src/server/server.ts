/**
 * The REST API and the live page.
 *
 *   GET    /pipes            parameters per direction (model keys; ?form=text: friendly units;
 *                            ?form=packet_queue: packet_queue's four keys of `up`)
 *   PUT    /pipes            merge a body (packet_queue's, per-direction, or model keys);
 *                            validated whole: 400 with every problem and the valid keys, nothing applied
 *   DELETE /pipes            back to the startup parameters
 *   GET    /events?since=N   the event log after id N (no draining: any number of readers);
 *                            ?form=packet_queue: its per-packet events, drained on read
 *
 * `api: 'packet_queue'` (its command names) makes its forms the defaults of /pipes and
 * /events, so its clients run unchanged. A PUT ignores unknown keys with a Warning header,
 * as packet_queue ignores them, unless the server or the request (?strict) is strict.
 *   GET    /series?since=N   per-second samples (throughput, drops, latency, queue) for the page
 *   GET    /stats            counters;  DELETE /stats  resets them
 *   GET    /metrics          Prometheus text
 *   GET    /                 the live page (web/)
 *
 * Errors are a small catalogue (ApiError: status + code); anything else is a logged 500.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { formatParams, packetQueueForm, ParamsError, paramNotes, type ParamProblem } from '../params.js';
import type { ImpairRuntime } from '../runtime.js';
import { prometheus, statsView } from './views.js';

export const MAX_BODY_BYTES = 64 * 1024;

/** The page's files, next to src/ and dist/ alike. */
const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));
const STATIC: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/chart.js': 'chart.js',
};
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8' };

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ServerOptions {
  runtime: ImpairRuntime;
  port: number;
  /** Default 127.0.0.1: the API changes a network's behaviour, so it is not exposed by default. */
  host?: string;
  log?: (line: string) => void;
  /**
   * Whose forms are the defaults: ours (parameters per direction, the event log with ids) or
   * packet_queue's (its four keys, its per-packet events drained on read). Default 'dune'.
   */
  api?: 'dune' | 'packet_queue';
  /** Unknown keys in a PUT are an error (400) rather than ignored with a warning. */
  strict?: boolean;
}

export interface RunningServer {
  server: http.Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; version=0.0.4; charset=utf-8' : 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      reject(new ApiError(413, 'body-too-large', `the body is ${declared} bytes; at most ${MAX_BODY_BYTES} are accepted`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new ApiError(413, 'body-too-large', `the body is over ${MAX_BODY_BYTES} bytes`));
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  if (text.trim() === '') throw new ApiError(400, 'bad-json', 'the body is empty; send a JSON object such as {"up": {"delay": "20ms"}}');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, 'bad-json', `the body is not valid JSON: ${(e as Error).message}`);
  }
}

function intParam(url: URL, name: string, dflt: number): number {
  const v = url.searchParams.get(name);
  if (v === null) return dflt;
  if (!/^\d{1,15}$/.test(v)) throw new ApiError(400, 'bad-query', `?${name}= takes a whole number, not "${v}"`);
  return Number(v);
}

function flag(url: URL, name: string): boolean | undefined {
  const v = url.searchParams.get(name);
  if (v === null) return undefined;
  return !['0', 'false', 'no'].includes(v.toLowerCase());
}

/** RFC 9111 Warning header values (ASCII; quotes and backslashes escaped; the list of valid keys left to the body). */
function warningHeader(warnings: ParamProblem[]): string[] {
  return warnings.map((w) => `299 impaired-network "${`${w.path}: ${w.message.replace(/(\?)? Use one of:.*$|; use one of:.*$/s, '$1')}`.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&')}"`);
}

function pipesView(rt: ImpairRuntime, form: string | null) {
  const params = rt.parameters;
  if (form === null || form === 'model') return { ...params, notes: paramNotes(params) };
  if (form === 'text') return { up: formatParams(params.up), down: formatParams(params.down), notes: paramNotes(params) };
  if (form === 'packet_queue') return packetQueueForm(params.up);
  throw new ApiError(400, 'bad-query', `?form= is one of model, text, packet_queue; not "${form}"`);
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const rt = opts.runtime;
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const packetQueueApi = opts.api === 'packet_queue';
  // Its clients read per-packet events from the start.
  if (packetQueueApi) rt.engine.enablePacketEvents();

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const route = (allowed: string[]) => {
      if (!allowed.includes(method)) throw new ApiError(405, 'method-not-allowed', `${method} ${url.pathname} is not supported; use ${allowed.join(', ')}`, { allow: allowed });
    };
    const file = STATIC[url.pathname];
    if (file !== undefined) {
      route(['GET', 'HEAD']);
      const body = await readFile(WEB_DIR + file);
      res.writeHead(200, { 'content-type': TYPES[file.split('.').pop()!] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(method === 'HEAD' ? undefined : body);
      return;
    }
    switch (url.pathname) {
      case '/pipes': {
        route(['GET', 'PUT', 'PATCH', 'POST', 'DELETE']);
        const form = url.searchParams.get('form') ?? (packetQueueApi ? 'packet_queue' : null);
        if (method === 'GET') return send(res, 200, pipesView(rt, form));
        if (method === 'DELETE') {
          rt.reset();
          return send(res, 200, pipesView(rt, form));
        }
        const body = parseJson(await readBody(req));
        const warnings: ParamProblem[] = [];
        rt.set(body, `http ${req.socket.remoteAddress ?? ''}`.trim(), { strict: flag(url, 'strict') ?? opts.strict ?? false, warnings });
        const view = pipesView(rt, form);
        return send(res, 200, warnings.length > 0 && form !== 'packet_queue' ? { ...view, warnings } : view, warnings.length > 0 ? { warning: warningHeader(warnings) } : {});
      }
      case '/events': {
        route(['GET']);
        const form = url.searchParams.get('form') ?? (packetQueueApi ? 'packet_queue' : 'dune');
        if (form === 'packet_queue') {
          // packet_queue's body: {now: seconds, events: [{id, time, pipe, type, value}]}, drained.
          const events = rt.engine.packetEvents?.drain() ?? [];
          rt.engine.enablePacketEvents();
          return send(res, 200, { now: (performance.timeOrigin + performance.now()) / 1000, events });
        }
        if (form !== 'dune') throw new ApiError(400, 'bad-query', `?form= is dune or packet_queue; not "${form}"`);
        const got = rt.engine.events.since(intParam(url, 'since', 0), Math.min(10_000, intParam(url, 'limit', 1000)));
        return send(res, 200, {
          now: Date.now(),
          next: got.next,
          missed: got.missed,
          events: got.items.map(({ id, item }) => ({ id, time: item.time, ...item.event })),
        });
      }
      case '/series': {
        route(['GET']);
        const got = rt.engine.series.since(intParam(url, 'since', 0), Math.min(900, intParam(url, 'limit', 900)));
        return send(res, 200, { now: Date.now(), next: got.next, points: got.items.map(({ id, item }) => ({ id, ...item })) });
      }
      case '/stats':
        route(['GET', 'DELETE']);
        if (method === 'DELETE') rt.resetCounters();
        return send(res, 200, statsView(rt));
      case '/metrics':
        route(['GET']);
        return send(res, 200, prometheus(rt.engine, rt.clock.lateness));
      case '/health':
        route(['GET']);
        return send(res, 200, { ok: true, seed: rt.engine.seed, level: rt.opts.level });
      default:
        throw new ApiError(404, 'not-found', `there is nothing at ${url.pathname}; see /pipes, /events, /series, /stats, /metrics or /`);
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof ParamsError) {
        send(res, 400, { error: { code: e.code, message: e.message, problems: e.problems, validKeys: e.validKeys } });
      } else if (e instanceof ApiError) {
        const headers: Record<string, string> = {};
        if (e.status === 405) headers.allow = (e.details.allow as string[]).join(', ');
        // An oversized body is not read to its end: close the connection after answering.
        if (e.status === 413) headers.connection = 'close';
        send(res, e.status, { error: { code: e.code, message: e.message } }, headers);
        if (e.status === 413) res.on('finish', () => req.destroy());
      } else {
        log(`impaired-network-server: internal error on ${req.method} ${req.url}: ${(e as Error).stack ?? String(e)}`);
        if (!res.headersSent) send(res, 500, { error: { code: 'internal', message: 'internal error (logged by the server)' } });
        else res.destroy();
      }
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';
  return {
    server,
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
