/**
 * The agent daemon's protocol: JSON lines over a unix socket (`/run/dune/agent.sock`),
 * which the controller reaches through its SSH connection (direct-streamlocal) or, where
 * sshd forbids that, through `dune-agent connect` as a stdio bridge.
 *
 *   controller → agent   {"id":1,"method":"up","params":{"plan":{...}}}
 *   agent → controller   {"id":1,"event":{"type":"progress",...}}      (any number)
 *                        {"id":1,"ok":true,"result":{...}}             (exactly one)
 *                        {"id":1,"ok":false,"error":{"code":...,"message":...,"hint":...}}
 *
 * Requests on one connection run concurrently; changes to one lab are serialised by the
 * daemon. A request whose client goes away runs to its end (an `up` rolls back by itself
 * when it fails), so a cut connection never leaves half a change behind.
 */
import { join } from 'node:path';
import type { Impairment } from '@dune/topology';
import type { Plan, VniUse } from '@dune/compiler';
import { STATE_ROOT } from '../lab/journal.js';
import type { Caps } from '../probe-types.js';

export const AGENT_PROTOCOL = 'dune-agent/1' as const;

export const agentSocketPath = (): string => join(STATE_ROOT, 'agent.sock');
export const agentPidPath = (): string => join(STATE_ROOT, 'agent.pid');
export const agentLogPath = (): string => join(STATE_ROOT, 'agent.log');

export interface SetParams {
  lab: string;
  node: string;
  dev: string;
  changes: Partial<Record<keyof Impairment, unknown>>;
  removed: (keyof Impairment)[];
}

export interface PreflightParams {
  /** The part of the plan for this host (the transport's hostView), without its route tables (preflightView): nothing here checks routes. */
  plan: Plan;
  /** Underlay addresses of the other phynodes this host tunnels to. */
  peers: string[];
}

export interface PreflightProblem {
  code: string;
  message: string;
  hint?: string;
}

export interface PreflightResult {
  caps: Caps;
  problems: PreflightProblem[];
  /** What was checked and found fine, for the report. */
  checked: string[];
  /** The underlay interface and its MTU, when the plan has VXLAN links. */
  underlay?: { address: string; dev: string; mtu: number };
  cpus: number;
  /** The VXLAN VNIs every lab's journal holds on this host: the controller allocates around them (compiler vni.ts). */
  vnis?: VniUse[];
}

export interface HelloResult {
  protocol: typeof AGENT_PROTOCOL;
  /** The bundle id it was started as (the controller's cache key), or `dev`. */
  version: string;
  pid: number;
  node: string;
  startedAt: string;
  socket: string;
  labs: string[];
  /** Set when the daemon is not in its host's network namespace (netns-guard.ts): it refuses work. */
  stale?: string;
}

/** Method → [params, result]. The result types are the agent's own (UpResult, ...). */
export interface AgentMethods {
  hello: [Record<string, never>, HelloResult];
  labs: [Record<string, never>, string[]];
  preflight: [PreflightParams, PreflightResult];
  up: [{ plan: Plan }, import('../lab/lab.js').UpResult];
  down: [{ lab: string }, import('../lab/lab.js').DownResult];
  status: [{ lab: string }, import('../lab/lab.js').LabStatus];
  set: [SetParams, Impairment];
  /** The lab's journaled plan (this host's part). */
  plan: [{ lab: string }, Plan];
  change: [import('../lab/lab.js').ChangeParams, import('../lab/lab.js').ChangeResult];
  /** A node's routing table, each route with its protocol. */
  routes: [{ lab: string; node: string }, import('../lab/routing.js').NodeRoute[]];
  shutdown: [Record<string, never>, { pid: number }];
}

export type AgentMethod = keyof AgentMethods;

export interface AgentRequest<M extends AgentMethod = AgentMethod> {
  id: number;
  method: M;
  params: AgentMethods[M][0];
}

export interface AgentErrorBody {
  code: string;
  message: string;
  hint?: string;
}

export type AgentReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: AgentErrorBody }
  | { id: number; event: import('../lab/lab.js').LabEvent };

export const AGENT_METHODS: readonly AgentMethod[] = ['hello', 'labs', 'preflight', 'up', 'down', 'status', 'set', 'plan', 'change', 'routes', 'shutdown'];
