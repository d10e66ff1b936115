/** LabOptions rendered as `[topology]` keys, seen in the topology and the plan. No kernel. */
import { describe, expect, it } from 'vitest';
import { Lab } from '@dune/lab';

function twoNodes(opts: ConstructorParameters<typeof Lab>[0]): Lab {
  const lab = new Lab({ name: 'opts', ...opts });
  lab.link(lab.node('a'), lab.node('b'), { latency: '1ms' });
  return lab;
}

describe('the userspace engine options', () => {
  it('engineThreads and engineFailOpen: impairment_engine_threads and impairment_engine_fail', () => {
    const lab = twoNodes({ engineThreads: 4, engineFailOpen: true });
    expect(lab.topology().lab).toMatchObject({ impairmentEngineThreads: 4, impairmentEngineFailOpen: true });
    expect(lab.compile().impairmentEngine).toEqual({ threads: 4, failOpen: true });
    expect(twoNodes({ engineThreads: 'auto', engineFailOpen: false }).compile().impairmentEngine).toEqual({ threads: 'auto' });
  });

  it('absent: one thread, fail closed, nothing in the plan', () => {
    expect(twoNodes({}).compile()).not.toHaveProperty('impairmentEngine');
  });

  it('a bad thread count is an error naming the option\'s key and what to write', () => {
    expect(() => twoNodes({ engineThreads: 0 }).topology()).toThrow(/impairment_engine_threads is 0; it must be from 1 to 256, or "auto"/);
  });
});
