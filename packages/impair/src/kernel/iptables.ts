/**
 * The iptables rules that send a port's traffic to NFQUEUE, tagged so they are recognised
 * and removed: by this process on exit, and by `impaired-network-clear-iptables` after a
 * crash. Only rules whose comment starts with TAG_PREFIX are ever touched.
 *
 *   INPUT  -i IFACE -p PROTO --dport PORT  → queue `up`    (toward the service)
 *   OUTPUT -o IFACE -p PROTO --sport PORT  → queue `down`  (from the service)
 *
 * IPv4 and IPv6 alike (iptables and ip6tables). Packets the engine injects itself (the
 * duplicates) carry ENGINE_MARK and are not queued again. nft's `queue` statement is not
 * in our kernel; Debian's iptables-nft uses the xtables NFQUEUE target, which is.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const TAG_PREFIX = 'impaired-network';
/** The mark of packets the engine sends itself. */
export const ENGINE_MARK = 0x1d0e1d0e;

export type Transport = 'tcp' | 'udp';
const TOOLS = ['iptables', 'ip6tables'] as const;

export interface RuleSpec {
  transport: Transport;
  port: number;
  /** Interface to match; `any` matches every interface. */
  iface: string;
  upQueue: number;
  downQueue: number;
  /**
   * Queues per direction (default 1): up is spread over upQueue .. upQueue+balance-1, down
   * over downQueue .. downQueue+balance-1 (the NFQUEUE target's --queue-balance, by a hash of the addresses).
   */
  balance?: number;
  /** With balance: spread by the CPU that queues the packet rather than by addresses (--queue-cpu-fanout). */
  cpuFanout?: boolean;
  /** Namespace name (under /run/netns), or undefined for the current one. */
  netns?: string;
  /** Comment; must start with TAG_PREFIX. */
  tag: string;
}

export function defaultTag(pid = process.pid): string {
  return `${TAG_PREFIX} pid=${pid}`;
}

function cmd(netns: string | undefined, tool: string, args: string[]): [string, string[]] {
  return netns === undefined ? [tool, ['-w', ...args]] : ['ip', ['netns', 'exec', netns, tool, '-w', ...args]];
}

/** [chain, args after the chain] of each rule. */
export function ruleArgs(s: RuleSpec): [chain: 'INPUT' | 'OUTPUT', args: string[]][] {
  if (!s.tag.startsWith(TAG_PREFIX)) throw new Error(`a rule tag must start with "${TAG_PREFIX}"`);
  const iface = (flag: string) => (s.iface === 'any' ? [] : [flag, s.iface]);
  const common = ['-m', 'mark', '!', '--mark', `0x${ENGINE_MARK.toString(16)}`, '-m', 'comment', '--comment', s.tag, '-j', 'NFQUEUE'];
  const n = s.balance ?? 1;
  const queue = (q: number) => (n > 1 ? ['--queue-balance', `${q}:${q + n - 1}`, ...(s.cpuFanout ? ['--queue-cpu-fanout'] : [])] : ['--queue-num', String(q)]);
  return [
    ['INPUT', [...iface('-i'), '-p', s.transport, '-m', s.transport, '--dport', String(s.port), ...common, ...queue(s.upQueue)]],
    ['OUTPUT', [...iface('-o'), '-p', s.transport, '-m', s.transport, '--sport', String(s.port), ...common, ...queue(s.downQueue)]],
  ];
}

/** Inserts the rules at the top of INPUT and OUTPUT, for IPv4 and IPv6; undoes them on failure. */
export async function addRules(s: RuleSpec): Promise<void> {
  const done: [string, string, string[]][] = [];
  try {
    for (const tool of TOOLS) {
      for (const [chain, args] of ruleArgs(s)) {
        const [file, argv] = cmd(s.netns, tool, ['-I', chain, '1', ...args]);
        await run(file, argv);
        done.push([tool, chain, args]);
      }
    }
  } catch (e) {
    for (const [tool, chain, args] of done.reverse()) {
      const [file, argv] = cmd(s.netns, tool, ['-D', chain, ...args]);
      await run(file, argv).catch(() => {});
    }
    const err = e as { stderr?: string; message: string };
    throw new Error(`could not add the NFQUEUE rules: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
}

/** Splits one line of `iptables -S` into words (double quotes as iptables prints them). */
export function splitRule(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

export interface FoundRule {
  tool: string;
  chain: string;
  args: string[];
  comment: string;
}

/** Our rules (comment starting with `prefix`) in INPUT and OUTPUT of both tools. */
export async function listRules(opts: { netns?: string; prefix?: string } = {}): Promise<FoundRule[]> {
  const prefix = opts.prefix ?? TAG_PREFIX;
  const found: FoundRule[] = [];
  for (const tool of TOOLS) {
    for (const chain of ['INPUT', 'OUTPUT']) {
      const [file, argv] = cmd(opts.netns, tool, ['-S', chain]);
      let out: string;
      try {
        out = (await run(file, argv)).stdout;
      } catch {
        continue; // no such table here (e.g. IPv6 disabled): nothing of ours either
      }
      for (const line of out.split('\n')) {
        const words = splitRule(line.trim());
        if (words[0] !== '-A' || words[1] !== chain) continue;
        const i = words.indexOf('--comment');
        const comment = i >= 0 ? (words[i + 1] ?? '') : '';
        if (!comment.startsWith(prefix)) continue;
        found.push({ tool, chain, args: words.slice(2), comment });
      }
    }
  }
  return found;
}

/**
 * Deletes our rules: those tagged exactly `tag` when given, else every rule whose comment
 * starts with TAG_PREFIX. Returns what was deleted. Idempotent.
 */
export async function removeRules(opts: { netns?: string; tag?: string } = {}): Promise<FoundRule[]> {
  const rules = await listRules({ netns: opts.netns });
  const mine = rules.filter((r) => (opts.tag === undefined ? true : r.comment === opts.tag));
  const removed: FoundRule[] = [];
  for (const r of mine) {
    const [file, argv] = cmd(opts.netns, r.tool, ['-D', r.chain, ...r.args]);
    try {
      await run(file, argv);
      removed.push(r);
    } catch {
      // gone already (another cleanup raced us)
    }
  }
  return removed;
}

/** The interface of the default route (packet_queue's `-i auto`). */
export async function defaultInterface(netns?: string): Promise<string> {
  const argv = [...(netns ? ['-n', netns] : []), '-j', 'route', 'show', 'default'];
  const { stdout } = await run('ip', argv);
  const routes = JSON.parse(stdout || '[]') as { dev?: string }[];
  const dev = routes.find((r) => r.dev)?.dev;
  if (!dev) throw new Error(`-i auto: there is no default route${netns ? ` in namespace ${netns}` : ''} to take the interface from`);
  return dev;
}

/** Fails with the list of interfaces when `name` does not exist (packet_queue raised ValueError). */
export async function checkInterface(name: string, netns?: string): Promise<void> {
  if (name === 'any') return;
  const argv = [...(netns ? ['-n', netns] : []), '-j', 'link', 'show'];
  const { stdout } = await run('ip', argv);
  const names = (JSON.parse(stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
  if (!names.includes(name)) {
    throw new Error(`there is no interface "${name}"${netns ? ` in namespace ${netns}` : ''}; interfaces: ${names.join(', ')}, or "any", or "auto"`);
  }
}

/**
 * removeRules for the `exit` event, where nothing asynchronous runs any more: lists and
 * deletes synchronously. Best effort; clear-iptables remains for whatever it misses.
 */
export function removeRulesSync(opts: { netns?: string; tag: string }): void {
  for (const tool of TOOLS) {
    for (const chain of ['INPUT', 'OUTPUT']) {
      try {
        const [file, argv] = cmd(opts.netns, tool, ['-S', chain]);
        const out = execFileSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        for (const line of out.split('\n')) {
          const words = splitRule(line.trim());
          const i = words.indexOf('--comment');
          if (words[0] !== '-A' || i < 0 || words[i + 1] !== opts.tag) continue;
          const [f2, a2] = cmd(opts.netns, tool, ['-D', chain, ...words.slice(2)]);
          execFileSync(f2, a2, { stdio: 'ignore' });
        }
      } catch {
        // nothing to do here, or iptables missing: nothing of ours either
      }
    }
  }
}
