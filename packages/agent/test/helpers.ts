/** Shared by the kernel tests: plan fragments, shell-free commands, and leftovers checks. */
import { execFileSync, spawnSync } from 'node:child_process';
import type { Op } from '@dune/compiler';

export const isRoot = process.getuid?.() === 0;
export const ROOT_REASON = 'kernel tests need root (network namespaces, rtnetlink, tc)';
if (!isRoot) console.log(`skipping @dune/agent kernel tests: ${ROOT_REASON}`);

export function sh(argv: string[], input?: string): { code: number; out: string; err: string } {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd ?? '', args, { encoding: 'utf8', input: input ?? '' });
  return { code: r.status ?? 1, out: r.stdout ?? '', err: r.stderr ?? '' };
}

export function nsList(prefix: string): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
}

/** A plan node: its namespace, lo marked and up. */
export function node(lab: string, key: string): Op[] {
  const ns = `dune.${lab}.${key}`;
  return [{ op: 'netns', ns, node: key, alias: `dune:${lab}:${key}:lo` }];
}

export function ns(lab: string, key: string): string {
  return `dune.${lab}.${key}`;
}

/** A veth between a:ia and b:ib, both up. */
export function veth(lab: string, a: string, ia: string, b: string, ib: string, mtu?: number): Op[] {
  return [
    {
      op: 'veth',
      ns: ns(lab, a),
      name: ia,
      peerNs: ns(lab, b),
      peerName: ib,
      alias: `dune:${lab}:${a}:${ia}`,
      peerAlias: `dune:${lab}:${b}:${ib}`,
      ...(mtu ? { mtu } : {}),
    },
  ];
}

export function ping(nsName: string, dst: string, extra: string[] = []): { code: number; out: string } {
  const v6 = dst.includes(':');
  const r = sh(['ip', 'netns', 'exec', nsName, 'ping', ...(v6 ? ['-6'] : []), '-c1', '-W1', ...extra, dst]);
  return { code: r.code, out: r.out + r.err };
}
