/** Transient namespaces (the probe's): reclaimed only when their creator is dead (root only). */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { createNamespaces, deleteNamespaces, parseTag, reclaimTransients, transientNamespace } from '../src/index.js';
import { procStartTicks } from '../src/lab/processes.js';
import { isRoot, ROOT_REASON } from './helpers.js';

/** A pid that existed and is gone (reaped). */
function deadPid(): number {
  return spawnSync('true').pid as number;
}

describe.skipIf(!isRoot)(`reclaimTransients (${ROOT_REASON})`, () => {
  const made: string[] = [];
  afterAll(() => {
    deleteNamespaces(made);
  });

  function make(ns: string, alias: string | undefined): void {
    const r = createNamespaces([ns], 1, undefined, alias === undefined ? undefined : [alias]);
    expect(r.failed).toEqual([]);
    made.push(ns);
  }

  it('tags name the creator by pid and start time', () => {
    const t = transientNamespace('probe');
    expect(t.ns).toBe(`dune-probe-${process.pid}`);
    expect(parseTag(t.tag)).toEqual({ kind: 'probe', pid: process.pid, startTicks: procStartTicks(process.pid) });
    expect(parseTag('dune:lab:x')).toBeUndefined();
  });

  it('deletes those of dead creators (a recycled pid is not the creator) and keeps the rest', async () => {
    const dead = deadPid();
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    const live = sleeper.pid as number;
    const liveTicks = procStartTicks(live) as number;
    // Only pids without a namespace already (another test's probe could hold one).
    make(`dune-probe-${dead}`, `dune-transient:probe:${dead}:1`);
    make(`dune-probe-${live}`, `dune-transient:probe:${live}:${liveTicks}`);
    const recycled = deadPid();
    // The recycled case: the pid in the tag runs, but started at another time (our own pid).
    make(`dune-probe-${process.pid}`, `dune-transient:probe:${process.pid}:${(procStartTicks(process.pid) as number) + 1}`);
    make(`dune-probe-${recycled}`, 'someone else:alias');
    const untaggedDead = deadPid();
    make(`dune-probe-${untaggedDead}`, undefined);
    const placeholder = `dune-probe-${deadPid()}`;
    writeFileSync(`/run/netns/${placeholder}`, '');
    made.push(placeholder);
    try {
      const r = reclaimTransients();
      expect(r.errors).toEqual([]);
      expect(r.reclaimed.sort()).toEqual([`dune-probe-${dead}`, `dune-probe-${process.pid}`, `dune-probe-${untaggedDead}`, placeholder].sort());
      expect(r.kept).toEqual(expect.arrayContaining([
        { ns: `dune-probe-${live}`, reason: `its creator, process ${live}, is running` },
        { ns: `dune-probe-${recycled}`, reason: 'lo\'s alias "someone else:alias" is not dune\'s tag' },
      ]));
      for (const ns of r.reclaimed) expect(existsSync(`/run/netns/${ns}`)).toBe(false);
      expect(existsSync(`/run/netns/dune-probe-${live}`)).toBe(true);
      // A second run: nothing more.
      expect(reclaimTransients().reclaimed).toEqual([]);
    } finally {
      const gone = new Promise((res) => sleeper.once('close', res));
      sleeper.kill('SIGKILL');
      await gone;
    }
    expect(reclaimTransients().reclaimed).toEqual([`dune-probe-${live}`]);
  });
});
