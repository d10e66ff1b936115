/** The agent daemon's protocol over a real unix socket (no root needed: no lab is touched). */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentServer, callDaemon, socketAlive, type AgentReply } from '../src/daemon/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dune-daemon-'));
const sock = join(dir, 'agent.sock');

function exchange(lines: string[], want: number): Promise<AgentReply[]> {
  return new Promise((resolve, reject) => {
    const s = createConnection(sock);
    const got: AgentReply[] = [];
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(lines.join('\n') + '\n'));
    s.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        got.push(JSON.parse(buf.slice(0, nl)) as AgentReply);
        buf = buf.slice(nl + 1);
      }
      if (got.length >= want) {
        s.end();
        resolve(got);
      }
    });
    s.on('error', reject);
  });
}

describe('agent daemon protocol', () => {
  let server: AgentServer;
  beforeAll(async () => {
    server = new AgentServer({ socket: sock, version: 'test-1', stay: true });
    await server.listen();
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves a socket only its owner may use', () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
  });

  it('answers hello with its version and protocol', async () => {
    const hello = (await callDaemon('hello', {}, 5000, sock)) as Record<string, unknown>;
    expect(hello).toMatchObject({ protocol: 'dune-agent/1', version: 'test-1', pid: process.pid, socket: sock });
  });

  it('answers each request by id, refusing bad lines and unknown methods', async () => {
    const replies = await exchange(['not json', JSON.stringify({ id: 7, method: 'nope', params: {} }), JSON.stringify({ id: 8, method: 'labs', params: {} })], 3);
    const byId = new Map(replies.map((r) => [r.id, r]));
    expect(byId.get(-1)).toEqual({ id: -1, ok: false, error: { code: 'bad-request', message: 'not a JSON line' } });
    expect(byId.get(7)).toMatchObject({ ok: false, error: { code: 'unknown-method' } });
    expect(byId.get(8)).toMatchObject({ ok: true });
  });

  it('refuses to start a second daemon on a live socket', async () => {
    const second = new AgentServer({ socket: sock, version: 'test-2' });
    await expect(second.listen()).rejects.toThrow(/another agent already serves/);
    expect(await socketAlive(sock)).toBe(true);
  });

  it('exits on shutdown and removes its socket', async () => {
    const other = join(dir, 'other.sock');
    const s2 = new AgentServer({ socket: other, version: 'x', stay: true });
    await s2.listen();
    expect(await callDaemon('shutdown', {}, 5000, other)).toEqual({ pid: process.pid });
    await s2.closed;
    expect(existsSync(other)).toBe(false);
  });
});
