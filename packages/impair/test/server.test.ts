/**
 * The REST API over real HTTP, in front of a real proxy runtime: good requests, and bad ones
 * that must leave the state unchanged and the server alive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImpairRuntime, MAX_BODY_BYTES, startServer, type RunningServer } from '../src/index.js';

let rt: ImpairRuntime;
let srv: RunningServer;

beforeAll(async () => {
  rt = await ImpairRuntime.start({ level: 'user', transport: 'udp', port: 9, proxyPort: 0, seed: 5, params: { up: { delayUs: 1000 }, down: {} } });
  srv = await startServer({ runtime: rt, port: 0, log: () => {} });
});
afterAll(async () => {
  await srv.close();
  await rt.stop();
});

async function call(method: string, path: string, body?: unknown, raw?: string) {
  const r = await fetch(srv.url.replace(/\/$/, '') + path, {
    method,
    headers: body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {},
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- responses are checked by the assertions
  return { status: r.status, text, json: json as Record<string, any>, headers: r.headers };
}

describe('GET/PUT/DELETE /pipes', () => {
  it('GET shows the startup parameters, in three forms', async () => {
    expect((await call('GET', '/pipes')).json).toEqual({ up: { delayUs: 1000 }, down: {}, notes: [] });
    expect((await call('GET', '/pipes?form=text')).json.up.delay).toBe('1ms');
    expect((await call('GET', '/pipes?form=packet_queue')).json).toEqual({ bandwidth: -1, buffer: -1, delay: 0.001, loss: 0 });
  });

  it("PUT takes packet_queue's body as is, for both directions", async () => {
    const r = await call('PUT', '/pipes', { bandwidth: 125000, buffer: 64000, delay: 0.3, loss: 0.01 });
    expect(r.status).toBe(200);
    const both = { rateBitsPerSec: 1_000_000, queueBytes: 64000, delayUs: 300_000, lossPct: 1 };
    expect(r.json).toEqual({ up: both, down: both, notes: [] });
    expect(rt.pipes.down.parameters).toEqual(both);
  });

  it('PUT merges the per-direction form with unit strings', async () => {
    const r = await call('PUT', '/pipes', { up: { delay: '20ms', jitter: '2ms', distribution: 'pareto' }, down: { rate: 'none', reorder: '5%' } });
    expect(r.status).toBe(200);
    expect(r.json.up).toMatchObject({ delayUs: 20_000, jitterUs: 2000, jitterDistribution: 'pareto', lossPct: 1 });
    expect(r.json.down).toEqual({ queueBytes: 64000, delayUs: 300_000, lossPct: 1, reorderPct: 5 });
  });

  it('DELETE goes back to the startup parameters', async () => {
    const r = await call('DELETE', '/pipes');
    expect(r.json).toEqual({ up: { delayUs: 1000 }, down: {}, notes: [] });
  });
});

describe('bad input: a clear error, nothing applied, the server alive', () => {
  const cases: [string, string | undefined, unknown, number, string][] = [
    ['an unknown key', undefined, { up: { dealy: '5ms' } }, 400, 'invalid-parameters'],
    ['an unknown direction', undefined, { sideways: { delay: '5ms' } }, 400, 'invalid-parameters'],
    ['a negative value', undefined, { up: { delay: '-5ms' } }, 400, 'invalid-parameters'],
    ['a negative number', undefined, { loss: -0.1 }, 400, 'invalid-parameters'],
    ['NaN', undefined, { up: { jitter: 'NaN' } }, 400, 'invalid-parameters'],
    ['a huge number', undefined, { up: { delayUs: 1e300 } }, 400, 'invalid-parameters'],
    ['a huge rate', undefined, { rate: '99999999tbit' }, 400, 'invalid-parameters'],
    ['one bad key among good ones', undefined, { up: { delay: '5ms', loss: '200%' } }, 400, 'invalid-parameters'],
    ['an array', undefined, [1, 2, 3], 400, 'invalid-parameters'],
    ['a string', undefined, 'delay=5ms', 400, 'invalid-parameters'],
    ['malformed JSON', '{"up": {"delay": "5ms"', undefined, 400, 'bad-json'],
    ['an empty body', '', undefined, 400, 'bad-json'],
    ['JSON with NaN', '{"loss": NaN}', undefined, 400, 'bad-json'],
    ['an oversized body', JSON.stringify({ up: { delay: 'x'.repeat(MAX_BODY_BYTES) } }), undefined, 413, 'body-too-large'],
  ];

  it.each(cases)('%s', async (_what, raw, body, status, code) => {
    const before = (await call('GET', '/pipes')).json;
    const r = await call('PUT', '/pipes?strict', body, raw);
    expect(r.status).toBe(status);
    expect(r.json.error.code).toBe(code);
    expect(r.json.error.message.length).toBeGreaterThan(10);
    expect((await call('GET', '/pipes')).json).toEqual(before);
    expect((await call('GET', '/health')).status).toBe(200);
  });

  it('not strict (the default, as packet_queue): unknown keys are ignored and named in Warning headers; bad values still refused', async () => {
    const r = await call('PUT', '/pipes', { up: { dealy: '5ms', loss: '1%' }, sideways: {} });
    expect(r.status).toBe(200);
    expect(r.headers.get('warning')).toBe(
      '299 impaired-network "sideways: unknown key \\"sideways\\" ignored", ' +
        '299 impaired-network "up.dealy: unknown key \\"dealy\\" ignored; did you mean `delay`?"',
    );
    expect(r.json.up).toEqual({ delayUs: 1000, lossPct: 1 });
    expect(r.json.warnings.map((w: { path: string }) => w.path)).toEqual(['sideways', 'up.dealy']);
    const bad = await call('PUT', '/pipes', { colour: 'blue', loss: 2 });
    expect(bad.status).toBe(400);
    expect(bad.json.error.problems.map((p: { path: string }) => p.path)).toEqual(['loss']);
    await call('DELETE', '/pipes');
  });

  it('a validation error lists every problem, what is valid there, and the valid keys', async () => {
    const r = await call('PUT', '/pipes?strict=1', { up: { dealy: '5ms', loss: 2 }, rate: 1000 });
    expect(r.json.error.problems).toEqual([
      { path: 'rate', message: 'the rate 1000 has no unit: write it as "1000mbit" or "1000KB/s", or use rateBitsPerSec', valid: expect.stringContaining('a rate') },
      { path: 'up.dealy', message: expect.stringContaining('did you mean `delay`?') },
      { path: 'up.loss', message: 'the probability 2 is above 1', valid: expect.stringContaining('a percentage 0..100%') },
    ]);
    expect(Object.keys(r.json.error.validKeys)).toEqual(expect.arrayContaining(['up', 'down', 'both', 'delay', 'rate', 'queue', 'delayUs']));
  });

  it('other mistakes: unknown path, wrong method, bad query', async () => {
    expect((await call('GET', '/nope')).json.error.code).toBe('not-found');
    const m = await call('POST', '/metrics');
    expect(m.status).toBe(405);
    expect(m.headers.get('allow')).toBe('GET');
    expect((await call('GET', '/events?since=abc')).json.error).toEqual({ code: 'bad-query', message: '?since= takes a whole number, not "abc"' });
    expect((await call('GET', '/pipes?form=xml')).status).toBe(400);
  });
});

describe('observing', () => {
  it('GET /events: parameter changes, read by any number of readers, from any point', async () => {
    await call('PUT', '/pipes', { up: { loss: '3%' } });
    const a = (await call('GET', '/events')).json;
    const b = (await call('GET', '/events')).json;
    expect(a.events.length).toBe(b.events.length);
    const last = a.events[a.events.length - 1];
    expect(last).toMatchObject({ type: 'params', pipe: 'up', params: { lossPct: 3 } });
    const after = (await call('GET', `/events?since=${a.next}`)).json;
    expect(after.events).toEqual([]);
  });

  it('GET /series: one point per second per direction', async () => {
    rt.engine.sampleSecond();
    const s = (await call('GET', '/series')).json;
    expect(s.points.length).toBeGreaterThan(0);
    expect(Object.keys(s.points[s.points.length - 1].pipes)).toEqual(['up', 'down']);
  });

  it('GET /stats and DELETE /stats', async () => {
    const s = (await call('GET', '/stats')).json;
    expect(s).toMatchObject({ seed: 5, level: 'user', up: { received: { packets: 0 } } });
    expect((await call('DELETE', '/stats')).status).toBe(200);
  });

  it('GET /metrics: Prometheus text', async () => {
    const r = await call('GET', '/metrics');
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(r.text).toContain('# TYPE impair_dropped_packets_total counter');
    expect(r.text).toContain('impair_dropped_packets_total{pipe="up",cause="queue"} 0');
    expect(r.text).toContain('impair_latency_seconds_bucket{pipe="down",le="+Inf"} 0');
    expect(r.text).toContain('# TYPE impair_scheduler_lateness_seconds histogram');
  });

  it('GET / serves the page and its scripts', async () => {
    const r = await call('GET', '/');
    expect(r.text).toContain('<canvas id="latency">');
    expect((await call('GET', '/app.js')).text).toContain("fetch('/pipes'");
    expect((await call('GET', '/chart.js')).status).toBe(200);
  });
});
