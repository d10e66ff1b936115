/**
 * What the orchestration needs of one phynode's agent, local or remote: the same calls,
 * with the same results, whether the agent runs in this process or behind SSH.
 */
import type { Readable, Writable } from 'node:stream';
import type { Impairment } from '@dune/topology';
import type { Plan } from '@dune/compiler';
import type { DownResult, LabEvent, LabStatus, PreflightParams, PreflightResult, SetParams, UpResult } from '@dune/agent';

export interface AttachedIo {
  stdin?: Readable;
  stdout: Writable;
  stderr: Writable;
  pty?: boolean;
}

export interface HostAgent {
  readonly phynode: string;
  /** `root@198.51.100.11:22`, or `this machine`. */
  readonly label: string;
  readonly remote: boolean;
  preflight(p: PreflightParams): Promise<PreflightResult>;
  up(plan: Plan, onEvent: (e: LabEvent) => void): Promise<UpResult>;
  down(lab: string, onEvent: (e: LabEvent) => void): Promise<DownResult>;
  status(lab: string): Promise<LabStatus>;
  set(p: SetParams): Promise<Impairment>;
  labs(): Promise<string[]>;
  /** Runs argv inside a lab namespace with the caller's streams; resolves with its exit code. */
  exec(ns: string, argv: readonly string[], io: AttachedIo): Promise<number>;
  close(): void;
}
