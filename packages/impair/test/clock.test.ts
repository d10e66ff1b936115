import { describe, expect, it } from 'vitest';
import { FakeClock, RealClock } from '../src/index.js';

describe('RealClock', () => {
  it('wakes at or after the deadline, records how late, and re-arming replaces the wake-up', async () => {
    const clock = new RealClock();
    const fired: { at: number; due: number; tag: string }[] = [];
    const wait = (due: number, tag: string) =>
      new Promise<void>((resolve) => clock.wakeAt(due, () => (fired.push({ at: clock.now(), due, tag }), resolve())));
    for (const ms of [0, 0.3, 2, 10]) {
      const due = clock.now() + ms * 1000;
      await wait(due, `+${ms}ms`);
    }
    const replaced = clock.now() + 50_000;
    clock.wakeAt(replaced, () => fired.push({ at: clock.now(), due: replaced, tag: 'replaced' }));
    await wait(clock.now() + 3000, 'replacement');
    await new Promise((r) => setTimeout(r, 80));
    expect(fired.map((f) => f.tag)).toEqual(['+0ms', '+0.3ms', '+2ms', '+10ms', 'replacement']);
    for (const f of fired) expect(f.at).toBeGreaterThanOrEqual(f.due);
    expect(clock.lateness.count).toBe(5);
  });

  it('disarm cancels', async () => {
    const clock = new RealClock();
    let fired = false;
    clock.wakeAt(clock.now() + 2000, () => (fired = true));
    clock.disarm();
    await new Promise((r) => setTimeout(r, 20));
    expect(fired).toBe(false);
  });
});

describe('FakeClock', () => {
  it('fires wake-ups in order, at their time, as it is advanced', () => {
    const c = new FakeClock(100);
    const seen: number[] = [];
    const chain = () => {
      seen.push(c.now());
      if (seen.length < 3) c.wakeAt(c.now() + 10, chain);
    };
    c.wakeAt(150, chain);
    c.advance(49);
    expect(seen).toEqual([]);
    c.advance(1000);
    expect(seen).toEqual([150, 160, 170]);
    expect(c.now()).toBe(1149);
  });
});
