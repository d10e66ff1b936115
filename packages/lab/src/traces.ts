/**
 * Following links that change over time: the plan's traces (`trace = "FILE"` per link
 * direction) and `[[topology.schedule]]` steps, applied to the running lab as changes of
 * each direction's impairment (`dune trace run`, `lab.followTraces()`).
 *
 *   plan.traces ──timeline──▶ changes in time order ──followTraces──▶ setImpairment, one by one
 *
 * The kernel backends (netem, htb, nftables) and the userspace engine all take such changes.
 * A Mahimahi trace becomes its rate over windows of `granularityMs` (default 100 ms), or, with
 * `mahimahi: 'packets'` (the default on a lab whose impairment_backend is userspace), one
 * change handing the whole trace to the userspace engine, which follows it per packet. A change
 * takes a few ms on this machine (its agent's journal and netlink: measured by `dune trace
 * run`, which prints each change's lateness); when changes fall behind, the follower skips to
 * the newest one due for that direction, so a direction is never more than one change late.
 */
import { readFileSync } from 'node:fs';
import { Diagnostics, mahimahiSteps, parseMahimahi, TopologyError, type Impairment, type TraceStep } from '@dune/topology';
import type { PlanTrace } from '@dune/compiler';
import type * as transport from '@dune/transport';
import { setImpairment } from './engine.js';
import { sleepMs, type FollowClock } from './faults.js';

export const DEFAULT_GRANULARITY_MS = 100;

export interface TraceChange {
  atMs: number;
  node: string;
  dev: string;
  set: Partial<Impairment>;
  removed: (keyof Impairment)[];
}

/** How a Mahimahi trace is followed: its rate per window (any backend), or per packet (the userspace engine). */
export type MahimahiMode = 'rate' | 'packets';

function readOpportunities(t: PlanTrace): number[] {
  const d = new Diagnostics();
  const ms = parseMahimahi(d, readFileSync(t.file, 'utf8'), t.file);
  if (!ms) throw new TopologyError(d.items);
  return ms;
}

/**
 * A trace's steps for one period (a Mahimahi trace: its rate per window, or per packet one
 * step at 0 that hands the engine the whole trace, started at `epoch`).
 */
export function traceSteps(t: PlanTrace, granularityMs = DEFAULT_GRANULARITY_MS, mode: MahimahiMode = 'rate', epoch = 0): TraceStep[] {
  if (t.format === 'steps') return t.steps ?? [];
  const ms = readOpportunities(t);
  if (mode === 'packets') return [{ atMs: 0, set: { deliveryTrace: { opportunitiesMs: ms, loop: t.loop, epoch } }, removed: ['rateBitsPerSec'] }];
  return mahimahiSteps(ms, granularityMs);
}

/**
 * Every change of every trace from 0 to `untilMs`, by time (same time: plan order). A looping
 * trace starts over at its period (a CSV's last row marks the end and is not applied; a
 * Mahimahi trace's period is its last timestamp); a trace that does not loop holds its last step.
 */
export function timeline(traces: readonly PlanTrace[], untilMs: number, granularityMs = DEFAULT_GRANULARITY_MS, mode: MahimahiMode = 'rate', epoch = 0): TraceChange[] {
  const out: (TraceChange & { order: number })[] = [];
  traces.forEach((t, order) => {
    let steps = traceSteps(t, granularityMs, mode, epoch);
    // Per packet, the engine loops the trace itself.
    const looping = t.loop && t.periodMs > 0 && !(mode === 'packets' && t.format === 'mahimahi');
    if (looping && t.format === 'steps') steps = steps.filter((s) => s.atMs < t.periodMs);
    for (let base = 0; base <= untilMs; base += t.periodMs) {
      for (const s of steps) {
        const atMs = base + s.atMs;
        if (atMs > untilMs) break;
        out.push({ atMs, node: t.node, dev: t.dev, set: s.set, removed: s.removed ?? [], order });
      }
      if (!looping) break;
    }
  });
  out.sort((a, b) => a.atMs - b.atMs || a.order - b.order);
  return out.map(({ order: _order, ...c }) => c);
}

/** How long the traces run without looping: the last step of the longest (per packet, a Mahimahi trace's period). */
export function tracesLengthMs(traces: readonly PlanTrace[], granularityMs = DEFAULT_GRANULARITY_MS, mode: MahimahiMode = 'rate'): number {
  return Math.max(0, ...traces.map((t) => (t.loop || (mode === 'packets' && t.format === 'mahimahi') ? t.periodMs : Math.max(0, ...traceSteps(t, granularityMs).map((s) => s.atMs)))));
}

export interface TraceReport extends TraceChange {
  /** When it was applied, from the start. */
  elapsedMs: number;
  /** How long the change took. */
  tookMs: number;
  /** Earlier changes of the same direction skipped because this one was already due. */
  skipped: number;
}

export interface FollowOptions extends FollowClock {
  /** Window of a Mahimahi trace on the kernel backends. */
  granularityMs?: number;
  /** How Mahimahi traces are followed (default `rate`; Lab.followTraces: `packets` on a userspace lab). */
  mahimahi?: MahimahiMode;
  /** Stop after this long (needed to end a looping trace; default: the end of the longest trace). */
  durationMs?: number;
  onChange?: (r: TraceReport) => void;
  signal?: AbortSignal;
}

/** Applies the traces' changes at their times with `apply`; resolves with what was applied. */
export async function followTimeline(timelineChanges: readonly TraceChange[], apply: (c: TraceChange) => Promise<void>, o: FollowOptions = {}): Promise<TraceReport[]> {
  const now = o.now ?? (() => performance.now());
  const sleep = o.sleep ?? sleepMs;
  // Skipped changes are taken out of this copy, not out of the caller's timeline.
  const changes = [...timelineChanges];
  const done: TraceReport[] = [];
  // The state at 0 is put in place before the clock starts: a first change can be slow (an
  // agent's first call probes the kernel: seconds on a slow machine), and the time from it
  // would otherwise be lost from the first step.
  let i = 0;
  for (; i < changes.length && (changes[i] as TraceChange).atMs === 0 && !o.signal?.aborted; i++) {
    const c = changes[i] as TraceChange;
    const started = now();
    await apply(c);
    const r: TraceReport = { ...c, elapsedMs: 0, tookMs: now() - started, skipped: 0 };
    done.push(r);
    o.onChange?.(r);
  }
  const t0 = now();
  for (; i < changes.length; i++) {
    const c = changes[i] as TraceChange;
    await sleep(c.atMs - (now() - t0), o.signal);
    if (o.signal?.aborted) break;
    // Behind: a later change of the same direction already due replaces this one.
    const at = now() - t0;
    let skipped = 0;
    let j = i + 1;
    let latest = c;
    let merged = { set: { ...c.set }, removed: [...c.removed] };
    const rest: TraceChange[] = [];
    for (; j < changes.length && (changes[j] as TraceChange).atMs <= at; j++) {
      const n = changes[j] as TraceChange;
      if (n.node === c.node && n.dev === c.dev) {
        skipped++;
        latest = n;
        merged = { set: { ...merged.set, ...n.set }, removed: [...merged.removed.filter((k) => !(k in n.set)), ...n.removed] };
      } else rest.push(n);
    }
    if (skipped > 0) changes.splice(i + 1, j - i - 1, ...rest);
    const started = now();
    const change = { ...latest, ...merged };
    await apply(change);
    const r: TraceReport = { ...change, elapsedMs: started - t0, tookMs: now() - started, skipped };
    done.push(r);
    o.onChange?.(r);
  }
  return done;
}

/** Follows the plan's traces on a located lab (the CLI's `dune trace run`). */
export function followTraces(loc: transport.LabLocation, traces: readonly PlanTrace[], o: FollowOptions & { orchestrate?: transport.OrchestrateOptions } = {}): Promise<TraceReport[]> {
  const g = o.granularityMs ?? DEFAULT_GRANULARITY_MS;
  const mode = o.mahimahi ?? 'rate';
  const until = o.durationMs ?? tracesLengthMs(traces, g, mode);
  const changes = timeline(traces, until, g, mode, Date.now());
  const started = performance.now();
  return followTimeline(changes, async (c) => {
    await setImpairment(loc, c.node, c.dev, c.set, c.removed, o.orchestrate ?? {});
  }, o).then(async (done) => {
    // Per packet the engine follows on its own: the follower still lasts the traces' length.
    if (mode === 'packets') await sleepMs(until - (performance.now() - started), o.signal);
    return done;
  });
}
