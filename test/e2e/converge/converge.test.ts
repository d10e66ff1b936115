/**
 * Issue 3, convergence: a second `dune up` of the same file is a no-op that touches nothing;
 * `up` of a changed file applies only what changed, says what it did, and the lab works.
 *
 *   before:  n1 ── n2 ── n3 ── n4 ── n5          every link 50mbit
 *   after:   n1 ── n2 ══ n3 ── n4 ── n5 ── n6    n2–n3 at 10mbit, node n6 added
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dune, duneOk, downAndCheck, isRoot, parsePing, pool, probeFrom, removeTemp, requireBuilt, ROOT_REASON, sh, status, tempDir } from '../helpers.js';

const LAB = 'e2econv';

function topology(changed: boolean): string {
  const n2n3 = changed ? '{ endpoints = ["n2:eth1", "n3:eth0"], bw = "10mbit" }' : '{ endpoints = ["n2:eth1", "n3:eth0"] }';
  return `# written by test/e2e/converge/converge.test.ts
[topology]
routing_weight = "hops"
links = [
  { endpoints = ["n1:eth0", "n2:eth0"] },
  ${n2n3},
  { endpoints = ["n3:eth1", "n4:eth0"] },
  { endpoints = ["n4:eth1", "n5:eth0"] },
${changed ? '  { endpoints = ["n5:eth1", "n6:eth0"] },\n' : ''}]

[topology.defaults.links]
bw = "50mbit"

[topology.nodes.n1]
[topology.nodes.n2]
[topology.nodes.n3]
[topology.nodes.n4]
[topology.nodes.n5]
${changed ? '[topology.nodes.n6]\n' : ''}`;
}

/** Namespace → inode: a namespace deleted and re-created gets a new one. */
function inodes(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of readdirSync('/run/netns').filter((x) => x.startsWith(`dune.${LAB}.`))) out[n] = statSync(`/run/netns/${n}`).ino;
  return out;
}

/** Interface index of every link device: a device re-created gets a new one. */
function ifindexes(nodes: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of nodes) out[n] = sh(['ip', '-n', `dune.${LAB}.${n}`, '-o', 'link', 'show']).out.split('\n').map((l) => l.split('@')[0]).join(' ');
  return out;
}

function htbRate(node: string, dev: string): string {
  return /rate (\S+)/.exec(sh(['ip', 'netns', 'exec', `dune.${LAB}.${node}`, 'tc', 'class', 'show', 'dev', dev]).out)?.[1] ?? '(none)';
}

describe.skipIf(!isRoot)(`e2e: a second up converges${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let tmp = '';
  let file = '';
  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', LAB]);
    tmp = tempDir('conv');
    file = join(tmp, 'conv.toml');
    writeFileSync(file, topology(false));
    await duneOk(['up', file, '--lab', LAB]);
  });
  afterAll(async () => {
    const left = await downAndCheck(LAB);
    removeTemp(tmp);
    expect(left).toEqual([]);
  });

  it('up of the same file again: exit 0, "nothing to do", kernel state untouched', async () => {
    const before = { ns: inodes(), links: ifindexes(['n1', 'n2', 'n3', 'n4', 'n5']), rate: htbRate('n2', 'eth1') };
    expect(Object.keys(before.ns)).toHaveLength(5);
    const r = await dune(['up', file, '--lab', LAB]);
    expect(r.code).toBe(0);
    // 129 ops: 5 netns, 4 veth, 26 addr, 13 up, 28 sysctl, 8 impair, 40 route, 5 hosts files.
    expect(r.stdout).toMatch(new RegExp(`^lab ${LAB} is already up as planned \\(129 operations checked, [\\d.]+s\\): nothing to do$`, 'm'));
    expect(r.stdout).not.toMatch(/applied|removed|changed/);
    expect({ ns: inodes(), links: ifindexes(['n1', 'n2', 'n3', 'n4', 'n5']), rate: htbRate('n2', 'eth1') }).toEqual(before);
  });

  it('up of a changed file (one link 50→10 mbit, node n6 added): applies only that, and every node still reaches every other', async () => {
    const before = { ns: inodes(), links: ifindexes(['n1', 'n2', 'n3', 'n4', 'n5']) };
    writeFileSync(file, topology(true));
    const r = await duneOk(['up', file, '--lab', LAB]);
    // What a new node at the end of the line costs, and nothing else:
    //   1 netns (n6), 1 veth (n5:eth1–n6:eth0),
    //   6 addr: n6's loopbacks (v4, v6) and both ends of the new link (v4, v6 each),
    //   3 up: n6's lo, n5:eth1, n6:eth0,
    //   6 sysctl: n6's 4 router sysctls, rp_filter of n5:eth1 and n6:eth0,
    //   2 impair: the new link's 50mbit, both directions,
    //   20 route: n1..n5 → n6 and n6 → n1..n5, IPv4 and IPv6;
    //   6 file: n6's hosts file, and the other five nodes' rewritten in place to name n6;
    // and the changed link's rate, both directions, changed live in place.
    expect(r.stdout).toMatch(/^ {2}applied: 1 netns, 1 veth, 6 addr, 3 up, 6 sysctl, 2 impair, 20 route, 6 file$/m);
    expect(r.stdout).toMatch(/^ {2}impairments changed live: 2$/m);
    expect(r.stdout).toMatch(/^ {2}unchanged: 122 operations$/m);
    expect(r.stdout).not.toMatch(/removed:/);
    // Nothing that existed was re-created: same namespaces, same interfaces.
    const after = inodes();
    for (const [ns, ino] of Object.entries(before.ns)) expect(after[ns]).toBe(ino);
    expect(Object.keys(after)).toHaveLength(6);
    expect(ifindexes(['n1', 'n2', 'n3', 'n4'])).toEqual({ n1: before.links['n1'], n2: before.links['n2'], n3: before.links['n3'], n4: before.links['n4'] });
    expect(htbRate('n2', 'eth1')).toBe('10Mbit');
    expect(htbRate('n3', 'eth0')).toBe('10Mbit');
    expect(htbRate('n1', 'eth0')).toBe('50Mbit');

    const st = await status(LAB);
    expect(st.links.find((l) => l.node === 'n2' && l.dev === 'eth1')?.impairment).toEqual({ rateBitsPerSec: 10_000_000 });
    const failed: string[] = [];
    let pairs = 0;
    await pool(st.nodes, 2, async (s) => {
      const res = await probeFrom(LAB, s.node, st.nodes.filter((d) => d.node !== s.node).flatMap((d) => [d.v4 as string, d.v6 as string]), true);
      for (const x of res) {
        pairs++;
        if (parsePing(x.ping.out).received !== 1) failed.push(`${s.node} → ${x.addr}: ${x.ping.out}`);
      }
    });
    // 6 nodes: 30 ordered pairs, IPv4 and IPv6.
    expect(pairs).toBe(60);
    expect(failed).toEqual([]);

    const again = await duneOk(['up', file, '--lab', LAB]);
    expect(again.stdout).toMatch(/nothing to do$/m);
  }, 120_000);
});
