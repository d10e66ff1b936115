/**
 * Issue 14: SSH as a user with sudo rights (no root login), and ProxyJump through a bastion
 * as in ~/.ssh/config. ph1 is the bastion (root login); ph2 refuses the controller's SSH
 * connections and is reached only through ph1, as `dunesudo`, whose commands go through
 * `sudo -n`.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshHost } from '@dune/transport';
import { built, isRoot, REASON as BED_REASON, SUDO_USER, Testbed, type TestPhynode } from './testbed.js';

const hasSudo = existsSync('/usr/bin/sudo');
const REASON = isRoot && !hasSudo ? 'needs sudo (apt-get install sudo)' : BED_REASON;

describe.skipIf(!isRoot || !hasSudo || !built)(`SSH as a sudo user, through a bastion (${REASON})`, () => {
  let tb: Testbed;
  let home = '';
  let sshConfig = '';
  let file = '';
  const ph = (n: number): TestPhynode => tb.phynodes[n - 1] as TestPhynode;
  const opts = () => ({ knownHostsFile: tb.knownHosts, sshConfigFile: sshConfig, agentSocket: null, connectTimeoutMs: 5000 });
  const dune = (args: string[]) => tb.dune(args, { env: { HOME: home } });

  beforeAll(async () => {
    tb = await Testbed.create({ count: 2 });
    tb.onlyThrough(ph(2));
    home = join(tb.dir, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    sshConfig = join(home, '.ssh', 'config');
    writeFileSync(sshConfig, [
      'Host bastion',
      `  HostName ${ph(1).underlay}`,
      '  User root',
      `  IdentityFile ${tb.clientKey}`,
      'Host inner',
      `  HostName ${ph(2).underlay}`,
      `  User ${SUDO_USER}`,
      '  ProxyJump bastion',
      `  IdentityFile ${tb.clientKey}`,
      '',
    ].join('\n'), { mode: 0o600 });
    const body = [
      '[topology]', 'lab = "mhjump"', 'routing_weight = "hops"',
      'links = [{ endpoints = ["a:eth0", "b:eth0"] }]',
      '[topology.nodes.a]', 'phynode = "ph1"', '[topology.nodes.b]', 'phynode = "ph2"',
      '[infrastructure.nodes.ph1]', 'host = "bastion"', `underlay = "${ph(1).underlay}"`,
      '[infrastructure.nodes.ph2]', 'host = "inner"', `underlay = "${ph(2).underlay}"`, '',
    ].join('\n');
    file = join(tb.dir, 'jump.toml');
    writeFileSync(file, body);
  }, 120_000);
  afterAll(async () => {
    if (tb) {
      dune(['down', file]);
      await tb.teardown();
    }
  });

  it('the inner host refuses the controller directly', async () => {
    await expect(SshHost.connect({ phynode: 'ph2', host: ph(2).underlay, user: 'root', identity: tb.clientKey }, { ...opts(), sshConfigFile: null, connectTimeoutMs: 2000 })).rejects.toMatchObject({ code: 'host-unreachable' });
  });

  it('connects through the bastion as the sudo user; commands run as root', async () => {
    const h = await SshHost.connect({ phynode: 'ph2', host: 'inner' }, opts());
    try {
      expect(h.target.label).toBe(`${SUDO_USER}@${ph(2).underlay}:22 via root@${ph(1).underlay}:22`);
      expect(h.sudo).toBe(true);
      expect((await h.run(['id', '-u'])).trim()).toBe('0');
      // Really in ph2: its own address, not the bastion's.
      expect(await h.run(['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])).toContain(ph(2).underlay);
      // A file copied in lands root's, where root wants it.
      const dst = join(tb.cacheDir, 'copied');
      await h.put(sshConfig, dst, 0o600);
      expect((await h.run(['stat', '-c', '%u %a', dst])).trim()).toBe('0 600');
    } finally {
      h.close();
    }
  });

  it('a user without sudo rights is refused with a hint', async () => {
    tb.inPhynode(ph(2), ['sh', '-c', `echo '${SUDO_USER} ALL=(root) ALL' > /etc/sudoers.d/dunetest`]);
    try {
      await expect(SshHost.connect({ phynode: 'ph2', host: 'inner' }, opts())).rejects.toMatchObject({ code: 'sudo-failed', hint: expect.stringMatching(/NOPASSWD/) });
    } finally {
      tb.inPhynode(ph(2), ['sh', '-c', `echo '${SUDO_USER} ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/dunetest`]);
    }
  });

  it('dune up, exec and down a lab across both, from ~/.ssh/config alone', () => {
    const up = dune(['up', file]);
    expect(up.code, up.err).toBe(0);
    const plan = JSON.parse(dune(['plan', file, '--json']).out) as { nodes: { node: string; v4?: string }[] };
    const ping = dune(['exec', '--lab', 'mhjump', 'a', '--', 'ping', '-c', '2', '-i', '0.2', '-W', '2', plan.nodes.find((n) => n.node === 'b')?.v4 as string]);
    expect(ping.code, ping.out + ping.err).toBe(0);
    // b is on ph2, reached through the bastion, its command run through sudo.
    const who = dune(['exec', '--lab', 'mhjump', 'b', '--', 'id', '-u']);
    expect(who.out.trim()).toBe('0');
    const down = dune(['down', file]);
    expect(down.code, down.err).toBe(0);
    expect(tb.inPhynode(ph(2), ['ip', 'netns', 'list']).out).not.toContain('dune.mhjump.');
  });
});
