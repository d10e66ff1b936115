/**
 * Bricks while a lab runs: `dune firewall NODE` shows a firewall's rules' counters, and with
 * `--rule` (repeatable), `--policy` or `--stateless` replaces its rules as a whole, in one
 * transaction. A rule is the topology's rule table written as words:
 *
 *   dune firewall fw --rule 'action=allow proto=tcp from=client dport=80,443' --rule 'action=allow proto=icmp'
 *
 * Parsing and printing only; the work is @dune/lab's (bricks.ts).
 */
import { Command } from 'commander';
import { DuneError } from '@dune/topology';
import * as lab from '@dune/lab';
import type { Output } from './output.js';
import * as remote from './remote-commands.js';

interface Flags extends remote.SshFlags {
  lab?: string;
  file?: string;
  rule?: string[];
  policy?: string;
  stateless?: boolean;
  json?: boolean;
}

const LISTS = new Set(['src', 'dst', 'sport', 'dport']);

/** `action=allow proto=tcp dport=80,443` → the rule table; values stay strings (the rules' reader checks them). */
export function parseRuleWords(text: string): Record<string, unknown> {
  const rule: Record<string, unknown> = {};
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new DuneError('bad-rule', `"${word}" in rule "${text}" is not key=value`, { hint: "write a rule as words such as 'action=allow proto=tcp from=client dport=80,443'" });
    const key = word.slice(0, eq);
    const value = word.slice(eq + 1);
    if (Object.hasOwn(rule, key)) throw new DuneError('bad-rule', `"${key}" is given twice in rule "${text}"`, { hint: 'list several values with commas: dport=80,443' });
    rule[key] = LISTS.has(key) ? value.split(',') : key === 'stateful' ? value === 'true' ? true : value === 'false' ? false : value : value;
  }
  return rule;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerBrickCommands(program: Command, o: Output): void {
  remote.addSshOptions(program
    .command('firewall')
    .description("a firewall node's rule counters; with --rule, --policy or --stateless, its rules replaced live (one transaction)")
    .argument('<node>', 'the firewall node')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('-f, --file <file>', 'the topology file the lab was built from (finds a lab on other hosts)')
    .option('--rule <words>', "a rule, as 'action=allow|deny proto=tcp|udp|icmp|icmpv6 from=NODE src=NET,.. dst=NET,.. sport=P,.. dport=P,.. stateful=true|false name=TEXT' (repeat for several, in order)", collect)
    .option('--policy <action>', 'what happens to traffic no rule matches: allow or deny')
    .option('--stateless', 'rules are stateless unless they say stateful=true (default: stateful)')
    .option('--json', 'as JSON')
    .addHelpText('after', "\nExamples:\n  dune firewall fw\n  dune firewall fw --rule 'action=allow proto=tcp from=client dport=80' --rule 'action=allow proto=icmp' --policy deny"))
    .action(async (node: string, flags: Flags) => {
      const loc = await lab.locateLab({ ...(flags.lab !== undefined ? { lab: flags.lab } : {}), ...(flags.file !== undefined ? { file: flags.file } : {}) }, 'firewall');
      const opts = remote.sshOptions(flags, o);
      if (flags.rule !== undefined || flags.policy !== undefined || flags.stateless === true) {
        const input: lab.FirewallInput = { rules: (flags.rule ?? []).map(parseRuleWords) };
        if (flags.policy !== undefined) input.policy = flags.policy as 'allow' | 'deny';
        if (flags.stateless === true) input.stateful = false;
        const spec = await lab.setFirewall(loc, node, input, opts);
        if (flags.json) {
          o.out(JSON.stringify(spec, null, 2));
          return;
        }
        o.out(`firewall ${node}: ${spec.rules.length} rule${spec.rules.length === 1 ? '' : 's'}, policy ${spec.policy}`);
        spec.rules.forEach((r, i) => o.out(`  ${i + 1}. ${r.name}`));
        return;
      }
      const s = await lab.labStatus(loc, opts);
      const counters = (s.counters ?? []).filter((c) => c.node === node);
      if (!s.nodes.some((n) => n.node === node)) throw new DuneError('no-such-node', `lab ${s.lab} has no node "${node}"`, { hint: `nodes: ${s.nodes.map((n) => n.node).slice(0, 20).join(', ')}` });
      if (flags.json) {
        o.out(JSON.stringify(counters, null, 2));
        return;
      }
      if (counters.length === 0) throw new DuneError('not-a-brick', `node "${node}" counts nothing: it is not a firewall (or another brick)`, { hint: 'see every brick\'s counters with `dune status`' });
      o.out('PACKETS'.padStart(10) + 'BYTES'.padStart(12) + '  WHAT');
      for (const c of counters) o.out(`${String(c.packets ?? '-').padStart(10)}${String(c.bytes ?? '-').padStart(12)}  ${c.label}`);
    });
}
