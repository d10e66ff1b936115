import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { FakeClock, RealClock } from '../src/index.js';
import { allocationFreeClock, descriptorWaker, kernelClock } from '../src/kernel/native.js';

const DIST_NATIVE = fileURLToPath(new URL('../dist/kernel/native.js', import.meta.url));

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

  it('on a given source, the spin waits in slices between turns of the event loop, and still fires at the deadline', async () => {
    // A source that moves 1 µs per read: the wait is counted in reads, not in wall time.
    let t = 1_000_000;
    const source = () => (t += 1);
    const turns = (slice: number | undefined) => {
      const clock = new RealClock({ source, ...(slice !== undefined ? { spinSliceUs: slice } : {}) });
      const spy = vi.spyOn(globalThis, 'setImmediate');
      const due = clock.now() + 200;
      return new Promise<{ turns: number; late: number }>((resolve) =>
        clock.wakeAt(due, () => {
          const n = spy.mock.calls.length;
          spy.mockRestore();
          resolve({ turns: n, late: clock.now() - due });
        }),
      );
    };
    const sliced = await turns(undefined);
    const each = await turns(0);
    // 200 µs in slices of 25: about 8 turns; one turn per couple of reads without slices.
    expect(sliced.turns).toBeGreaterThanOrEqual(7);
    expect(sliced.turns).toBeLessThanOrEqual(10);
    expect(each.turns).toBeGreaterThan(60);
    for (const r of [sliced, each]) {
      expect(r.late).toBeGreaterThanOrEqual(0);
      expect(r.late).toBeLessThan(5);
    }
  });

  it("the kernel's clock source reads CLOCK_MONOTONIC without allocating, and the engine's clock runs on it", async (ctx) => {
    const source = allocationFreeClock();
    if (source === undefined) ctx.skip('the native addon is not built (npm run build:native -w @dune/agent)');
    const read = source as () => number;
    // The same clock as performance.now() (both CLOCK_MONOTONIC), in µs.
    const a = read() - performance.now() * 1000;
    const b = read() - performance.now() * 1000;
    expect(Math.abs(a - b)).toBeLessThan(1000);
    let last = read();
    for (let i = 0; i < 1000; i++) {
      const x = read();
      expect(x).toBeGreaterThanOrEqual(last);
      last = x;
    }
    // Reading it allocates nothing: five million reads make at most the one collection the
    // loop itself causes before it is optimised (performance.now() made 10 here: Node 20's
    // allocates an array per call).
    const collections = async (f: () => number): Promise<number> => {
      const starts: number[] = [];
      const obs = new PerformanceObserver((l) => starts.push(...l.getEntries().map((e) => e.startTime)));
      obs.observe({ entryTypes: ['gc'] });
      let sum = 0;
      const from = performance.now();
      for (let i = 0; i < 5_000_000; i++) sum += f();
      const to = performance.now();
      // Entries arrive asynchronously; only those of the loop count (not the runner's, after).
      await new Promise((r) => setTimeout(r, 50));
      obs.disconnect();
      expect(sum).toBeGreaterThan(0);
      return starts.filter((t) => t >= from && t <= to).length;
    };
    expect(await collections(read)).toBeLessThanOrEqual(1);
  });

  it('on the descriptor waker: wake-ups at or after their time, re-arming replaces, disarm cancels, and no setImmediate', async (ctx) => {
    if (descriptorWaker() === undefined) ctx.skip('the native addon is not built (npm run build:native -w @dune/agent)');
    const clock = kernelClock();
    const spy = vi.spyOn(globalThis, 'setImmediate');
    const fired: { at: number; due: number; tag: string }[] = [];
    const wait = (due: number, tag: string) =>
      new Promise<void>((resolve) => clock.wakeAt(due, () => (fired.push({ at: clock.now(), due, tag }), resolve())));
    try {
      for (const ms of [0, 0.3, 2, 10]) await wait(clock.now() + ms * 1000, `+${ms}ms`);
      const replaced = clock.now() + 50_000;
      clock.wakeAt(replaced, () => fired.push({ at: clock.now(), due: replaced, tag: 'replaced' }));
      await wait(clock.now() + 3000, 'replacement');
      clock.wakeAt(clock.now() + 2000, () => fired.push({ at: clock.now(), due: 0, tag: 'disarmed' }));
      clock.disarm();
      await new Promise((r) => setTimeout(r, 80));
      expect(fired.map((f) => f.tag)).toEqual(['+0ms', '+0.3ms', '+2ms', '+10ms', 'replacement']);
      for (const f of fired) expect(f.at).toBeGreaterThanOrEqual(f.due);
      expect(clock.lateness.count).toBe(5);
      // The spin turned on the timer's descriptor, not on setImmediate (the test's own
      // awaits make none: promises resolve in microtasks).
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
      clock.close();
    }
  });

  it('a clock whose waker is cleared does not keep the process alive; an armed one does until it fires', (ctx) => {
    if (!existsSync(DIST_NATIVE)) ctx.skip('packages/impair is not built (npm run build)');
    if (descriptorWaker() === undefined) ctx.skip('the native addon is not built (npm run build:native -w @dune/agent)');
    const run = (body: string) =>
      execFileSync(process.execPath, ['--input-type=module', '-e', `import { kernelClock } from ${JSON.stringify(DIST_NATIVE)}; const c = kernelClock(); ${body}`], { encoding: 'utf8', timeout: 10_000 });
    expect(run('')).toBe('');
    expect(run("c.wakeAt(c.now() + 200_000, () => console.log('fired'));")).toBe('fired\n');
    expect(run("c.wakeAt(c.now() + 200_000, () => console.log('fired')); c.disarm();")).toBe('');
    expect(run("c.wakeAt(c.now() + 100, () => { console.log('once'); c.wakeAt(c.now() + 100, () => console.log('twice')); });")).toBe('once\ntwice\n');
  });

  it('a worker thread that ends, or is terminated, while its clock waits does not bring the process down', (ctx) => {
    if (!existsSync(DIST_NATIVE)) ctx.skip('packages/impair is not built (npm run build)');
    if (descriptorWaker() === undefined) ctx.skip('the native addon is not built (npm run build:native -w @dune/agent)');
    // Node aborts a thread whose loop still has handles at its end ("uv_loop_close() while
    // having open handles"): the watch of an armed clock has to go with the thread.
    const worker = `import { kernelClock } from ${JSON.stringify(DIST_NATIVE)}; import { parentPort } from 'node:worker_threads';
      const c = kernelClock(); c.wakeAt(c.now() + 60_000_000, () => {}); parentPort.postMessage('armed');`;
    const main = `import { Worker } from 'node:worker_threads';
      const run = (how) => new Promise((resolve, reject) => {
        const w = new Worker(${JSON.stringify(worker)} + (how === 'exit' ? "; process.exit(0)" : ''), { eval: true, type: 'module' });
        let armed = false;
        w.on('message', () => { armed = true; if (how === 'terminate') void w.terminate(); });
        w.on('error', reject);
        w.on('exit', () => (armed ? resolve() : reject(new Error('the worker never armed its clock'))));
      });
      await run('exit'); await run('terminate'); console.log('alive');`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', main], { encoding: 'utf8', timeout: 20_000 });
    expect(out).toBe('alive\n');
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
