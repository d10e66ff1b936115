import { describe, expect, it } from 'vitest';
import type { Impairment } from '@dune/topology';
import { impairmentForJson } from '../src/output.js';

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
