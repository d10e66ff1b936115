/**
 * Counters, the per-second series and the event log: everything observable about the
 * engine, all of fixed size whatever the traffic.
 */
import { DROP_CAUSES, type DropCause } from './stage.js';
import { Histogram, type HistogramSnapshot } from './histogram.js';

export interface Tally {
  packets: number;
  bytes: number;
}

const tally = (): Tally => ({ packets: 0, bytes: 0 });
const dropTallies = (): Record<DropCause, Tally> =>
  Object.fromEntries(DROP_CAUSES.map((c) => [c, tally()])) as Record<DropCause, Tally>;

/** One second of one pipe, as the live page charts it. */
export interface SecondSample {
  receivedPackets: number;
  deliveredPackets: number;
  deliveredBytes: number;
  /** Delivered bits per second over the second. */
  throughputBitsPerSec: number;
  dropped: Record<DropCause, number>;
  latencyP50Us: number;
  latencyP99Us: number;
  latencyMaxUs: number;
  /** Largest rate-queue occupancy seen in the second (packets held when there is no rate). */
  queueMaxBytes: number;
  queueMaxPackets: number;
}

/** One engine's counts of one pipe since the last take, to be added to another's. */
export interface CountersDelta {
  received: Tally;
  delivered: Tally;
  dropped: Record<DropCause, Tally>;
  duplicated: number;
  corrupted: number;
  reordered: number;
  latency: HistogramSnapshot;
  queueMaxBytes: number;
  queueMaxPackets: number;
}

export class PipeCounters {
  received = tally();
  delivered = tally();
  dropped = dropTallies();
  duplicated = 0;
  corrupted = 0;
  reordered = 0;
  /** Time spent in the engine by delivered packets, µs. */
  readonly latency = new Histogram();

  // The second in progress.
  private secReceived = 0;
  private secDelivered = tally();
  private secDropped = Object.fromEntries(DROP_CAUSES.map((c) => [c, 0])) as Record<DropCause, number>;
  private readonly secLatency = new Histogram();
  private secQueueBytes = 0;
  private secQueuePackets = 0;

  onReceive(size: number): void {
    this.received.packets += 1;
    this.received.bytes += size;
    this.secReceived += 1;
  }

  onDeliver(size: number, latencyUs: number): void {
    this.delivered.packets += 1;
    this.delivered.bytes += size;
    this.latency.record(latencyUs);
    this.secDelivered.packets += 1;
    this.secDelivered.bytes += size;
    this.secLatency.record(latencyUs);
  }

  onDrop(cause: DropCause, size: number): void {
    const t = this.dropped[cause];
    t.packets += 1;
    t.bytes += size;
    this.secDropped[cause] += 1;
  }

  onQueue(packets: number, bytes: number): void {
    if (bytes > this.secQueueBytes) this.secQueueBytes = bytes;
    if (packets > this.secQueuePackets) this.secQueuePackets = packets;
  }

  /**
   * What was counted since the last take, as plain data, and those counts zeroed: a worker
   * thread's engine hands its counts to the main one's (`absorb`) this way.
   */
  take(queueNow: { packets: number; bytes: number }): CountersDelta {
    const d: CountersDelta = {
      received: this.received, delivered: this.delivered, dropped: this.dropped,
      duplicated: this.duplicated, corrupted: this.corrupted, reordered: this.reordered,
      latency: this.latency.snapshot(),
      queueMaxBytes: Math.max(this.secQueueBytes, queueNow.bytes), queueMaxPackets: Math.max(this.secQueuePackets, queueNow.packets),
    };
    this.reset();
    this.secQueueBytes = 0;
    this.secQueuePackets = 0;
    return d;
  }

  /** Adds another engine's counts (`take`) to these, and to the second in progress. */
  absorb(d: CountersDelta): void {
    this.received.packets += d.received.packets;
    this.received.bytes += d.received.bytes;
    this.secReceived += d.received.packets;
    this.delivered.packets += d.delivered.packets;
    this.delivered.bytes += d.delivered.bytes;
    this.secDelivered.packets += d.delivered.packets;
    this.secDelivered.bytes += d.delivered.bytes;
    for (const c of DROP_CAUSES) {
      this.dropped[c].packets += d.dropped[c].packets;
      this.dropped[c].bytes += d.dropped[c].bytes;
      this.secDropped[c] += d.dropped[c].packets;
    }
    this.duplicated += d.duplicated;
    this.corrupted += d.corrupted;
    this.reordered += d.reordered;
    this.latency.add(d.latency);
    this.secLatency.add(d.latency);
    this.onQueue(d.queueMaxPackets, d.queueMaxBytes);
  }

  /** Closes the second in progress; `seconds` is how long it really lasted. */
  closeSecond(seconds: number, queueNow: { packets: number; bytes: number }): SecondSample {
    const s: SecondSample = {
      receivedPackets: this.secReceived,
      deliveredPackets: this.secDelivered.packets,
      deliveredBytes: this.secDelivered.bytes,
      throughputBitsPerSec: Math.round((this.secDelivered.bytes * 8) / Math.max(seconds, 1e-3)),
      dropped: { ...this.secDropped },
      latencyP50Us: Math.round(this.secLatency.quantile(0.5)),
      latencyP99Us: Math.round(this.secLatency.quantile(0.99)),
      latencyMaxUs: Math.round(this.secLatency.max),
      queueMaxBytes: Math.max(this.secQueueBytes, queueNow.bytes),
      queueMaxPackets: Math.max(this.secQueuePackets, queueNow.packets),
    };
    this.secReceived = 0;
    this.secDelivered = tally();
    for (const c of DROP_CAUSES) this.secDropped[c] = 0;
    this.secLatency.reset();
    this.secQueueBytes = 0;
    this.secQueuePackets = 0;
    return s;
  }

  reset(): void {
    this.received = tally();
    this.delivered = tally();
    this.dropped = dropTallies();
    this.duplicated = 0;
    this.corrupted = 0;
    this.reordered = 0;
    this.latency.reset();
  }
}

/** A ring buffer: keeps the last `capacity` items, each with an increasing id. */
export class Ring<T> {
  private readonly items: (T | undefined)[];
  private nextId = 1;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): number {
    const id = this.nextId++;
    this.items[id % this.capacity] = item;
    return id;
  }

  /** Items with id > `since`, oldest first, at most `limit`; and the id to ask from next. */
  since(since: number, limit = this.capacity): { items: { id: number; item: T }[]; next: number; missed: number } {
    const oldest = Math.max(1, this.nextId - this.capacity);
    const from = Math.max(since + 1, oldest);
    const missed = Math.max(0, oldest - (since + 1));
    const items: { id: number; item: T }[] = [];
    let id = from;
    for (; id < this.nextId && items.length < limit; id++) items.push({ id, item: this.items[id % this.capacity] as T });
    return { items, next: id - 1, missed };
  }

  get lastId(): number {
    return this.nextId - 1;
  }
}

export type EngineEvent =
  | { type: 'params'; pipe: string; params: unknown; by: string }
  | { type: 'drop'; pipe: string; cause: DropCause; bytes: number }
  | { type: 'drops-suppressed'; pipe: string; count: number }
  | { type: 'note'; message: string; pipe?: string };

export interface LoggedEvent {
  id: number;
  /** Wall-clock time, ms since the epoch. */
  time: number;
  event: EngineEvent;
}

/** packet_queue's per-packet event: wall time in seconds, `value` in bytes (drop, deliver, buffer) or seconds (latency). */
export interface PacketEvent {
  id: number;
  time: number;
  pipe: string;
  type: 'drop' | 'deliver' | 'latency' | 'buffer';
  value: number;
}

/**
 * packet_queue's event log, kept only while someone reads it (it costs a few objects per
 * packet): the last `capacity` per-packet events, handed out and forgotten on read, as
 * packet_queue's single-client log does.
 */
export class PacketEventLog {
  private events: PacketEvent[] = [];
  private nextId = 1;

  constructor(readonly capacity = 9000) {}

  add(pipe: string, type: PacketEvent['type'], value: number): void {
    this.events.push({ id: this.nextId++, time: (performance.timeOrigin + performance.now()) / 1000, pipe, type, value });
    // Trimmed in blocks: a shift per event would be quadratic under load.
    if (this.events.length > this.capacity * 1.25) this.events = this.events.slice(-this.capacity);
  }

  drain(): PacketEvent[] {
    const out = this.events.length > this.capacity ? this.events.slice(-this.capacity) : this.events;
    this.events = [];
    return out;
  }
}
