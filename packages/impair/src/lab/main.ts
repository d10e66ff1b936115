/**
 * The lab engine process: `dune-agent impair-engine --lab L --socket PATH [--seed N]
 * [--threads N|auto] [--fail-open]`.
 * Started detached by the agent's `up` (and `set`), in the host namespace; it opens one
 * socket into each node namespace it serves. Logs to stdout (the agent points it at
 * /run/dune/<lab>/logs/impair-engine.log).
 *
 *   SIGTERM, SIGINT   rules removed, held packets accepted, queues unbound, exit 0
 *   shutdown request  the same; with keepRules (what `dune down` asks) the rules stay for
 *                     the namespaces' deletion to take away
 */
import { setProcessNice, singleThreadedScavenges, TIMING_NICE } from '../kernel/engine-process.js';
import { LabControlServer } from './control.js';
import { LabEngine } from './lab-engine.js';
import { autoThreads } from './plane.js';

export const LAB_ENGINE_USAGE = 'usage: impair-engine --lab NAME --socket PATH [--seed N] [--nice N] [--threads N|auto] [--fail-open]';

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/**
 * `workerScript`: what the engine's worker threads run (with --threads), when the process's
 * own script can run as one (the agent's bundle does: it calls runPlaneWorker in a worker).
 */
export async function labEngineMain(argv: readonly string[], opts: { workerScript?: string | URL } = {}): Promise<number> {
  const lab = flag(argv, '--lab');
  const socket = flag(argv, '--socket');
  const seedText = flag(argv, '--seed');
  const niceText = flag(argv, '--nice');
  const threadsText = flag(argv, '--threads');
  const threads = threadsText === 'auto' ? autoThreads() : Number(threadsText ?? 1);
  if (lab === undefined || socket === undefined || (seedText !== undefined && !/^\d+$/.test(seedText)) || (niceText !== undefined && !/^-?\d+$/.test(niceText))
    || (threadsText !== undefined && threadsText !== 'auto' && !/^\d+$/.test(threadsText)) || !(threads >= 1 && threads <= 256)) {
    process.stderr.write(`${LAB_ENGINE_USAGE}\n`);
    return 2;
  }
  const log = (line: string): void => {
    process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  };
  // netem runs in the kernel, ahead of every process: a userspace engine on a busy host
  // wakes late unless it is scheduled ahead of the lab's own programs too (all its threads:
  // its garbage collections run on V8's helpers).
  try {
    setProcessNice(niceText === undefined ? TIMING_NICE : Number(niceText));
  } catch {
    // not allowed: run at the priority we have
  }
  singleThreadedScavenges();
  let dying = false;
  const engine = new LabEngine({
    lab, threads, failOpen: argv.includes('--fail-open'), ...(seedText !== undefined ? { seed: Number(seedText) } : {}),
    ...(opts.workerScript !== undefined ? { workerScript: opts.workerScript } : {}),
    // A thread's pipes pass nothing without it: the engine ends, as a crashed one would (`dune status`
    // shows it, `dune up` starts another); its rules stay (that traffic stops) unless it fails open.
    onThreadDeath: (why) => {
      if (dying) return;
      dying = true;
      log(`${why}: stopping`);
      void engine.close({ keepRules: !engine.failOpen }).finally(() => process.exit(70));
    },
  });
  try {
    await engine.start();
  } catch (e) {
    log(`cannot start the engine's threads: ${(e as Error).message}`);
    return 1;
  }
  const server = new LabControlServer(engine, socket, log);
  try {
    await server.listen();
  } catch (e) {
    log(`cannot listen on ${socket}: ${(e as Error).message}`);
    return 1;
  }
  log(`impair engine for lab ${lab}: pid ${process.pid}, seed ${engine.engine.seed}, ${threads === 1 ? 'one thread' : `${threads} engine threads`}, fail ${engine.failOpen ? 'open' : 'closed'}, control socket ${socket}`);
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
