/**
 * The engine every front end stands on: which lab a command means, and every lab operation
 * through one door, the transport's host agents (this machine's agent in this process, the
 * others' over SSH). The CLI and the Lab class both call these; neither reaches an agent or
 * the kernel another way.
 *
 *   up      plan ─► every host's agent: lock → diff → probe and plan → kernel → impairment
 *           engine → processes → commit (agent/lab), rolled back everywhere on failure
 *   down    every host of the lab, from its journal or from the kernel marks alone
 *   status  every host's part, merged; set, exec, spawn, change: the node's host
 */
import type { Impairment } from '@dune/topology';
import type { Plan } from '@dune/compiler';
import { checkLabName, listLabs, reclaimTransients as agentReclaim, requireRoot, resolveLab, type DownResult, type LabStatus, type NodeRoute } from '@dune/agent';
import * as transport from '@dune/transport';
import { compileLoaded, loadTopology, type LoadOptions } from './load.js';

export type { LabLocation, MultiStatus, OrchestrateOptions, HostEvent, HostCheck, MultiUpResult, AttachedIo } from '@dune/transport';

/** A lab is named by its topology file, by name, or not at all (the only one there is). */
export interface LabRef {
  lab?: string;
  file?: string;
  /** Reader options for the file (GraphML units, weight, ...). */
  read?: LoadOptions;
}

const THIS_MACHINE: transport.LabHost[] = [{ phynode: 'local', target: {} }];

/** This machine's agent, for the calls that concern this machine only. */
function localAgent(): transport.HostAgent {
  return new transport.LocalAgent('local');
}

/** Labs with a journal or namespaces on this machine. */
export function localLabs(): Promise<string[]> {
  return localAgent().labs();
}

/** Removes this machine's transient objects (probe namespaces) left by dune processes that died. */
export function reclaimTransients(): void {
  agentReclaim();
}

/** Labs recorded by this controller as running on other hosts. */
export function recordedLabs(): string[] {
  return transport.recordedLabs();
}

/** A lab on this machine, from its journaled plan. */
async function localLocation(lab: string): Promise<transport.LabLocation> {
  const plan = await localAgent().plan(lab);
  return transport.locationOfPlan(plan);
}

/**
 * The multi-host lab a command means, or undefined for a lab on this machine: from the
 * topology file (its plan names the hosts), else by name (the controller's record), else
 * the only recorded lab when this machine has none.
 */
export function locateRemote(ref: LabRef): transport.LabLocation | undefined {
  if (ref.file !== undefined) {
    const { plan } = compileLoaded(loadTopology(ref.file, ref.read ?? {}), ref.lab);
    return transport.hasRemoteHosts(plan) ? transport.locationOfPlan(plan) : undefined;
  }
  if (ref.lab !== undefined) {
    // A name is a path (records, journals): `..` must never reach one.
    checkLabName(ref.lab);
    return transport.recordedLocation(ref.lab);
  }
  const recorded = transport.recordedLabs();
  if (recorded.length === 1 && listLabs().length === 0) return transport.recordedLocation(recorded[0] as string);
  return undefined;
}

/** The name of the lab on this machine a reference means: the file's lab, the given one, or the only one. */
export function localLabName(ref: LabRef): string {
  if (ref.file !== undefined) return compileLoaded(loadTopology(ref.file, ref.read ?? {}), ref.lab).plan.lab;
  return resolveLab(ref.lab);
}

/**
 * Where the lab a command means is, on whatever hosts: a multi-host lab (locateRemote), else
 * this machine's lab (which needs root: `what` names the command in that message).
 */
export async function locateLab(ref: LabRef, what = 'status'): Promise<transport.LabLocation> {
  const remote = locateRemote(ref);
  if (remote) return remote;
  requireRoot(what);
  return localLocation(localLabName(ref));
}

/** Whether every host of a location is this machine. */
export function isLocal(loc: transport.LabLocation): boolean {
  return !loc.hosts.some((h) => transport.isRemoteTarget(h.target));
}

export function hasRemoteHosts(plan: Plan): boolean {
  return transport.hasRemoteHosts(plan);
}

/** Builds (or converges) a lab on its hosts. */
export function upLab(plan: Plan, opts: transport.OrchestrateOptions = {}): Promise<transport.MultiUpResult> {
  return transport.upLab(plan, opts);
}

export interface LabDown {
  lab: string;
  hosts: { phynode: string; label: string; result: DownResult }[];
  elapsedMs: number;
}

/** Removes a lab from every host it is on. */
export function downLab(loc: transport.LabLocation, opts: transport.OrchestrateOptions = {}): Promise<LabDown> {
  return transport.downLab(loc, opts);
}

/** Removes a lab from this machine by name alone: from its journal, or from its marks when that is gone. */
export function downLocal(lab: string, opts: transport.OrchestrateOptions = {}): Promise<LabDown> {
  checkLabName(lab);
  return transport.downLab({ lab, hosts: THIS_MACHINE, nodes: {} }, opts);
}

/** The lab's status: one host's as it is, several hosts' merged with a line per host. */
export async function labStatus(loc: transport.LabLocation, opts: transport.OrchestrateOptions = {}): Promise<LabStatus | transport.MultiStatus> {
  if (isLocal(loc)) {
    const hosts = opts.hosts ?? new transport.LabHosts(loc.hosts, opts);
    try {
      return await (hosts.members[0] as transport.Member).agent.status(loc.lab);
    } finally {
      if (!opts.hosts) hosts.close();
    }
  }
  return transport.statusLab(loc, opts);
}

export function isMultiStatus(s: LabStatus): s is transport.MultiStatus {
  return Array.isArray((s as Partial<transport.MultiStatus>).hosts);
}

/** Changes one link direction's impairment live (on the host of the node). */
export function setImpairment(loc: transport.LabLocation, node: string, dev: string, changes: Partial<Record<keyof Impairment, unknown>>, removed: (keyof Impairment)[], opts: transport.OrchestrateOptions = {}): Promise<Impairment> {
  return transport.setLab(loc, node, dev, changes, removed, opts);
}

/** Runs argv in a node with the caller's streams; resolves with its exit status. */
export function execInNode(loc: transport.LabLocation, node: string, argv: readonly string[], io: transport.AttachedIo, opts: transport.OrchestrateOptions = {}): Promise<number> {
  return transport.execNode(loc, node, argv, io, opts);
}

/** The pre-flight of `dune check`: every host, every check. */
export function checkLab(plan: Plan, opts: transport.OrchestrateOptions = {}): Promise<transport.HostCheck[]> {
  return transport.checkLab(plan, opts);
}

/** The lab's plan as its hosts journaled it (runtime changes included). */
export function labPlan(loc: transport.LabLocation, opts: transport.OrchestrateOptions = {}): Promise<Plan> {
  return transport.planOfLab(loc, opts);
}

/** A node's routing table with each route's protocol, from the node's host. */
export async function nodeRoutes(loc: transport.LabLocation, node: string, opts: transport.OrchestrateOptions = {}): Promise<NodeRoute[]> {
  const hosts = opts.hosts ?? new transport.LabHosts(loc.hosts, opts);
  try {
    const { m } = hosts.node(loc, node);
    return await m.agent.routes(loc.lab, node);
  } finally {
    if (!opts.hosts) hosts.close();
  }
}
