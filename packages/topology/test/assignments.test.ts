import { describe, expect, it } from 'vitest';
import { formatDiagnostics, parseImpairmentAssignments, TopologyError } from '@dune/topology';

describe('dune set key=value settings', () => {
  it('converts with the same units as a TOML link', () => {
    expect(parseImpairmentAssignments(['latency=20ms', 'loss=1.5%', 'bw=10mbit', 'queue=100p'])).toEqual({
      set: { delayUs: 20000, lossPct: 1.5, rateBitsPerSec: 10_000_000, queuePackets: 100 },
      removed: [],
    });
  });

  it('removes with none and lets a later setting replace its slot', () => {
    expect(parseImpairmentAssignments(['loss=none', 'queue=64KiB'])).toEqual({
      set: { queueBytes: 65536 },
      removed: ['lossPct', 'lossGilbertElliott'],
    });
  });

  it('reports every bad setting at once, with the nearest key', () => {
    let err: unknown;
    try {
      parseImpairmentAssignments(['latncy=5ms', 'loss=0.1', 'mtu=1400', 'bw']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TopologyError);
    expect(formatDiagnostics((err as TopologyError).diagnostics)).toMatchInlineSnapshot(`
      "<command line>:1:1: error[unknown-key]: "latncy" is not an impairment that can be set live
        hint: did you mean \`latency\`? Use one of: latency, jitter, jitter_distribution, jitter_correlation, loss, loss_correlation, duplicate, corrupt, reorder, reorder_gap, bw, queue
      <command line>:1:2: error[bad-unit]: loss: "0.1" is not a percentage: write it as "0.1%"
        hint: write a percentage such as "1%"; accepted units: %
      <command line>:1:3: error[unknown-key]: "mtu" is not an impairment that can be set live
        hint: use one of: latency, jitter, jitter_distribution, jitter_correlation, loss, loss_correlation, duplicate, corrupt, reorder, reorder_gap, bw, queue
      <command line>:1:4: error[bad-setting]: "bw" is not key=value
        hint: for example latency=20ms or loss=1%"
    `);
  });
});
