import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { KnownHosts, fingerprint, keyBlobType, knownHostName, parseKnownHosts, patternsMatch } from '../src/known-hosts.js';

const dir = mkdtempSync(join(tmpdir(), 'dune-kh-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An ssh-ed25519 public key blob, as a server presents it. */
function ed25519Blob(): Buffer {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const t = Buffer.from('ssh-ed25519');
  const out = Buffer.alloc(4 + t.length + 4 + raw.length);
  out.writeUInt32BE(t.length, 0);
  t.copy(out, 4);
  out.writeUInt32BE(raw.length, 4 + t.length);
  raw.copy(out, 8 + t.length);
  return out;
}

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('known_hosts', () => {
  const a = ed25519Blob();
  const b = ed25519Blob();

  it('names hosts as OpenSSH does', () => {
    expect(knownHostName('h', 22)).toBe('h');
    expect(knownHostName('198.51.100.2', 2222)).toBe('[198.51.100.2]:2222');
  });

  it('prints fingerprints as ssh-keygen -l does', () => {
    const f = join(dir, 'k.pub');
    writeFileSync(f, `ssh-ed25519 ${a.toString('base64')} test\n`);
    const r = spawnSync('ssh-keygen', ['-lf', f], { encoding: 'utf8' });
    expect(r.stdout.split(' ')[1]).toBe(fingerprint(a));
    expect(keyBlobType(a)).toBe('ssh-ed25519');
  });

  it('matches plain, bracketed, wildcard, negated and hashed patterns', () => {
    expect(patternsMatch('h1,h2', 'h2')).toBe(true);
    expect(patternsMatch('[h1]:2222', '[h1]:2222')).toBe(true);
    expect(patternsMatch('[h1]:2222', 'h1')).toBe(false);
    expect(patternsMatch('*.lab,!bad.lab', 'x.lab')).toBe(true);
    expect(patternsMatch('*.lab,!bad.lab', 'bad.lab')).toBe(false);
    expect(patternsMatch('198.51.100.?', '198.51.100.7')).toBe(true);
    expect(patternsMatch(hashed('[h]:23'), '[h]:23')).toBe(true);
    expect(patternsMatch(hashed('[h]:23'), 'h')).toBe(false);
  });

  it('verifies: known, unknown, changed, revoked', () => {
    const f = join(dir, 'known_hosts');
    writeFileSync(f, [
      '# comment',
      `h1 ssh-ed25519 ${a.toString('base64')}`,
      `${hashed('[h2]:2222')} ssh-ed25519 ${a.toString('base64')} c`,
      `@revoked * ssh-ed25519 ${b.toString('base64')}`,
      'garbage line',
      '',
    ].join('\n'));
    const k = new KnownHosts(f);
    expect(k.verify('h1', 22, a)).toEqual({ status: 'known', line: 2 });
    expect(k.verify('h2', 2222, a)).toEqual({ status: 'known', line: 3 });
    expect(k.verify('h3', 22, a)).toEqual({ status: 'unknown', otherTypes: [] });
    expect(k.verify('h1', 22, b)).toEqual({ status: 'revoked', line: 4 });
    const c = ed25519Blob();
    expect(k.verify('h1', 22, c)).toEqual({ status: 'changed', lines: [2] });
    expect(k.knownTypes('h1', 22)).toEqual(['ssh-ed25519']);
    expect(parseKnownHosts(readFileSync(f, 'utf8'))).toHaveLength(3);
  });

  it('records a new key in a file it creates 0600', () => {
    const f = join(dir, 'sub', 'known_hosts');
    const k = new KnownHosts(f);
    k.add('198.51.100.9', 2200, a);
    expect(readFileSync(f, 'utf8')).toBe(`[198.51.100.9]:2200 ssh-ed25519 ${a.toString('base64')}\n`);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(new KnownHosts(f).verify('198.51.100.9', 2200, a).status).toBe('known');
    // A file without a final newline is not glued to.
    const g = join(dir, 'nonl');
    writeFileSync(g, `x ssh-ed25519 ${b.toString('base64')}`);
    new KnownHosts(g).add('y', 22, a);
    expect(parseKnownHosts(readFileSync(g, 'utf8'))).toHaveLength(2);
  });
});
