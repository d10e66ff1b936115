/**
 * A stale agent daemon (in a network namespace other than its host's) refuses work: the
 * checks with a fake /proc, and for real a caller in another namespace (root only).
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentServer, callDaemon, NetnsGuard, type AgentReply } from '../src/daemon/index.js';
import { isRoot, ROOT_REASON } from './helpers.js';

type Table = Record<string, number | undefined>;
/** A fake /proc/<pid>/ns/<kind>: `self.net`, `1.mnt`, `42.net`, ... */
function fakeProc(t: Table): (pid: number | 'self', kind: 'net' | 'mnt') => number | undefined {
  return (pid, kind) => t[`${pid}.${kind}`];
}

describe('NetnsGuard', () => {
  it('passes a daemon where it started, with its caller, in pid 1 namespace', () => {
    const t: Table = { 'self.net': 10, 'self.mnt': 20, '1.net': 10, '1.mnt': 20, '42.net': 10 };
    expect(new NetnsGuard(fakeProc(t)).problem(42)).toBeUndefined();
  });

  it('refuses once its own namespace changed since it started', () => {
    const t: Table = { 'self.net': 10, 'self.mnt': 20 };
    const g = new NetnsGuard(fakeProc(t));
    t['self.net'] = 11;
    expect(g.problem()).toMatch(/is in network namespace net:\[11\], not net:\[10\] where it started/);
    expect(() => g.check()).toThrow(expect.objectContaining({ code: 'agent-stale-netns', hint: expect.stringMatching(/dune-agent stop/) }));
  });

  it('refuses a caller in another namespace (the host namespace was recreated under it)', () => {
    const t: Table = { 'self.net': 10, 'self.mnt': 20, '42.net': 12 };
    expect(new NetnsGuard(fakeProc(t)).problem(42)).toMatch(/its caller \(pid 42\) in net:\[12\]: the daemon is stale/);
    // A caller whose namespace cannot be read (gone, or of another pid namespace) is no evidence.
    expect(new NetnsGuard(fakeProc(t)).problem(43)).toBeUndefined();
  });

  it('compares with pid 1 only when it shares pid 1 mount namespace', () => {
    const host: Table = { 'self.net': 10, 'self.mnt': 20, '1.net': 9, '1.mnt': 20 };
    expect(new NetnsGuard(fakeProc(host)).problem()).toMatch(/not the host's net:\[9\] \(pid 1's\)/);
    const phynode: Table = { 'self.net': 10, 'self.mnt': 21, '1.net': 9, '1.mnt': 20 };
    expect(new NetnsGuard(fakeProc(phynode)).problem()).toBeUndefined();
  });
});

const NS = `dunetest-stale-${process.pid}`;

/** One request from inside namespace `ns` (a node process there), its reply. Async: the server is in this process. */
function callFrom(ns: string, sock: string, method: string): Promise<AgentReply> {
  const script = `const s=require('net').createConnection(process.argv[1]);let b='';s.setEncoding('utf8');s.on('connect',()=>s.write(JSON.stringify({id:1,method:process.argv[2],params:{}})+'\\n'));s.on('data',d=>{b+=d;if(b.includes('\\n')){process.stdout.write(b);s.end();}});`;
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', ns, process.execPath, '-e', script, sock, method], { encoding: 'utf8', timeout: 20_000 }, (err, out, errOut) => {
      if (err) reject(new Error(`node in ${ns}: ${err.message} ${errOut}`));
      else resolve(JSON.parse(out.trim()) as AgentReply);
    });
  });
}

describe.skipIf(!isRoot)(`a daemon called from another network namespace (${ROOT_REASON})`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dune-daemon-netns-'));
  const sock = join(dir, 'agent.sock');
  let server: AgentServer;
  beforeAll(async () => {
    expect(spawnSync('ip', ['netns', 'add', NS]).status).toBe(0);
    server = new AgentServer({ socket: sock, version: 'test-netns', stay: true });
    await server.listen();
  });
  afterAll(async () => {
    await server.close();
    spawnSync('ip', ['netns', 'del', NS]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses work with agent-stale-netns, and says so in hello', async () => {
    const labs = await callFrom(NS, sock, 'labs');
    expect(labs).toMatchObject({ id: 1, ok: false, error: { code: 'agent-stale-netns', hint: expect.stringMatching(/starts a new daemon/) } });
    if (!('ok' in labs) || labs.ok) throw new Error('expected a refusal');
    expect(labs.error.message).toMatch(/its caller \(pid \d+\) in net:\[\d+\]: the daemon is stale/);
    const hello = await callFrom(NS, sock, 'hello');
    expect(hello).toMatchObject({ ok: true, result: { version: 'test-netns', stale: expect.stringMatching(/the daemon is stale/) } });
  });

  it('works for a caller in its own namespace', async () => {
    expect(Array.isArray(await callDaemon('labs', {}, 5000, sock))).toBe(true);
    expect(await callDaemon('hello', {}, 5000, sock)).not.toHaveProperty('stale');
  });
});
