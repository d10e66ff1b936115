/**
 * The experiment file: TOML → a validated Experiment, every problem located (file:line:col)
 * and reported together, as the topology reader does.
 *
 *   text ──parseTomlText──▶ table ──locateToml──▶ + locations
 *        ──readExperiment──▶ Experiment: topology read (file or inline), variables expanded
 *          and their targets checked against the topology, roles split into argv with their
 *          placeholders checked, metrics bound to roles and parsers
 *
 * Nothing here touches a lab: `dune run` validates the whole file before building anything.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, resolve as resolvePath } from 'node:path';
import {
  choicesHint, CommandSyntaxError, Diagnostics, DuneError, locateToml, parseDuneTomlTable, parseDurationUs, parseImpairmentAssignments,
  parseTopology, parseTomlText, splitCommand, TopologyError,
  type SourceLoc, type TomlLocator, type TomlPath, type TomlTable, type TomlValue, type Topology,
} from '@dune/topology';
import { METRIC_PARSERS, type MetricParser, type ParserDef } from './metrics.js';

export const ORDERS = ['shuffled', 'sequential'] as const;
export type Order = (typeof ORDERS)[number];

/** What a variable changes in the lab. */
export type Target =
  /** One direction: traffic leaving `node:dev`, changed live. */
  | { kind: 'egress'; node: string; dev: string; key: string; text: string }
  /** Both directions of the link between two nodes (interfaces optional), changed live. */
  | { kind: 'link'; a: string; aDev?: string; b: string; bDev?: string; key: string; live: boolean; text: string }
  /** A node setting (`r1.sysctls.net.ipv4.tcp_congestion_control`): the lab is converged. */
  | { kind: 'node'; node: string; path: string[]; text: string };

export interface Variable {
  name: string;
  /** Values as written in the file (strings or numbers), in order. */
  values: TomlValue[];
  targets: Target[];
  loc: SourceLoc;
}

export type Readiness =
  | { kind: 'port'; port: number; timeoutMs: number }
  | { kind: 'line'; pattern: RegExp; timeoutMs: number }
  | { kind: 'delay'; ms: number };

export interface Role {
  name: string;
  node: string;
  /** argv words with `{placeholders}` still in them. */
  argv: string[];
  server: boolean;
  /** Started with the next roles (joined before the next non-parallel role). Clients only. */
  parallel: boolean;
  ready?: Readiness;
  /** Clients: killed and the run failed after this long. */
  timeoutMs: number;
  /** Seconds to wait before starting it (mpf's `delay`). */
  delayMs: number;
  user?: string;
  env?: Record<string, string>;
  loc: SourceLoc;
}

export interface Metric {
  name: string;
  role: string;
  parser: MetricParser;
  /** iperf3/ping: which field; json: a dotted path. */
  field?: string;
  pattern?: RegExp;
  take: 'first' | 'last' | 'mean' | 'sum' | 'count';
  unit: string;
  loc: SourceLoc;
}

export interface PlotSpec {
  metric: string;
  x: string;
}

export interface Experiment {
  file: string;
  name: string;
  /** The topology as read (before any variable is applied). */
  topology: Topology;
  /** The topology's TOML table and locator, to apply node settings to. */
  topologyDoc: TomlTable;
  topologyLocator: TomlLocator;
  /** Where the topology came from: a file, or `inline`. */
  topologySource: string;
  lab: string;
  repetitions: number;
  seed: number;
  order: Order;
  settleMs: number;
  variables: Variable[];
  roles: Role[];
  metrics: Metric[];
  plots: PlotSpec[];
}

const TOP_KEYS = ['experiment', 'variables', 'roles', 'metrics', 'plots', 'topology', 'infrastructure'] as const;
const EXPERIMENT_KEYS = ['name', 'topology', 'lab', 'repetitions', 'seed', 'order', 'settle'] as const;
const VARIABLE_KEYS = ['values', 'from', 'to', 'step', 'unit', 'set'] as const;
const ROLE_KEYS = ['name', 'node', 'run', 'server', 'parallel', 'ready', 'timeout', 'delay', 'user', 'env'] as const;
const READY_KEYS = ['port', 'line', 'delay', 'timeout'] as const;
const METRIC_KEYS = ['role', 'parse', 'field', 'path', 'pattern', 'take', 'unit'] as const;
const TAKES = ['first', 'last', 'mean', 'sum', 'count'] as const;
/** Link keys that need the lab converged rather than a live change. */
const STRUCTURAL_LINK_KEYS = ['mtu', 'metric'];
const BUILTIN_PLACEHOLDERS = ['repetition', 'run', 'seed', 'lab'];
const MAX_RUNS = 100_000;

function isTable(v: unknown): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Reads and validates an experiment file; throws a TopologyError listing every problem. */
export function readExperiment(file: string): Experiment {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new DuneError('file-unreadable', `cannot read experiment file ${file}: ${code}`, { hint: code === 'ENOENT' ? 'check the path' : 'check the file permissions' });
  }
  return parseExperiment(text, file);
}

/** Experiment text → Experiment; `file` names it in messages and anchors relative paths. */
export function parseExperiment(text: string, file: string): Experiment {
  const d = new Diagnostics();
  const doc = parseTomlText(text, file, d);
  if (doc === undefined) {
    d.throwIfErrors();
    throw new Error('unreachable: a TOML parse failure always records an error');
  }
  const r = new Reader(file, locateToml(text, file), d);
  const exp = r.experiment(doc);
  d.throwIfErrors();
  return exp as Experiment;
}

/** `{name}` placeholders of one word: the names, or a problem. */
export function placeholders(word: string): { names: string[]; problem?: string } {
  const names: string[] = [];
  for (let i = 0; i < word.length; i++) {
    const c = word[i];
    if (c === '{') {
      if (word[i + 1] === '{') {
        i++;
        continue;
      }
      const end = word.indexOf('}', i);
      if (end < 0) return { names, problem: `"{" without "}" in "${word}"` };
      names.push(word.slice(i + 1, end));
      i = end;
    } else if (c === '}') {
      if (word[i + 1] === '}') {
        i++;
        continue;
      }
      return { names, problem: `"}" without "{" in "${word}" (write "}}" for a literal one)` };
    }
  }
  return { names };
}

/** Replaces `{name}` by `lookup(name)`; `{{` and `}}` are literal braces. */
export function substitute(word: string, lookup: (name: string) => string): string {
  return word.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, name: string | undefined) => (m === '{{' ? '{' : m === '}}' ? '}' : lookup(name as string)));
}

class Reader {
  constructor(
    private readonly file: string,
    private readonly loc: TomlLocator,
    private readonly d: Diagnostics,
  ) {}

  private at(path: TomlPath): SourceLoc {
    return this.loc.valueLoc(path);
  }

  private keyAt(path: TomlPath): SourceLoc {
    return this.loc.keyLoc(path);
  }

  private keys(t: TomlTable, path: TomlPath, allowed: readonly string[]): void {
    for (const k of Object.keys(t)) {
      if (!allowed.includes(k)) this.d.error('unknown-key', `unknown key "${k}"${path.length ? ` in [${path.join('.')}]` : ''}`, this.keyAt([...path, k]), choicesHint(k, allowed));
    }
  }

  private str(t: TomlTable, path: TomlPath, key: string): string | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') {
      this.d.error('bad-type', `${[...path, key].join('.')} must be a string`, this.at([...path, key]));
      return undefined;
    }
    return v;
  }

  private int(t: TomlTable, path: TomlPath, key: string, min: number, max: number): number | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.d.error('bad-value', `${[...path, key].join('.')} must be a whole number from ${min} to ${max}`, this.at([...path, key]));
      return undefined;
    }
    return v;
  }

  private bool(t: TomlTable, path: TomlPath, key: string): boolean | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') {
      this.d.error('bad-type', `${[...path, key].join('.')} must be true or false`, this.at([...path, key]));
      return undefined;
    }
    return v;
  }

  private duration(t: TomlTable, path: TomlPath, key: string): number | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    try {
      if (typeof v !== 'string' && typeof v !== 'number') throw new Error('not a duration');
      return parseDurationUs(v, 's') / 1000;
    } catch {
      this.d.error('bad-unit', `${[...path, key].join('.')} = ${JSON.stringify(v)} is not a duration`, this.at([...path, key]), 'write it with a unit, e.g. "500ms" or "10s"');
      return undefined;
    }
  }

  experiment(doc: TomlTable): Partial<Experiment> {
    this.keys(doc, [], TOP_KEYS);
    const e = isTable(doc['experiment']) ? doc['experiment'] : {};
    if (doc['experiment'] !== undefined && !isTable(doc['experiment'])) this.d.error('bad-type', '[experiment] must be a table', this.at(['experiment']));
    this.keys(e, ['experiment'], EXPERIMENT_KEYS);
    const base = basename(this.file, extname(this.file));
    const name = this.str(e, ['experiment'], 'name') ?? base;
    // The lab is the experiment's own (not the topology's), so a lab someone brought up from
    // the same topology file is never taken over, and a leftover of this experiment is known.
    const lab = this.str(e, ['experiment'], 'lab') ?? defaultLabName(base);
    const topo = this.topology(doc, e, lab);
    const order = this.str(e, ['experiment'], 'order') ?? 'shuffled';
    if (!(ORDERS as readonly string[]).includes(order)) this.d.error('bad-value', `order "${order}" is not known`, this.at(['experiment', 'order']), choicesHint(order, ORDERS));
    const variables = this.variables(doc, topo?.topology);
    const roles = this.roles(doc, topo?.topology, variables);
    const metrics = this.metrics(doc, roles);
    const plots = this.plots(doc, metrics, variables);
    const repetitions = this.int(e, ['experiment'], 'repetitions', 1, 10_000) ?? 1;
    const runs = variables.reduce((n, v) => n * Math.max(1, v.values.length), 1) * repetitions;
    if (runs > MAX_RUNS) this.d.error('too-many-runs', `${runs} runs (combinations × repetitions) is more than ${MAX_RUNS}`, this.at(['variables']), 'fewer values or repetitions, or split the experiment');
    if (roles.length === 0) this.d.error('no-roles', 'the experiment has no roles: nothing would run', this.at([]), 'add a [[roles]] table with node = "..." and run = "..."');
    return {
      file: this.file,
      name,
      ...(topo ? { topology: topo.topology, topologyDoc: topo.doc, topologyLocator: topo.locator, topologySource: topo.source } : {}),
      lab,
      repetitions,
      seed: this.int(e, ['experiment'], 'seed', 0, 2 ** 32 - 1) ?? 0,
      order: order as Order,
      settleMs: this.duration(e, ['experiment'], 'settle') ?? 0,
      variables,
      roles,
      metrics,
      plots,
    };
  }

  private topology(doc: TomlTable, e: TomlTable, lab: string): { topology: Topology; doc: TomlTable; locator: TomlLocator; source: string } | undefined {
    const ref = this.str(e, ['experiment'], 'topology');
    const inline = doc['topology'] !== undefined || doc['infrastructure'] !== undefined;
    const labOpt = { lab };
    if (ref !== undefined && inline) {
      this.d.error('two-topologies', 'the experiment names a topology file and also has an inline [topology]', this.at(['experiment', 'topology']), 'keep one of them');
      return undefined;
    }
    if (ref === undefined && !inline) {
      this.d.error('no-topology', 'the experiment has no topology', this.at([]), 'add topology = "FILE.toml" under [experiment] (relative to this file), or an inline [topology] table');
      return undefined;
    }
    try {
      if (ref !== undefined) {
        const path = isAbsolute(ref) ? ref : resolvePath(dirname(this.file), ref);
        let text: string;
        try {
          text = readFileSync(path, 'utf8');
        } catch (err) {
          this.d.error('file-unreadable', `cannot read topology file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, this.at(['experiment', 'topology']), 'paths are relative to the experiment file');
          return undefined;
        }
        const topology = parseTopology(text, path, labOpt);
        if (topology.format !== 'dune-toml') {
          return { topology, doc: {}, locator: locateToml('', path), source: path };
        }
        const sub = new Diagnostics();
        const tdoc = parseTomlText(text, path, sub) as TomlTable;
        return { topology, doc: tdoc, locator: locateToml(text, path), source: path };
      }
      const tdoc: TomlTable = {};
      if (doc['topology'] !== undefined) tdoc['topology'] = doc['topology'];
      if (doc['infrastructure'] !== undefined) tdoc['infrastructure'] = doc['infrastructure'];
      return { topology: parseDuneTomlTable(tdoc, this.loc, labOpt), doc: tdoc, locator: this.loc, source: 'inline' };
    } catch (err) {
      if (err instanceof TopologyError) {
        for (const x of err.diagnostics) this.d.add(x);
        return undefined;
      }
      if (err instanceof DuneError) {
        this.d.add({ ...err.toDiagnostic(), loc: err.loc ?? this.at(['experiment', 'topology']) });
        return undefined;
      }
      throw err;
    }
  }

  private variables(doc: TomlTable, topo: Topology | undefined): Variable[] {
    const vs = doc['variables'];
    if (vs === undefined) return [];
    if (!isTable(vs)) {
      this.d.error('bad-type', '[variables] must be a table of name = values', this.at(['variables']));
      return [];
    }
    const out: Variable[] = [];
    const reserved = new Set([...BUILTIN_PLACEHOLDERS]);
    for (const [name, spec] of Object.entries(vs)) {
      const path = ['variables', name];
      if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name) || reserved.has(name) || name.startsWith('addr')) {
        this.d.error('bad-variable-name', `"${name}" cannot be a variable name`, this.keyAt(path), `a name is a letter or "_" then letters, digits, "_", "-" or "."; not one of ${[...reserved].join(', ')}, and not starting with "addr"`);
        continue;
      }
      let values: TomlValue[] | undefined;
      let targets: Target[] = [];
      if (Array.isArray(spec)) {
        values = spec;
      } else if (isTable(spec)) {
        this.keys(spec, path, VARIABLE_KEYS);
        values = this.values(spec, path);
        targets = this.targets(spec, path, topo);
      } else {
        this.d.error('bad-type', `variable ${name} must be a list of values or a table { values = [...], set = "..." }`, this.at(path), 'e.g. bw = ["5mbit", "10mbit"] or bw = { from = 5, to = 20, step = 5, unit = "mbit", set = "a--b.bw" }');
        continue;
      }
      if (values === undefined) continue;
      if (values.length === 0) {
        this.d.error('no-values', `variable ${name} has no values`, this.at(path), 'give at least one value');
        continue;
      }
      values.forEach((v, i) => {
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') this.d.error('bad-type', `value ${i + 1} of ${name} must be a string, number or boolean`, this.at([...path, i]));
      });
      const seen = new Set<string>();
      values.forEach((v, i) => {
        const k = String(v);
        if (seen.has(k)) this.d.error('duplicate-value', `variable ${name} has the value ${JSON.stringify(v)} twice`, this.at(Array.isArray(spec) ? [...path, i] : [...path, 'values', i]), 'repetitions repeat runs; list each value once');
        seen.add(k);
      });
      this.checkValues(name, values, targets, Array.isArray(spec) ? path : [...path, 'values']);
      out.push({ name, values, targets, loc: this.keyAt(path) });
    }
    return out;
  }

  private values(spec: TomlTable, path: TomlPath): TomlValue[] | undefined {
    const listed = spec['values'];
    const ranged = spec['from'] !== undefined || spec['to'] !== undefined;
    if (listed !== undefined && ranged) {
      this.d.error('two-value-lists', `${path.join('.')} has both values and from/to`, this.at(path), 'keep one of them');
      return undefined;
    }
    if (listed !== undefined) {
      if (!Array.isArray(listed)) {
        this.d.error('bad-type', `${path.join('.')}.values must be a list`, this.at([...path, 'values']));
        return undefined;
      }
      if (spec['unit'] !== undefined || spec['step'] !== undefined) this.d.error('unit-without-range', `${path.join('.')}: unit and step go with from/to`, this.at(path), 'write the unit in each value, e.g. "10mbit"');
      return listed;
    }
    if (!ranged) {
      this.d.error('no-values', `${path.join('.')} has no values`, this.at(path), 'give values = [...] or from = 1, to = 10 (step = 1)');
      return undefined;
    }
    const num = (k: string): number | undefined => {
      const v = spec[k];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        this.d.error('bad-type', `${path.join('.')}.${k} must be a number`, this.at([...path, k]));
        return undefined;
      }
      return v;
    };
    const from = num('from');
    const to = num('to');
    const step = spec['step'] === undefined ? 1 : num('step');
    const unit = spec['unit'] === undefined ? '' : this.str(spec, path, 'unit');
    if (from === undefined || to === undefined || step === undefined || unit === undefined) return undefined;
    if (step <= 0 || to < from) {
      this.d.error('bad-range', `${path.join('.')}: from ${from} to ${to} by ${step} is empty`, this.at(path), 'from ≤ to and step > 0');
      return undefined;
    }
    const n = Math.floor((to - from) / step + 1e-9) + 1;
    if (n > MAX_RUNS) {
      this.d.error('bad-range', `${path.join('.')}: ${n} values`, this.at(path), 'a larger step');
      return undefined;
    }
    // Decimal steps (0.1) must not print as 0.30000000000000004.
    const digits = Math.max(decimals(from), decimals(step));
    return Array.from({ length: n }, (_, i) => {
      const v = Number((from + i * step).toFixed(digits));
      return unit === '' ? v : `${v}${unit}`;
    });
  }

  private targets(spec: TomlTable, path: TomlPath, topo: Topology | undefined): Target[] {
    const raw = spec['set'];
    if (raw === undefined) return [];
    const list = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw : undefined;
    if (list === undefined) {
      this.d.error('bad-type', `${path.join('.')}.set must be a target or a list of them`, this.at([...path, 'set']), 'e.g. set = "r1:eth0.latency" (one direction), "a--b.bw" (both), "r1.sysctls.net.ipv4.ip_forward" (a node setting)');
      return [];
    }
    const out: Target[] = [];
    list.forEach((t, i) => {
      const p = typeof raw === 'string' ? [...path, 'set'] : [...path, 'set', i];
      if (typeof t !== 'string') {
        this.d.error('bad-type', 'a target is a string', this.at(p));
        return;
      }
      const target = parseTarget(t);
      if ('problem' in target) {
        this.d.error('bad-target', `target "${t}": ${target.problem}`, this.at(p), TARGET_HINT);
        return;
      }
      if (topo) {
        const problem = checkTarget(target, topo);
        if (problem) {
          this.d.error('bad-target', `target "${t}": ${problem.message}`, this.at(p), problem.hint);
          return;
        }
      }
      out.push(target);
    });
    return out;
  }

  /** Live values are checked with `dune set`'s own parser, so a value valid here is valid there. */
  private checkValues(name: string, values: TomlValue[], targets: Target[], path: TomlPath): void {
    for (const t of targets) {
      if (t.kind === 'node' || (t.kind === 'link' && !t.live)) continue;
      values.forEach((v, i) => {
        try {
          parseImpairmentAssignments([`${t.key}=${String(v)}`]);
        } catch (e) {
          if (!(e instanceof TopologyError)) throw e;
          for (const x of e.diagnostics) this.d.error(x.code, `${name} = ${JSON.stringify(v)} for ${t.text}: ${x.message}`, this.at([...path, i]), x.hint);
        }
      });
    }
  }

  private roles(doc: TomlTable, topo: Topology | undefined, variables: Variable[]): Role[] {
    const rs = doc['roles'];
    if (rs === undefined) return [];
    if (!Array.isArray(rs)) {
      this.d.error('bad-type', 'roles must be an array of tables ([[roles]])', this.at(['roles']));
      return [];
    }
    const out: Role[] = [];
    const names = new Set<string>();
    const known = new Set([...variables.map((v) => v.name), ...BUILTIN_PLACEHOLDERS]);
    const nodes = topo ? topo.nodes.map((n) => n.id) : undefined;
    rs.forEach((r, i) => {
      const path = ['roles', i];
      if (!isTable(r)) {
        this.d.error('bad-type', 'a role is a table', this.at(path));
        return;
      }
      this.keys(r, path, ROLE_KEYS);
      const node = this.str(r, path, 'node');
      const name = this.str(r, path, 'name') ?? `role${i + 1}`;
      if (names.has(name)) this.d.error('duplicate-role', `two roles are named "${name}"`, this.at([...path, 'name']), 'give each role its own name');
      names.add(name);
      if (node === undefined) {
        this.d.error('missing-key', `role ${name} has no node`, this.at(path), 'add node = "NAME" (a node of the topology)');
        return;
      }
      if (nodes && !nodes.includes(node)) this.d.error('unknown-node', `role ${name}: the topology has no node "${node}"`, this.at([...path, 'node']), choicesHint(node, nodes));
      const argv = this.command(r, path, name, known, nodes);
      if (argv === undefined) return;
      const server = this.bool(r, path, 'server') ?? false;
      const parallel = this.bool(r, path, 'parallel') ?? false;
      if (server && parallel) this.d.error('bad-value', `role ${name}: a server already runs beside the next roles; parallel is for clients`, this.at([...path, 'parallel']), 'remove parallel');
      let ready: Readiness | undefined;
      if (r['ready'] !== undefined) {
        if (!server) this.d.error('bad-value', `role ${name}: ready is for servers (a client is waited for until it ends)`, this.at([...path, 'ready']), 'add server = true, or remove ready');
        ready = this.ready(r['ready'], [...path, 'ready']);
      }
      const env = r['env'];
      let envOut: Record<string, string> | undefined;
      if (env !== undefined) {
        if (!isTable(env) || Object.values(env).some((v) => typeof v !== 'string')) this.d.error('bad-type', `role ${name}: env is a table of strings`, this.at([...path, 'env']));
        else envOut = env as Record<string, string>;
      }
      const user = this.str(r, path, 'user');
      out.push({
        name, node, argv, server, parallel,
        ...(ready ? { ready } : {}),
        timeoutMs: this.duration(r, path, 'timeout') ?? 120_000,
        delayMs: this.duration(r, path, 'delay') ?? 0,
        ...(user !== undefined ? { user } : {}),
        ...(envOut ? { env: envOut } : {}),
        loc: this.at(path),
      });
    });
    const last = out[out.length - 1];
    if (last && (last.server || last.parallel) && !out.some((x) => !x.server && !x.parallel)) {
      this.d.error('no-client', 'every role is a server or parallel: a run would never end on its own', this.at(['roles']), 'make one role a client (server = false): the run ends when the clients end');
    }
    return out;
  }

  private command(r: TomlTable, path: TomlPath, name: string, known: Set<string>, nodes: string[] | undefined): string[] | undefined {
    const run = r['run'];
    const p = [...path, 'run'];
    let argv: string[];
    if (typeof run === 'string') {
      try {
        argv = splitCommand(run).argv;
      } catch (e) {
        if (!(e instanceof CommandSyntaxError)) throw e;
        this.d.error('shell-syntax', `role ${name}: ${e.message}`, this.at(p), e.hint);
        return undefined;
      }
    } else if (Array.isArray(run) && run.length > 0 && run.every((w) => typeof w === 'string')) {
      argv = run as string[];
    } else {
      this.d.error(run === undefined ? 'missing-key' : 'bad-type', `role ${name}: run must be a command line or an argv array`, this.at(run === undefined ? path : p), 'e.g. run = "iperf3 -c {addr:srv} -t 2 -J" (split like a shell, never run by one)');
      return undefined;
    }
    if (argv.length === 0) {
      this.d.error('empty-command', `role ${name}: the command is empty`, this.at(p));
      return undefined;
    }
    for (const w of argv) {
      const ph = placeholders(w);
      if (ph.problem) this.d.error('bad-placeholder', `role ${name}: ${ph.problem}`, this.at(p), 'placeholders are {variable}, {addr:NODE}, {addr6:NODE}, {addr:NODE:IFACE}, {repetition}, {run}, {seed}, {lab}; "{{" and "}}" are literal braces');
      for (const n of ph.names) {
        const problem = placeholderProblem(n, known, nodes);
        if (problem) this.d.error('bad-placeholder', `role ${name}: {${n}}: ${problem.message}`, this.at(p), problem.hint);
      }
    }
    return argv;
  }

  private ready(v: TomlValue, path: TomlPath): Readiness | undefined {
    if (!isTable(v)) {
      this.d.error('bad-type', 'ready is a table: { port = 5201 }, { line = "listening" } or { delay = "1s" }', this.at(path));
      return undefined;
    }
    this.keys(v, path, READY_KEYS);
    const timeoutMs = this.duration(v, path, 'timeout') ?? 10_000;
    const kinds = ['port', 'line', 'delay'].filter((k) => v[k] !== undefined);
    if (kinds.length !== 1) {
      this.d.error('bad-value', `ready needs exactly one of port, line, delay (has ${kinds.length ? kinds.join(', ') : 'none'})`, this.at(path), 'e.g. ready = { port = 5201 }');
      return undefined;
    }
    if (v['port'] !== undefined) {
      const port = this.int(v, path, 'port', 1, 65535);
      return port === undefined ? undefined : { kind: 'port', port, timeoutMs };
    }
    if (v['line'] !== undefined) {
      const s = this.str(v, path, 'line');
      if (s === undefined) return undefined;
      try {
        return { kind: 'line', pattern: new RegExp(s), timeoutMs };
      } catch (e) {
        this.d.error('bad-regex', `ready.line is not a regular expression: ${(e as Error).message}`, this.at([...path, 'line']));
        return undefined;
      }
    }
    const ms = this.duration(v, path, 'delay');
    return ms === undefined ? undefined : { kind: 'delay', ms };
  }

  private metrics(doc: TomlTable, roles: Role[]): Metric[] {
    const ms = doc['metrics'];
    if (ms === undefined) return [];
    if (!isTable(ms)) {
      this.d.error('bad-type', '[metrics] must be a table of name = { role, parse, ... }', this.at(['metrics']));
      return [];
    }
    const out: Metric[] = [];
    const roleNames = roles.map((r) => r.name);
    for (const [name, m] of Object.entries(ms)) {
      const path = ['metrics', name];
      if (!isTable(m)) {
        this.d.error('bad-type', `metric ${name} is a table { role = "...", parse = "..." }`, this.at(path));
        continue;
      }
      this.keys(m, path, METRIC_KEYS);
      const role = this.str(m, path, 'role');
      const parse = this.str(m, path, 'parse');
      if (role === undefined || parse === undefined) {
        this.d.error('missing-key', `metric ${name} needs role and parse`, this.at(path), `parse is one of ${Object.keys(METRIC_PARSERS).join(', ')}`);
        continue;
      }
      if (!roleNames.includes(role)) this.d.error('unknown-role', `metric ${name}: no role "${role}"`, this.at([...path, 'role']), choicesHint(role, roleNames));
      const parser = (METRIC_PARSERS as Record<string, ParserDef>)[parse];
      if (parser === undefined) {
        this.d.error('unknown-parser', `metric ${name}: no parser "${parse}"`, this.at([...path, 'parse']), choicesHint(parse, Object.keys(METRIC_PARSERS)));
        continue;
      }
      const field = this.str(m, path, 'field') ?? this.str(m, path, 'path');
      let unit = this.str(m, path, 'unit');
      if (parser.fields) {
        if (field === undefined || !(field in parser.fields)) {
          this.d.error(field === undefined ? 'missing-key' : 'unknown-field', `metric ${name}: ${parse} needs field = one of ${Object.keys(parser.fields).join(', ')}`, this.at([...path, field === undefined ? 'parse' : 'field']), choicesHint(field ?? '', Object.keys(parser.fields)));
          continue;
        }
        unit ??= parser.fields[field];
      }
      if (parse === 'json' && field === undefined) this.d.error('missing-key', `metric ${name}: json needs path = "a.b.0.c"`, this.at(path), 'e.g. path = "end.sum_sent.retransmits"');
      let pattern: RegExp | undefined;
      if (parse === 'regex') {
        const s = this.str(m, path, 'pattern');
        if (s === undefined) this.d.error('missing-key', `metric ${name}: regex needs pattern = "..." (with one capture group)`, this.at(path));
        else {
          try {
            pattern = new RegExp(s, 'g');
            if (new RegExp(`${s}|`).exec('')?.length !== 2) this.d.error('bad-regex', `metric ${name}: the pattern needs exactly one capture group (the number)`, this.at([...path, 'pattern']), 'e.g. pattern = "time=([0-9.]+) ms"');
          } catch (e) {
            this.d.error('bad-regex', `metric ${name}: not a regular expression: ${(e as Error).message}`, this.at([...path, 'pattern']));
          }
        }
      }
      const take = this.str(m, path, 'take') ?? 'first';
      if (!(TAKES as readonly string[]).includes(take)) this.d.error('bad-value', `metric ${name}: take "${take}"`, this.at([...path, 'take']), choicesHint(take, TAKES));
      out.push({
        name, role, parser: parse as MetricParser,
        ...(field !== undefined ? { field } : {}),
        ...(pattern ? { pattern } : {}),
        take: take as Metric['take'],
        unit: unit ?? parser.unit ?? '',
        loc: this.keyAt(path),
      });
    }
    return out;
  }

  private plots(doc: TomlTable, metrics: Metric[], variables: Variable[]): PlotSpec[] {
    const ps = doc['plots'];
    if (ps === undefined) return [];
    if (!Array.isArray(ps)) {
      this.d.error('bad-type', 'plots is an array of tables ([[plots]] metric = "...", x = "...")', this.at(['plots']));
      return [];
    }
    const out: PlotSpec[] = [];
    ps.forEach((p, i) => {
      const path = ['plots', i];
      if (!isTable(p)) return void this.d.error('bad-type', 'a plot is a table { metric, x }', this.at(path));
      this.keys(p, path, ['metric', 'x']);
      const metric = this.str(p, path, 'metric');
      const x = this.str(p, path, 'x');
      const problem = plotProblem({ metric: metric ?? '', x: x ?? '' }, metrics, variables);
      if (problem) return void this.d.error('bad-plot', problem.message, this.at(path), problem.hint);
      out.push({ metric: metric as string, x: x as string });
    });
    return out;
  }
}

export const TARGET_HINT = 'targets: "NODE:IFACE.KEY" (traffic leaving that interface), "A--B.KEY" or "A:IF--B:IF.KEY" (both directions of a link), "NODE.KEY" or "NODE.sysctls.NAME" (a node setting; the lab is converged)';

/** `r1:eth0.latency`, `a--b.bw`, `a:eth0--b:eth1.loss`, `r1.sysctls.net.ipv4.ip_forward`. */
export function parseTarget(text: string): Target | { problem: string } {
  const dot = text.indexOf('.');
  if (dot <= 0 || dot === text.length - 1) return { problem: 'no ".KEY"' };
  const head = text.slice(0, dot);
  const rest = text.slice(dot + 1);
  if (head.includes('--')) {
    const [a, b, extra] = head.split('--');
    if (extra !== undefined || !a || !b) return { problem: 'a link is "A--B"' };
    const [an, ad] = a.split(':');
    const [bn, bd] = b.split(':');
    if (!an || !bn) return { problem: 'a link is "A--B"' };
    return { kind: 'link', a: an, ...(ad ? { aDev: ad } : {}), b: bn, ...(bd ? { bDev: bd } : {}), key: rest, live: !STRUCTURAL_LINK_KEYS.includes(rest), text };
  }
  if (head.includes(':')) {
    const [node, dev] = head.split(':');
    if (!node || !dev) return { problem: 'an interface is "NODE:IFACE"' };
    if (STRUCTURAL_LINK_KEYS.includes(rest)) return { problem: `${rest} is a link-wide setting`, };
    return { kind: 'egress', node, dev, key: rest, text };
  }
  const first = rest.indexOf('.');
  const path = first < 0 ? [rest] : [rest.slice(0, first), rest.slice(first + 1)];
  return { kind: 'node', node: head, path, text };
}

function checkTarget(t: Target, topo: Topology): { message: string; hint: string } | undefined {
  const nodes = topo.nodes.map((n) => n.id);
  const need = t.kind === 'link' ? [t.a, t.b] : [t.node];
  for (const n of need) if (!nodes.includes(n)) return { message: `the topology has no node "${n}"`, hint: choicesHint(n, nodes) };
  if (t.kind === 'link') {
    const found = findLinks(topo, t);
    if (found.length === 0) return { message: `no link joins ${t.a} and ${t.b}`, hint: `links: ${topo.links.map(linkText).join(', ')}` };
    if (found.length > 1) return { message: `${found.length} links join ${t.a} and ${t.b}`, hint: `name the interfaces: ${found.map(linkText).join(' or ')}` };
  }
  if (t.kind === 'node' && t.path[0] === 'addrs') return { message: 'addresses cannot be a variable', hint: 'vary a program argument instead' };
  return undefined;
}

function linkText(l: Topology['links'][number]): string {
  const { a, b } = l;
  return `${a.node}${a.iface ? `:${a.iface}` : ''}--${b.node}${b.iface ? `:${b.iface}` : ''}`;
}

/** The topology links a link target means. */
export function findLinks(topo: Topology, t: Extract<Target, { kind: 'link' }>): Topology['links'] {
  return topo.links.filter((l) => {
    const { a: x, b: y } = l;
    const match = (e: typeof x, n: string, dev?: string) => e.node === n && (dev === undefined || e.iface === dev);
    return (match(x, t.a, t.aDev) && match(y, t.b, t.bDev)) || (match(x, t.b, t.bDev) && match(y, t.a, t.aDev));
  });
}

function placeholderProblem(name: string, known: Set<string>, nodes: string[] | undefined): { message: string; hint: string } | undefined {
  const m = /^(addr6?):([^:]+)(?::(.+))?$/.exec(name);
  if (m) {
    const node = m[2] as string;
    if (nodes && !nodes.includes(node)) return { message: `the topology has no node "${node}"`, hint: choicesHint(node, nodes) };
    return undefined;
  }
  if (known.has(name)) return undefined;
  return { message: 'not a variable', hint: choicesHint(name, [...known, 'addr:NODE', 'addr6:NODE']) };
}

export function plotProblem(p: PlotSpec, metrics: readonly Metric[], variables: readonly Variable[]): { message: string; hint: string } | undefined {
  const mn = metrics.map((m) => m.name);
  const vn = variables.map((v) => v.name);
  if (!mn.includes(p.metric)) return { message: `no metric "${p.metric}" to plot`, hint: choicesHint(p.metric, mn) };
  if (!vn.includes(p.x)) return { message: `no variable "${p.x}" to plot against`, hint: choicesHint(p.x, vn) };
  return undefined;
}

/** The experiment file's base name as a lab name: `exp-` and what is usable of it. */
export function defaultLabName(base: string): string {
  return `exp-${base.replace(/[^A-Za-z0-9_-]/g, '-')}`.slice(0, 24);
}

function decimals(n: number): number {
  const s = String(n);
  const i = s.indexOf('.');
  return i < 0 ? 0 : s.length - i - 1;
}
