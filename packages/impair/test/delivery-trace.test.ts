/**
 * A Mahimahi trace followed packet by packet (the `trace` stage), on the fake clock: each
 * millisecond of the trace lets 1500 bytes out, in order; unused opportunities are lost;
 * the trace starts when it is set, loops or holds its last second.
 */
import { describe, expect, it } from 'vitest';
import type { DeliveryTrace, Impairment } from '@dune/topology';
import { Engine, FakeClock, mergeParams, STAGE_ORDER, type Packet } from '../src/index.js';

const mm = (opportunitiesMs: number[], loop = false, epoch = 1): DeliveryTrace => ({ opportunitiesMs, loop, epoch });

function harness(params: Impairment) {
  const clock = new FakeClock();
  const engine = new Engine({ clock, seed: 7 });
  const pipe = engine.addPipe('down', params);
  const out: { seq: number; at: number }[] = [];
  const drops: number[] = [];
  pipe.sink = { deliver: (p: Packet) => out.push({ seq: p.ref as number, at: clock.now() }), drop: (p: Packet) => drops.push(p.ref as number) };
  let seq = 0;
  const send = (size = 1500) => pipe.input({ size, data: null, ref: seq++ });
  return { clock, engine, pipe, out, drops, send, settle: () => clock.advance(3600e6) };
}

/** Deliveries per second of a saturating sender (an MTU packet every 0.1 ms) over `seconds`. */
function perSecond(params: Impairment, seconds: number): number[] {
  const h = harness(params);
  for (let t = 0; t < seconds * 1e6; t += 100) {
    h.send();
    h.clock.advance(100);
  }
  const counts = Array.from({ length: seconds }, () => 0);
  for (const o of h.out) if (o.at < seconds * 1e6) counts[Math.floor(o.at / 1e6)]! += 1;
  return counts;
}

describe('a Mahimahi trace, packet by packet', () => {
  it('is a stage of its own, after the rate queue, on only when a trace is set', () => {
    expect(STAGE_ORDER.indexOf('trace')).toBe(STAGE_ORDER.indexOf('queue') + 1);
    expect(harness({}).pipe.activeStages).toEqual([]);
    expect(harness({ deliveryTrace: mm([1]) }).pipe.activeStages).toEqual(['trace']);
  });

  it('lets one MTU packet out per opportunity, in order: a burst at 0 leaves at 1, 2, 3 ... ms', () => {
    const h = harness({ deliveryTrace: mm([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) });
    for (let i = 0; i < 5; i++) h.send();
    h.settle();
    expect(h.out.map((o) => [o.seq, o.at])).toEqual([[0, 1000], [1, 2000], [2, 3000], [3, 4000], [4, 5000]]);
  });

  it('small packets share an opportunity; a large one takes as many as its bytes need', () => {
    const h = harness({ deliveryTrace: mm([1, 2, 3, 4, 5, 6]) });
    h.send(500);
    h.send(500);
    h.send(500);
    h.send(500); // 2 ms
    h.send(3000); // 1000 left at 2 ms, then 1500 at 3 ms, 500 at 4 ms
    h.send(1000); // the rest of 4 ms
    h.send(1); // 5 ms
    h.settle();
    expect(h.out.map((o) => o.at / 1000)).toEqual([1, 1, 1, 2, 4, 4, 5]);
  });

  it('an opportunity nobody waits for is lost: a packet waits for the next one after it arrives', () => {
    const h = harness({ deliveryTrace: mm([10, 20, 30, 40]) });
    h.clock.advanceTo(15_000);
    h.send(100);
    h.clock.advanceTo(20_000); // arrives at the opportunity at 20 ms, after the first packet used part of it
    h.send(100);
    h.clock.advanceTo(21_000);
    h.send(100);
    h.settle();
    expect(h.out.map((o) => o.at / 1000)).toEqual([20, 20, 30]);
  });

  it('loops with period = the last timestamp', () => {
    const h = harness({ deliveryTrace: mm([0, 5, 10], true) });
    for (let i = 0; i < 7; i++) h.send();
    h.settle();
    // 0, 5, 10 | 10 (the next period's 0), 15, 20 | 20
    expect(h.out.map((o) => o.at / 1000)).toEqual([0, 5, 10, 10, 15, 20, 20]);
  });

  it('follows a 6 → 3 Mbit/s trace exactly, and without loop its last second holds', () => {
    // 1 s at one opportunity per 2 ms (6 Mbit/s), then 1 s at one per 4 ms (3 Mbit/s).
    const opps = [...Array.from({ length: 500 }, (_, i) => 2 * (i + 1)), ...Array.from({ length: 250 }, (_, i) => 1000 + 4 * (i + 1))];
    // (The opportunity at 1000 ms counts in the second second, the one at 2000 ms in the third.)
    expect(perSecond({ deliveryTrace: mm(opps) }, 4)).toEqual([499, 250, 250, 250]);
    // Looping, the 6 Mbit/s second comes back.
    expect(perSecond({ deliveryTrace: mm(opps, true) }, 4)).toEqual([499, 250, 500, 250]);
  });

  it('starts when it is set; another key changed goes on with it; a new epoch starts it over', () => {
    const h = harness({});
    h.clock.advanceTo(5e6);
    h.engine.setParams({ down: { deliveryTrace: mm([100, 200, 300, 400, 500]) } });
    h.clock.advanceTo(5.05e6);
    h.send();
    h.clock.advanceTo(5.15e6);
    h.engine.setParams({ down: { deliveryTrace: mm([100, 200, 300, 400, 500]), lossPct: 0 } });
    h.send();
    h.clock.advanceTo(5.25e6);
    h.engine.setParams({ down: { deliveryTrace: mm([100, 200, 300, 400, 500], false, 2) } });
    h.send();
    h.settle();
    expect(h.out.map((o) => o.at / 1000)).toEqual([5100, 5200, 5350]);
  });

  it('comes through the validation of the lab engine\'s parameters, and bad traces do not', () => {
    expect(mergeParams({ p: {} }, { p: { deliveryTrace: mm([1, 2]) } }).p).toEqual({ deliveryTrace: mm([1, 2]) });
    expect(() => mergeParams({ p: {} }, { p: { deliveryTrace: mm([2, 1]) } })).toThrow(/opportunitiesMs\[1\] the number 1 is not a whole millisecond at or after 2/);
    expect(() => mergeParams({ p: {} }, { p: { deliveryTrace: mm([0]) } })).toThrow(/last opportunity must be above 0/);
    expect(() => mergeParams({ p: {} }, { p: { deliveryTrace: { opportunitiesMs: [1] } } })).toThrow(/loop must be true or false/);
  });
});
