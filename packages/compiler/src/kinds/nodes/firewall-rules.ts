/**
 * A firewall's rules: read from plain values (a topology's node table, or `dune firewall`
 * and the API for a live change), and turned into one nftables transaction.
 *
 *   { policy, stateful, rules: [{ action, proto, from, src, dst, sport, dport, stateful, name }] }
 *     ─readFirewall─▶ FirewallSpec ─firewallOp(ports)─▶ NftOp (bridge table: which port a frame
 *     came in by, as a mark; inet table: the rules, in order, each with its counter)
 *
 * The inet table sees bridged IPv4 and IPv6 through br_netfilter (the kind sets
 * net.bridge.bridge-nf-call-ip{,6}tables in the node), with connection tracking: a stateful
 * allow marks its connection, and the replies of marked connections pass. Frames that are
 * not IP (ARP) and IPv6 neighbour discovery always pass: rules are about traffic.
 */
import { choicesHint } from '@dune/topology';
import { formatNetwork, parsePrefix, type Family } from '../../cidr.js';
import type { NftCounter, NftOp } from '../../plan.js';
import { BRICK_INET_TABLE, BRICK_TABLE, brickOp, counterDecls, nftString } from './nft.js';

export const FIREWALL_ACTIONS = ['allow', 'deny'] as const;
export const FIREWALL_PROTOS = ['any', 'tcp', 'udp', 'icmp', 'icmpv6'] as const;
export const FIREWALL_KEYS = ['policy', 'stateful', 'rules'] as const;
export const RULE_KEYS = ['action', 'proto', 'from', 'src', 'dst', 'sport', 'dport', 'stateful', 'name'] as const;

export type FirewallAction = (typeof FIREWALL_ACTIONS)[number];
export type FirewallProto = (typeof FIREWALL_PROTOS)[number];

export interface FirewallRule {
  action: FirewallAction;
  proto: FirewallProto;
  /** Only traffic that enters from the port facing this neighbour (a direction); absent: any. */
  from?: string;
  /** Networks (`10.0.0.0/8`, `fd00::/64`), one family per rule. */
  src?: string[];
  dst?: string[];
  /** Port ranges, inclusive (tcp and udp only). */
  sport?: [number, number][];
  dport?: [number, number][];
  /** An allowed connection's replies pass too (allow rules only). */
  stateful: boolean;
  /** What `dune status` calls its counter. */
  name: string;
}

export interface FirewallSpec {
  /** What happens to traffic no rule matches. */
  policy: FirewallAction;
  /** The default of every rule's `stateful`. */
  stateful: boolean;
  rules: FirewallRule[];
}

/** A problem in the input, at a dotted path (`rules.1.dport`). */
export type FirewallReport = (path: string, message: string, hint?: string) => void;

function isTable(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function readFirewall(input: Record<string, unknown>, neighbours: readonly string[], report: FirewallReport): FirewallSpec {
  const spec: FirewallSpec = { policy: 'deny', stateful: true, rules: [] };
  const choice = <T extends string>(path: string, v: unknown, list: readonly T[], what: string): T | undefined => {
    if (typeof v === 'string' && (list as readonly string[]).includes(v)) return v as T;
    report(path, `${path} = ${JSON.stringify(v)} is not ${what}`, typeof v === 'string' ? choicesHint(v, list) : `use one of: ${list.join(', ')}`);
    return undefined;
  };
  const bool = (path: string, v: unknown): boolean | undefined => {
    if (typeof v === 'boolean') return v;
    report(path, `${path} must be true or false, got ${JSON.stringify(v)}`, `write ${path.split('.').pop()} = true`);
    return undefined;
  };
  if (input['policy'] !== undefined) spec.policy = choice('policy', input['policy'], FIREWALL_ACTIONS, 'a policy') ?? spec.policy;
  if (input['stateful'] !== undefined) spec.stateful = bool('stateful', input['stateful']) ?? spec.stateful;
  const rules = input['rules'];
  if (rules === undefined) return spec;
  if (!Array.isArray(rules)) {
    report('rules', `rules must be an array of rules, got ${JSON.stringify(rules)}`, 'write rules = [{ action = "allow", proto = "tcp", dport = 80 }]');
    return spec;
  }
  rules.forEach((raw: unknown, i) => {
    const at = `rules.${i}`;
    if (!isTable(raw)) {
      report(at, `${at} must be a table such as { action = "allow", proto = "tcp", dport = 80 }, got ${JSON.stringify(raw)}`);
      return;
    }
    for (const k of Object.keys(raw)) {
      if (!(RULE_KEYS as readonly string[]).includes(k)) report(`${at}.${k}`, `unknown key "${k}" in ${at}`, choicesHint(k, RULE_KEYS));
    }
    if (raw['action'] === undefined) {
      report(at, `${at} has no action`, 'add action = "allow" or action = "deny"');
      return;
    }
    const action = choice(`${at}.action`, raw['action'], FIREWALL_ACTIONS, 'an action');
    const proto = raw['proto'] === undefined ? 'any' : choice(`${at}.proto`, raw['proto'], FIREWALL_PROTOS, 'a protocol');
    const rule: FirewallRule = { action: action ?? 'deny', proto: proto ?? 'any', stateful: spec.stateful, name: '' };
    if (raw['stateful'] !== undefined) rule.stateful = bool(`${at}.stateful`, raw['stateful']) ?? rule.stateful;
    if (raw['from'] !== undefined) {
      const f = raw['from'];
      if (typeof f === 'string' && neighbours.includes(f)) rule.from = f;
      else report(`${at}.from`, `${at}.from = ${JSON.stringify(f)} is not a neighbour of the firewall (${neighbours.join(', ')})`, typeof f === 'string' ? choicesHint(f, neighbours) : undefined);
    }
    let family: Family | undefined;
    for (const k of ['src', 'dst'] as const) {
      const v = raw[k];
      if (v === undefined) continue;
      const list = Array.isArray(v) ? v : [v];
      const nets: string[] = [];
      list.forEach((x: unknown, j) => {
        const path = Array.isArray(v) ? `${at}.${k}.${j}` : `${at}.${k}`;
        const p = typeof x === 'string' ? parsePrefix(x) : `${JSON.stringify(x)} is not an address`;
        if (typeof p === 'string') {
          report(path, `${path}: ${p}`, 'write an address or a network, e.g. "10.0.0.0/8" or "fd00::/64"');
          return;
        }
        if (family !== undefined && p.family !== family) {
          report(path, `${path}: ${x as string} is IPv${p.family}, but ${at} already matches IPv${family}`, 'one rule matches one family: write a rule per family');
          return;
        }
        family = p.family;
        nets.push(formatNetwork(p));
      });
      if (list.length === 0) report(`${at}.${k}`, `${at}.${k} is empty`, `leave ${k} out to match any address`);
      rule[k] = nets;
    }
    if ((proto === 'icmp' && family === 6) || (proto === 'icmpv6' && family === 4)) {
      report(`${at}.proto`, `${at} matches ${proto} with IPv${family} addresses`, proto === 'icmp' ? 'use proto = "icmpv6" for IPv6' : 'use proto = "icmp" for IPv4');
    }
    for (const k of ['sport', 'dport'] as const) {
      const v = raw[k];
      if (v === undefined) continue;
      if (proto !== 'tcp' && proto !== 'udp') {
        report(`${at}.${k}`, `${at} has ${k} but proto = "${proto ?? 'any'}": ports belong to tcp and udp`, `add proto = "tcp" or proto = "udp" to ${at}`);
        continue;
      }
      const list = Array.isArray(v) ? v : [v];
      const ranges: [number, number][] = [];
      list.forEach((x: unknown, j) => {
        const path = Array.isArray(v) ? `${at}.${k}.${j}` : `${at}.${k}`;
        const r = portRange(x);
        if (r === undefined) report(path, `${path} = ${JSON.stringify(x)} is not a port or a range`, 'write a port (80), a range ("8000-8080") or a list of them ([80, 443])');
        else ranges.push(r);
      });
      rule[k] = ranges;
    }
    rule.name = typeof raw['name'] === 'string' && raw['name'] !== '' ? raw['name'] : describeRule(rule);
    spec.rules.push(rule);
  });
  return spec;
}

function portRange(x: unknown): [number, number] | undefined {
  const ok = (n: number) => Number.isInteger(n) && n >= 0 && n <= 65535;
  if (typeof x === 'number') return ok(x) ? [x, x] : undefined;
  if (typeof x !== 'string') return undefined;
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(x);
  if (!m) return undefined;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return ok(lo) && ok(hi) && lo <= hi ? [lo, hi] : undefined;
}

const ports = (rs: [number, number][]) => rs.map(([a, b]) => (a === b ? String(a) : `${a}-${b}`)).join(',');

/** `allow tcp from h1 dst 10.0.0.0/8 dport 80,443 (stateful)`: a rule as one line. */
export function describeRule(r: FirewallRule): string {
  const parts: string[] = [r.action, r.proto];
  if (r.from !== undefined) parts.push(`from ${r.from}`);
  if (r.src) parts.push(`src ${r.src.join(',')}`);
  if (r.dst) parts.push(`dst ${r.dst.join(',')}`);
  if (r.sport) parts.push(`sport ${ports(r.sport)}`);
  if (r.dport) parts.push(`dport ${ports(r.dport)}`);
  if (r.action === 'allow' && r.stateful) parts.push('(stateful)');
  return parts.join(' ');
}

/** Sysctls a firewall node needs: bridged IP goes through the inet hooks (br_netfilter), per namespace. */
export const FIREWALL_SYSCTLS: readonly [string, string][] = [
  ['net.bridge.bridge-nf-call-iptables', '1'],
  ['net.bridge.bridge-nf-call-ip6tables', '1'],
];

/** The connection mark of a stateful allow; the port marks are 1..N (the port's position + 1). */
const CT_ALLOWED = '0x00000001';

/** The firewall's one nftables transaction, for its ports (kernel name and the neighbour each faces). */
export function firewallOp(spec: FirewallSpec, portList: readonly { name: string; peer: string }[], ns: string, node: string): NftOp {
  const n = { ns, node: { id: node, kind: 'firewall' } };
  const mark = (peer: string) => `0x${(portList.findIndex((p) => p.peer === peer) + 1).toString(16).padStart(8, '0')}`;
  const anyStateful = spec.rules.some((r) => r.action === 'allow' && r.stateful);
  const counters: NftCounter[] = [];
  const lines: string[] = [];
  spec.rules.forEach((r, i) => {
    counters.push({ table: BRICK_INET_TABLE, name: `rule${i}`, label: `rule ${i + 1}: ${r.name}` });
    const m: string[] = [];
    if (r.from !== undefined) m.push(`meta mark ${mark(r.from)}`);
    const fam = [...(r.src ?? []), ...(r.dst ?? [])].some((x) => x.includes(':')) ? 'ip6' : 'ip';
    if (r.src) m.push(`${fam} saddr { ${r.src.join(', ')} }`);
    if (r.dst) m.push(`${fam} daddr { ${r.dst.join(', ')} }`);
    if (r.proto !== 'any') m.push(`meta l4proto ${r.proto === 'icmpv6' ? 'ipv6-icmp' : r.proto}`);
    if (r.sport) m.push(`${r.proto} sport { ${ports(r.sport).replaceAll(',', ', ')} }`);
    if (r.dport) m.push(`${r.proto} dport { ${ports(r.dport).replaceAll(',', ', ')} }`);
    const verdict = r.action === 'allow' ? (r.stateful ? `ct mark set ${CT_ALLOWED} accept` : 'accept') : 'drop';
    lines.push(`    ${[...m, `counter name "rule${i}"`, verdict].join(' ')}`);
  });
  if (anyStateful) counters.push({ table: BRICK_INET_TABLE, name: 'replies', label: 'later packets of allowed connections, both ways (stateful)' });
  counters.push({ table: BRICK_INET_TABLE, name: 'unmatched', label: `no rule matched: ${spec.policy}` });
  return brickOp(n, [BRICK_TABLE, BRICK_INET_TABLE], [
    `table ${BRICK_TABLE} {`,
    '  chain ports {',
    '    type filter hook prerouting priority -300; policy accept;',
    ...portList.map((p) => `    iifname ${nftString(p.name)} meta mark set ${mark(p.peer)}`),
    '  }',
    '}',
    `table ${BRICK_INET_TABLE} {`,
    ...counterDecls(counters, BRICK_INET_TABLE),
    '  chain filter {',
    '    type filter hook forward priority 0; policy accept;',
    '    icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept',
    ...(anyStateful ? [`    ct mark ${CT_ALLOWED} ct state established,related counter name "replies" accept`] : []),
    ...lines,
    `    counter name "unmatched" ${spec.policy === 'allow' ? 'accept' : 'drop'}`,
    '  }',
    '}',
  ], counters);
}
