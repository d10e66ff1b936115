/**
 * `dune ui`: a live view of a running lab on a local port. The page (page.ts) polls
 * /api/graph every second and posts its clicks; every answer is the engine's work on the
 * lab (@dune/lab), as `dune status`, `dune link`, `dune node` and `dune set` do.
 *
 *   GET  /               the page
 *   GET  /api/graph      { model, svg, labels }: the plan and status drawn now (labels: each direction's impairments)
 *   POST /api/link       { index, action: down|up } (both ends) or { node, dev, action } (one end)
 *   POST /api/node       { node, action: stop|start|restart }
 *   POST /api/impair     { node, dev, settings: ["loss=5%", "latency=none", ...] }
 *
 * Bound to 127.0.0.1 only. A request whose Host is not this server's (DNS rebinding) is
 * refused, and a POST must be application/json, which a page of another origin cannot
 * send without a CORS preflight that is never granted.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DuneError, TopologyError, formatDiagnostics, parseImpairmentAssignments } from '@dune/topology';
import type * as transport from '@dune/transport';
import { labPlan, labStatus, setImpairment } from '../engine.js';
import { setLinkState, setNodeState, type NodeActionName } from '../faults.js';
import { graphModel, impairmentLabel } from '../graph/model.js';
import { toSvg } from '../graph/svg.js';
import { uiPage } from './page.js';

export interface UiOptions {
  /** 0: any free port. */
  port?: number;
  orchestrate?: transport.OrchestrateOptions;
}

export interface UiServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly hint?: string) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(body);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/json')) throw new HttpError(415, 'POST bodies are application/json');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'body too large');
    chunks.push(c as Buffer);
  }
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'the body is not a JSON object');
  }
}

function str(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== 'string' || v === '') throw new HttpError(400, `"${key}" must be a non-empty string`);
  return v;
}

export async function startUi(loc: transport.LabLocation, o: UiOptions = {}): Promise<UiServer> {
  const opts = o.orchestrate ?? {};
  let port = 0;

  const graph = async (): Promise<{ model: ReturnType<typeof graphModel>; svg: string; labels: Record<string, string> }> => {
    const [plan, status] = await Promise.all([labPlan(loc, opts), labStatus(loc, opts)]);
    const model = graphModel(plan, status);
    const labels = Object.fromEntries(model.links.flatMap((l) => [[`${l.index}:a`, impairmentLabel(l.a.impairment)], [`${l.index}:b`, impairmentLabel(l.b.impairment)]]));
    return { model, svg: toSvg(model), labels };
  };

  const post = async (path: string, body: Record<string, unknown>): Promise<unknown> => {
    if (path === '/api/link') {
      const action = str(body, 'action');
      if (action !== 'down' && action !== 'up') throw new HttpError(400, `"${action}" is not a link action`, 'use down or up');
      let ends: { node: string; dev: string }[];
      if (body['index'] !== undefined) {
        const plan = await labPlan(loc, opts);
        const l = plan.links.find((x) => x.index === body['index']);
        if (l === undefined) throw new HttpError(404, `lab ${loc.lab} has no link ${String(body['index'])}`);
        ends = [l.a, l.b];
      } else ends = [{ node: str(body, 'node'), dev: str(body, 'dev') }];
      for (const e of ends) await setLinkState(loc, e.node, e.dev, action === 'up', opts);
      return { ok: true };
    }
    if (path === '/api/node') {
      const action = str(body, 'action');
      await setNodeState(loc, str(body, 'node'), action as NodeActionName, opts);
      return { ok: true };
    }
    if (path === '/api/impair') {
      const settings = body['settings'];
      if (!Array.isArray(settings) || settings.some((s) => typeof s !== 'string')) throw new HttpError(400, '"settings" must be a list of key=value strings');
      const { set, removed } = parseImpairmentAssignments(settings as string[]);
      const impairment = await setImpairment(loc, str(body, 'node'), str(body, 'dev'), set, removed, opts);
      return { ok: true, impairment };
    }
    throw new HttpError(404, `no ${path}`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const host = req.headers.host ?? '';
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) throw new HttpError(421, `this server answers for 127.0.0.1:${port} only`);
    const path = new URL(req.url ?? '/', `http://${host}`).pathname;
    if (req.method === 'GET' && path === '/') return send(res, 200, 'text/html; charset=utf-8', uiPage(loc.lab));
    if (req.method === 'GET' && path === '/api/graph') return send(res, 200, 'application/json', JSON.stringify(await graph()));
    if (req.method === 'POST' && path.startsWith('/api/')) return send(res, 200, 'application/json', JSON.stringify(await post(path, await readJson(req))));
    throw new HttpError(req.method === 'GET' || req.method === 'POST' ? 404 : 405, `no ${req.method} ${path}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof HttpError) return send(res, e.status, 'application/json', JSON.stringify({ error: e.message, ...(e.hint ? { hint: e.hint } : {}) }));
      if (e instanceof TopologyError) return send(res, 400, 'application/json', JSON.stringify({ error: formatDiagnostics(e.diagnostics) }));
      if (e instanceof DuneError) return send(res, 400, 'application/json', JSON.stringify({ error: e.message, ...(e.hint ? { hint: e.hint } : {}) }));
      send(res, 500, 'application/json', JSON.stringify({ error: `internal error: ${(e as Error)?.message ?? String(e)}` }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'EADDRINUSE' ? new DuneError('port-in-use', `port ${o.port ?? 0} on 127.0.0.1 is in use`, { hint: 'choose another with --port, or 0 for any free one' }) : e);
    });
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
