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

/**
 * A timer on a descriptor (kernel/native.ts's `descriptorWaker`): once set, it calls back at
 * its time and then on every turn of the event loop (I/O is served between turns), until it
 * is set again or cleared. Spinning on it allocates nothing; setImmediate allocates an object
 * per turn.
 */
export interface Waker {
  /** Calls back in `delayUs` (0: at the next turn), then every turn. */
  set(delayUs: number): void;
  /** No more calls until the next set. */
  clear(): void;
  /** Releases the descriptor. */
  close(): void;
}

export interface RealClockOptions {
  /**
   * Below this many microseconds to the deadline, wait by spinning, turn after turn of the
   * event loop (on the waker when there is one, else on setImmediate; I/O is still served
   * between turns), instead of a timer. Node's timers have millisecond
   * resolution and usually fire 0.1-1.5 ms late; spinning the last stretch makes a wake-up
   * typically a few microseconds late, at the cost of CPU while a deadline is that close.
   * 0 disables spinning.
   */
  spinBelowUs?: number;
  /**
   * A monotonic clock in microseconds that allocates nothing when read (kernel/native.ts's
   * `allocationFreeClock`). Default: performance.now(), which in Node 20 allocates an array per
   * call. With it, `spinSliceUs` applies.
   */
  source?: () => number;
  /**
   * With `source`: each turn of the spin first waits up to this many microseconds without
   * yielding, reading only the clock. A turn costs a system call and, on setImmediate, an
   * object: spinning turn by turn towards deadlines 0.2 ms apart (Kdl's links) made ~80 MB/s of
   * garbage, a collection every 0.15 s, and each collection delays every packet held by
   * ~1 ms (the p99 of a ping through 36 crossings). What arrives meanwhile waits in the
   * kernel's queue, stamped, and is released at its stamp plus its delay all the same.
   * Default 25 µs; 0: yield at every turn.
   */
  spinSliceUs?: number;
  /**
   * The timer to wait and spin on instead of setTimeout and setImmediate, made with the
   * callback it is to call.
   */
  waker?: (onTurn: () => void) => Waker;
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
  private readonly read: () => number;
  private readonly origin: number;
  private readonly sliceUs: number;
  private readonly waker: Waker | undefined;

  constructor(opts: RealClockOptions = {}) {
    this.spinBelowUs = opts.spinBelowUs ?? 1000;
    this.read = opts.source ?? (() => performance.now() * 1000);
    this.sliceUs = opts.source !== undefined ? (opts.spinSliceUs ?? 25) : 0;
    this.origin = this.read();
    this.waker = opts.waker?.(this.spin);
  }

  /** Releases the waker's descriptor; the clock is not to be used after. */
  close(): void {
    this.disarm();
    this.waker?.close();
  }

  now(): number {
    return this.read() - this.origin;
  }

  wakeAt(atUs: number, fn: () => void): void {
    this.stopTimers();
    this.due = atUs;
    this.fn = fn;
    this.schedule();
  }

  disarm(): void {
    this.stopTimers();
    this.waker?.clear();
    this.fn = undefined;
  }

  private stopTimers(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  private schedule(): void {
    const wait = this.due - this.now();
    if (this.waker !== undefined) {
      // Set again (a new due time) it calls back no earlier than the new time.
      this.waker.set(wait <= this.spinBelowUs ? 0 : wait - this.spinBelowUs);
      return;
    }
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
    if (this.fn === undefined) {
      this.waker?.clear();
      return;
    }
    let t = this.now();
    if (this.sliceUs > 0) {
      const until = Math.min(this.due, t + this.sliceUs);
      while (t < until) t = this.now();
    }
    if (t < this.due) {
      // The waker calls back again at the next turn by itself.
      if (this.waker === undefined) this.schedule();
      return;
    }
    this.waker?.clear();
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
