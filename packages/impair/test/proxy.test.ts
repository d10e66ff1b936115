/**
 * Fidelity through the UDP proxy, with real sockets and real timers, on loopback.
 */
import { existsSync } from 'node:fs';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Impairment } from '@dune/topology';
import { Engine, RealClock, UdpProxy } from '../src/index.js';
import { binomial99, client, echoServer, pace, quantile, sleep } from './helpers.js';

// As ImpairRuntime does for the commands: scheduled ahead of ordinary work when root may.
if (process.getuid?.() === 0) {
  try {
    setPriority(0, -10);
  } catch {
    // not allowed here
  }
}

let cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

const ADDON = fileURLToPath(new URL('../../agent/native/build/Release/dune_native.node', import.meta.url));
const HAVE_ADDON = existsSync(ADDON) || (process.env.DUNE_NATIVE_ADDON ?? '') !== '';
/** Every test runs with the batched native sockets (when the addon is built) and with dgram. */
let native = true;

async function setup(up: Impairment, down: Impairment = {}, opts: { idleMs?: number; echo?: boolean } = {}) {
  const clock = new RealClock();
  const engine = new Engine({ clock, seed: 1234 });
  const upPipe = engine.addPipe('up', up);
  const downPipe = engine.addPipe('down', down);
  const server = await echoServer({ echo: opts.echo });
  const proxy = new UdpProxy({ engine, up: upPipe, down: downPipe, port: server.port, proxyPort: 0, idleMs: opts.idleMs, native });
  await proxy.start();
  expect(proxy.batched).toBe(native);
  const proxyPort = proxy.ports.get('127.0.0.1')!;
  cleanups.push(() => server.close(), () => proxy.close(), () => void engine.close());
  return { engine, up: upPipe, down: downPipe, server, proxy, proxyPort, clock };
}

for (const { mode, batched } of [
  { mode: 'batched native sockets', batched: true },
  { mode: 'Node dgram sockets', batched: false },
]) {
  const why = batched && !HAVE_ADDON ? ` (skipped: needs the agent's native addon, ${ADDON}; run \`npm run build:native -w @dune/agent\`)` : '';
  describe.skipIf(why !== '')(`UDP proxy, ${mode}${why}`, () => {
  beforeEach(() => {
    native = batched;
  });

  it('forwards both ways, over IPv4 and IPv6, one session per client', async () => {
    const s = await setup({});
    expect(s.proxy.ports.get('::1')).toBe(s.proxyPort);
    const c4 = await client(s.proxyPort, '127.0.0.1');
    const c6 = await client(s.proxyPort, '::1');
    cleanups.push(() => c4.close(), () => c6.close());
    for (let i = 0; i < 10; i++) {
      c4.send();
      c6.send();
    }
    await sleep(100);
    expect(c4.echoes).toHaveLength(10);
    expect(c6.echoes).toHaveLength(10);
    expect(s.proxy.sessionCount).toBe(2);
    expect(s.up.counters.delivered.packets).toBe(20);
    expect(s.down.counters.delivered.packets).toBe(20);
    // payload 64 + 28 (IPv4) or + 48 (IPv6)
    expect(s.up.counters.delivered.bytes).toBe(10 * 92 + 10 * 112);
    // Each client is named as the kernel reports it.
    const notes = s.engine.events.since(0).items.map((e) => e.item.event).filter((e) => e.type === 'note').map((e) => e.message);
    expect(notes).toContain(`proxy: new client 127.0.0.1 port ${c4.port}`);
    expect(notes).toContain(`proxy: new client ::1 port ${c6.port}`);
  });

  it('reaps idle sessions', async () => {
    const s = await setup({}, {}, { idleMs: 100 });
    const c = await client(s.proxyPort);
    cleanups.push(() => c.close());
    c.send();
    await sleep(50);
    expect(s.proxy.sessionCount).toBe(1);
    await sleep(300);
    expect(s.proxy.sessionCount).toBe(0);
    expect(s.proxy.sessionsReaped).toBe(1);
    c.send();
    await sleep(50);
    expect(c.echoes).toHaveLength(2);
  });

  it('a 50 ms delay measures 50 ms at p50, within ±1 ms', async () => {
    const s = await setup({ delayUs: 50_000 });
    // On a machine starved of CPU by other work every timer is late; such a run says nothing
    // about the engine, so it is measured again (at most 3 times in all).
    const attempts: number[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const c = await client(s.proxyPort);
      cleanups.push(() => c.close());
      await pace(() => c.send(), 300, 1, 3);
      await sleep(150);
      expect(c.rtts).toHaveLength(300);
      expect(Math.min(...c.rtts)).toBeGreaterThanOrEqual(50);
      const p50 = quantile(c.rtts, 0.5);
      attempts.push(Math.round(p50 * 1000) / 1000);
      if (Math.abs(p50 - 50) <= 1) break;
    }
    expect(Math.abs(attempts[attempts.length - 1]! - 50), `p50 per attempt (ms): ${attempts.join(', ')}`).toBeLessThanOrEqual(1);
    expect(s.clock.lateness.count).toBeGreaterThan(0);
  });

  it('loss lands in the binomial 99 % interval', async () => {
    const s = await setup({ lossPct: 20 }, {}, { echo: false });
    const c = await client(s.proxyPort);
    cleanups.push(() => c.close());
    const n = 4000;
    await pace(() => c.send(), n, 20, 2);
    await sleep(100);
    const lost = n - s.server.arrivals.length;
    const [lo, hi] = binomial99(n, 0.2);
    expect(s.up.counters.received.packets).toBe(n);
    expect(lost).toBeGreaterThan(lo);
    expect(lost).toBeLessThan(hi);
    expect(s.up.counters.dropped.loss.packets).toBe(lost);
  });

  it('a rate is held to within ±5 %', async () => {
    const rate = 4_000_000;
    const s = await setup({ rateBitsPerSec: rate }, {}, { echo: false });
    const c = await client(s.proxyPort);
    cleanups.push(() => c.close());
    // 1000-byte payloads (1028-byte packets) offered at ~8 Mbit/s for 1 s
    const n = 1000;
    await pace(() => c.send(1000), n, 10, 10);
    while (s.server.arrivals.length < n) await sleep(50);
    const a = s.server.arrivals;
    const seconds = (a[a.length - 1]!.at - a[0]!.at) / 1000;
    const measured = ((n - 1) * 1028 * 8) / seconds;
    expect(measured / rate).toBeGreaterThan(0.95);
    expect(measured / rate).toBeLessThan(1.05);
    expect(s.up.counters.dropped.queue.packets).toBe(0);
  });

  it('a queue limit drops as queue drops, not loss', async () => {
    const s = await setup({ rateBitsPerSec: 1_000_000, queuePackets: 10 }, {}, { echo: false });
    const c = await client(s.proxyPort);
    cleanups.push(() => c.close());
    for (let i = 0; i < 100; i++) c.send(1000);
    await sleep(200);
    expect(s.up.counters.dropped.queue.packets).toBeGreaterThan(80);
    expect(s.up.counters.dropped.loss.packets).toBe(0);
  });

  it('duplicates are counted, by the engine and by the receiver alike', async () => {
    const s = await setup({ duplicatePct: 10 }, {}, { echo: false });
    const c = await client(s.proxyPort);
    cleanups.push(() => c.close());
    const n = 3000;
    await pace(() => c.send(), n, 20, 2);
    await sleep(100);
    const seen = new Map<number, number>();
    for (const a of s.server.arrivals) seen.set(a.seq, (seen.get(a.seq) ?? 0) + 1);
    const dups = [...seen.values()].filter((k) => k === 2).length;
    expect(seen.size).toBe(n);
    expect(dups).toBe(s.up.counters.duplicated);
    const [lo, hi] = binomial99(n, 0.1);
    expect(dups).toBeGreaterThan(lo);
    expect(dups).toBeLessThan(hi);
  });

  it('reordered packets overtake delayed ones, and are counted', async () => {
    const s = await setup({ delayUs: 50_000, reorderPct: 25 }, {}, { echo: false });
    const c = await client(s.proxyPort);
    cleanups.push(() => c.close());
    const n = 1000;
    await pace(() => c.send(), n, 5, 5);
    await sleep(100);
    const a = s.server.arrivals;
    expect(a).toHaveLength(n);
    const early = a.filter((x) => x.at - c.sentAt.get(x.seq)! < 25).length;
    expect(early).toBe(s.up.counters.reordered);
    const [lo, hi] = binomial99(n, 0.25);
    expect(early).toBeGreaterThan(lo);
    expect(early).toBeLessThan(hi);
    let inversions = 0;
    for (let i = 1; i < a.length; i++) if (a[i]!.seq < a[i - 1]!.seq) inversions++;
    expect(inversions).toBeGreaterThan(10);
  });

  it('corrupts one bit of the payload, and counts it', async () => {
    const s = await setup({ corruptPct: 50 }, {}, { echo: false });
    const c = await client(s.proxyPort);
    cleanups.push(() => c.close());
    await pace(() => c.send(256), 400, 50, 2);
    await sleep(100);
    // A flip lands in the 252 bytes after the sequence number 252 times in 256.
    let corrupted = 0;
    for (const a of s.server.arrivals) {
      let bits = 0;
      for (let i = 4; i < a.bytes.length; i++) bits += (a.bytes[i]! ^ 0xa5).toString(2).replace(/0/g, '').length;
      expect(bits).toBeLessThanOrEqual(1);
      corrupted += bits;
    }
    expect(s.up.counters.corrupted).toBeGreaterThan(150);
    expect(corrupted).toBeLessThanOrEqual(s.up.counters.corrupted);
    expect(corrupted).toBeGreaterThan(s.up.counters.corrupted * 0.93);
  });
});
}
