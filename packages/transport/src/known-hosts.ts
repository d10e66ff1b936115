/**
 * OpenSSH `known_hosts`: the host keys this controller trusts.
 *
 * Lines are `[marker] hostpatterns keytype base64key [comment]`. Host patterns are a comma
 * list of names (`host`, `[host]:port` off port 22), wildcards (`*`, `?`), negations (`!`),
 * or one hashed name `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` (HashKnownHosts).
 * `@revoked` keys are refused; `@cert-authority` lines are skipped (host certificates are
 * not supported by the SSH library).
 *
 * A key is compared by its wire blob, which names its type (`ssh-ed25519`, `ssh-rsa`, ...),
 * so RSA keys negotiated as rsa-sha2-256/512 still match their `ssh-rsa` line.
 */
import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface KnownHostLine {
  line: number;
  marker: '' | '@revoked' | '@cert-authority';
  patterns: string;
  keyType: string;
  key: Buffer;
}

export type HostKeyVerdict =
  | { status: 'known'; line: number }
  | { status: 'unknown'; otherTypes: string[] }
  | { status: 'changed'; lines: number[] }
  | { status: 'revoked'; line: number };

export function defaultKnownHostsFile(): string {
  return process.env['DUNE_KNOWN_HOSTS'] ?? join(homedir(), '.ssh', 'known_hosts');
}

/** The name known_hosts uses for a host: `host`, or `[host]:port` when the port is not 22. */
export function knownHostName(host: string, port = 22): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** `SHA256:...`, as OpenSSH prints it (base64 without padding). */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The type named at the start of an SSH key blob. */
export function keyBlobType(key: Buffer): string {
  if (key.length < 4) return '?';
  const n = key.readUInt32BE(0);
  return key.subarray(4, 4 + n).toString('latin1');
}

export function parseKnownHosts(text: string): KnownHostLine[] {
  const out: KnownHostLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const l = raw.trim();
    if (l === '' || l.startsWith('#')) return;
    const words = l.split(/\s+/);
    let marker: KnownHostLine['marker'] = '';
    if (words[0]?.startsWith('@')) {
      const m = words.shift();
      if (m !== '@revoked' && m !== '@cert-authority') return;
      marker = m;
    }
    const [patterns, keyType, b64] = words;
    if (patterns === undefined || keyType === undefined || b64 === undefined || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return;
    out.push({ line: i + 1, marker, patterns, keyType, key: Buffer.from(b64, 'base64') });
  });
  return out;
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function hashedMatches(pattern: string, name: string): boolean {
  const m = /^\|1\|([^|]+)\|([^|]+)$/.exec(pattern);
  if (!m) return false;
  const salt = Buffer.from(m[1] as string, 'base64');
  const want = Buffer.from(m[2] as string, 'base64');
  const got = createHmac('sha1', salt).update(name).digest();
  return got.length === want.length && got.equals(want);
}

/** Whether a line's host patterns name `name` (`host` or `[host]:port`). */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedMatches(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    if (p === '') continue;
    const neg = p.startsWith('!');
    const glob = neg ? p.slice(1) : p;
    if (globToRegExp(glob).test(name)) {
      if (neg) return false;
      matched = true;
    }
  }
  return matched;
}

export class KnownHosts {
  readonly file: string;
  private lines: KnownHostLine[];

  constructor(file: string = defaultKnownHostsFile()) {
    this.file = file;
    this.lines = existsSync(file) ? parseKnownHosts(readFileSync(file, 'utf8')) : [];
  }

  /** Key types this file knows for the host: the SSH library is asked to prefer them. */
  knownTypes(host: string, port: number): string[] {
    const name = knownHostName(host, port);
    const types = this.lines.filter((l) => l.marker === '' && patternsMatch(l.patterns, name)).map((l) => l.keyType);
    return [...new Set(types)];
  }

  verify(host: string, port: number, key: Buffer): HostKeyVerdict {
    const name = knownHostName(host, port);
    const type = keyBlobType(key);
    const mine = this.lines.filter((l) => patternsMatch(l.patterns, name));
    const revoked = this.lines.find((l) => l.marker === '@revoked' && l.key.equals(key));
    if (revoked) return { status: 'revoked', line: revoked.line };
    const plain = mine.filter((l) => l.marker === '');
    const same = plain.find((l) => l.key.equals(key));
    if (same) return { status: 'known', line: same.line };
    const sameType = plain.filter((l) => l.keyType === type);
    if (sameType.length > 0) return { status: 'changed', lines: sameType.map((l) => l.line) };
    return { status: 'unknown', otherTypes: [...new Set(plain.map((l) => l.keyType))] };
  }

  /** Appends the key (first contact accepted), creating the file 0600 and its directory 0700. */
  add(host: string, port: number, key: Buffer): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const type = keyBlobType(key);
    const sep = existsSync(this.file) && !readFileSync(this.file, 'utf8').endsWith('\n') && readFileSync(this.file).length > 0 ? '\n' : '';
    appendFileSync(this.file, `${sep}${knownHostName(host, port)} ${type} ${key.toString('base64')}\n`, { mode: 0o600 });
    this.lines = parseKnownHosts(readFileSync(this.file, 'utf8'));
  }
}
