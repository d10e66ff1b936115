/**
 * Failures on demand: links and nodes taken down and brought back while a lab runs, one at
 * a time (`dune link`, `dune node`) or on a schedule (`[[topology.events]]`, `dune events
 * run`). Each is a runtime change applied and journaled by the agent of the node's host
 * (agent/lab `change`): a link end's `up` op removed or applied, a node stopped or started.
 *
 *   schedule ──expandSchedule──▶ timeline (every occurrence, by time) ──runSchedule──▶ actions
 */
import { DuneError, EVENT_ACTIONS, type EventAction } from '@dune/topology';
import type { Op, Plan, PlanEvent } from '@dune/compiler';
import * as transport from '@dune/transport';
import { labPlan } from './engine.js';

export type NodeActionName = 'stop' | 'start' | 'restart';
export type LinkActionName = 'down' | 'up';

/** The agent's node actions a node action is: restart is stop then start, in one change. */
export function nodeSteps(node: string, action: NodeActionName): { node: string; action: 'stop' | 'start' }[] {
  if (!['stop', 'start', 'restart'].includes(action)) {
    throw new DuneError('bad-action', `"${action}" is not a node action`, { hint: 'use stop, start or restart' });
  }
  return (action === 'restart' ? (['stop', 'start'] as const) : [action]).map((a) => ({ node, action: a }));
}

function withHosts<T>(loc: transport.LabLocation, opts: transport.OrchestrateOptions, fn: (hosts: transport.LabHosts) => Promise<T>): Promise<T> {
  const hosts = opts.hosts ?? new transport.LabHosts(loc.hosts, opts);
  return fn(hosts).finally(() => {
    if (!opts.hosts) hosts.close();
  });
}

/** The node's link interfaces, from the lab's plan; an error naming them when `dev` is not one. */
export function checkLinkEnd(plan: Plan, node: string, dev: string): void {
  if (!plan.nodes.some((n) => n.node === node)) {
    const names = plan.nodes.map((n) => n.node);
    throw new DuneError('no-such-node', `lab ${plan.lab} has no node "${node}"`, { hint: `nodes: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', ...' : ''}` });
  }
  const devs = plan.links.flatMap((l) => [l.a, l.b]).filter((e) => e.node === node).map((e) => e.dev);
  if (!devs.includes(dev)) {
    throw new DuneError('no-such-iface', `node ${node} has no link interface "${dev}"`, { hint: devs.length ? `its interfaces: ${devs.join(', ')}` : `node ${node} has no links` });
  }
}

/** Sets one link end down (a cut: the link carries nothing) or up again (addresses and routes restored). */
export async function setLinkState(loc: transport.LabLocation, node: string, dev: string, up: boolean, opts: transport.OrchestrateOptions = {}): Promise<void> {
  await withHosts(loc, opts, async (hosts) => {
    checkLinkEnd(await labPlan(loc, { ...opts, hosts }), node, dev);
    const { m, ns } = hosts.node(loc, node);
    const op = { op: 'up', ns, dev } as Op;
    await m.agent.change({ lab: loc.lab, apply: up ? [op] : [], remove: up ? [] : [op] });
  });
}

/** Stops, starts or restarts a node: its supervised processes, and its link ends parked and restored. */
export async function setNodeState(loc: transport.LabLocation, node: string, action: NodeActionName, opts: transport.OrchestrateOptions = {}): Promise<void> {
  const nodes = nodeSteps(node, action);
  await withHosts(loc, opts, async (hosts) => {
    const { m } = hosts.node(loc, node);
    await m.agent.change({ lab: loc.lab, apply: [], remove: [], nodes });
  });
}

/** One occurrence of a scheduled event. */
export interface TimelineEntry {
  atMs: number;
  event: PlanEvent;
  /** 1-based, of event.count. */
  occurrence: number;
}

/** Every occurrence of every event, by time (events at the same time in file order). */
export function expandSchedule(events: readonly PlanEvent[]): TimelineEntry[] {
  const out: (TimelineEntry & { order: number })[] = [];
  events.forEach((event, order) => {
    for (let i = 0; i < event.count; i++) out.push({ atMs: event.atMs + i * event.periodMs, event, occurrence: i + 1, order });
  });
  out.sort((a, b) => a.atMs - b.atMs || a.order - b.order || a.occurrence - b.occurrence);
  return out.map(({ order: _order, ...e }) => e);
}

export interface ScheduleReport extends TimelineEntry {
  /** When it was applied, from the start of the run. */
  elapsedMs: number;
  /** How long the change took. */
  tookMs: number;
}

export interface ScheduleActions {
  link(node: string, dev: string, up: boolean): Promise<void>;
  node(node: string, action: NodeActionName): Promise<void>;
}

/** The clock a schedule or a trace follows (tests pass a virtual one): ms since some origin, and a sleep. */
export interface FollowClock {
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface RunScheduleOptions extends FollowClock {
  /** Called after each event is applied. */
  onEvent?: (r: ScheduleReport) => void;
  /** Stops the run between events. */
  signal?: AbortSignal;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleepMs(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs a schedule: each occurrence at its time after the start, one after the other (an
 * event that comes due while another is applied waits for it). Stops at the first failure.
 */
export async function runSchedule(events: readonly PlanEvent[], act: ScheduleActions, o: RunScheduleOptions = {}): Promise<ScheduleReport[]> {
  const now = o.now ?? (() => performance.now());
  const sleep = o.sleep ?? sleepMs;
  const t0 = now();
  const done: ScheduleReport[] = [];
  for (const e of expandSchedule(events)) {
    await sleep(e.atMs - (now() - t0), o.signal);
    if (o.signal?.aborted) break;
    const started = now();
    await applyEvent(e.event, act);
    const r: ScheduleReport = { ...e, elapsedMs: started - t0, tookMs: now() - started };
    done.push(r);
    o.onEvent?.(r);
  }
  return done;
}

function applyEvent(e: PlanEvent, act: ScheduleActions): Promise<void> {
  const kind: (typeof EVENT_ACTIONS)[EventAction] = EVENT_ACTIONS[e.action];
  if (kind === 'interface') return act.link(e.node, e.iface as string, e.action === 'up');
  return act.node(e.node, e.action as NodeActionName);
}

/** The engine's actions on a located lab (the CLI's). */
export function engineActions(loc: transport.LabLocation, opts: transport.OrchestrateOptions = {}): ScheduleActions {
  return {
    link: (node, dev, up) => setLinkState(loc, node, dev, up, opts),
    node: (node, action) => setNodeState(loc, node, action, opts),
  };
}
