/**
 * `dune-agent`: the agent on a host, as the controller runs it over SSH.
 *
 *   dune-agent start [--version ID]   the daemon, detached (own session, survives the SSH
 *                                     session), unless one of that version already answers;
 *                                     prints its hello as one JSON line
 *   dune-agent daemon [--version ID]  the daemon in the foreground (what start runs)
 *   dune-agent connect                stdio ↔ the daemon's socket (for sshd without streamlocal)
 *   dune-agent stop                   asks the daemon to exit
 *   dune-agent probe                  the capability probe, as JSON
 *   dune-agent impair-engine --lab L --socket PATH
 *                                     a lab's userspace impairment engine (started by `up`
 *                                     when the lab needs one; see impair/userspace.ts)
 *
 * The native addon is looked for beside this file first (the bundle the controller ships),
 * then in the package's build directory.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { DuneError } from '@dune/topology';
import { probeCapabilities } from '../probe.js';
import { STATE_ROOT } from '../lab/journal.js';
import { AgentServer, socketAlive } from './server.js';
import { AGENT_PROTOCOL, agentLogPath, agentSocketPath, type AgentReply, type HelloResult } from './protocol.js';

export const AGENT_USAGE = 'usage: dune-agent start|daemon|connect|stop|probe [--version ID] [--stay] | dune-agent impair-engine --lab NAME --socket PATH';

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** One request to the daemon, its reply (events ignored). */
export function callDaemon(method: string, params: unknown = {}, timeoutMs = 10_000, socket = agentSocketPath()): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new DuneError('agent-timeout', `the agent at ${socket} did not answer ${method} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`${JSON.stringify({ id: 1, method, params })}\n`));
    s.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const msg = JSON.parse(buf.slice(0, nl)) as AgentReply;
        buf = buf.slice(nl + 1);
        if ('event' in msg) continue;
        clearTimeout(timer);
        s.end();
        if (msg.ok) resolve(msg.result);
        else reject(new DuneError(msg.error.code, msg.error.message, msg.error.hint !== undefined ? { hint: msg.error.hint } : {}));
        return;
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Starts the daemon detached unless one of this version answers; returns its hello. */
export async function startDaemon(version: string, script: string, extra: string[] = []): Promise<HelloResult> {
  const sock = agentSocketPath();
  if (await socketAlive(sock)) {
    const hello = (await callDaemon('hello')) as HelloResult;
    if (hello.version === version && hello.protocol === AGENT_PROTOCOL && hello.stale === undefined) return hello;
    // Another version, or a stale daemon (in a network namespace other than ours: it
    // refuses work): replace it. Labs live in the journal, not in the daemon.
    await callDaemon('shutdown').catch(() => undefined);
    for (let i = 0; i < 100 && (await socketAlive(sock)); i++) await sleep(50);
  }
  mkdirSync(STATE_ROOT, { recursive: true, mode: 0o755 });
  const log = openSync(agentLogPath(), 'a', 0o600);
  // detached: setsid(), so the SSH session ending (SIGHUP to its process group) spares it.
  const child = spawn(process.execPath, [script, 'daemon', '--version', version, ...extra], {
    detached: true,
    stdio: ['ignore', log, log],
    cwd: '/',
    env: { ...process.env, DUNE_AGENT_DAEMON: '1' },
  });
  closeSync(log);
  child.unref();
  let exited: number | null = null;
  child.once('exit', (c) => (exited = c ?? 1));
  for (let i = 0; i < 200; i++) {
    if (await socketAlive(sock)) {
      const hello = (await callDaemon('hello')) as HelloResult;
      if (hello.version === version) return hello;
    }
    if (exited !== null && !(await socketAlive(sock))) break;
    await sleep(50);
  }
  throw new DuneError('agent-start-failed', `the agent daemon did not come up on ${sock}`, { hint: `see its log: ${agentLogPath()}` });
}

function bridge(): Promise<number> {
  return new Promise((resolve) => {
    const s = createConnection(agentSocketPath());
    s.on('connect', () => {
      process.stdin.pipe(s);
      s.pipe(process.stdout);
    });
    s.on('error', (e) => {
      process.stderr.write(`dune-agent connect: ${e.message}\n`);
      resolve(1);
    });
    s.on('close', () => resolve(0));
    process.stdin.on('end', () => s.end());
  });
}

export async function agentMain(argv: string[], script: string): Promise<number> {
  const beside = join(dirname(script), 'dune_native.node');
  if (process.env['DUNE_AGENT_NATIVE'] === undefined && existsSync(beside)) process.env['DUNE_AGENT_NATIVE'] = beside;
  const cmd = argv[0];
  const version = flag(argv, '--version') ?? 'dev';
  const stay = argv.includes('--stay');
  try {
    switch (cmd) {
      case 'start': {
        const hello = await startDaemon(version, script, stay ? ['--stay'] : []);
        process.stdout.write(`${JSON.stringify(hello)}\n`);
        return 0;
      }
      case 'daemon': {
        const server = new AgentServer({ version, stay, log: (l) => process.stdout.write(`${l}\n`) });
        try {
          await server.listen();
        } catch (e) {
          // Lost a race with another start: that one serves.
          if (e instanceof DuneError && e.code === 'agent-running') return 0;
          throw e;
        }
        for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void server.close());
        process.on('SIGHUP', () => undefined);
        await server.closed;
        return 0;
      }
      case 'connect':
        return await bridge();
      case 'stop':
        if (await socketAlive(agentSocketPath())) await callDaemon('shutdown');
        return 0;
      case 'probe':
        process.stdout.write(`${JSON.stringify(await probeCapabilities())}\n`);
        return 0;
      case 'impair-engine': {
        // Loaded only here: the agent's other commands never need the engine.
        const { labEngineMain } = await import('@dune/impair');
        // Its worker threads (--threads) run this same script (see bin/dune-agent.ts).
        return await labEngineMain(argv.slice(1), { workerScript: script });
      }
      default:
        process.stderr.write(`${AGENT_USAGE}\n`);
        return 2;
    }
  } catch (e) {
    const msg = e instanceof DuneError ? JSON.stringify({ ok: false, error: { code: e.code, message: e.message, hint: e.hint } }) : JSON.stringify({ ok: false, error: { code: 'agent-internal', message: String((e as Error)?.stack ?? e) } });
    process.stderr.write(`${msg}\n`);
    return 1;
  }
}
