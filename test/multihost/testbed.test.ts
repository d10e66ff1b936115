/**
 * The test bed itself: three phynodes reached over real SSH, each with namespaces only it
 * sees, joined by the underlay; and nothing left once it is torn down.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, testbedLeftovers, type TestPhynode } from './testbed.js';

const isRoot = process.getuid?.() === 0;
const REASON = 'the multi-host test bed needs root (namespaces, sshd)';
if (!isRoot) console.log(`skipping multi-host tests: ${REASON}`);

function ssh(tb: Testbed, ph: TestPhynode, argv: string[]): { code: number; out: string; err: string } {
  const r = spawnSync('ssh', [
    '-F', '/dev/null',
    '-i', tb.clientKey,
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${tb.knownHosts}`,
    '-o', 'ConnectTimeout=5',
    '-p', String(ph.sshPort),
    `root@${ph.underlay}`,
    '--', ...argv,
  ], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

describe.skipIf(!isRoot)(`multi-host test bed (${REASON})`, () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.create({ count: 3 });
  });
  afterAll(async () => {
    await tb?.teardown(); // idempotent: the last test tore it down already
  });

  it('logs in to every phynode with the client key and a verified host key', () => {
    for (const ph of tb.phynodes) {
      const r = ssh(tb, ph, ['ip', '-br', '-4', 'addr', 'show', 'dev', 'eth0']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toContain(`${ph.underlay}/24`);
    }
  });

  it('gives each phynode its own /run/netns and /run/dune', () => {
    const [a, b] = tb.phynodes as [TestPhynode, TestPhynode];
    expect(ssh(tb, a, ['ip', 'netns', 'add', 'dunetest-inner']).code).toBe(0);
    expect(ssh(tb, a, ['touch', '/run/dune/mark']).code).toBe(0);
    try {
      expect(ssh(tb, a, ['ip', 'netns', 'list']).out).toContain('dunetest-inner');
      expect(ssh(tb, b, ['ip', 'netns', 'list']).out).not.toContain('dunetest-inner');
      expect(ssh(tb, b, ['ls', '/run/dune']).out).toBe('');
      expect(existsSync('/run/netns/dunetest-inner')).toBe(false);
      // /sys is the phynode's: eth0 there is the underlay veth, and the host's eth0 is not seen.
      expect(ssh(tb, a, ['cat', '/sys/class/net/eth0/address']).out).toBe(ssh(tb, a, ['ip', '-j', 'link', 'show', 'eth0']).out.match(/"address":"([^"]+)"/)?.[1] + '\n');
    } finally {
      ssh(tb, a, ['ip', 'netns', 'del', 'dunetest-inner']);
    }
  });

  it('joins the phynodes by the underlay', () => {
    const [a, b, c] = tb.phynodes as [TestPhynode, TestPhynode, TestPhynode];
    expect(ssh(tb, a, ['ping', '-c1', '-W2', b.underlay]).code).toBe(0);
    expect(ssh(tb, c, ['ping', '-c1', '-W2', a.underlay]).code).toBe(0);
  });

  it('refuses a host key that is not the one in known_hosts', () => {
    const [a] = tb.phynodes as [TestPhynode];
    const r = spawnSync('ssh', ['-F', '/dev/null', '-i', tb.clientKey, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', 'UserKnownHostsFile=/dev/null', `root@${a.underlay}`, 'true'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Host key verification failed/);
  });

  it('leaves nothing behind when torn down', async () => {
    const [a] = tb.phynodes as [TestPhynode];
    expect(ssh(tb, a, ['ip', 'netns', 'add', 'dunetest-inner']).code).toBe(0);
    const dir = tb.dir;
    await tb.teardown();
    expect(existsSync(dir)).toBe(false);
    expect(testbedLeftovers()).toEqual([]);
    expect(readdirSync('/run/netns').filter((n) => /^dunetest-(ul|ph\d+)$/.test(n))).toEqual([]);
  });
});
