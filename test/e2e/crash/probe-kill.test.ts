/**
 * Issue 14, nothing left behind: `dune up` killed with SIGKILL during the kernel probe
 * leaves its probe namespace (`dune-probe-<pid>`), tagged on lo with its creator; the next
 * `up`, `down --lab` or `down --all` reclaims it, but never the probe of a process that
 * still runs.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespaces, deleteNamespaces } from '@dune/agent';
import { dune, duneOk, duneSpawn, downAndCheck, isRoot, removeTemp, requireBuilt, ROOT_REASON, tempDir, waitFor } from '../helpers.js';

const LAB = 'e2eprobekill';

/** lo's alias in a namespace, or undefined when it cannot be read (not mounted yet). */
function loAlias(ns: string): string | undefined {
  const r = spawnSync('ip', ['-n', ns, '-d', '-o', 'link', 'show', 'lo'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return / alias (\S+)/.exec(r.stdout)?.[1] ?? '';
}

function startTicks(pid: number): number {
  const st = spawnSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' }).stdout;
  return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[19]);
}

/** Starts `dune up`, SIGKILLs it while its probe namespace exists; returns that namespace. */
async function killDuringProbe(file: string): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const up = duneSpawn(['up', file, '--lab', LAB]);
    const ns = `dune-probe-${up.pid}`;
    const closed = new Promise<NodeJS.Signals | null>((r) => up.once('close', (_c, s) => r(s)));
    let exited = false;
    void closed.then(() => (exited = true));
    // Polled every millisecond: the probe lasts tens of milliseconds.
    await waitFor('the probe namespace', () => existsSync(`/run/netns/${ns}`) || exited, 60_000, 1);
    if (!exited) up.kill('SIGKILL');
    const signal = await closed;
    if (signal === 'SIGKILL' && existsSync(`/run/netns/${ns}`)) return ns;
    // Finished the probe before the kill landed: bring the lab down and try again.
    await duneOk(['down', '--lab', LAB]);
  }
  throw new Error('could not kill dune up during its probe in 5 attempts');
}

describe.skipIf(!isRoot)(`e2e: kill -9 of dune up during the kernel probe${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let tmp = '';
  let file = '';
  const made: string[] = [];
  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', LAB]);
    tmp = tempDir('probekill');
    file = join(tmp, 'two.toml');
    writeFileSync(file, '[topology]\nlinks = [{ endpoints = ["a", "b"] }]\n[topology.nodes.a]\n[topology.nodes.b]\n');
  });
  afterAll(async () => {
    deleteNamespaces(made);
    const left = await downAndCheck(LAB);
    removeTemp(tmp);
    expect(left).toEqual([]);
  });

  it('the probe namespace a kill leaves carries its creator, and the next up removes it', async () => {
    const ns = await killDuringProbe(file);
    made.push(ns);
    const pid = Number(ns.slice('dune-probe-'.length));
    // Bind-mounted onto its name only once lo carries the tag (native): however early the
    // kill, it is tagged, or it is still the empty placeholder file the mount goes onto.
    const fsType = spawnSync('stat', ['-f', '-c', '%T', `/run/netns/${ns}`], { encoding: 'utf8' }).stdout.trim();
    if (fsType === 'nsfs') expect(loAlias(ns)).toMatch(new RegExp(`^dune-transient:probe:${pid}:\\d+$`));
    else expect(statSync(`/run/netns/${ns}`).size).toBe(0);
    console.log(`killed with ${fsType === 'nsfs' ? 'a tagged namespace' : `a placeholder file (${fsType})`} left`);
    const r = await duneOk(['up', file, '--lab', LAB]);
    expect(r.stderr + r.stdout).toContain(`leftover of killed dune processes: ${ns}`);
    expect(existsSync(`/run/netns/${ns}`)).toBe(false);
    await duneOk(['down', '--lab', LAB]);
  }, 120_000);

  it('down --lab removes it', async () => {
    const ns = await killDuringProbe(file);
    made.push(ns);
    await duneOk(['down', '--lab', LAB]);
    expect(existsSync(`/run/netns/${ns}`)).toBe(false);
  }, 120_000);

  it('down --all removes it with no lab on the machine, and leaves the probe of a live process', async () => {
    const ns = await killDuringProbe(file);
    made.push(ns);
    // A probe in flight: a tagged namespace whose creator (here a sleep) still runs.
    const sleeper: ChildProcess = spawn('sleep', ['60'], { stdio: 'ignore' });
    const pid = sleeper.pid as number;
    const live = `dune-probe-${pid}`;
    const c = createNamespaces([live], 1, undefined, [`dune-transient:probe:${pid}:${startTicks(pid)}`]);
    expect(c.failed).toEqual([]);
    made.push(live);
    try {
      const r = await duneOk(['down', '--all']);
      // No lab was left by the kill (the journal comes after the probe): only the probe namespace.
      expect(r.stdout).toMatch(/no labs on this machine|removed/);
      expect(existsSync(`/run/netns/${ns}`)).toBe(false);
      expect(existsSync(`/run/netns/${live}`)).toBe(true);
      expect(loAlias(live)).toBe(`dune-transient:probe:${pid}:${startTicks(pid)}`);
    } finally {
      const gone = new Promise((r) => sleeper.once('close', r));
      sleeper.kill('SIGKILL');
      await gone;
    }
    // Its creator dead, the next down --all reclaims it.
    await duneOk(['down', '--all']);
    expect(existsSync(`/run/netns/${live}`)).toBe(false);
  }, 120_000);
});
