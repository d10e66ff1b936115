/**
 * Issue 12, the fidelity self-check: `dune calibrate --json` (the built CLI) on this
 * machine. What it measures must be what the lab delivers, so its figures are held to the
 * tolerances of the other e2e tests: rate within 5 % (htb), 10 % loss within the exact
 * binomial 99 % interval of 1000 round trips (nftables), delay within 1 ms + 10 % (the
 * userspace engine adds its NFQUEUE round trip). A backend this kernel lacks is listed as
 * unavailable with the reason, not measured.
 */
import { describe, expect, it } from 'vitest';
import { binomialInterval, dune, isRoot, leftovers, requireBuilt, ROOT_REASON } from '../helpers.js';

interface Row { impairment: string; backend: string; requested: number; delivered: number; errorPct: number; samples: number }

describe.skipIf(!isRoot)(`e2e: dune calibrate${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  it('measures delay, jitter, loss and rate of the userspace backend, as JSON', async () => {
    requireBuilt();
    const r = await dune(['calibrate', '--json', '--backend', 'userspace'], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout) as { kernel: string; rows: Row[]; unavailable: unknown[] };
    console.log(c.rows.map((x) => `${x.impairment} ${x.requested} → ${x.delivered.toFixed(3)} (${x.errorPct.toFixed(1)} %)`).join('\n'));
    expect(c.rows.map((x) => `${x.impairment}:${x.requested}`)).toEqual(['delay:10', 'delay:50', 'jitter:2', 'jitter:5', 'loss:1', 'loss:10', 'rate:10000000', 'rate:50000000']);
    for (const x of c.rows.filter((y) => y.impairment === 'delay')) expect(Math.abs(x.delivered - x.requested)).toBeLessThan(1 + 0.1 * x.requested);
    for (const x of c.rows.filter((y) => y.impairment === 'rate')) expect(Math.abs(x.errorPct)).toBeLessThan(5);
    const loss = c.rows.find((y) => y.impairment === 'loss' && y.requested === 10) as Row;
    const [lo, hi] = binomialInterval(1000, 0.1, 0.99);
    expect(loss.delivered * 10).toBeGreaterThanOrEqual(lo);
    expect(loss.delivered * 10).toBeLessThanOrEqual(hi);
    // Jitter has a spread of its own (100 samples): it is there and of the right size.
    for (const x of c.rows.filter((y) => y.impairment === 'jitter')) expect(x.delivered / x.requested).toBeGreaterThan(0.5);
    expect(leftovers('dune-calibrate')).toEqual([]);
  }, 200_000);
});
