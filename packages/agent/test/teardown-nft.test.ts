/**
 * Teardown's nftables step (root only): the lab's own table `inet dune_<lab>` in the host's
 * namespace is found (one nf_tables dump over netlink) and deleted; another lab's table, and a
 * table of the lab's name in another family, are left alone. A namespace of the test's own
 * stands in for the host's (TeardownOptions.hostNs), so the host's firewall is never touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { teardownLab } from '../src/index.js';
import { listNftTables } from '../src/impair/nft.js';
import { isRoot, nsList, ROOT_REASON, sh } from './helpers.js';

const HOST = 'dunetestnfthost';
const LAB = 'dunetestnft';
const hasNft = sh(['nft', '--version']).code === 0;
const skip = !isRoot ? ` (${ROOT_REASON})` : !hasNft ? ' (skipped: nft is not installed; scripts/setup installs nftables)' : '';

function tables(): string[] {
  return sh(['ip', 'netns', 'exec', HOST, 'nft', 'list', 'tables']).out.split('\n').map((l) => l.trim()).filter(Boolean).sort();
}

describe.skipIf(skip !== '')(`teardown's nftables tables${skip}`, () => {
  beforeAll(() => {
    sh(['ip', 'netns', 'del', HOST]);
    expect(sh(['ip', 'netns', 'add', HOST]).code).toBe(0);
    const script = [`add table inet dune_${LAB}`, 'add table inet dune_otherlab', `add table ip dune_${LAB}`, 'add table inet notours', ''].join('\n');
    expect(sh(['ip', 'netns', 'exec', HOST, 'nft', '-f', '-'], script).code).toBe(0);
  });

  afterAll(() => {
    sh(['ip', 'netns', 'del', HOST]);
    expect(nsList(HOST)).toEqual([]);
  });

  it('lists the dune_* tables of family inet, and deletes only the lab\'s', async () => {
    expect(listNftTables(HOST).sort()).toEqual([`dune_${LAB}`, 'dune_otherlab']);
    const r = await teardownLab(LAB, { hostNs: HOST });
    expect(r.deletedNftTables).toEqual([`dune_${LAB}`]);
    expect(r.errors).toEqual([]);
    expect(tables()).toEqual([`table inet dune_otherlab`, `table inet notours`, `table ip dune_${LAB}`].sort());
    expect(listNftTables(HOST)).toEqual(['dune_otherlab']);
  });

  it('finds none in a namespace that does not exist', () => {
    expect(listNftTables('dunetestnft-absent')).toEqual([]);
  });
});
