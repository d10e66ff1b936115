/**
 * Time for the engine: a monotonic clock in microseconds and one re-armable wake-up.
 *
 * The engine keeps every due packet in one min-heap and arms a single wake-up for the
 * earliest; that is all it asks of a clock. `FakeClock` runs wake-ups when a test advances
 * it, so the model is tested to the microsecond; `RealClock` uses Node's timers.
 */
import { Histogram } from './histogram.js';

export interface Clock {
  /** Monotonic time in microseconds (fractional allowed). */
  now(): number;
  /** Arms the one wake-up: `fn` runs once, at or after `atUs`. Re-arming replaces it. */
  wakeAt(atUs: number, fn: () => void): void;
  disarm(): void;
}

/** A clock that moves only when told to. Wake-ups run in time order during `advance`. */
export class FakeClock implements Clock {
  private t: number;
  private due: number | undefined;
  private fn: (() => void) | undefined;

  constructor(startUs = 0) {
    this.t = startUs;
  }

  now(): number {
    return this.t;
  }

  wakeAt(atUs: number, fn: () => void): void {
    this.due = atUs;
    this.fn = fn;
  }

  disarm(): void {
    this.due = undefined;
    this.fn = undefined;
  }

  /** Moves time forward by `us`, firing every wake-up that falls due on the way, at its time. */
  advance(us: number): void {
    this.advanceTo(this.t + us);
  }

  advanceTo(targetUs: number): void {
    for (let guard = 0; guard < 100_000_000; guard++) {
      if (this.due === undefined || this.fn === undefined || this.due > targetUs) break;
      const fn = this.fn;
      this.t = Math.max(this.t, this.due);
      this.due = undefined;
      this.fn = undefined;
      fn();
    }
    this.t = Math.max(this.t, targetUs);
  }

  /** The armed wake-up time, if any: lets a test run until the engine is idle. */
  get nextWake(): number | undefined {
    return this.due;
  }
}

export interface RealClockOptions {
  /**
   * Below this many microseconds to the deadline, wait by spinning on setImmediate (I/O is
   * still served between turns) instead of a timer. Node's timers have millisecond
   * resolution and usually fire 0.1-1.5 ms late; spinning the last stretch makes a wake-up
   * typically a few microseconds late, at the cost of CPU while a deadline is that close.
   * 0 disables spinning.
   */
  spinBelowUs?: number;
}

/**
 * Node's timers plus a short spin. How late each wake-up fired is recorded in `lateness`
 * (microseconds), exposed by /metrics as impair_scheduler_lateness_seconds.
 */
export class RealClock implements Clock {
  readonly spinBelowUs: number;
  readonly lateness = new Histogram();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private due = 0;
  private fn: (() => void) | undefined;
  private readonly origin = performance.now();

  constructor(opts: RealClockOptions = {}) {
    this.spinBelowUs = opts.spinBelowUs ?? 1000;
  }

  now(): number {
    return (performance.now() - this.origin) * 1000;
  }

  wakeAt(atUs: number, fn: () => void): void {
    this.disarm();
    this.due = atUs;
    this.fn = fn;
    this.schedule();
  }

  disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.fn = undefined;
  }

  private schedule(): void {
    const wait = this.due - this.now();
    if (wait <= 0) {
      this.immediate = setImmediate(this.fire);
    } else if (wait <= this.spinBelowUs) {
      this.immediate = setImmediate(this.spin);
    } else {
      // Aim the timer a spin-width early; the spin covers its late firing.
      const ms = Math.max(0, Math.floor((wait - this.spinBelowUs) / 1000));
      this.timer = setTimeout(this.spin, ms);
    }
  }

  private readonly spin = (): void => {
    this.timer = undefined;
    this.immediate = undefined;
    if (this.fn === undefined) return;
    if (this.now() < this.due) {
      this.schedule();
      return;
    }
    this.fire();
  };

  private readonly fire = (): void => {
    this.timer = undefined;
    this.immediate = undefined;
    const fn = this.fn;
    if (fn === undefined) return;
    this.fn = undefined;
    this.lateness.record(Math.max(0, this.now() - this.due));
    fn();
  };
}
