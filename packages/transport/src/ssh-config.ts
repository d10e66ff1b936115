/**
 * The part of `~/.ssh/config` a phynode's `host` may rely on: `Host` blocks with patterns
 * (`*`, `?`, `!negation`), and in them `HostName`, `User`, `Port`, `IdentityFile`,
 * `IdentitiesOnly`, `UserKnownHostsFile`, `ConnectTimeout`, `ProxyJump` (`[user@]host[:port]`,
 * comma-separated for a chain); `Include` of files (globs in the last path component). As in
 * OpenSSH, the first value obtained for a key wins (`IdentityFile` accumulates), and values
 * the topology gives win over the file's.
 *
 * Not supported, and said so when a matching block uses them: `Match`, `ProxyCommand`.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';

export interface SshConfigEntry {
  hostName?: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  identitiesOnly?: boolean;
  userKnownHostsFile?: string;
  connectTimeoutSec?: number;
  /** `ProxyJump` hosts, in order (the first is reached directly); absent or `none`: direct. */
  proxyJump?: JumpHost[];
  /** Options of matching blocks this reader does not apply (`ProxyJump`, ...). */
  unsupported: string[];
}

/** One hop of `ProxyJump`: its own config entry applies to what it leaves out. */
export interface JumpHost {
  host: string;
  user?: string;
  port?: number;
}

/** `ProxyJump`'s `[user@]host[:port]` list (also `ssh://[user@]host[:port]`), or undefined when malformed. */
export function parseProxyJump(value: string): JumpHost[] | undefined {
  const out: JumpHost[] = [];
  for (const raw of value.split(',')) {
    const hop = raw.trim().replace(/^ssh:\/\//, '');
    const m = /^(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s]+)(?::(\d+))?$/.exec(hop);
    if (!m) return undefined;
    const host = (m[2] as string).replace(/^\[|\]$/g, '');
    out.push({ host, ...(m[1] !== undefined ? { user: m[1] } : {}), ...(m[3] !== undefined ? { port: Number(m[3]) } : {}) });
  }
  return out;
}

interface Block {
  /** null: the options before the first `Host` (they apply to every host). */
  patterns: string[] | null;
  /** `Match` blocks are skipped whole. */
  skip: boolean;
  options: [string, string][];
}

const UNSUPPORTED = new Set(['proxycommand', 'localcommand', 'remotecommand']);

function splitArgs(rest: string): string[] {
  const out: string[] = [];
  for (const m of rest.matchAll(/"([^"]*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? '');
  return out;
}

function expandHome(p: string, home: string): string {
  return p === '~' ? home : p.startsWith('~/') ? join(home, p.slice(2)) : p;
}

function parse(text: string, file: string, home: string, depth: number, blocks: Block[]): void {
  let cur: Block = blocks[blocks.length - 1] ?? { patterns: null, skip: false, options: [] };
  if (blocks.length === 0) blocks.push(cur);
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!m) continue;
    const key = (m[1] as string).toLowerCase();
    const value = (m[2] as string).trim();
    if (key === 'host') {
      cur = { patterns: splitArgs(value), skip: false, options: [] };
      blocks.push(cur);
    } else if (key === 'match') {
      cur = { patterns: [], skip: true, options: [] };
      blocks.push(cur);
    } else if (key === 'include' && depth < 8) {
      for (const spec of splitArgs(value)) {
        const p = expandHome(spec, home);
        const abs = isAbsolute(p) ? p : join(home, '.ssh', p);
        for (const f of globFiles(abs)) parse(readFileSync(f, 'utf8'), f, home, depth + 1, blocks);
      }
      // An Include inside a Host block keeps applying that block's scope only in OpenSSH;
      // files usually hold their own Host blocks, which this approximation honours.
      cur = blocks[blocks.length - 1] as Block;
    } else {
      cur.options.push([key, value]);
    }
  }
  void file;
}

function globFiles(pattern: string): string[] {
  const dir = dirname(pattern);
  const base = basename(pattern);
  if (!/[*?]/.test(base)) return existsSync(pattern) ? [pattern] : [];
  if (!existsSync(dir)) return [];
  const re = new RegExp(`^${base.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return readdirSync(dir).filter((f) => re.test(f)).sort().map((f) => join(dir, f));
}

function hostMatches(patterns: string[], host: string): boolean {
  let matched = false;
  for (const p of patterns) {
    const neg = p.startsWith('!');
    const glob = neg ? p.slice(1) : p;
    const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
    if (re.test(host)) {
      if (neg) return false;
      matched = true;
    }
  }
  return matched;
}

export function defaultSshConfigFile(): string {
  return join(homedir(), '.ssh', 'config');
}

/** The settings `~/.ssh/config` (or `text`) gives `host`, with `%h %r %u %d ~` expanded in paths. */
export function resolveSshConfig(host: string, opts: { file?: string | null; text?: string; home?: string } = {}): SshConfigEntry {
  const home = opts.home ?? homedir();
  const out: SshConfigEntry = { identityFiles: [], unsupported: [] };
  let text = opts.text;
  if (text === undefined) {
    const file = opts.file === undefined ? defaultSshConfigFile() : opts.file;
    if (file === null || !existsSync(file)) return out;
    text = readFileSync(file, 'utf8');
  }
  const blocks: Block[] = [];
  parse(text, opts.file ?? '<text>', home, 0, blocks);
  const seen = new Set<string>();
  for (const b of blocks) {
    if (b.skip || (b.patterns !== null && !hostMatches(b.patterns, host))) continue;
    for (const [k, v] of b.options) {
      if (k === 'identityfile') {
        out.identityFiles.push(v);
        continue;
      }
      if (seen.has(k)) continue;
      seen.add(k);
      const arg = splitArgs(v)[0] ?? '';
      if (k === 'hostname') out.hostName = arg.replace(/%h/g, host);
      else if (k === 'user') out.user = arg;
      else if (k === 'port' && /^\d+$/.test(arg)) out.port = Number(arg);
      else if (k === 'identitiesonly') out.identitiesOnly = /^yes$/i.test(arg);
      else if (k === 'userknownhostsfile') out.userKnownHostsFile = arg;
      else if (k === 'connecttimeout' && /^\d+$/.test(arg)) out.connectTimeoutSec = Number(arg);
      else if (k === 'proxyjump' && !/^none$/i.test(arg)) {
        const jumps = parseProxyJump(v);
        if (jumps) out.proxyJump = jumps;
        else out.unsupported.push(`proxyjump ${v}`);
      }
      else if (UNSUPPORTED.has(k) && !/^none$/i.test(arg)) out.unsupported.push(k);
    }
  }
  const user = out.user ?? userInfo().username;
  const expand = (p: string): string =>
    expandHome(splitArgs(p)[0] ?? p, home)
      .replace(/%d/g, home)
      .replace(/%h/g, out.hostName ?? host)
      .replace(/%r/g, user)
      .replace(/%u/g, userInfo().username)
      .replace(/%%/g, '%');
  out.identityFiles = out.identityFiles.map(expand);
  if (out.userKnownHostsFile !== undefined) out.userKnownHostsFile = expand(out.userKnownHostsFile);
  return out;
}
