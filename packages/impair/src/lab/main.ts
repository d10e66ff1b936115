/**
 * The lab engine process: `dune-agent impair-engine --lab L --socket PATH [--seed N]`.
 * Started detached by the agent's `up` (and `set`), in the host namespace; it opens one
 * socket into each node namespace it serves. Logs to stdout (the agent points it at
 * /run/dune/<lab>/logs/impair-engine.log).
 *
 *   SIGTERM, SIGINT   rules removed, held packets accepted, queues unbound, exit 0
 *   shutdown request  the same; with keepRules (what `dune down` asks) the rules stay for
 *                     the namespaces' deletion to take away
 */
import { setPriority } from 'node:os';
import { LabControlServer } from './control.js';
import { LabEngine } from './lab-engine.js';

export const LAB_ENGINE_USAGE = 'usage: impair-engine --lab NAME --socket PATH [--seed N] [--nice N]';

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function labEngineMain(argv: readonly string[]): Promise<number> {
  const lab = flag(argv, '--lab');
  const socket = flag(argv, '--socket');
  const seedText = flag(argv, '--seed');
  const niceText = flag(argv, '--nice');
  if (lab === undefined || socket === undefined || (seedText !== undefined && !/^\d+$/.test(seedText)) || (niceText !== undefined && !/^-?\d+$/.test(niceText))) {
    process.stderr.write(`${LAB_ENGINE_USAGE}\n`);
    return 2;
  }
  const log = (line: string): void => {
    process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  };
  // netem runs in the kernel, ahead of every process: a userspace engine on a busy host
  // wakes late unless it is scheduled ahead of the lab's own programs too.
  try {
    setPriority(0, niceText === undefined ? -10 : Number(niceText));
  } catch {
    // not allowed: run at the priority we have
  }
  const engine = new LabEngine({ lab, ...(seedText !== undefined ? { seed: Number(seedText) } : {}) });
  const server = new LabControlServer(engine, socket, log);
  try {
    await server.listen();
  } catch (e) {
    log(`cannot listen on ${socket}: ${(e as Error).message}`);
    return 1;
  }
  log(`impair engine for lab ${lab}: pid ${process.pid}, seed ${engine.engine.seed}, control socket ${socket}`);
  let stopping: Promise<void> | undefined;
  const stop = (keepRules: boolean, why: string): Promise<void> => {
    stopping ??= (async () => {
      log(`stopping (${why})${keepRules ? ', rules left for the namespaces to take' : ''}`);
      await server.close();
      await engine.close({ keepRules });
    })();
    return stopping;
  };
  const done = new Promise<void>((resolve) => {
    server.onShutdown = (o) => void stop(o?.keepRules === true, 'shutdown request').then(resolve);
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void stop(false, sig).then(resolve));
  });
  // The session the agent started us in may end (an SSH connection): that is no reason to stop.
  process.on('SIGHUP', () => undefined);
  await done;
  log('stopped');
  return 0;
}
