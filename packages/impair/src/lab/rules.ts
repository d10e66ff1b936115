/**
 * The iptables rules that feed a lab's engine, in one node namespace:
 *
 *   mangle POSTROUTING     -m comment --comment "dune:<lab>:impair" -j DUNE-IMPAIR
 *   mangle PREROUTING      -m comment --comment "dune:<lab>:impair" -j DUNE-IMPAIR-IN
 *   mangle DUNE-IMPAIR     -o eth1 -m mark ! --mark 0x1d0e1d0e -m comment --comment "dune:<lab>:impair q=1001" -j NFQUEUE --queue-num 1001
 *   mangle DUNE-IMPAIR-IN  -i eth0 ...                                                                             --queue-num 1000
 *
 * A direction a→b of a veth between two node namespaces is queued as it arrives in b
 * (DUNE-IMPAIR-IN, `-i` b's end): there the packet no longer belongs to a socket of a (the
 * veth crossing orphaned it), so what the engine holds does not throttle the sender's TCP
 * (TCP Small Queues, the send buffer). Other directions (a bridge port or another host on
 * the far side, or a direction that duplicates) are queued as they leave (DUNE-IMPAIR, `-o`).
 *
 * IPv4 and IPv6 alike (iptables-restore and ip6tables-restore with the same text; Debian's
 * iptables-nft uses the xtables NFQUEUE target, which our kernel has, where nft's own
 * `queue` statement is not). POSTROUTING sees forwarded and locally sent packets alike, after
 * routing and before the egress qdisc: the engine's delay comes before an htb rate (and the
 * mangle table, priority -150, before the nftables loss chain at priority 0). Packets the
 * engine sends itself (duplicates) carry ENGINE_MARK and are not queued again.
 *
 * The namespace's whole rule set is rewritten at once: `iptables-restore --noflush` with the
 * chain declared (which empties it) and every rule; one transaction per family, so a packet
 * meets either the old set or the new one. The jump from POSTROUTING is added with the first
 * set and removed with the last. Everything carries the lab's tag: nothing else is touched.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ENGINE_MARK } from '../kernel/iptables.js';

export const LAB_CHAIN = 'DUNE-IMPAIR';
/** Directions queued where they arrive (the far end of a veth), jumped to from PREROUTING. */
export const LAB_CHAIN_IN = 'DUNE-IMPAIR-IN';

export const labRuleTag = (lab: string): string => `dune:${lab}:impair`;

export interface QueueRule {
  dev: string;
  nfqueue: number;
  /** `out` (default): leaving by dev (POSTROUTING, `-o`); `in`: arriving by dev (PREROUTING, `-i`). */
  dir?: 'in' | 'out';
  /** Only TCP, or all but TCP (default: every packet). */
  proto?: 'tcp' | 'other';
  /** Queues nfqueue .. nfqueue+balance-1, by a hash of the addresses (nft-rules only; default 1). */
  balance?: number;
}

const mark = `0x${ENGINE_MARK.toString(16)}`;

function jump(lab: string): string {
  return `POSTROUTING -m comment --comment "${labRuleTag(lab)}" -j ${LAB_CHAIN}`;
}

function jumpIn(lab: string): string {
  return `PREROUTING -m comment --comment "${labRuleTag(lab)}" -j ${LAB_CHAIN_IN}`;
}

/** The restore text that makes the namespace's rules exactly `rules` (`addJump`: the jump is not there yet). */
export function rulesScript(lab: string, rules: readonly QueueRule[], addJump: boolean): string {
  const lines = ['*mangle', `:${LAB_CHAIN} - [0:0]`, `:${LAB_CHAIN_IN} - [0:0]`];
  if (addJump) lines.push(`-A ${jump(lab)}`, `-A ${jumpIn(lab)}`);
  for (const r of [...rules].sort((a, b) => a.nfqueue - b.nfqueue)) {
    if (!/^[A-Za-z0-9_.@+:-]{1,15}$/.test(r.dev)) throw new Error(`not an interface name: ${JSON.stringify(r.dev)}`);
    const [chain, match] = r.dir === 'in' ? [LAB_CHAIN_IN, '-i'] : [LAB_CHAIN, '-o'];
    const proto = r.proto === 'tcp' ? ' -p tcp' : r.proto === 'other' ? ' ! -p tcp' : '';
    lines.push(`-A ${chain} ${match} ${r.dev}${proto} -m mark ! --mark ${mark} -m comment --comment "${labRuleTag(lab)} q=${r.nfqueue}" -j NFQUEUE --queue-num ${r.nfqueue}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The restore text that removes the jump and the chain. */
export function removeScript(lab: string): string {
  return ['*mangle', `-D ${jump(lab)}`, `-D ${jumpIn(lab)}`, `-F ${LAB_CHAIN}`, `-X ${LAB_CHAIN}`, `-F ${LAB_CHAIN_IN}`, `-X ${LAB_CHAIN_IN}`, 'COMMIT', ''].join('\n');
}

/** Removes one jump (a dead engine's leftover) from POSTROUTING (`in`: PREROUTING); fails when there is none. */
export function removeJumpScript(lab: string, dir: 'in' | 'out' = 'out'): string {
  return ['*mangle', `-D ${dir === 'in' ? jumpIn(lab) : jump(lab)}`, 'COMMIT', ''].join('\n');
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** argv in namespace `ns` (a name under /run/netns), never through a shell. */
export function runInNs(ns: string, argv: readonly string[], input?: string, timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr + e.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/** The families to write rules for: IPv6 only where the kernel has it. */
export function ruleTools(): string[] {
  return existsSync('/proc/net/if_inet6') ? ['iptables-restore', 'ip6tables-restore'] : ['iptables-restore'];
}

/** Runs one restore text for every family in `ns`; throws naming the tool and its message. */
export async function restoreInNs(ns: string, script: string): Promise<void> {
  for (const tool of ruleTools()) {
    const r = await runInNs(ns, [tool, '-w', '--noflush'], script);
    if (r.code !== 0) {
      const why = r.code === 127 ? `${tool} is not installed (apt-get install iptables)` : (r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`);
      throw new Error(`${tool} in ${ns}: ${why}`);
    }
  }
}

const shQuote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
const RESTORE_EOF = 'DUNE_IMPAIR_RULES_EOF';
const MARK = '@@dune-impair-rules';

/**
 * Runs restore texts in many namespaces with one process started from here: a `sh` reading a
 * script on its stdin that runs, per namespace and family, `nsenter --net=… -- iptables-restore`
 * with the text as a here-document, and reports each exit status on stderr after that
 * command's own messages. Starting a process from a large one (this engine) costs more than
 * the restore itself; forks from a small shell are cheap. Namespace names are quoted; the
 * texts come from rulesScript (device names checked there) and are not interpreted by the
 * shell (quoted here-document). Returns each item's error, undefined when it succeeded.
 */
export async function restoreMany(items: readonly { ns: string; script: string }[]): Promise<(Error | undefined)[]> {
  const tools = ruleTools();
  const lines: string[] = [];
  items.forEach(({ ns, script }, i) => {
    if (script.split('\n').includes(RESTORE_EOF)) throw new Error('a restore text holds the here-document delimiter');
    for (const tool of tools) {
      lines.push(`nsenter --net=${shQuote(`/run/netns/${ns}`)} -- ${tool} -w --noflush <<'${RESTORE_EOF}'`, script.replace(/\n$/, ''), RESTORE_EOF);
      lines.push(`echo "${MARK} ${i} ${tool} $?" >&2`);
    }
  });
  const r = await new Promise<RunResult>((resolve) => {
    const child = spawn('sh', ['-s'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => resolve({ code: 127, stdout: '', stderr: stderr + e.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: '', stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(`${lines.join('\n')}\n`);
  });
  const failed: (Error | undefined)[] = items.map(() => undefined);
  const done = items.map(() => 0);
  let text = '';
  for (const line of r.stderr.split('\n')) {
    const m = new RegExp(`^${MARK} (\\d+) (\\S+) (\\d+)$`).exec(line);
    if (m === null) {
      if (line !== '') text += `${line}\n`;
      continue;
    }
    const i = Number(m[1]);
    const code = Number(m[3]);
    done[i] = (done[i] ?? 0) + 1;
    if (code !== 0 && failed[i] === undefined) {
      failed[i] = new Error(`${m[2]} in ${items[i]!.ns}: ${code === 127 ? `${m[2]} is not installed (apt-get install iptables)` : text.trim() || `exit ${code}`}`);
    }
    text = '';
  }
  const out = items.map((it, i) =>
    failed[i] ?? (done[i] === tools.length ? undefined : new Error(`rules in ${it.ns}: the rule writer stopped first (exit ${r.code}) ${(text || r.stderr).trim().slice(-300)}`)));
  return out;
}

/** Removes a dead engine's jumps from POSTROUTING and PREROUTING (there may be none). */
export async function removeStaleJumps(ns: string, lab: string): Promise<number> {
  let removed = 0;
  for (const tool of ruleTools()) {
    // A dead engine added at most one per rule write; a few tries cover any history.
    for (const dir of ['out', 'in'] as const) {
      for (let i = 0; i < 4; i++) {
        const r = await runInNs(ns, [tool, '-w', '--noflush'], removeJumpScript(lab, dir));
        if (r.code !== 0) break;
        removed++;
      }
    }
  }
  return removed;
}

/**
 * Our lines in `iptables-save -t mangle` and `ip6tables-save -t mangle` (ns null: the
 * namespace this process is in): the chain and every rule tagged for `lab` (any lab: `dune:`).
 */
export async function listLabRules(ns: string | null, lab?: string): Promise<string[]> {
  const tag = lab === undefined ? 'dune:' : labRuleTag(lab);
  const out: string[] = [];
  for (const tool of ['iptables-save', 'ip6tables-save']) {
    const r = ns === null ? await runHere([tool, '-t', 'mangle']) : await runInNs(ns, [tool, '-t', 'mangle']);
    if (r.code !== 0) continue;
    for (const line of r.stdout.split('\n')) {
      if (line.includes(`"${tag}`) || line.includes(` ${LAB_CHAIN}`) || line.startsWith(`:${LAB_CHAIN} `)) out.push(`${tool.replace('-save', '')} ${line}`);
    }
  }
  return out;
}

function runHere(argv: readonly string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd as string, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => resolve({ code: 127, stdout, stderr: e.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
