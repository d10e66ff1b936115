/**
 * Issue 13, names: inside every node, the other nodes' names resolve (each node's
 * /etc/netns/<ns>/hosts, bind-mounted over /etc/hosts by `ip netns exec` for everything
 * started in the node), and a Topology Zoo file can name its nodes by their labels
 * (`--names label`). `down` removes the hosts files and the directories it made for them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dune, duneOk, downAndCheck, isRoot, planJson, REPO, requireBuilt, ROOT_REASON } from '../helpers.js';

const LINE = 'e2enames';
const ZOO = 'e2ezoonames';
const LINE_FILE = join(REPO, 'test/e2e/reach/line5.toml');
const ABILENE = join(REPO, 'topologies/zoo/Abilene.graphml');
/** Whether /etc/netns existed before: down must leave it as it found it. */
const etcNetnsBefore = existsSync('/etc/netns');

describe.skipIf(!isRoot)(`e2e: names inside nodes${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', LINE]);
    await dune(['down', '--lab', ZOO]);
  });
  afterAll(async () => {
    expect(await downAndCheck(LINE)).toEqual([]);
    expect(await downAndCheck(ZOO)).toEqual([]);
  });

  it('ping by node id from inside a node, IPv4 and IPv6; down removes /etc/netns/<ns>', async () => {
    await duneOk(['up', LINE_FILE, '--lab', LINE], { timeoutMs: 120_000 });
    const plan = await planJson([LINE_FILE, '--lab', LINE]);
    const n5 = plan.nodes.find((n) => n.node === 'n5');
    for (const n of plan.nodes) expect(existsSync(`/etc/netns/${n.ns}/hosts`)).toBe(true);
    const got = await duneOk(['exec', '--lab', LINE, 'n1', '--', 'getent', 'ahostsv4', 'n5']);
    expect(got.stdout.split('\n')[0]?.split(/\s+/)[0]).toBe(n5?.v4);
    const v4 = await duneOk(['exec', '--lab', LINE, 'n1', '--', 'ping', '-4', '-c1', '-W2', 'n5']);
    expect(v4.stdout).toContain(`from n5 (${n5?.v4})`);
    const v6 = await duneOk(['exec', '--lab', LINE, 'n1', '--', 'ping', '-6', '-c1', '-W2', 'n5']);
    expect(v6.stdout).toMatch(new RegExp(`from n5 \\(${n5?.v6}\\)|from ${n5?.v6}`));
    // The host's own /etc/hosts is untouched.
    expect(readFileSync('/etc/hosts', 'utf8')).not.toContain(n5?.v4 as string);

    await duneOk(['down', '--lab', LINE]);
    for (const n of plan.nodes) expect(existsSync(`/etc/netns/${n.ns}`)).toBe(false);
    expect(existsSync('/etc/netns')).toBe(etcNetnsBefore);
  }, 240_000);

  it('--names label: Abilene nodes named by their labels, reachable by name', async () => {
    const plan = await planJson([ABILENE, '--names', 'label', '--lab', ZOO]);
    expect(plan.nodes.map((n) => n.node)).toContain('Kansas_City');
    await duneOk(['up', ABILENE, '--names', 'label', '--lab', ZOO], { timeoutMs: 180_000 });
    const r = await duneOk(['exec', '--lab', ZOO, 'New_York', '--', 'ping', '-c1', '-W3', 'Los_Angeles']);
    expect(r.stdout).toMatch(/1 received/);
    // The Zoo id stays accepted: New_York by its id.
    const ny = plan.nodes.find((n) => n.node === 'New_York') as { aliases?: string[]; v4?: string } | undefined;
    const id = ny?.aliases?.[0];
    expect(id).toBeDefined();
    expect((await duneOk(['exec', '--lab', ZOO, id as string, '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'lo'])).stdout).toContain(`${ny?.v4}/`);
    await duneOk(['down', '--lab', ZOO]);
    expect(existsSync('/etc/netns')).toBe(etcNetnsBefore);
  }, 300_000);
});
