/**
 * `netmirage-edge IFACE COREIP VSUBNET APPLICATIONS|max` (reference 4.2), with the `[edge]`
 * group of the setup file (`iface`, `core-ip`, `vsubnet`, `applications` and any long option).
 */
import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { DuneError, choicesHint } from '@dune/topology';
import { requireRoot } from '@dune/agent';
import { listLabs } from '@dune/agent';
import type { Op } from '@dune/compiler';
import { EDGE_DEFAULTS, edgeAdd, edgeLab, edgeRemove, type EdgeArgs } from './edge.js';
import { readSetupFile } from './setup-file.js';
import { LOG_LEVELS, makeLog, type LogLevel } from './util.js';
import { type Io, stdio, runProgram } from './io.js';

const EDGE_KEYS = ['iface', 'core-ip', 'vsubnet', 'applications', 'other-edges', 'clients', 'remove', 'ip-file', 'verbosity', 'log-file', 'rule-in', 'rule-out', 'rule-other', 'table-id'] as const;
type EdgeKey = (typeof EDGE_KEYS)[number];
const camel = (k: string) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function int(v: string, what: string): number {
  if (!/^\d+$/.test(v)) throw new DuneError('bad-argument', `${what} "${v}" is not a number`, { hint: `give ${what} as a whole number` });
  return Number(v);
}

export function buildEdgeProgram(io: Io = stdio): Command {
  const p = new Command('netmirage-edge')
    .description("Configure this edge host's applications' addresses, routes and policy rules for a NetMirage core.")
    .version('0.9.2-dune')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) })
    .argument('[iface]', 'interface facing the core')
    .argument('[core-ip]', "the core's address on that interface's network")
    .argument('[vsubnet]', "this edge's client subnet (CIDR)")
    .argument('[applications]', 'number of application addresses, or max')
    .option('-e, --other-edges <cidrs>', "other edges' subnets, comma-separated: routed via the core")
    .option('-c, --clients <n>', 'core client nodes for this edge: addresses round-robin over that many sub-subnets (default 1)')
    .option('-r, --remove', 'undo a previous configuration exactly (from the state it saved; the arguments are then not needed)')
    .option('-I, --ip-file <file>', 'write the application addresses here, one per line (- for standard output)')
    .addOption(new Option('-v, --verbosity <level>', 'log level (default: warning)').choices([...LOG_LEVELS]))
    .option('-l, --log-file <file>', 'log here (default: standard error)')
    .option('-s, --setup-file <file>', 'INI setup file, group [edge] (default: setup.cfg, if present)')
    .option('--rule-in <p>', `priority of the rule delivering incoming application traffic (default ${EDGE_DEFAULTS.ruleIn})`)
    .option('--rule-out <p>', `priority of the rule sending application traffic to the core (default ${EDGE_DEFAULTS.ruleOut})`)
    .option('--rule-other <p>', `priority the local table's rule moves to (default ${EDGE_DEFAULTS.ruleOther})`)
    .option('--table-id <id>', `routing table for outgoing packets (default ${EDGE_DEFAULTS.tableId})`)
    .addHelpText(
      'after',
      `
Examples:
  netmirage-edge -c 6 eth1 192.0.2.1 10.0.0.0/9 24
  netmirage-edge --remove eth1`,
    );
  p.action(async (iface: string | undefined, coreIp: string | undefined, vsubnet: string | undefined, applications: string | undefined, flags: Record<string, unknown>) => {
    const ini = readSetupFile(flags['setupFile'] as string | undefined);
    const g = ini?.groups.find((x) => x.name === 'edge');
    for (const [k, v] of g?.values ?? []) {
      if (!(EDGE_KEYS as readonly string[]).includes(k)) throw new DuneError('setup-value', `${ini?.file}:${v.line}: [edge] has an unknown key "${k}"`, { hint: choicesHint(k, EDGE_KEYS) });
    }
    const positional: Partial<Record<EdgeKey, string | undefined>> = { iface, 'core-ip': coreIp, vsubnet, applications };
    const val = (k: EdgeKey): string | undefined => {
      const c = positional[k] ?? (flags[camel(k)] as string | boolean | undefined);
      if (c !== undefined) return String(c);
      return g?.values.get(k)?.value;
    };
    const log = makeLog((val('verbosity') ?? 'warning') as LogLevel, val('log-file'), io.err);
    if (!(LOG_LEVELS as readonly string[]).includes(val('verbosity') ?? 'warning')) throw new DuneError('bad-argument', `verbosity "${val('verbosity')}" is not valid`, { hint: choicesHint(val('verbosity') ?? '', LOG_LEVELS) });
    const remove = val('remove') === 'true';
    const dev = val('iface');
    if (dev === undefined) throw new DuneError('bad-argument', 'IFACE is missing', { hint: 'netmirage-edge IFACE COREIP VSUBNET APPLICATIONS|max (or --remove IFACE)' });

    const full = (): EdgeArgs => {
      const missing = (['core-ip', 'vsubnet', 'applications'] as const).filter((k) => val(k) === undefined);
      if (missing.length > 0) throw new DuneError('bad-argument', `${missing.map((m) => m.toUpperCase()).join(', ')} missing`, { hint: 'netmirage-edge IFACE COREIP VSUBNET APPLICATIONS|max' });
      const apps = val('applications') as string;
      const args: EdgeArgs = {
        iface: dev,
        coreIp: val('core-ip') as string,
        vsubnet: val('vsubnet') as string,
        applications: apps === 'max' ? 'max' : int(apps, 'APPLICATIONS'),
        otherEdges: (val('other-edges') ?? '').split(',').map((x) => x.trim()).filter((x) => x !== ''),
        ruleIn: int(val('rule-in') ?? String(EDGE_DEFAULTS.ruleIn), '--rule-in'),
        ruleOut: int(val('rule-out') ?? String(EDGE_DEFAULTS.ruleOut), '--rule-out'),
        ruleOther: int(val('rule-other') ?? String(EDGE_DEFAULTS.ruleOther), '--rule-other'),
        tableId: int(val('table-id') ?? String(EDGE_DEFAULTS.tableId), '--table-id'),
      };
      const c = val('clients');
      if (c !== undefined) args.clients = int(c, '-c/--clients');
      if (apps === 'max' || args.applications !== 0) return args;
      throw new DuneError('bad-argument', 'APPLICATIONS is 0', { hint: 'give at least 1, or max' });
    };

    requireRoot('netmirage-edge');
    if (remove) {
      const configured = listLabs().includes(edgeLab(dev));
      if (!configured && val('core-ip') === undefined) {
        throw new DuneError('edge-not-configured', `netmirage-edge has no saved state for ${dev}: nothing to remove`, {
          hint: 'if it was configured by an older run without state, give the original arguments after --remove',
        });
      }
      const r = await edgeRemove(dev, configured ? { log: (m) => log('info', m) } : { args: full(), log: (m) => log('info', m) });
      const n = (k: Op['op']) => r.ops.filter((o) => o.op === k).length;
      log('info', `removed ${n('addr')} addresses, ${n('route')} routes and ${n('rule')} rules from ${dev}, put back ${n('withdraw')} (lab ${r.lab})`);
      return;
    }
    const r = await edgeAdd(full(), { log: (m) => log('info', m) });
    log('info', `${r.ips.length} application addresses on ${dev}`);
    const ipFile = val('ip-file');
    if (ipFile !== undefined) {
      const text = r.ips.join('\n') + '\n';
      if (ipFile === '-') io.write(text);
      else writeFileSync(ipFile, text);
    }
  });
  return p;
}

export function edgeMain(argv: string[], io: Io = stdio): Promise<number> {
  return runProgram(buildEdgeProgram(io), argv, io);
}
