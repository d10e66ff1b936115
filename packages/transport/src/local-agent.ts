/** The phynodes a plan puts on this machine (no `host`, or `localhost`): the agent in this process. */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Impairment } from '@dune/topology';
import type { Plan } from '@dune/compiler';
import * as agent from '@dune/agent';
import { spawnArgv, type AttachedIo, type ExitStatus, type HostAgent, type HostProcess, type SpawnSpec } from './host-agent.js';

/** Exit status as a shell reports it: the code, or 128 + the signal's number. */
export function exitCode(code: number | null, signal: NodeJS.Signals | string | null): number {
  if (code !== null) return code;
  const n = signal ? constants.signals[signal as NodeJS.Signals] : undefined;
  return 128 + (n ?? 1);
}

function handleOf(st: unknown): { ref?: () => void; unref?: () => void } {
  return st as { ref?: () => void; unref?: () => void };
}

export class LocalAgent implements HostAgent {
  readonly phynode: string;
  readonly label = 'this machine';
  readonly remote = false;

  constructor(phynode: string) {
    this.phynode = phynode;
  }

  preflight(p: agent.PreflightParams): Promise<agent.PreflightResult> {
    return agent.preflight(p);
  }

  up(plan: Plan, onEvent: (e: agent.LabEvent) => void): Promise<agent.UpResult> {
    return agent.up(plan, { onEvent });
  }

  down(lab: string, onEvent: (e: agent.LabEvent) => void): Promise<agent.DownResult> {
    return agent.down(lab, { onEvent });
  }

  status(lab: string): Promise<agent.LabStatus> {
    return agent.status(lab);
  }

  set(p: agent.SetParams): Promise<Impairment> {
    return agent.set(p.lab, p.node, p.dev, p.changes, p.removed);
  }

  plan(lab: string): Promise<Plan> {
    return Promise.resolve(agent.labPlan(lab));
  }

  change(p: agent.ChangeParams): Promise<agent.ChangeResult> {
    return agent.change(p);
  }

  labs(): Promise<string[]> {
    return Promise.resolve(agent.listLabs());
  }

  routes(lab: string, node: string): Promise<agent.NodeRoute[]> {
    return Promise.resolve(agent.routes(lab, node));
  }

  exec(ns: string, argv: readonly string[], io: AttachedIo): Promise<number> {
    // The caller's own terminal: the command gets it as it is (a shell, job control, tcpdump's ^C).
    const inherit = io.stdin === process.stdin && io.stdout === process.stdout && io.stderr === process.stderr;
    return new Promise((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: inherit ? 'inherit' : [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
      if (!inherit) {
        if (io.stdin && c.stdin) io.stdin.pipe(c.stdin);
        c.stdout?.pipe(io.stdout, { end: false });
        c.stderr?.pipe(io.stderr, { end: false });
      }
      c.on('error', reject);
      c.on('close', (code, sig) => resolve(exitCode(code, sig)));
    });
  }

  spawn(spec: SpawnSpec): Promise<HostProcess> {
    const [cmd, ...args] = spawnArgv(spec);
    const c = spawn(cmd as string, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: spec.cwd ?? '/' });
    return new Promise((resolve, reject) => {
      c.once('error', reject);
      c.once('spawn', () => {
        const exited = new Promise<ExitStatus>((res) => c.once('close', (code, signal) => res({ code, signal })));
        let done = false;
        void exited.then(() => (done = true));
        resolve({
          pid: c.pid as number,
          stdin: c.stdin,
          stdout: c.stdout,
          stderr: c.stderr,
          exited,
          ref: () => {
            c.ref();
            for (const st of [c.stdin, c.stdout, c.stderr]) handleOf(st).ref?.();
          },
          // The process and its unread pipes stop holding the event loop; a pipe someone
          // reads (a 'data' or 'readable' listener) still holds it, as Node's would.
          unref: () => {
            c.unref();
            handleOf(c.stdin).unref?.();
            for (const st of [c.stdout, c.stderr]) {
              if (st.listenerCount('data') + st.listenerCount('readable') > 0) continue;
              handleOf(st).unref?.();
              const hook = (ev: string | symbol): void => {
                if (ev !== 'data' && ev !== 'readable') return;
                st.off('newListener', hook);
                handleOf(st).ref?.();
              };
              st.on('newListener', hook);
            }
          },
          kill: (signal: NodeJS.Signals = 'SIGTERM') => {
            if (!done) {
              try {
                process.kill(c.pid as number, signal);
              } catch {
                // already gone
              }
            }
            return Promise.resolve();
          },
        });
      });
    });
  }

  close(): void {
    // nothing held
  }
}
