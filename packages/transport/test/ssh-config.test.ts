import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveSshConfig } from '../src/ssh-config.js';

const home = mkdtempSync(join(tmpdir(), 'dune-sshcfg-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('~/.ssh/config', () => {
  const text = [
    'IdentityFile ~/.ssh/global_key',
    '',
    'Host ph1 ph1.lab',
    '  HostName 198.51.100.11',
    '  User root',
    '  Port 2222',
    '  IdentityFile ~/.ssh/lab_%h',
    '',
    'Host *.lab !bad.lab',
    '  User nobody',
    '  Port=23',
    '  ConnectTimeout 3',
    '',
    'Match host ph1',
    '  User matched',
    '',
    'Host jump',
    '  ProxyJump bastion',
    '',
    'Host *',
    '  User fallback',
    '  UserKnownHostsFile %d/kh',
  ].join('\n');

  it('applies the first value of every matching block, identities accumulating', () => {
    expect(resolveSshConfig('ph1', { text, home })).toEqual({
      hostName: '198.51.100.11', user: 'root', port: 2222,
      identityFiles: [`${home}/.ssh/global_key`, `${home}/.ssh/lab_198.51.100.11`],
      userKnownHostsFile: `${home}/kh`, unsupported: [],
    });
    const x = resolveSshConfig('x.lab', { text, home });
    expect([x.user, x.port, x.connectTimeoutSec, x.hostName]).toEqual(['nobody', 23, 3, undefined]);
    expect(resolveSshConfig('bad.lab', { text, home }).user).toBe('fallback');
  });

  it('follows ProxyJump: hops with user and port, chains, none', () => {
    const r = resolveSshConfig('jump', { text, home });
    expect(r.unsupported).toEqual([]);
    expect(r.proxyJump?.length).toBeGreaterThan(0);
    expect(resolveSshConfig('x', { text: 'Host x\n  ProxyJump admin@bastion:2222,ssh://inner,[fd00::1]:22\n', home }).proxyJump).toEqual([
      { host: 'bastion', user: 'admin', port: 2222 }, { host: 'inner' }, { host: 'fd00::1', port: 22 },
    ]);
    expect(resolveSshConfig('x', { text: 'Host x\n  ProxyJump none\n', home }).proxyJump).toBeUndefined();
    expect(resolveSshConfig('x', { text: 'Host x\n  ProxyCommand nc %h %p\n', home }).unsupported).toEqual(['proxycommand']);
  });

  it('follows Include, relative to ~/.ssh, with globs', () => {
    mkdirSync(join(home, '.ssh', 'conf.d'), { recursive: true });
    writeFileSync(join(home, '.ssh', 'conf.d', 'a.conf'), 'Host inc\n  HostName 198.51.100.50\n');
    const r = resolveSshConfig('inc', { text: 'Include conf.d/*.conf\nHost *\n  Port 2200\n', home });
    expect([r.hostName, r.port]).toEqual(['198.51.100.50', 2200]);
  });

  it('reads nothing when there is no file', () => {
    expect(resolveSshConfig('h', { file: join(home, 'none') })).toEqual({ identityFiles: [], unsupported: [] });
  });
});
