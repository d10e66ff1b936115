import { describe, expect, it } from 'vitest';
import { formatParams, mergeParams, packetQueueForm, ParamsError, paramNotes } from '../src/index.js';

const empty = () => ({ up: {}, down: {} });

function problems(body: unknown, current: Record<string, object> = empty()) {
  try {
    mergeParams(current, body);
  } catch (e) {
    if (e instanceof ParamsError) return e.problems;
    throw e;
  }
  throw new Error('expected a ParamsError');
}

describe('mergeParams', () => {
  it("takes packet_queue's body as is, in its units, for both directions", () => {
    const next = mergeParams(empty(), { bandwidth: 125000, buffer: 64000, delay: 0.3, loss: 0.01 });
    const expected = { rateBitsPerSec: 1_000_000, queueBytes: 64000, delayUs: 300_000, lossPct: 1 };
    expect(next).toEqual({ up: expected, down: expected });
    expect(packetQueueForm(next.up!)).toEqual({ bandwidth: 125000, buffer: 64000, delay: 0.3, loss: 0.01 });
  });

  it("takes packet_queue's -1 (unlimited) defaults", () => {
    const next = mergeParams({ up: { rateBitsPerSec: 8000 }, down: {} }, { bandwidth: -1, buffer: -1, delay: 0, loss: 0 });
    expect(next).toEqual({ up: { delayUs: 0, lossPct: 0 }, down: { delayUs: 0, lossPct: 0 } });
  });

  it('per direction with unit strings; per-pipe keys win over top-level ones; merges', () => {
    const current = { up: { corruptPct: 1 }, down: {} };
    const next = mergeParams(current, {
      delay: '10ms',
      up: { delay: '20ms', loss: '1%', rate: '10mbit', queue: '100p', jitter: '2ms', distribution: 'pareto' },
      down: { rate: '1MB/s', queue: '64KiB', gemodel: { p: '1%', r: '10%' } },
    });
    expect(next).toEqual({
      up: { corruptPct: 1, delayUs: 20_000, lossPct: 1, rateBitsPerSec: 10_000_000, queuePackets: 100, jitterUs: 2000, jitterDistribution: 'pareto' },
      down: { delayUs: 10_000, rateBitsPerSec: 8_000_000, queueBytes: 65536, lossGilbertElliott: { pPct: 1, rPct: 10, oneMinusHPct: 100, oneMinusKPct: 0 } },
    });
    expect(current).toEqual({ up: { corruptPct: 1 }, down: {} });
  });

  it("the model's own keys; null and \"none\" turn a setting off; one slot for the two kinds of loss", () => {
    const next = mergeParams(
      { up: { lossPct: 5, queuePackets: 10, delayUs: 5 }, down: {} },
      { up: { gemodel: { p: 1, r: 0.5 }, queueBytes: 1500, delay: null, reorderPct: 2.5, reorderGap: 3 }, both: { duplicatePct: 1 } },
    );
    expect(next.up).toEqual({ lossGilbertElliott: { pPct: 100, rPct: 50, oneMinusHPct: 100, oneMinusKPct: 0 }, queuePackets: 10, queueBytes: 1500, reorderPct: 2.5, reorderGap: 3, duplicatePct: 1 });
    expect(mergeParams(next, { up: { rate: 'none', gemodel: 'none' } }).up).not.toHaveProperty('lossGilbertElliott');
    // the friendly `queue` is one slot: packets or bytes
    expect(mergeParams(next, { up: { queue: '20p' } }).up).toMatchObject({ queuePackets: 20 });
    expect(mergeParams(next, { up: { queue: '20p' } }).up).not.toHaveProperty('queueBytes');
  });

  it('reports every problem at once, each with what is valid; nothing applied', () => {
    expect(
      problems({
        dealy: '10ms',
        loss: 1.5,
        up: { delay: '-5ms', rate: 1000, queue: '10 parsecs', jitter: 'NaN', distribution: 'gaussian' },
        down: 'fast',
        both: { gap: 1.5, delay: 1e308, corrupt: '200%' },
      }),
    ).toMatchSnapshot();
  });

  it('refuses huge and negative numbers, and non-objects', () => {
    expect(problems({ up: { delayUs: 1e12 } })[0]!.message).toBe('delayUs 1000000000000 is above the maximum 60000000');
    expect(problems({ up: { lossPct: -1 } })[0]!.message).toBe('lossPct -1 is negative');
    expect(problems({ bandwidth: -5 })[0]!.message).toBe('the bandwidth in bytes/s -5 is negative');
    expect(problems({ rate: '1000tbit' })[0]!.message).toBe('the rate in bit/s 1000000000000000 is above the maximum 1000000000000');
    expect(problems([1, 2])[0]!.message).toBe('expected a JSON object, got an array');
    expect(problems('x'.repeat(100))[0]!.message).toMatch(/^expected a JSON object, got the string/);
    expect(problems({ up: { distribution: 'x'.repeat(100) } })[0]!.message).toBe('the string is 100 characters long (at most 64)');
  });

  it('the error names the valid keys', () => {
    try {
      mergeParams(empty(), { nope: 1 });
    } catch (e) {
      const err = e as ParamsError;
      expect(Object.keys(err.validKeys).slice(0, 6)).toEqual(['up', 'down', 'both', 'delay', 'loss', 'bandwidth']);
      expect(err.message).toBe('nope: unknown key "nope"; use one of: up, down, both, delay, loss, bandwidth, buffer, jitter, distribution, jitterCorrelation, lossCorrelation, gemodel, duplicate, corrupt, reorder, gap, rate, queue, delayUs, jitterUs, jitterDistribution, jitterCorrelationPct, lossPct, lossCorrelationPct, lossGilbertElliott, duplicatePct, corruptPct, reorderPct, reorderGap, rateBitsPerSec, queuePackets, queueBytes');
    }
  });
});

describe('formatParams and notes', () => {
  it('shows every setting in friendly units', () => {
    expect(formatParams({ delayUs: 20_000, lossPct: 1, rateBitsPerSec: 10_000_000, queuePackets: 100 })).toMatchSnapshot();
  });

  it('notes settings that have no effect', () => {
    expect(paramNotes({ up: { reorderPct: 5 }, down: { jitterCorrelationPct: 5 } })).toEqual([
      'up: reorder has no effect without a delay',
      'down: jitterCorrelation has no effect without jitter',
    ]);
  });
});
