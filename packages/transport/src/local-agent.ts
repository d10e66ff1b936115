/** The phynodes a plan puts on this machine (no `host`, or `localhost`): the agent in this process. */
import { spawn } from 'node:child_process';
import type { Impairment } from '@dune/topology';
import type { Plan } from '@dune/compiler';
import * as agent from '@dune/agent';
import type { AttachedIo, HostAgent } from './host-agent.js';

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

  labs(): Promise<string[]> {
    return Promise.resolve(agent.listLabs());
  }

  exec(ns: string, argv: readonly string[], io: AttachedIo): Promise<number> {
    return new Promise((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
      if (io.stdin && c.stdin) io.stdin.pipe(c.stdin);
      c.stdout?.pipe(io.stdout, { end: false });
      c.stderr?.pipe(io.stderr, { end: false });
      c.on('error', reject);
      c.on('close', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15)));
    });
  }

  close(): void {
    // nothing held
  }
}
