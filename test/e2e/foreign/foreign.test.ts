/**
 * Issue 3, ownership: `dune down --all` removes every lab and nothing else. Objects that are
 * not a lab's survive it, even one named exactly like a lab's namespace, and a process
 * running in that one is not killed.
 *
 * `down --all` also removes labs of anything else running on the machine (other test files,
 * benchmarks): this test waits a bounded time for those to finish first, and is the last
 * (and only) one in its file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dune, duneOk, isRoot, labNamespaces, leftovers, pidAlive, removeTemp, requireBuilt, ROOT_REASON, sh, STATE_ROOT, tempDir, waitFor } from '../helpers.js';

const LAB = 'e2eforeign';
// Not 'dunetest-*': the agent's kernel test uses dunetest-foreign, and the multi-host testbed
// deletes every dunetest-* namespace it finds as stale, both possibly running meanwhile.
const FOREIGN_NS = 'e2etest-foreign';
// Our prefix and this lab's name, but created by hand: no mark on its lo.
const LOOKALIKE_NS = `dune.${LAB}.x`;
const FOREIGN_IF = 'dtfor0'; // and its veth peer dtfor1
const WAIT_FOR_OTHERS_MS = 60_000;

const TOPOLOGY = `# written by test/e2e/foreign/foreign.test.ts
[topology]
routing_weight = "hops"
links = [ { endpoints = ["a:eth0", "b:eth0"], "a:eth0" = { loss = "1%" } } ]
[topology.nodes.a]
[topology.nodes.b]
`;

/** Labs on this machine other than this test's, by journal and by namespace name. */
function otherLabs(): string[] {
  const labs = new Set<string>();
  if (existsSync(STATE_ROOT)) for (const d of readdirSync(STATE_ROOT, { withFileTypes: true })) if (d.isDirectory()) labs.add(d.name);
  if (existsSync('/run/netns')) for (const n of readdirSync('/run/netns')) if (n.startsWith('dune.')) labs.add(n.split('.')[1] ?? '');
  labs.delete(LAB);
  return [...labs].sort();
}

function cleanupForeign(): void {
  sh(['ip', 'netns', 'del', FOREIGN_NS]);
  sh(['ip', 'netns', 'del', LOOKALIKE_NS]);
  sh(['ip', 'link', 'del', FOREIGN_IF]);
}

describe.skipIf(!isRoot)(`e2e: dune down --all leaves foreign objects alone${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let tmp = '';
  let sleeper: ChildProcess | undefined;
  beforeAll(async () => {
    requireBuilt();
    cleanupForeign();
    await dune(['down', '--lab', LAB]);
    tmp = tempDir('foreign');
    writeFileSync(join(tmp, 'lab.toml'), TOPOLOGY);
  });
  afterAll(async () => {
    if (sleeper?.pid !== undefined && pidAlive(sleeper.pid)) sleeper.kill('SIGKILL');
    cleanupForeign();
    await dune(['down', '--lab', LAB]);
    removeTemp(tmp);
    expect(leftovers(LAB)).toEqual([]);
    expect(sh(['ip', 'netns', 'list']).out).not.toMatch(/e2etest-foreign|dune\.e2eforeign\./);
  });

  it('a namespace, a look-alike namespace with a process in it, and a host interface survive down --all; the lab does not', async () => {
    await duneOk(['up', join(tmp, 'lab.toml'), '--lab', LAB]);
    expect(sh(['ip', 'netns', 'add', FOREIGN_NS]).code).toBe(0);
    expect(sh(['ip', 'netns', 'add', LOOKALIKE_NS]).code).toBe(0);
    // This kernel has no dummy driver: a veth pair (dtfor0, dtfor1) in the host namespace.
    expect(sh(['ip', 'link', 'add', FOREIGN_IF, 'type', 'veth', 'peer', 'name', 'dtfor1']).code).toBe(0);
    sleeper = spawn('ip', ['netns', 'exec', LOOKALIKE_NS, 'sleep', '300'], { stdio: 'ignore' });
    const sleeperPid = sleeper.pid as number;
    await waitFor('the sleep in the look-alike namespace', () => sh(['readlink', `/proc/${sleeperPid}/exe`]).out.includes('sleep'), 5_000);

    const t0 = Date.now();
    await waitFor(`other labs (${otherLabs().join(', ')}) to finish`, () => otherLabs().length === 0 || Date.now() - t0 > WAIT_FOR_OTHERS_MS, WAIT_FOR_OTHERS_MS + 5_000, 500);
    const others = otherLabs();
    if (others.length > 0) console.log(`down --all will also remove labs of others still running after ${WAIT_FOR_OTHERS_MS / 1000} s: ${others.join(', ')}`);

    const r = await duneOk(['down', '--all'], { timeoutMs: 120_000 });
    expect(r.stdout).toMatch(new RegExp(`^lab ${LAB} removed in [\\d.]+s: 2 namespaces, 0 processes, 2 files$`, 'm'));
    // The look-alike is named as the lab's, so it is reported: found, and left alone.
    expect(r.stderr).toMatch(new RegExp(`^note: namespace ${LOOKALIKE_NS.replace(/\./g, '\\.')} \\(no mark on lo: foreign, left alone\\)$`, 'm'));

    expect(labNamespaces(LAB)).toEqual([LOOKALIKE_NS]);
    expect(sh(['ip', 'netns', 'list']).out).toMatch(new RegExp(`^${FOREIGN_NS}\\b`, 'm'));
    expect(sh(['ip', 'link', 'show', FOREIGN_IF]).code).toBe(0);
    expect(sh(['ip', 'link', 'show', 'dtfor1']).code).toBe(0);
    expect(pidAlive(sleeperPid)).toBe(true);
    expect(existsSync(join(STATE_ROOT, LAB))).toBe(false);
    expect(sh(['nft', 'list', 'tables']).out).not.toMatch(/dune_e2eforeign\b/);

    sleeper.kill('SIGKILL');
    cleanupForeign();
    expect(sh(['ip', 'netns', 'list']).out).not.toMatch(/e2etest-foreign|dune\.e2eforeign\.x/);
    expect(sh(['ip', 'link', 'show', FOREIGN_IF]).code).not.toBe(0);
  }, 240_000);
});
