/**
 * A lab across phynodes: every host's part built by its own agent, in parallel.
 *
 *   open all      SSH, host check, agent copied (if not cached) and started; one failure
 *                 and nothing is built anywhere: every unreachable host is named
 *   pre-flight    every host checks its part (kernel, tools, cores, underlay and MTU);
 *                 every problem on every host is reported, nothing is built
 *   record        the controller notes which hosts the lab is on (lab-record.ts)
 *   up            all hosts at once, progress from each streamed back; each host creates
 *                 its end of a cross-host VXLAN link on its own, and traffic flows as soon
 *                 as both ends exist (the tunnel is stateless: unicast to the peer's underlay)
 *   failure       any host failing rolls back every host (including the failed one, whose
 *                 own rollback may have been cut short by a killed agent), and the error
 *                 names the host and what failed there
 *
 * Each host is given only its part of the plan (`hostView`): its nodes, the links touching
 * them, its ops. The agent journals that part under /run/dune/<lab> on the host.
 */
import type { Impairment } from '@dune/topology';
import { DuneError } from '@dune/topology';
import { allocateVnis, type HostTarget, type Plan, type VniUse } from '@dune/compiler';
import type { DownResult, LabEvent, LabStatus, PreflightResult, UpResult } from '@dune/agent';
import type { AttachedIo, HostAgent } from './host-agent.js';
import { LocalAgent } from './local-agent.js';
import { RemoteAgent, type HostFacts, type RemoteAgentOptions } from './remote-agent.js';
import { readRecord, recordFromPlan, removeRecord, writeRecord, type LabRecord } from './lab-record.js';

export type HostEvent = { phynode: string } & (
  | LabEvent
  | { type: 'step'; step: string }
  | { type: 'host-done'; ms: number }
  | { type: 'host-failed'; message: string }
);

export interface OrchestrateOptions extends RemoteAgentOptions {
  onEvent?: (e: HostEvent) => void;
  /** The topology file, for the controller's lab record. */
  file?: string;
  /**
   * Connections to the lab's hosts held open by the caller (a Lab object making many calls):
   * used instead of opening new ones, and left open.
   */
  hosts?: LabHosts;
}

/** A host the lab is on: where, and (when known) which nodes. */
export interface LabHost {
  phynode: string;
  target: HostTarget;
}

/** Where a lab is: its hosts and, per node, [phynode, namespace]. From a plan or a record. */
export interface LabLocation {
  lab: string;
  hosts: LabHost[];
  nodes: Record<string, [string, string]>;
}

export function isRemoteTarget(t: HostTarget): boolean {
  return t.host !== undefined && t.host !== 'localhost';
}

export function hasRemoteHosts(plan: Plan): boolean {
  return plan.hosts.some((h) => isRemoteTarget(h.target));
}

export function locationOfPlan(plan: Plan): LabLocation {
  return { lab: plan.lab, hosts: plan.hosts.map((h) => ({ phynode: h.phynode, target: h.target })), nodes: recordFromPlan(plan).nodes };
}

export function locationOfRecord(rec: LabRecord): LabLocation {
  return { lab: rec.lab, hosts: rec.hosts.map((h) => ({ phynode: h.phynode, target: h.target })), nodes: rec.nodes };
}

/** The controller's record of a multi-host lab, if it has one. */
export function recordedLocation(lab: string): LabLocation | undefined {
  const r = readRecord(lab);
  return r ? locationOfRecord(r) : undefined;
}

/**
 * The part of the plan for some phynodes: their host plans (without SSH details, which the
 * agent has no use for), their nodes, and the links with an end among them.
 */
export function hostView(plan: Plan, phynodes: readonly string[]): Plan {
  const on = new Set(phynodes);
  return {
    ...plan,
    hosts: plan.hosts.filter((h) => on.has(h.phynode)).map((h) => ({ ...h, target: h.target.underlay !== undefined ? { underlay: h.target.underlay } : {} })),
    nodes: plan.nodes.filter((n) => on.has(n.phynode)),
    links: plan.links.filter((l) => on.has(l.a.phynode) || on.has(l.b.phynode)),
  };
}

/**
 * What pre-flight is sent of a host's view: everything but its route tables. They are most of
 * a routed plan's bytes (a 30×30 grid: 28 of 31 MB) and pre-flight checks none of them, so
 * leaving them out saves shipping and parsing the plan twice before `up` ships it once.
 */
export function preflightView(view: Plan): Plan {
  return { ...view, hosts: view.hosts.map((h) => ({ ...h, ops: h.ops.filter((o) => o.op !== 'routes') })) };
}

export interface Member {
  agent: HostAgent;
  phynodes: string[];
}

/**
 * The agents of a lab's hosts: one door to every host, this machine included (the agent in
 * this process). Opened lazily by each call; close() ends every connection.
 */
export class LabHosts {
  readonly members: Member[];
  constructor(hosts: readonly LabHost[], opts: OrchestrateOptions = {}) {
    this.members = members(hosts, opts);
  }

  /** The member holding a phynode. */
  of(phynode: string): Member | undefined {
    return this.members.find((m) => m.phynodes.includes(phynode));
  }

  /** The member and namespace of a node. */
  node(loc: LabLocation, node: string): { m: Member; ns: string } {
    return memberOfNode(loc, this.members, node);
  }

  close(): void {
    for (const m of this.members) m.agent.close();
  }
}

/** The members to use: the caller's open ones, or new ones closed by `done`. */
function using(hosts: readonly LabHost[], opts: OrchestrateOptions): { ms: Member[]; done: () => void } {
  if (opts.hosts) return { ms: opts.hosts.members, done: () => undefined };
  const ms = members(hosts, opts);
  return { ms, done: () => { for (const m of ms) m.agent.close(); } };
}

/** One agent per remote phynode; every local phynode shares one in-process agent. */
function members(hosts: readonly LabHost[], opts: OrchestrateOptions): Member[] {
  const out: Member[] = [];
  const local = hosts.filter((h) => !isRemoteTarget(h.target)).map((h) => h.phynode);
  if (local.length > 0) out.push({ agent: new LocalAgent(local.join('+')), phynodes: local });
  for (const h of hosts) {
    if (!isRemoteTarget(h.target)) continue;
    const t = h.target;
    const remote = new RemoteAgent({
      phynode: h.phynode,
      host: t.host as string,
      ...(t.port !== undefined ? { port: t.port } : {}),
      ...(t.user !== undefined ? { user: t.user } : {}),
      ...(t.identity !== undefined ? { identity: t.identity } : {}),
    }, { ...opts, onStep: (phynode, step) => opts.onEvent?.({ phynode, type: 'step', step }) });
    out.push({ agent: remote, phynodes: [h.phynode] });
  }
  return out;
}

export interface HostFailure {
  phynode: string;
  label: string;
  error: Error;
}

function describeFailure(f: HostFailure): string {
  return `${f.phynode} (${f.label}): ${f.error.message.replace(new RegExp(`^phynode ${f.phynode} \\([^)]*\\):? ?`), '')}`;
}

/** Several hosts failed (or one of several): each named, with the first one's hint. */
export class MultiHostError extends DuneError {
  readonly failures: HostFailure[];
  constructor(code: string, head: string, failures: HostFailure[], hint?: string) {
    const lines = failures.map((f) => `  ${describeFailure(f).replace(/\n/g, '\n    ')}`);
    const first = failures[0]?.error;
    super(code, `${head}:\n${lines.join('\n')}`, { hint: hint ?? (first instanceof DuneError ? first.hint ?? '' : ''), ...(first ? { cause: first } : {}) });
    this.failures = failures;
  }
}

async function settle<T>(ms: Member[], fn: (m: Member) => Promise<T>): Promise<{ ok: { m: Member; v: T }[]; failed: HostFailure[] }> {
  const rs = await Promise.allSettled(ms.map(fn));
  const ok: { m: Member; v: T }[] = [];
  const failed: HostFailure[] = [];
  rs.forEach((r, i) => {
    const m = ms[i] as Member;
    if (r.status === 'fulfilled') ok.push({ m, v: r.value });
    else failed.push({ phynode: m.agent.phynode, label: m.agent.label, error: r.reason instanceof Error ? r.reason : new Error(String(r.reason)) });
  });
  return { ok, failed };
}

async function openAll(ms: Member[]): Promise<void> {
  const { failed } = await settle(ms, async (m) => {
    if (m.agent instanceof RemoteAgent) await m.agent.open();
  });
  if (failed.length > 0) {
    throw new MultiHostError('hosts-unreachable', `${failed.length} of ${ms.length} host${ms.length === 1 ? '' : 's'} could not be reached or cannot run the agent; nothing was built`, failed);
  }
}

function peersOf(view: Plan): string[] {
  const out = new Set<string>();
  for (const h of view.hosts) for (const op of h.ops) if (op.op === 'vxlan') out.add(op.remote);
  return [...out];
}

export interface HostCheck {
  phynode: string;
  label: string;
  facts?: HostFacts;
  /** Whether the agent had to be copied (false: it was in the host's cache). */
  copied?: boolean;
  preflight?: PreflightResult;
  error?: string;
  hint?: string;
}

/** `dune check`: every host, every check, reported whether it passes or not. Builds nothing. */
export async function checkLab(plan: Plan, opts: OrchestrateOptions = {}): Promise<HostCheck[]> {
  const ms = members(locationOfPlan(plan).hosts, opts);
  try {
    const rs = await Promise.allSettled(ms.map(async (m): Promise<HostCheck> => {
      const c: HostCheck = { phynode: m.agent.phynode, label: m.agent.label };
      try {
        if (m.agent instanceof RemoteAgent) {
          await m.agent.open();
          c.label = m.agent.label;
          if (m.agent.facts) c.facts = m.agent.facts;
          c.copied = m.agent.copied;
        }
        const view = hostView(plan, m.phynodes);
        c.preflight = await m.agent.preflight({ plan: preflightView(view), peers: peersOf(view) });
      } catch (e) {
        c.error = (e as Error).message;
        if (e instanceof DuneError && e.hint) c.hint = e.hint;
      }
      return c;
    }));
    return rs.map((r) => (r.status === 'fulfilled' ? r.value : { phynode: '?', label: '?', error: String(r.reason) }));
  } finally {
    for (const m of ms) m.agent.close();
  }
}

function preflightFailures(checks: { m: Member; v: PreflightResult }[]): HostFailure[] {
  return checks
    .filter((c) => c.v.problems.length > 0)
    .map((c) => ({
      phynode: c.m.agent.phynode,
      label: c.m.agent.label,
      error: new DuneError('preflight', c.v.problems.map((p) => `${p.message}${p.hint ? ` (${p.hint})` : ''}`).join('\n')),
    }));
}

export interface HostUp {
  phynode: string;
  label: string;
  result: UpResult;
}

export interface MultiUpResult {
  lab: string;
  hosts: HostUp[];
  elapsedMs: number;
}

export async function upLab(plan: Plan, opts: OrchestrateOptions = {}): Promise<MultiUpResult> {
  const t0 = performance.now();
  const emit = opts.onEvent ?? (() => undefined);
  const { ms, done } = using(locationOfPlan(plan).hosts, opts);
  // A lab wholly on this machine: its up checks the kernel itself and rolls back on its own,
  // and `dune` finds it by its journal; no pre-flight round and no controller record.
  const localOnly = !hasRemoteHosts(plan) && ms.length === 1;
  try {
    await openAll(ms);
    const views = new Map(ms.map((m) => [m, localOnly ? plan : hostView(plan, m.phynodes)]));
    const pre = localOnly ? { ok: [], failed: [] } : await settle(ms, (m) => {
      emit({ phynode: m.agent.phynode, type: 'step', step: 'pre-flight' });
      const view = views.get(m) as Plan;
      return m.agent.preflight({ plan: preflightView(view), peers: peersOf(view) });
    });
    const problems = [...pre.failed, ...preflightFailures(pre.ok)];
    if (problems.length > 0) {
      throw new MultiHostError('preflight-failed', `the pre-flight check failed on ${problems.length} of ${ms.length} host${ms.length === 1 ? '' : 's'}; nothing was built`, problems, 'fix what is listed, then `dune check FILE` until it passes');
    }
    // VNIs free on both hosts of each cross-host link, given what every lab holds there (compiler vni.ts).
    plan = allocateVnis(plan, new Map(pre.ok.flatMap(({ m, v }) => m.phynodes.map((ph): [string, VniUse[]] => [ph, v.vnis ?? []]))));
    for (const m of ms) views.set(m, hostView(plan, m.phynodes));
    // Before anything exists: a CLI killed from here on leaves a record `down` can use.
    if (!localOnly) writeRecord(recordFromPlan(plan, opts.file));
    const built = await settle(ms, async (m) => {
      const t = performance.now();
      try {
        const r = await m.agent.up(views.get(m) as Plan, (e) => emit({ phynode: m.agent.phynode, ...e }));
        emit({ phynode: m.agent.phynode, type: 'host-done', ms: performance.now() - t });
        return r;
      } catch (e) {
        emit({ phynode: m.agent.phynode, type: 'host-failed', message: (e as Error).message });
        throw e;
      }
    });
    if (built.failed.length > 0) {
      // This machine's agent rolled its own part back already.
      if (localOnly) throw (built.failed[0] as HostFailure).error;
      const rb = await settle(ms, (m) => {
        emit({ phynode: m.agent.phynode, type: 'step', step: 'rollback' });
        return m.agent.down(plan.lab, (e) => emit({ phynode: m.agent.phynode, ...e }));
      });
      const rolled = rb.ok.map((r) => r.m.agent.phynode);
      if (rb.failed.length === 0) removeRecord(plan.lab);
      const tail = rb.failed.length === 0
        ? `rolled back on every host (${rolled.join(', ')})`
        : `rolled back on ${rolled.join(', ') || 'no host'}; rollback FAILED on ${rb.failed.map((f) => `${f.phynode} (${f.error.message})`).join(', ')}`;
      throw new MultiHostError('multihost-up-failed', `up of lab ${plan.lab} failed on ${built.failed.map((f) => f.phynode).join(', ')}; ${tail}`, built.failed,
        rb.failed.length > 0 ? `run \`dune down --lab ${plan.lab}\` once the host is reachable` : undefined);
    }
    return { lab: plan.lab, hosts: built.ok.map(({ m, v }) => ({ phynode: m.agent.phynode, label: m.agent.label, result: v })), elapsedMs: performance.now() - t0 };
  } finally {
    done();
  }
}

export interface HostDown {
  phynode: string;
  label: string;
  result: DownResult;
}

export async function downLab(loc: LabLocation, opts: OrchestrateOptions = {}): Promise<{ lab: string; hosts: HostDown[]; elapsedMs: number }> {
  const t0 = performance.now();
  const emit = opts.onEvent ?? (() => undefined);
  const { ms, done } = using(loc.hosts, opts);
  try {
    const r = await settle(ms, (m) => m.agent.down(loc.lab, (e) => emit({ phynode: m.agent.phynode, ...e })));
    // This machine alone: its own error, as it is.
    if (r.failed.length > 0 && ms.length === 1 && !ms[0]?.agent.remote) throw (r.failed[0] as HostFailure).error;
    if (r.failed.length > 0) {
      throw new MultiHostError('multihost-down-failed', `down of lab ${loc.lab} failed on ${r.failed.length} of ${ms.length} hosts (${r.ok.map((o) => o.m.agent.phynode).join(', ') || 'none'} done)`, r.failed,
        `run \`dune down --lab ${loc.lab}\` again once the host is reachable`);
    }
    removeRecord(loc.lab);
    return { lab: loc.lab, hosts: r.ok.map(({ m, v }) => ({ phynode: m.agent.phynode, label: m.agent.label, result: v })), elapsedMs: performance.now() - t0 };
  } finally {
    done();
  }
}

export interface MultiStatus extends LabStatus {
  hosts: { phynode: string; label: string; phase: string; nodes: number; error?: string; impairEngine?: LabStatus['impairEngine'] }[];
}

/** Every host's status of its part, merged: each link end is reported by the host it is on. */
export async function statusLab(loc: LabLocation, opts: OrchestrateOptions = {}): Promise<MultiStatus> {
  const { ms, done } = using(loc.hosts, opts);
  try {
    const rs = await settle(ms, (m) => m.agent.status(loc.lab));
    const out: MultiStatus = { lab: loc.lab, phase: '', nodes: [], links: [], processes: [], backend: {}, hosts: [] };
    for (const m of ms) {
      const ok = rs.ok.find((o) => o.m === m)?.v;
      const failed = rs.failed.find((f) => f.phynode === m.agent.phynode);
      if (ok === undefined) {
        const nodes = Object.values(loc.nodes).filter(([p]) => m.phynodes.includes(p)).length;
        out.hosts.push({ phynode: m.agent.phynode, label: m.agent.label, phase: 'unreachable', nodes, error: failed?.error.message ?? 'unknown' });
        continue;
      }
      const mine = new Set(ok.nodes.map((n) => n.node));
      out.nodes.push(...ok.nodes);
      out.links.push(...ok.links.filter((l) => mine.has(l.node)));
      out.processes.push(...ok.processes);
      if (ok.counters?.length) (out.counters ??= []).push(...ok.counters.filter((c) => mine.has(c.node)));
      for (const [k, v] of Object.entries(ok.backend)) out.backend[`${m.agent.phynode}:${k}`] = v;
      out.hosts.push({ phynode: m.agent.phynode, label: m.agent.label, phase: ok.phase, nodes: ok.nodes.length, ...(ok.impairEngine ? { impairEngine: ok.impairEngine } : {}) });
    }
    const linkKey = (s: string): [number, string] => [Number(s.split(':')[0]), s.split(':')[1] ?? ''];
    out.links.sort((a, b) => linkKey(a.link)[0] - linkKey(b.link)[0] || linkKey(a.link)[1].localeCompare(linkKey(b.link)[1]));
    const phases = [...new Set(out.hosts.map((h) => h.phase))];
    out.phase = phases.length === 1 ? (phases[0] as string) : out.hosts.map((h) => `${h.phynode}: ${h.phase}`).join(', ');
    return out;
  } finally {
    done();
  }
}

function memberOfNode(loc: LabLocation, ms: Member[], node: string): { m: Member; ns: string } {
  const at = loc.nodes[node];
  if (at === undefined) {
    const names = Object.keys(loc.nodes);
    throw new DuneError('no-such-node', `lab ${loc.lab} has no node "${node}"`, { hint: `nodes: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', ...' : ''}` });
  }
  const m = ms.find((x) => x.phynodes.includes(at[0]));
  if (m === undefined) throw new DuneError('no-such-host', `node ${node} is on phynode ${at[0]}, which lab ${loc.lab} does not list`);
  return { m, ns: at[1] };
}

export async function setLab(loc: LabLocation, node: string, dev: string, changes: Partial<Record<keyof Impairment, unknown>>, removed: (keyof Impairment)[], opts: OrchestrateOptions = {}): Promise<Impairment> {
  const { ms, done } = using(loc.hosts, opts);
  try {
    const { m } = memberOfNode(loc, ms, node);
    return await m.agent.set({ lab: loc.lab, node, dev, changes, removed });
  } finally {
    done();
  }
}

/** Runs argv inside a node, wherever it is; resolves with the command's exit code. */
export async function execNode(loc: LabLocation, node: string, argv: readonly string[], io: AttachedIo, opts: OrchestrateOptions = {}): Promise<number> {
  const { ms, done } = using(loc.hosts, opts);
  try {
    const { m, ns } = memberOfNode(loc, ms, node);
    return await m.agent.exec(ns, argv, io);
  } finally {
    done();
  }
}

/** The lab's plan as its hosts journaled it: every host's part, merged (runtime changes included). */
export async function planOfLab(loc: LabLocation, opts: OrchestrateOptions = {}): Promise<Plan> {
  const { ms, done } = using(loc.hosts, opts);
  try {
    const r = await settle(ms, (m) => m.agent.plan(loc.lab));
    if (r.failed.length > 0) {
      throw new MultiHostError('plan-unreadable', `the plan of lab ${loc.lab} could not be read from ${r.failed.length} of ${ms.length} host${ms.length === 1 ? '' : 's'}`, r.failed);
    }
    const parts = ms.map((m) => (r.ok.find((o) => o.m === m) as { v: Plan }).v);
    return mergePlans(parts);
  } finally {
    done();
  }
}

/** Host views (each host's part of one plan) back into one plan: hosts and nodes joined, links once. */
export function mergePlans(parts: readonly Plan[]): Plan {
  const first = parts[0];
  if (first === undefined) throw new DuneError('no-plan', 'no host holds a plan of this lab');
  if (parts.length === 1) return first;
  const links = new Map<number, Plan['links'][number]>();
  for (const p of parts) for (const l of p.links) links.set(l.index, l);
  return {
    ...first,
    hosts: parts.flatMap((p) => p.hosts),
    nodes: parts.flatMap((p) => p.nodes),
    links: [...links.values()].sort((a, b) => a.index - b.index),
    blobs: Object.assign({}, ...parts.map((p) => p.blobs ?? {})) as Record<string, string>,
  };
}
