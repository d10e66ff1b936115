/**
 * The model, deterministically: a fake clock, a fixed seed, packets pushed at exact times.
 */
import { describe, expect, it } from 'vitest';
import type { Impairment } from '@dune/topology';
import { Engine, FakeClock, type Packet } from '../src/index.js';

interface Out {
  id: number;
  seq: number;
  at: number;
  copy: boolean;
  corrupted: boolean;
  reordered: boolean;
  data: Buffer | null;
}

function harness(params: Impairment, seed = 42) {
  const clock = new FakeClock();
  const engine = new Engine({ clock, seed });
  const pipe = engine.addPipe('up', params);
  const out: Out[] = [];
  const drops: { seq: number; cause: string }[] = [];
  pipe.sink = {
    deliver: (p: Packet) =>
      out.push({ id: p.id, seq: p.ref as number, at: clock.now(), copy: p.copy, corrupted: p.corrupted, reordered: p.reordered, data: p.data }),
    drop: (p: Packet, cause) => drops.push({ seq: p.ref as number, cause }),
  };
  let seq = 0;
  const send = (size = 100, data: Buffer | null = null) => pipe.input({ size, data, ref: seq++ });
  /** n packets, one every `everyUs`. */
  const stream = (n: number, everyUs: number, size = 100) => {
    for (let i = 0; i < n; i++) {
      send(size);
      clock.advance(everyUs);
    }
  };
  const settle = () => clock.advance(3600e6);
  return { clock, engine, pipe, out, drops, send, stream, settle };
}

/** The 99 % interval of a binomial(n, p) count, by the normal approximation. */
function binomial99(n: number, p: number): [number, number] {
  const sd = Math.sqrt(n * p * (1 - p));
  return [n * p - 2.576 * sd, n * p + 2.576 * sd];
}

function stats(xs: number[]) {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
  const sorted = [...xs].sort((a, b) => a - b);
  return { mean, sd, min: sorted[0]!, max: sorted[sorted.length - 1]!, p50: sorted[Math.floor(xs.length / 2)]! };
}

function lag1(xs: number[]): number {
  const { mean, sd } = stats(xs);
  let c = 0;
  for (let i = 1; i < xs.length; i++) c += (xs[i]! - mean) * (xs[i - 1]! - mean);
  return c / (xs.length - 1) / (sd * sd);
}

describe('no impairment', () => {
  it('delivers at once, in order, without arming the clock', () => {
    const h = harness({});
    h.stream(5, 1000);
    expect(h.out.map((o) => [o.seq, o.at])).toEqual([[0, 0], [1, 1000], [2, 2000], [3, 3000], [4, 4000]]);
    expect(h.pipe.activeStages).toEqual([]);
    expect(h.clock.nextWake).toBeUndefined();
  });
});

describe('delay and jitter', () => {
  it('a constant delay holds every packet exactly that long', () => {
    const h = harness({ delayUs: 50_000 });
    h.stream(3, 10);
    h.clock.advanceTo(49_999);
    expect(h.out).toEqual([]);
    h.settle();
    expect(h.out.map((o) => o.at)).toEqual([50_000, 50_010, 50_020]);
    expect(h.pipe.counters.latency.summary().p50Us).toBe(50_000);
  });

  it('uniform jitter stays within ±jitter around the delay', () => {
    const h = harness({ delayUs: 10_000, jitterUs: 2_000, jitterDistribution: 'uniform' });
    for (let i = 0; i < 20_000; i++) h.send();
    h.settle();
    const s = stats(h.out.map((o) => o.at));
    expect(s.min).toBeGreaterThanOrEqual(8_000);
    expect(s.max).toBeLessThanOrEqual(12_000);
    expect(s.mean).toBeCloseTo(10_000, -2);
    expect(s.sd).toBeCloseTo(2_000 / Math.sqrt(3), -2);
  });

  it.each(['normal', 'pareto', 'paretonormal'] as const)('%s jitter has the delay as mean and the jitter as standard deviation', (dist) => {
    const h = harness({ delayUs: 100_000, jitterUs: 5_000, jitterDistribution: dist });
    for (let i = 0; i < 50_000; i++) h.send();
    h.settle();
    const s = stats(h.out.map((o) => o.at));
    expect(Math.abs(s.mean - 100_000)).toBeLessThan(150);
    // Pareto(α=3) has an infinite fourth moment: its sample sd converges slowly and mostly
    // from below, and the cap at 8 sd trims a little more.
    expect(s.sd / 5_000).toBeGreaterThan(dist === 'normal' ? 0.98 : 0.75);
    expect(s.sd / 5_000).toBeLessThan(1.02);
    if (dist !== 'normal') expect(s.p50).toBeLessThan(s.mean); // right-skewed
  });

  it('never schedules a packet before its arrival, however wide the jitter', () => {
    const h = harness({ delayUs: 1_000, jitterUs: 10_000, jitterDistribution: 'normal' });
    for (let i = 0; i < 1000; i++) h.send();
    h.settle();
    expect(Math.min(...h.out.map((o) => o.at))).toBe(0);
    expect(h.out).toHaveLength(1000);
  });

  it('correlation makes successive delays alike and keeps their distribution', () => {
    const plain = harness({ delayUs: 50_000, jitterUs: 5_000, jitterDistribution: 'normal' });
    const corr = harness({ delayUs: 50_000, jitterUs: 5_000, jitterDistribution: 'normal', jitterCorrelationPct: 90 });
    for (const h of [plain, corr]) {
      h.stream(20_000, 10_000); // 10 ms apart, so jitter does not reorder much
      h.settle();
    }
    const delays = (h: typeof plain) => [...h.out].sort((a, b) => a.seq - b.seq).map((o) => o.at - o.seq * 10_000);
    expect(Math.abs(lag1(delays(plain)))).toBeLessThan(0.05);
    expect(lag1(delays(corr))).toBeGreaterThan(0.85);
    const s = stats(delays(corr));
    expect(Math.abs(s.mean - 50_000)).toBeLessThan(500);
    expect(s.sd).toBeGreaterThan(4_500);
    expect(s.sd).toBeLessThan(5_500);
  });

  it('jitter reorders packets, as netem does: delivery follows each packet\'s own time', () => {
    const h = harness({ delayUs: 10_000, jitterUs: 5_000, jitterDistribution: 'uniform' });
    h.stream(1000, 100);
    h.settle();
    const ats = h.out.map((o) => o.at);
    expect(ats).toEqual([...ats].sort((a, b) => a - b));
    const inversions = h.out.filter((o, i) => i > 0 && o.seq < h.out[i - 1]!.seq).length;
    expect(inversions).toBeGreaterThan(100);
  });
});

describe("the engine's own time, absorbed into the delay", () => {
  it('a packet stamped on arrival (the kernel\'s time) leaves at that stamp plus its delay, never before now', () => {
    const h = harness({ delayUs: 200 });
    h.clock.advance(1000);
    // Reached the engine 40 µs after the kernel queued it: due at 960 + 200.
    h.pipe.input({ size: 100, ref: 0, arrivedUs: 960 });
    // A stamp from the future (a stepped clock) counts as now.
    h.pipe.input({ size: 100, ref: 1, arrivedUs: 5000 });
    // Older than its delay: due already, delivered at once.
    h.pipe.input({ size: 100, ref: 2, arrivedUs: 500 });
    h.settle();
    expect(h.out.map((o) => [o.seq, o.at])).toEqual([[2, 1000], [0, 1160], [1, 1200]]);
    // Latency counts from the stamp.
    expect(h.pipe.counters.latency.max).toBeGreaterThanOrEqual(500);
  });

  it('releases ahead by the moving average of what releases cost (capped), and counts latency to the packet\'s return', () => {
    const h = harness({ delayUs: 1000 });
    for (let i = 0; i < 400; i++) h.engine.noteReleaseCost(20);
    expect(h.engine.releaseAheadUs).toBeCloseTo(20, 3);
    h.send();
    h.settle();
    expect(h.out[0]!.at).toBeCloseTo(980, 3);
    expect(h.pipe.counters.latency.quantile(0.5)).toBeGreaterThanOrEqual(990);
    // A stall is not a cost to anticipate: one report counts at most 100 µs.
    for (let i = 0; i < 400; i++) h.engine.noteReleaseCost(50_000);
    expect(h.engine.releaseAheadUs).toBeLessThanOrEqual(100);
    expect(h.engine.releaseCost.max).toBeGreaterThanOrEqual(50_000);
  });

  it('releases ahead by what passes before the packet is sent, not by the system call that sends it', () => {
    const h = harness({ delayUs: 1000 });
    for (let i = 0; i < 400; i++) h.engine.noteReleaseCost(30, 6);
    expect(h.engine.releaseAheadUs).toBeCloseTo(6, 3);
    expect(h.engine.releaseCost.quantile(0.5)).toBeGreaterThanOrEqual(29);
    h.send();
    h.settle();
    expect(h.out[0]!.at).toBeCloseTo(994, 3);
  });
});

describe('loss', () => {
  it('Bernoulli loss lands in the binomial 99 % interval and counts as loss', () => {
    const h = harness({ lossPct: 10 });
    for (let i = 0; i < 100_000; i++) h.send();
    const [lo, hi] = binomial99(100_000, 0.1);
    expect(h.drops.length).toBeGreaterThan(lo);
    expect(h.drops.length).toBeLessThan(hi);
    expect(h.drops.every((d) => d.cause === 'loss')).toBe(true);
    expect(h.pipe.counters.dropped.loss.packets).toBe(h.drops.length);
    expect(h.pipe.counters.dropped.queue.packets).toBe(0);
  });

  it('correlated loss keeps the rate and makes bursts longer', () => {
    const burst = (h: ReturnType<typeof harness>) => {
      const lost = new Set(h.drops.map((d) => d.seq));
      let runs = 0;
      for (let i = 0; i < 100_000; i++) if (lost.has(i) && !lost.has(i - 1)) runs++;
      return lost.size / runs;
    };
    const plain = harness({ lossPct: 5 });
    const corr = harness({ lossPct: 5, lossCorrelationPct: 80 });
    for (const h of [plain, corr]) for (let i = 0; i < 100_000; i++) h.send();
    expect(corr.drops.length / 100_000).toBeGreaterThan(0.045);
    expect(corr.drops.length / 100_000).toBeLessThan(0.055);
    expect(burst(plain)).toBeLessThan(1.1);
    expect(burst(corr)).toBeGreaterThan(1.8);
  });

  it('Gilbert-Elliott loss matches the chain\'s stationary loss rate, in bursts', () => {
    const ge = { pPct: 1, rPct: 20, oneMinusHPct: 80, oneMinusKPct: 0.5 };
    const h = harness({ lossGilbertElliott: ge });
    const n = 400_000;
    for (let i = 0; i < n; i++) h.send();
    const bad = 0.01 / (0.01 + 0.2);
    const expected = bad * 0.8 + (1 - bad) * 0.005;
    expect(h.drops.length / n).toBeGreaterThan(expected * 0.93);
    expect(h.drops.length / n).toBeLessThan(expected * 1.07);
  });

  it('the Gilbert-Elliott model replaces the Bernoulli probability', () => {
    const h = harness({ lossPct: 100, lossGilbertElliott: { pPct: 0, rPct: 100, oneMinusHPct: 100, oneMinusKPct: 0 } });
    h.stream(100, 1);
    expect(h.drops).toHaveLength(0);
  });
});

describe('duplicate and corrupt', () => {
  it('duplicates with the configured probability; the copy has its own bytes and id', () => {
    const h = harness({ duplicatePct: 20 });
    for (let i = 0; i < 50_000; i++) h.send(100, Buffer.from([i & 0xff]));
    const copies = h.out.filter((o) => o.copy);
    const [lo, hi] = binomial99(50_000, 0.2);
    expect(copies.length).toBeGreaterThan(lo);
    expect(copies.length).toBeLessThan(hi);
    expect(h.pipe.counters.duplicated).toBe(copies.length);
    const c = copies[0]!;
    const orig = h.out.find((o) => o.seq === c.seq && !o.copy)!;
    expect(c.id).not.toBe(orig.id);
    expect(c.data).not.toBe(orig.data);
    expect(c.data).toEqual(orig.data);
  });

  it('a duplicate is delayed on its own (its own jitter draw)', () => {
    const h = harness({ duplicatePct: 100, delayUs: 10_000, jitterUs: 1_000, jitterDistribution: 'uniform' });
    h.send();
    h.settle();
    expect(h.out).toHaveLength(2);
    expect(h.out[0]!.at).not.toBe(h.out[1]!.at);
  });

  it('corruption flips exactly one bit, at or after corruptFrom', () => {
    const h = harness({ corruptPct: 50 });
    const originals: Buffer[] = [];
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(64, 0);
      originals.push(Buffer.from(b));
      h.pipe.input({ size: 64, data: b, corruptFrom: 20, ref: i });
    }
    const corrupted = h.out.filter((o) => o.corrupted);
    expect(corrupted.length).toBeGreaterThan(900);
    expect(corrupted.length).toBeLessThan(1100);
    for (const o of h.out) {
      let bits = 0;
      o.data!.forEach((byte, i) => {
        const diff = byte ^ originals[o.seq]![i]!;
        if (diff) expect(i).toBeGreaterThanOrEqual(20);
        bits += diff.toString(2).replace(/0/g, '').length;
      });
      expect(bits).toBe(o.corrupted ? 1 : 0);
    }
    expect(h.pipe.counters.corrupted).toBe(corrupted.length);
  });
});

describe('rate and queue', () => {
  it('sends at the rate: 1250-byte packets at 1 Mbit/s leave 10 ms apart', () => {
    const h = harness({ rateBitsPerSec: 1_000_000 });
    for (let i = 0; i < 5; i++) h.send(1250);
    expect(h.pipe.queueDepth()).toEqual({ packets: 5, bytes: 6250 });
    h.settle();
    expect(h.out.map((o) => o.at)).toEqual([10_000, 20_000, 30_000, 40_000, 50_000]);
    expect(h.pipe.queueDepth()).toEqual({ packets: 0, bytes: 0 });
  });

  it('an idle link sends the next packet after its own transmission time only', () => {
    const h = harness({ rateBitsPerSec: 1_000_000 });
    h.send(1250);
    h.clock.advance(100_000);
    h.send(125);
    h.settle();
    expect(h.out.map((o) => o.at)).toEqual([10_000, 101_000]);
  });

  it('a full queue drops as "queue", not as loss (packets)', () => {
    const h = harness({ rateBitsPerSec: 1_000_000, queuePackets: 3 });
    for (let i = 0; i < 10; i++) h.send(1250);
    expect(h.drops.map((d) => [d.seq, d.cause])).toEqual([3, 4, 5, 6, 7, 8, 9].map((s) => [s, 'queue']));
    h.clock.advance(10_000); // the first has left: room for one
    h.send(1250);
    h.settle();
    expect(h.out.map((o) => o.seq)).toEqual([0, 1, 2, 10]);
    expect(h.pipe.counters.dropped.queue.packets).toBe(7);
    expect(h.pipe.counters.dropped.loss.packets).toBe(0);
  });

  it('a byte limit counts bytes (packet_queue: size + queued > buffer drops)', () => {
    const h = harness({ rateBitsPerSec: 8_000, queueBytes: 2500 });
    h.send(1000);
    h.send(1000);
    h.send(1000); // 3000 > 2500
    h.send(500); // 2500: fits
    expect(h.drops.map((d) => d.seq)).toEqual([2]);
  });

  it('the rate is held to over a long run', () => {
    const h = harness({ rateBitsPerSec: 10_000_000 });
    h.stream(100_000, 50, 1000); // offered 160 Mbit/s
    h.settle();
    const last = h.out[h.out.length - 1]!.at;
    expect((100_000 * 1000 * 8) / (last / 1e6)).toBeCloseTo(10_000_000, -3);
  });

  it('rate then delay: serialisation, then propagation', () => {
    const h = harness({ rateBitsPerSec: 1_000_000, delayUs: 50_000 });
    h.send(1250);
    h.send(1250);
    h.settle();
    expect(h.out.map((o) => o.at)).toEqual([60_000, 70_000]);
  });

  it('without a rate, the limit counts every packet the direction holds (netem\'s limit)', () => {
    const h = harness({ delayUs: 10_000, queuePackets: 100 });
    h.stream(300, 10);
    expect(h.drops.length).toBeGreaterThan(150);
    expect(h.drops.every((d) => d.cause === 'queue')).toBe(true);
    h.settle();
    expect(h.out.length + h.drops.length).toBe(300);
  });
});

describe('reorder', () => {
  it('sends chosen packets without the delay, with the configured probability', () => {
    const h = harness({ delayUs: 10_000, reorderPct: 25 });
    h.stream(40_000, 1);
    h.settle();
    const early = h.out.filter((o) => o.reordered);
    const [lo, hi] = binomial99(40_000, 0.25);
    expect(early.length).toBeGreaterThan(lo);
    expect(early.length).toBeLessThan(hi);
    for (const o of early) expect(o.at).toBe(o.seq);
    expect(h.pipe.counters.reordered).toBe(early.length);
  });

  it('with a gap N, only every N-th packet can be sent early (netem\'s gap)', () => {
    const h = harness({ delayUs: 10_000, reorderPct: 100, reorderGap: 5 });
    h.stream(20, 1);
    h.settle();
    expect(h.out.filter((o) => o.reordered).map((o) => o.seq)).toEqual([4, 9, 14, 19]);
    expect(h.out.slice(0, 4).map((o) => o.seq)).toEqual([4, 9, 14, 19]);
  });
});

describe('combinations and the run as a whole', () => {
  const everything: Impairment = {
    delayUs: 20_000, jitterUs: 3_000, jitterDistribution: 'paretonormal', jitterCorrelationPct: 25, lossPct: 2,
    lossCorrelationPct: 10, duplicatePct: 3, corruptPct: 1, reorderPct: 5, reorderGap: 2, rateBitsPerSec: 20_000_000,
    queuePackets: 50,
  };

  it('every stage at once: each effect counted, every packet accounted for', () => {
    const h = harness(everything);
    h.stream(50_000, 300, 700);
    h.settle();
    const c = h.pipe.counters;
    expect(h.pipe.activeStages).toEqual(['loss', 'duplicate', 'corrupt', 'queue', 'reorder', 'delay']);
    const dropped = c.dropped.loss.packets + c.dropped.queue.packets + c.dropped.overflow.packets;
    expect(c.received.packets).toBe(50_000);
    expect(c.delivered.packets + dropped).toBe(50_000 + c.duplicated);
    expect(c.dropped.loss.packets / 50_000).toBeGreaterThan(0.015);
    expect(c.dropped.loss.packets / 50_000).toBeLessThan(0.025);
    expect(c.duplicated).toBeGreaterThan(0);
    expect(c.corrupted).toBe(0); // the test packets carry no bytes
    expect(c.reordered).toBeGreaterThan(0);
    expect(h.engine.held).toEqual({ packets: 0, bytes: 0 });
  });

  it('the same seed replays the same run; another seed does not', () => {
    const run = (seed: number) => {
      const h = harness(everything, seed);
      h.stream(5_000, 300, 700);
      h.settle();
      return h.out.map((o) => `${o.seq}@${o.at.toFixed(3)}`).join(' ');
    };
    expect(run(7)).toBe(run(7));
    expect(run(7)).not.toBe(run(8));
  });

  it('stages draw from their own streams: adding one does not change another\'s draws', () => {
    const lost = (p: Impairment) => {
      const h = harness(p);
      h.stream(10_000, 10);
      return h.drops.filter((d) => d.cause === 'loss').map((d) => d.seq);
    };
    expect(lost({ lossPct: 5, duplicatePct: 50, delayUs: 1000, jitterUs: 500 })).toEqual(lost({ lossPct: 5 }));
  });

  it('a parameter change applies to new packets; scheduled ones keep their time', () => {
    const h = harness({ delayUs: 100_000 });
    h.send();
    h.clock.advance(1000);
    h.engine.setParams({ up: { delayUs: 10_000 } });
    h.send();
    h.settle();
    expect(h.out.map((o) => [o.seq, o.at])).toEqual([[1, 11_000], [0, 100_000]]);
  });

  it('the rate queue keeps its backlog across a parameter change', () => {
    const h = harness({ rateBitsPerSec: 1_000_000 });
    for (let i = 0; i < 3; i++) h.send(1250);
    h.engine.setParams({ up: { rateBitsPerSec: 1_000_000, delayUs: 1 } });
    h.send(1250);
    h.settle();
    expect(h.out.map((o) => o.at)).toEqual([10_000, 20_000, 30_000, 40_001]);
  });

  it('the engine-wide cap drops what it cannot hold as overflow', () => {
    const clock = new FakeClock();
    const engine = new Engine({ clock, seed: 1, maxHeldPackets: 10 });
    const pipe = engine.addPipe('up', { delayUs: 1000 });
    for (let i = 0; i < 15; i++) pipe.input({ size: 10 });
    expect(pipe.counters.dropped.overflow.packets).toBe(5);
  });

  it('close() hands back what is held, in time order, and disarms the clock', () => {
    const h = harness({ delayUs: 1000, jitterUs: 500, jitterDistribution: 'uniform' });
    for (let i = 0; i < 10; i++) h.send();
    const left = h.engine.close();
    expect(left).toHaveLength(10);
    expect(h.engine.held).toEqual({ packets: 0, bytes: 0 });
    const ts = left.map((l) => l.pkt.t);
    expect(ts).toEqual([...ts].sort((a, b) => a - b));
    h.settle();
    expect(h.out).toHaveLength(0);
  });

  it('two pipes share the scheduler and keep their own parameters and counters', () => {
    const clock = new FakeClock();
    const engine = new Engine({ clock, seed: 3 });
    const up = engine.addPipe('up', { delayUs: 30_000 });
    const down = engine.addPipe('down', { delayUs: 10_000 });
    const seen: string[] = [];
    up.sink = { deliver: () => seen.push(`up@${clock.now()}`), drop() {} };
    down.sink = { deliver: () => seen.push(`down@${clock.now()}`), drop() {} };
    up.input({ size: 1 });
    down.input({ size: 1 });
    clock.advance(1e6);
    expect(seen).toEqual(['down@10000', 'up@30000']);
    expect(up.counters.delivered.packets).toBe(1);
    expect(down.counters.delivered.packets).toBe(1);
  });

  it('a second\'s sample: throughput, drops by cause, latency, queue', () => {
    const h = harness({ rateBitsPerSec: 8_000_000, queuePackets: 20, delayUs: 5_000 });
    h.stream(1500, 500, 1000); // 16 Mbit/s offered for 0.75 s
    h.clock.advanceTo(1e6);
    const s = h.engine.sampleSecond().pipes.up!;
    expect(s.receivedPackets).toBe(1500);
    expect(s.dropped.queue).toBeGreaterThan(600);
    expect(s.dropped.loss).toBe(0);
    expect(s.deliveredPackets + s.dropped.queue).toBe(1500);
    expect(s.throughputBitsPerSec).toBeGreaterThan(5_900_000);
    expect(s.throughputBitsPerSec).toBeLessThan(8_100_000);
    expect(s.queueMaxPackets).toBe(20);
    expect(s.latencyP50Us).toBeGreaterThan(5_000 + 15_000);
    const next = h.engine.sampleSecond().pipes.up!;
    expect(next.receivedPackets).toBe(0);
  });

  it('events are bounded, and drops beyond 20 a second are counted, not logged', () => {
    const clock = new FakeClock();
    const engine = new Engine({ clock, seed: 1, eventCapacity: 50 });
    const pipe = engine.addPipe('up', { lossPct: 100 });
    for (let i = 0; i < 1000; i++) pipe.input({ size: 10 });
    engine.sampleSecond();
    const { items } = engine.events.since(0);
    expect(items.filter((e) => e.item.event.type === 'drop')).toHaveLength(20);
    expect(items.find((e) => e.item.event.type === 'drops-suppressed')?.item.event).toEqual({ type: 'drops-suppressed', pipe: 'up', count: 980 });
    for (let i = 0; i < 200; i++) engine.log({ type: 'note', message: `n${i}` });
    const after = engine.events.since(0);
    expect(after.items).toHaveLength(50);
    expect(after.missed).toBeGreaterThan(0);
  });
});
