/**
 * The controller's note of where a multi-host lab runs, so that `dune status|exec|set|down
 * --lab NAME` from another shell finds its hosts without the topology file:
 * `$DUNE_CONTROLLER_STATE/<lab>.json`, default `~/.local/state/dune/labs/<lab>.json`
 * (`$XDG_STATE_HOME/dune/labs` when set). The lab itself lives on the hosts (their
 * journals); this is only the address book. Given the topology file instead, the same
 * is derived from the plan, so another controller machine reaches the lab too.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { HostTarget, Plan } from '@dune/compiler';

export const LAB_RECORD_FORMAT = 'dune-lab-record/1' as const;

export interface LabRecordHost {
  phynode: string;
  target: HostTarget;
  nodes: number;
}

export interface LabRecord {
  format: typeof LAB_RECORD_FORMAT;
  lab: string;
  /** The topology file, absolute, when it came from one. */
  file?: string;
  createdAt: string;
  updatedAt: string;
  hosts: LabRecordHost[];
  /** node id → [phynode, namespace] */
  nodes: Record<string, [string, string]>;
}

export function recordDir(): string {
  const env = process.env['DUNE_CONTROLLER_STATE'];
  if (env !== undefined) return env;
  const base = process.env['XDG_STATE_HOME'] ?? join(homedir(), '.local', 'state');
  return join(base, 'dune', 'labs');
}

const recordPath = (lab: string): string => join(recordDir(), `${lab}.json`);

export function recordFromPlan(plan: Plan, file?: string): LabRecord {
  const now = new Date().toISOString();
  const nodes: LabRecord['nodes'] = {};
  // A node's other names (`--names label`: its original id) reach it too; an id wins over an alias.
  for (const n of plan.nodes) for (const a of n.aliases ?? []) nodes[a] = [n.phynode, n.ns];
  for (const n of plan.nodes) nodes[n.node] = [n.phynode, n.ns];
  const rec: LabRecord = {
    format: LAB_RECORD_FORMAT,
    lab: plan.lab,
    createdAt: now,
    updatedAt: now,
    hosts: plan.hosts.map((h) => ({ phynode: h.phynode, target: h.target, nodes: h.nodes.length })),
    nodes,
  };
  if (file !== undefined && !file.startsWith('<')) rec.file = resolve(file);
  return rec;
}

export function writeRecord(rec: LabRecord): void {
  const dir = recordDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const old = readRecord(rec.lab);
  if (old) rec.createdAt = old.createdAt;
  rec.updatedAt = new Date().toISOString();
  const tmp = `${recordPath(rec.lab)}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(rec, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, recordPath(rec.lab));
}

export function readRecord(lab: string): LabRecord | undefined {
  const p = recordPath(lab);
  if (!existsSync(p)) return undefined;
  try {
    const r = JSON.parse(readFileSync(p, 'utf8')) as LabRecord;
    return r.format === LAB_RECORD_FORMAT ? r : undefined;
  } catch {
    return undefined;
  }
}

export function removeRecord(lab: string): void {
  rmSync(recordPath(lab), { force: true });
}

export function recordedLabs(): string[] {
  const dir = recordDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
}
