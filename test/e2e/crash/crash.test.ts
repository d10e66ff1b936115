/**
 * Issue 3, crash recovery: `dune up` killed with SIGKILL halfway, then `dune down` leaves
 * nothing — from the journal, and from the kernel's marks alone when the journal is gone.
 *
 * The topology is a 300-node line (179,400 routes): building it takes several seconds, so
 * a kill after the first namespaces appear lands in the middle.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dune, duneOk, duneSpawn, downAndCheck, enginePids, isRoot, labNamespaces, leftovers, removeTemp, REPO, requireBuilt, ROOT_REASON, STATE_ROOT, tempDir, waitFor,
} from '../helpers.js';

const LAB = 'e2ecrash';
const LAB_NJ = 'e2ecrashnj';
const LAB_EARLY = 'e2ecrashns';
const LAB_ENGINE = 'e2ecrasheng';
const NODES = 300;

/** A line of n nodes; with `latency`, every link delayed by the userspace engine. */
function lineTopology(n: number, latency?: string): string {
  const links = Array.from({ length: n - 1 }, (_, i) => `  { endpoints = ["n${i}:eth1", "n${i + 1}:eth0"]${latency ? `, latency = "${latency}"` : ''} },`);
  const nodes = Array.from({ length: n }, (_, i) => `[topology.nodes.n${i}]`);
  const backend = latency ? 'impairment_backend = "userspace"\n' : '';
  return `# written by test/e2e/crash/crash.test.ts\n[topology]\nrouting_weight = "hops"\n${backend}links = [\n${links.join('\n')}\n]\n${nodes.join('\n')}\n`;
}

/** Why the engine cannot run here ('' : it can). */
const NO_ENGINE = !isRoot ? '' : nfqueueOk() ? '' : '(skipped: no NFQUEUE target here, see `dune-agent probe`)';

/** Whether this kernel can queue to userspace (the engine's NFQUEUE), as the agent's probe says. */
function nfqueueOk(): boolean {
  const r = spawnSync(process.execPath, [join(REPO, 'packages/agent/dist/bin/dune-agent.js'), 'probe'], { encoding: 'utf8' });
  try {
    return (JSON.parse(r.stdout) as Record<string, { ok: boolean }>)['nfqueue']?.ok === true;
  } catch {
    return false;
  }
}

/**
 * lo's alias in each of the lab's namespaces: how many carry the mark. A name under
 * /run/netns can also be an empty placeholder file, created (as iproute2 does) just before
 * the namespace is bind-mounted onto it: those are counted apart, since a kill can leave one.
 */
function marked(lab: string): { total: number; marked: number; placeholders: number } {
  const nss = labNamespaces(lab);
  let m = 0;
  let placeholders = 0;
  for (const ns of nss) {
    const r = spawnSync('ip', ['-n', ns, '-d', '-o', 'link', 'show', 'lo'], { encoding: 'utf8' });
    if (r.status !== 0) placeholders++;
    else if (r.stdout.includes(` alias dune:${lab}:`)) m++;
  }
  return { total: nss.length - placeholders, marked: m, placeholders };
}

/** SIGKILLs the child once `ready()` holds; returns how long after the start that was. */
async function killWhen(args: string[], what: string, ready: () => boolean): Promise<number> {
  const t0 = performance.now();
  const up = duneSpawn(args);
  const closed = new Promise<NodeJS.Signals | null>((r) => up.once('close', (_c, s) => r(s)));
  let exited = false;
  void closed.then(() => (exited = true));
  await waitFor(what, () => ready() || exited, 60_000, 5);
  expect(exited).toBe(false); // killed halfway, not after it finished
  up.kill('SIGKILL');
  expect(await closed).toBe('SIGKILL');
  return performance.now() - t0;
}

describe.skipIf(!isRoot)(`e2e: kill -9 of dune up, then dune down recovers${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let tmp = '';
  let file = '';
  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', LAB]);
    await dune(['down', '--lab', LAB_NJ]);
    await dune(['down', '--lab', LAB_EARLY]);
    await dune(['down', '--lab', LAB_ENGINE]);
    tmp = tempDir('crash');
    file = join(tmp, 'line300.toml');
    writeFileSync(file, lineTopology(NODES));
  });
  afterAll(async () => {
    const left = [...(await downAndCheck(LAB)), ...(await downAndCheck(LAB_NJ)), ...(await downAndCheck(LAB_EARLY)), ...(await downAndCheck(LAB_ENGINE))];
    removeTemp(tmp);
    expect(left).toEqual([]);
  });

  it('killed as soon as its journal and first namespaces exist: down from the journal removes everything', async () => {
    const stateFile = join(STATE_ROOT, LAB, 'state.json');
    const ms = await killWhen(['up', file, '--lab', LAB], 'the journal and a first namespace', () => existsSync(stateFile) && labNamespaces(LAB).length > 0);
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { phase: string };
    expect(state.phase).toBe('applying');
    const m = marked(LAB);
    // lo's mark is written inside each namespace before it gets its name, so every named one
    // is marked however early the kill lands.
    console.log(`killed after ${ms.toFixed(0)} ms with ${m.total} namespaces, ${m.marked} of them marked, ${m.placeholders} placeholder files`);
    expect(m.total + m.placeholders).toBeGreaterThan(0);
    expect(m.marked).toBe(m.total);

    const r = await duneOk(['down', '--lab', LAB]);
    expect(r.stdout).toMatch(new RegExp(`^lab ${LAB} removed in [\\d.]+s: \\d+ namespaces`, 'm'));
    expect(r.stderr).not.toMatch(/foreign|carries no mark/);
    expect(leftovers(LAB)).toEqual([]);
  }, 120_000);

  it('killed while building links and routes, journal deleted: down from the kernel marks alone removes everything', async () => {
    // Once the first veth exists, every namespace carries its mark (they are set in one batch
    // before any link is made), so the kernel alone says what is the lab's.
    const ms = await killWhen(['up', file, '--lab', LAB_NJ], 'the first veth', () => labNamespaces(LAB_NJ).length === NODES && spawnSync('ip', ['-n', `dune.${LAB_NJ}.n0`, 'link', 'show', 'eth1']).status === 0);
    expect(marked(LAB_NJ)).toEqual({ total: NODES, marked: NODES, placeholders: 0 });
    rmSync(join(STATE_ROOT, LAB_NJ), { recursive: true, force: true });
    console.log(`killed after ${ms.toFixed(0)} ms; journal deleted`);

    const r = await duneOk(['down', '--lab', LAB_NJ]);
    expect(r.stdout).toMatch(new RegExp(`^lab ${LAB_NJ} removed in [\\d.]+s: ${NODES} namespaces, 0 processes, 0 files \\(no journal: found by its marks\\)$`, 'm'));
    expect(leftovers(LAB_NJ)).toEqual([]);
  }, 120_000);

  it('killed while creating namespaces, journal deleted: every named namespace is marked, and down removes them all', async () => {
    const ms = await killWhen(['up', file, '--lab', LAB_EARLY], 'the first namespaces', () => labNamespaces(LAB_EARLY).length > 0);
    rmSync(join(STATE_ROOT, LAB_EARLY), { recursive: true, force: true });
    const m = marked(LAB_EARLY);
    console.log(`killed after ${ms.toFixed(0)} ms with ${m.total} namespaces, ${m.marked} of them marked, ${m.placeholders} placeholder files; journal deleted`);
    expect(m.total + m.placeholders).toBeGreaterThan(0);
    expect(m.marked).toBe(m.total);

    const r = await duneOk(['down', '--lab', LAB_EARLY]);
    expect(r.stderr).not.toMatch(/foreign|carries no mark/);
    expect(leftovers(LAB_EARLY)).toEqual([]);
  }, 120_000);

  it.skipIf(NO_ENGINE !== '')(`killed while building a lab with delays, the engine it started before the network already running: down stops that engine too ${NO_ENGINE}`, async () => {
    const f = join(tmp, 'line300-delays.toml');
    writeFileSync(f, lineTopology(NODES, '1ms'));
    // The engine starts right after the probe, so that it loads while the network is built.
    const ms = await killWhen(['up', f, '--lab', LAB_ENGINE], 'the engine and the first veth', () =>
      enginePids(LAB_ENGINE).length > 0 && spawnSync('ip', ['-n', `dune.${LAB_ENGINE}.n0`, 'link', 'show', 'eth1']).status === 0);
    const pids = enginePids(LAB_ENGINE);
    console.log(`killed after ${ms.toFixed(0)} ms; engine ${pids.join(', ')}`);
    expect(pids).toHaveLength(1);
    await duneOk(['down', '--lab', LAB_ENGINE]);
    expect(enginePids(LAB_ENGINE)).toEqual([]);
    expect(leftovers(LAB_ENGINE, pids)).toEqual([]);
  }, 120_000);
});
