import { describe, expect, it } from 'vitest';
import type { Impairment } from '@dune/topology';
import { describeSteps, impairmentForJson } from '../src/output.js';

describe('impairmentForJson', () => {
  it('summarises a per-packet delivery trace (count and loop), keeps every other key as it is', () => {
    const opportunitiesMs = Array.from({ length: 5000 }, (_, i) => i);
    const out = impairmentForJson({ delayUs: 10_000, lossPct: 1, deliveryTrace: { opportunitiesMs, loop: true, epoch: 7 } });
    expect(out).toEqual({ delayUs: 10_000, lossPct: 1, deliveryTrace: { opportunities: 5000, loop: true } });
    expect(JSON.stringify(out).length).toBeLessThan(100);
  });

  it('an impairment without a trace is returned unchanged', () => {
    const i: Impairment = { rateBitsPerSec: 1e6 };
    expect(impairmentForJson(i)).toBe(i);
  });
});

describe('describeSteps', () => {
  it('one line in the order the steps ran, seconds with two decimals, steps under 10 ms left out', () => {
    expect(describeSteps({ prepare: 21, probe: 112, netns: 461, up: 3, route: 4786 })).toBe('prepare 0.02s, probe 0.11s, netns 0.46s, route 4.79s');
    expect(describeSteps(undefined)).toBe('');
  });
});
