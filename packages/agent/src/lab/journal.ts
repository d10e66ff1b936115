/**
 * The lab's state on this host: `/run/dune/<lab>/` (tmpfs: gone at reboot, as are the
 * namespaces it describes).
 *
 *   plan.json      the plan last applied (canonical JSON)
 *   state.json     phase, processes (pid + start time, to survive pid reuse), host objects
 *   logs/          one log per process (impair-engine.log: the userspace impairment engine)
 *   impair.sock    the userspace impairment engine's control socket, when the lab has one
 *
 * Writes are atomic (write to a temp file, rename), so a kill -9 at any point leaves either
 * the old or the new file, never half of one.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Op, Plan } from '@dune/compiler';

export const STATE_ROOT = process.env['DUNE_STATE_DIR'] ?? '/run/dune';

export interface ProcessRecord {
  name: string;
  node: string;
  ns: string;
  pid: number;
  /** /proc/<pid>/stat field 22: tells a reused pid from ours. */
  startTicks: number;
  argv: string[];
  cpus: number[];
  log: string;
  preDown: string[][];
  down?: string[];
}

/** The lab's userspace impairment engine on this host (see impair/userspace.ts). */
export interface EngineRecord {
  pid: number;
  startTicks: number;
  /** Its control socket: /run/dune/<lab>/impair.sock. */
  socket: string;
  log: string;
  argv: string[];
  startedAt: string;
}

export interface LabState {
  lab: string;
  /** `applying` while up runs: a journal left in this phase means up was interrupted. */
  phase: 'applying' | 'up' | 'tearing-down';
  createdAt: string;
  updatedAt: string;
  processes: ProcessRecord[];
  /** Namespaces this up created (the rest existed already). */
  namespaces: string[];
  /**
   * Namespaces an `up` is about to create, written before it creates them. The kernel
   * layer marks lo only after a whole batch of namespaces exists, so an up killed in
   * between leaves namespaces without the mark: these names (which did not exist before)
   * tell `down` they are the lab's all the same. Cleared once the up has finished.
   */
  pendingNamespaces?: string[];
  /** Files written, for down to remove. */
  files: string[];
  /** Directories created to hold those files, for down to remove when they are empty again. */
  dirs?: string[];
  backend: Record<string, string>;
  /** The userspace impairment engine serving this lab's NFQUEUE rules, when it has one. */
  impairEngine?: EngineRecord;
  /**
   * Nodes stopped at runtime (`dune node stop`), by name: the plan ops taken out of the
   * journaled plan while the node is stopped (its `process` ops and its link ends' `up`
   * ops), put back and applied by `start`. An `up` converges to the topology and clears it.
   */
  parked?: Record<string, Op[]>;
}

export function labDir(lab: string): string {
  return join(STATE_ROOT, lab);
}

export function logDir(lab: string): string {
  return join(labDir(lab), 'logs');
}

function atomicWrite(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

export function writePlan(lab: string, planJson: string): void {
  mkdirSync(logDir(lab), { recursive: true, mode: 0o700 });
  atomicWrite(join(labDir(lab), 'plan.json'), planJson);
}

export function readPlan(lab: string): Plan | undefined {
  const p = join(labDir(lab), 'plan.json');
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as Plan;
}

export function readPlanText(lab: string): string | undefined {
  const p = join(labDir(lab), 'plan.json');
  return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
}

export function writeState(state: LabState): void {
  mkdirSync(logDir(state.lab), { recursive: true, mode: 0o700 });
  state.updatedAt = new Date().toISOString();
  atomicWrite(join(labDir(state.lab), 'state.json'), JSON.stringify(state, null, 2) + '\n');
}

export function readState(lab: string): LabState | undefined {
  const p = join(labDir(lab), 'state.json');
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function removeJournal(lab: string): void {
  rmSync(labDir(lab), { recursive: true, force: true });
}

/** Labs with a journal on this host. */
export function journalLabs(): string[] {
  if (!existsSync(STATE_ROOT)) return [];
  return readdirSync(STATE_ROOT, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

export function newState(lab: string): LabState {
  const now = new Date().toISOString();
  return { lab, phase: 'applying', createdAt: now, updatedAt: now, processes: [], namespaces: [], files: [], backend: {} };
}
