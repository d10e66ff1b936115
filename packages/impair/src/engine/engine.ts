/**
 * The engine: named pipes (one per direction of one link), each a pipeline of stages, and
 * one scheduler for all of them.
 *
 *   frontend ─ input(pipe) ─> stages (pure: decide drop / copies / departure time t)
 *                              └─> t ≤ now and nothing due before it: delivered at once
 *                              └─> else one entry in the min-heap; one clock wake-up for the earliest
 *   clock wake-up ─> every entry due ─> pipe.sink.deliver(pkt) ─ frontend sends / issues the verdict
 *
 * A tool (`impaired-network-*`) has two pipes, `up` and `down`; a lab's engine process has
 * one per impaired link direction, each fed by its own NFQUEUE queue, all on this one heap.
 */
import type { Impairment } from '@dune/topology';
import type { Clock } from './clock.js';
import { Histogram } from './histogram.js';
import { PacketEventLog, PipeCounters, Ring, type EngineEvent, type LoggedEvent, type SecondSample } from './counters.js';
import { Draws, randomSeed, streamSeed } from './random.js';
import type { DropCause, Packet, StageContext, StageDef } from './stage.js';
import { STAGES, STAGE_ORDER, type StageName } from './stages.js';

/** What a frontend does with the packets of one pipe. */
export interface PipeSink {
  deliver(pkt: Packet): void;
  /** Called for every dropped packet (a frontend holding kernel packets must release them). */
  drop(pkt: Packet, cause: DropCause): void;
}

const NULL_SINK: PipeSink = { deliver() {}, drop() {} };

interface ActiveStage {
  name: StageName;
  def: StageDef<unknown, unknown>;
  cfg: unknown;
  state: unknown;
  ctx: StageContext;
}

/** Drop events logged per pipe per second at most; the rest are counted, not logged. */
const DROP_EVENTS_PER_SECOND = 20;

export interface PipeInput {
  size: number;
  data?: Buffer | null;
  corruptFrom?: number;
  ref?: unknown;
  /**
   * When the packet really arrived, on the engine's clock (e.g. the kernel's timestamp): its
   * delay counts from then, so the time it took to reach the engine is absorbed into the
   * delay it emulates. Never later than now; default now.
   */
  arrivedUs?: number;
}

export class Pipe {
  readonly name: string;
  readonly counters = new PipeCounters();
  sink: PipeSink = NULL_SINK;
  /** Scheduled, not yet delivered. */
  readonly held = { packets: 0, bytes: 0 };
  private params: Impairment = {};
  private active: ActiveStage[] = [];
  private readonly states = new Map<StageName, unknown>();
  private readonly draws = new Map<StageName, Draws>();
  private pending: { pkt: Packet; from: number }[] = [];
  private dataNeeded = false;
  private dropEventsThisSecond = 0;
  private dropEventsSuppressed = 0;

  constructor(
    private readonly engine: Engine,
    name: string,
  ) {
    this.name = name;
  }

  get parameters(): Impairment {
    return structuredClone(this.params);
  }

  /** Replaces the parameters (already validated). Stage state carries over. */
  setParams(params: Impairment): void {
    this.params = structuredClone(params);
    const active: ActiveStage[] = [];
    for (const name of STAGE_ORDER) {
      const def = STAGES[name] as StageDef<unknown, unknown>;
      const cfg = def.config(this.params, this.engine.clock.now());
      if (cfg === undefined) continue;
      if (!this.states.has(name)) this.states.set(name, def.state());
      let draws = this.draws.get(name);
      if (draws === undefined) {
        draws = new Draws(streamSeed(this.engine.seed, `${this.name}/${name}`));
        this.draws.set(name, draws);
      }
      const index = active.length;
      const ctx: StageContext = {
        draws,
        held: this.held,
        emit: (pkt) => this.pending.push({ pkt, from: index + 1 }),
        clone: (pkt) => ({ ...pkt, id: this.engine.nextPacketId(), data: pkt.data === null ? null : Buffer.from(pkt.data), copy: true }),
      };
      active.push({ name, def, cfg, state: this.states.get(name), ctx });
    }
    this.active = active;
    this.dataNeeded = active.some((s) => s.name === 'corrupt' || s.name === 'duplicate');
  }

  /** Whether a stage may need the packet's bytes (to corrupt or to copy them). */
  get needsData(): boolean {
    return this.dataNeeded;
  }

  /** The stages that run, in order. */
  get activeStages(): StageName[] {
    return this.active.map((s) => s.name);
  }

  /** One packet arrives now. */
  input(p: PipeInput): void {
    const now = this.engine.clock.now();
    const arrived = p.arrivedUs !== undefined && p.arrivedUs < now ? p.arrivedUs : now;
    const pkt: Packet = {
      id: this.engine.nextPacketId(),
      size: p.size,
      data: p.data ?? null,
      corruptFrom: p.corruptFrom ?? 0,
      arrivedUs: arrived,
      t: arrived,
      copy: false,
      corrupted: false,
      reordered: false,
      ref: p.ref,
    };
    this.counters.onReceive(pkt.size);
    this.run(pkt, 0, now);
    while (this.pending.length > 0) {
      const next = this.pending.pop()!;
      this.counters.duplicated += 1;
      this.run(next.pkt, next.from, now);
    }
  }

  private run(pkt: Packet, from: number, now: number): void {
    const stages = this.active;
    for (let i = from; i < stages.length; i++) {
      const s = stages[i]!;
      const cause = s.def.process(pkt, s.cfg, s.state, s.ctx);
      if (cause !== undefined) {
        this.dropped(pkt, cause);
        return;
      }
    }
    if (pkt.corrupted) this.counters.corrupted += 1;
    if (pkt.reordered) this.counters.reordered += 1;
    this.observeQueue(now);
    this.engine.schedule(this, pkt, now);
  }

  private observeQueue(now: number): void {
    const q = this.queueDepth(now);
    this.counters.onQueue(q.packets, q.bytes);
  }

  /** What waits in the rate queue (or, with a limit and no rate, everything held). */
  queueDepth(now = this.engine.clock.now()): { packets: number; bytes: number } {
    const fifo = this.states.get('queue') as { drain(t: number): void; packets: number; bytes: number } | undefined;
    if (fifo === undefined || !(this.params.rateBitsPerSec && this.params.rateBitsPerSec > 0)) {
      return this.active.some((s) => s.name === 'queue') ? { ...this.held } : { packets: 0, bytes: 0 };
    }
    fifo.drain(now);
    return { packets: fifo.packets, bytes: fifo.bytes };
  }

  /** @internal by the engine */
  dropped(pkt: Packet, cause: DropCause): void {
    this.counters.onDrop(cause, pkt.size);
    this.engine.packetEvents?.add(this.name, 'drop', pkt.size);
    if (this.dropEventsThisSecond < DROP_EVENTS_PER_SECOND) {
      this.dropEventsThisSecond += 1;
      this.engine.log({ type: 'drop', pipe: this.name, cause, bytes: pkt.size });
    } else {
      this.dropEventsSuppressed += 1;
    }
    this.sink.drop(pkt, cause);
  }

  /** @internal by the engine */
  delivered(pkt: Packet, now: number): void {
    // Its time in the engine, to its return to the kernel: the release started now and
    // costs about releaseAheadUs (0 where no frontend measures it).
    const latencyUs = now + this.engine.releaseAheadUs - pkt.arrivedUs;
    this.counters.onDeliver(pkt.size, latencyUs);
    const log = this.engine.packetEvents;
    if (log) {
      log.add(this.name, 'deliver', pkt.size);
      log.add(this.name, 'latency', latencyUs / 1e6);
      log.add(this.name, 'buffer', this.held.bytes);
    }
    this.sink.deliver(pkt);
  }

  /** @internal by the engine: closes the current second. */
  closeSecond(seconds: number): SecondSample {
    if (this.dropEventsSuppressed > 0) {
      this.engine.log({ type: 'drops-suppressed', pipe: this.name, count: this.dropEventsSuppressed });
    }
    this.dropEventsThisSecond = 0;
    this.dropEventsSuppressed = 0;
    return this.counters.closeSecond(seconds, this.queueDepth());
  }
}

interface Due {
  due: number;
  seq: number;
  pipe: Pipe;
  pkt: Packet;
}

/** A binary min-heap on (due, seq): ties leave in the order they were scheduled. */
class DueHeap {
  private readonly a: Due[] = [];

  get size(): number {
    return this.a.length;
  }

  peek(): Due | undefined {
    return this.a[0];
  }

  push(x: Due): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): Due | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && less(a[l]!, a[m]!)) m = l;
      if (r < a.length && less(a[r]!, a[m]!)) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
    return top;
  }

  clear(): Due[] {
    return this.a.splice(0);
  }
}

function less(x: Due, y: Due): boolean {
  return x.due < y.due || (x.due === y.due && x.seq < y.seq);
}

/** The most a packet is released ahead of its time to cover the release's own cost (µs). */
export const MAX_RELEASE_AHEAD_US = 100;

export interface EngineOptions {
  clock: Clock;
  /** Makes the run reproducible; a random one is picked (and reported) when absent. */
  seed?: number;
  /** Packets held by all pipes at most; more are dropped as `overflow`. */
  maxHeldPackets?: number;
  /** Bytes held by all pipes at most; more are dropped as `overflow`. */
  maxHeldBytes?: number;
  /** Events kept for GET /events. */
  eventCapacity?: number;
  /** Seconds of per-second samples kept for the live page. */
  seriesSeconds?: number;
}

export interface SeriesPoint {
  /** Wall-clock ms at the end of the second. */
  time: number;
  pipes: Record<string, SecondSample>;
}

export class Engine {
  readonly clock: Clock;
  readonly seed: number;
  readonly maxHeldPackets: number;
  readonly maxHeldBytes: number;
  readonly events: Ring<LoggedEvent>;
  readonly series: Ring<SeriesPoint>;
  /** Frontend problems by kind (send errors, kernel queue overruns, ...), for /metrics. */
  readonly frontendErrors = new Map<string, number>();
  /**
   * What releasing a packet costs a frontend, from the wake-up that releases it to the end of
   * the system call that hands it back to the kernel (NFQUEUE: the verdict, and with veth
   * the next hop's processing, which runs inside that call). µs.
   */
  readonly releaseCost = new Histogram();
  /**
   * How long packets waited in the kernel before the engine read them, from the kernel's
   * arrival stamp (µs; frontends that have one record it). Absorbed into their delays.
   */
  readonly readDelay = new Histogram();
  /**
   * Packets are released this much before their time, so that they are on their way at their
   * time (see noteReleaseCost; 0 until a frontend reports one), capped.
   */
  releaseAheadUs = 0;
  /** packet_queue's per-packet events, kept only once something reads them (enablePacketEvents). */
  packetEvents: PacketEventLog | undefined;
  private readonly pipes = new Map<string, Pipe>();
  private readonly heap = new DueHeap();
  private seq = 0;
  private packetIds = 0;
  private heldPackets = 0;
  private heldBytes = 0;
  private armedFor = Infinity;
  private lastSecondUs: number;

  constructor(opts: EngineOptions) {
    this.clock = opts.clock;
    this.seed = (opts.seed ?? randomSeed()) >>> 0;
    this.maxHeldPackets = opts.maxHeldPackets ?? 1_000_000;
    this.maxHeldBytes = opts.maxHeldBytes ?? 512 * 1024 * 1024;
    this.events = new Ring(opts.eventCapacity ?? 10_000);
    this.series = new Ring(opts.seriesSeconds ?? 900);
    this.lastSecondUs = this.clock.now();
  }

  addPipe(name: string, params: Impairment = {}): Pipe {
    if (this.pipes.has(name)) throw new Error(`a pipe named "${name}" already exists`);
    const p = new Pipe(this, name);
    p.setParams(params);
    this.pipes.set(name, p);
    return p;
  }

  /**
   * Takes a pipe out (a lab link that is no longer impaired here). What it holds is dropped
   * from the schedule undelivered: a frontend that holds kernel packets takes them first
   * (takeHeld) and decides their fate.
   */
  removePipe(name: string): void {
    const p = this.pipes.get(name);
    if (p === undefined) return;
    this.takeHeld([p]);
    this.pipes.delete(name);
  }

  pipe(name: string): Pipe {
    const p = this.pipes.get(name);
    if (p === undefined) throw new Error(`no pipe named "${name}" (pipes: ${[...this.pipes.keys()].join(', ')})`);
    return p;
  }

  get pipeNames(): string[] {
    return [...this.pipes.keys()];
  }

  /** Applies validated parameters to several pipes at once, and logs each change (unchanged pipes are left alone). */
  setParams(byPipe: Record<string, Impairment>, by = 'api'): void {
    for (const name of Object.keys(byPipe)) this.pipe(name);
    for (const [name, params] of Object.entries(byPipe)) {
      const pipe = this.pipe(name);
      if (JSON.stringify(pipe.parameters) === JSON.stringify(params)) continue;
      pipe.setParams(params);
      this.log({ type: 'params', pipe: name, params, by });
    }
  }

  /** @internal */
  nextPacketId(): number {
    return ++this.packetIds;
  }

  /** Packets held by every pipe, waiting for their time. */
  get held(): { packets: number; bytes: number } {
    return { packets: this.heldPackets, bytes: this.heldBytes };
  }

  /** @internal by Pipe: `pkt` leaves its last stage at `pkt.t`. */
  schedule(pipe: Pipe, pkt: Packet, now: number): void {
    const top = this.heap.peek();
    // Due when its release, begun now, would complete at its time (see releaseAheadUs).
    const due = pkt.t - this.releaseAheadUs;
    if (due <= now && (top === undefined || top.due > due)) {
      pipe.delivered(pkt, now);
      return;
    }
    if (this.heldPackets + 1 > this.maxHeldPackets || this.heldBytes + pkt.size > this.maxHeldBytes) {
      pipe.dropped(pkt, 'overflow');
      return;
    }
    this.heldPackets += 1;
    this.heldBytes += pkt.size;
    pipe.held.packets += 1;
    pipe.held.bytes += pkt.size;
    this.heap.push({ due, seq: this.seq++, pipe, pkt });
    this.packetEvents?.add(pipe.name, 'buffer', pipe.held.bytes);
    if (due < this.armedFor) {
      this.armedFor = due;
      this.clock.wakeAt(due, this.wake);
    }
  }

  private readonly wake = (): void => {
    this.armedFor = Infinity;
    const now = this.clock.now();
    for (;;) {
      const top = this.heap.peek();
      if (top === undefined) break;
      if (top.due > now) {
        this.armedFor = top.due;
        this.clock.wakeAt(top.due, this.wake);
        break;
      }
      this.heap.pop();
      this.release(top);
      top.pipe.delivered(top.pkt, now);
    }
  };

  private release(d: Due): void {
    this.heldPackets -= 1;
    this.heldBytes -= d.pkt.size;
    d.pipe.held.packets -= 1;
    d.pipe.held.bytes -= d.pkt.size;
  }

  log(event: EngineEvent): void {
    this.events.push({ id: this.events.lastId + 1, time: Date.now(), event });
  }

  /**
   * A frontend reports what one release cost (wake-up to the end of its system call, µs) and
   * how much of it passed before the packet was on its way (wake-up to the start of that call;
   * by default all of it). Packets are then released ahead by the moving average (1/32 weight
   * per report) of the latter, each capped at MAX_RELEASE_AHEAD_US: a stall (the host busy
   * elsewhere) is not a cost to anticipate. The system call itself is not anticipated: with
   * NFQUEUE it carries the packet on, through the rest of this node and into the next one, and
   * that node's processing up to the engine again runs inside it too; releasing ahead by all
   * of it made each crossing of a many-hop path early by that part. What the call takes to
   * carry the packet into the next node (a few µs, measured: 2-4) is left late, not guessed.
   */
  noteReleaseCost(us: number, beforeSendUs = us): void {
    if (!(us >= 0)) return;
    this.releaseCost.record(us);
    if (!(beforeSendUs >= 0)) return;
    this.releaseAheadUs += (Math.min(beforeSendUs, us, MAX_RELEASE_AHEAD_US) - this.releaseAheadUs) / 32;
  }

  /** Starts keeping packet_queue's per-packet events (GET /events in its form); idempotent. */
  enablePacketEvents(): PacketEventLog {
    this.packetEvents ??= new PacketEventLog();
    return this.packetEvents;
  }

  countFrontendError(kind: string, n = 1): void {
    this.frontendErrors.set(kind, (this.frontendErrors.get(kind) ?? 0) + n);
  }

  /** Closes the current second of every pipe into the series (call once a second). */
  sampleSecond(): SeriesPoint {
    const now = this.clock.now();
    const seconds = (now - this.lastSecondUs) / 1e6;
    this.lastSecondUs = now;
    const point: SeriesPoint = { time: Date.now(), pipes: {} };
    for (const [name, p] of this.pipes) point.pipes[name] = p.closeSecond(seconds);
    this.series.push(point);
    return point;
  }

  /**
   * Takes the packets `pipes` hold out of the schedule, without delivering them, in time
   * order (a frontend holding kernel packets decides their fate: on exit, they are accepted).
   * `which`: only those (a pipe fed by two frontends: each takes its own).
   */
  takeHeld(pipes: readonly Pipe[], which?: (pkt: Packet) => boolean): { pipe: Pipe; pkt: Packet }[] {
    const set = new Set(pipes);
    const all = this.heap.clear();
    const taken: Due[] = [];
    for (const d of all) {
      if (set.has(d.pipe) && (which === undefined || which(d.pkt))) {
        this.release(d);
        taken.push(d);
      } else {
        this.heap.push(d);
      }
    }
    return taken.sort((x, y) => (less(x, y) ? -1 : 1)).map((d) => ({ pipe: d.pipe, pkt: d.pkt }));
  }

  /** Stops the clock and takes every held packet out (see takeHeld). */
  close(): { pipe: Pipe; pkt: Packet }[] {
    this.clock.disarm();
    this.armedFor = Infinity;
    return this.takeHeld([...this.pipes.values()]);
  }
}
