/**
 * `runExperiment`: every run of the list (matrix.ts) on a lab (@dune/lab), one row each.
 *
 *   read + validate (spec.ts) ─► every structural state compiled up front
 *     for each run not already in the results:
 *       lab to the run's state ─► roles in order ─► metrics ─► row appended + fsynced
 *   summary (mean, 95 % CI) ─► plots ─► lab down
 *
 * Bringing the lab to a run's state costs as little as the change needs:
 *   - a variable that sets an impairment (`r1:eth0.latency`, `a--b.bw`) is applied live,
 *     one `set` per direction and only for the keys whose value changed (no rebuild);
 *   - a variable that changes the topology (a node setting, a link's mtu or metric) makes a
 *     new topology, and the lab is converged to it (`up()` of the same lab name: the agent
 *     changes what differs); every live setting is applied again afterwards.
 *
 * Roles run in file order: a server is started and waited for (a port listening in its
 * node, a line in its output, or a delay) and left running; a client runs to its end (or
 * its timeout); a `parallel` client is started and joined before the next non-parallel
 * role. When the clients are done, the servers still running get SIGTERM (SIGKILL 2 s
 * later) and their output is parsed too.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { basename, extname, join, resolve as resolvePath } from 'node:path';
import { Lab, localLabs, downLocal, type LabProcess, type RunResult } from '@dune/lab';
import { DuneError, parseDuneTomlTable, TopologyError, formatDiagnostic, type TomlTable, type TomlValue, type Topology } from '@dune/topology';
import { planRuns, type PlannedRun, type Values } from './matrix.js';
import { extractMetric, MetricError, type RoleOutput } from './metrics.js';
import { renderPlot } from './plot.js';
import { ResultsDir, type CombinationSummary, type ResultRow } from './results.js';
import { plotProblem, readExperiment, substitute, type Experiment, type PlotSpec, type Role, type Target } from './spec.js';
import { numericAxis } from './plot.js';

export interface RunExperimentOptions {
  /** Output directory; default `<experiment base name>-results` in the current directory. */
  outDir?: string;
  /** Continue the results in outDir: runs already there are skipped. */
  resume?: boolean;
  /** Plots besides the file's `[[plots]]`. */
  plots?: PlotSpec[];
  /** Leave the lab up at the end (default: torn down). */
  keep?: boolean;
  onProgress?: (p: Progress) => void;
}

export type Progress =
  | { type: 'start'; total: number; skipped: number; dir: string; lab: string }
  | { type: 'lab'; message: string }
  | { type: 'run'; row: ResultRow; done: number; total: number; skipped: number; elapsedMs: number; etaMs: number }
  | { type: 'done'; dir: string };

export interface ExperimentResult {
  experiment: Experiment;
  dir: string;
  rows: ResultRow[];
  /** Runs executed by this call (the others were in the results already). */
  ran: number;
  summary: CombinationSummary[];
  files: { csv: string; jsonl: string; summaryCsv: string; summaryJson: string; plots: string[] };
}

const LAB_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

export function defaultOutDir(exp: Pick<Experiment, 'file'>): string {
  return resolvePath(`${basename(exp.file, extname(exp.file))}-results`);
}

/** What ties results to an experiment: everything that changes what a row means. */
export function fingerprint(exp: Experiment): string {
  const data = {
    variables: exp.variables.map((v) => [v.name, v.values, v.targets.map((t) => t.text)]),
    roles: exp.roles.map((r) => [r.name, r.node, r.argv, r.server, r.parallel, r.ready?.kind, r.ready && 'pattern' in r.ready ? r.ready.pattern.source : r.ready && 'port' in r.ready ? r.ready.port : null, r.user ?? null, r.env ?? null]),
    metrics: exp.metrics.map((m) => [m.name, m.role, m.parser, m.field ?? null, m.pattern?.source ?? null, m.take]),
    repetitions: exp.repetitions,
    seed: exp.seed,
    order: exp.order,
    topology: exp.topology.format === 'dune-toml' ? exp.topologyDoc : { nodes: exp.topology.nodes.map((n) => n.id), links: exp.topology.links.map((l) => [l.a, l.b]) },
  };
  return createHash('sha256').update(JSON.stringify(data)).digest('hex').slice(0, 16);
}

/** The structural part of a run's values: what needs a converge when it changes. */
function structural(exp: Experiment, values: Values): [string, TomlValue][] {
  const out: [string, TomlValue][] = [];
  for (const v of exp.variables) for (const t of v.targets) if (t.kind === 'node' || (t.kind === 'link' && !t.live)) out.push([t.text, values[v.name] as TomlValue]);
  return out;
}

function cloneTable(t: TomlTable): TomlTable {
  return structuredClone(t);
}

/** The topology with a run's node settings and link-wide keys applied to its TOML table. */
export function topologyFor(exp: Experiment, values: Values): Topology {
  const changes = exp.variables.flatMap((v) => v.targets.filter((t) => t.kind === 'node' || (t.kind === 'link' && !t.live)).map((t) => ({ v, t, value: values[v.name] as TomlValue })));
  if (changes.length === 0) return exp.topology;
  if (exp.topology.format !== 'dune-toml') {
    const c = changes[0] as (typeof changes)[number];
    throw new DuneError('not-toml', `variable ${c.v.name} sets ${c.t.text}, which needs a TOML topology (this one is ${exp.topology.format})`, { loc: c.v.loc, hint: 'vary impairments only (applied live), or convert the topology to TOML' });
  }
  const doc = cloneTable(exp.topologyDoc);
  const topo = (doc['topology'] ??= {}) as TomlTable;
  for (const { t, value } of changes) {
    if (t.kind === 'node') {
      const nodes = (topo['nodes'] ??= {}) as TomlTable;
      const node = (nodes[t.node] ??= {}) as TomlTable;
      if (t.path.length === 1) node[t.path[0] as string] = value;
      else ((node[t.path[0] as string] ??= {}) as TomlTable)[t.path[1] as string] = value;
    } else if (t.kind === 'link') {
      const links = (topo['links'] ?? []) as TomlTable[];
      for (const l of links) {
        const eps = (l['endpoints'] ?? []) as string[];
        const ends = eps.map((e) => ({ node: e.split(':')[0], dev: e.includes(':') ? e.slice(e.indexOf(':') + 1) : undefined }));
        const is = (i: number, n: string, dev?: string) => ends[i]?.node === n && (dev === undefined || ends[i]?.dev === undefined || ends[i]?.dev === dev);
        if ((is(0, t.a, t.aDev) && is(1, t.b, t.bDev)) || (is(0, t.b, t.bDev) && is(1, t.a, t.aDev))) l[t.key] = value;
      }
    }
  }
  try {
    return parseDuneTomlTable(doc, exp.topologyLocator, { lab: exp.lab });
  } catch (e) {
    if (!(e instanceof TopologyError)) throw e;
    const c = changes[0] as (typeof changes)[number];
    const what = changes.map((x) => `${x.v.name} = ${JSON.stringify(x.value)}`).join(', ');
    throw new DuneError('bad-variable-value', `with ${what} the topology is not valid: ${e.diagnostics.filter((x) => x.severity === 'error').map((x) => formatDiagnostic({ ...x, hint: undefined } as typeof x)).join('; ')}`, { loc: c.v.loc, hint: 'change the values of the variable' });
  }
}

/** Where each live setting goes: one direction per (node, dev). */
function liveSettings(exp: Experiment, lab: Lab, values: Values): Map<string, { node: string; dev: string; settings: Record<string, string> }> {
  const out = new Map<string, { node: string; dev: string; settings: Record<string, string> }>();
  const put = (node: string, dev: string, key: string, value: TomlValue) => {
    const k = `${node}\u0000${dev}`;
    const e = out.get(k) ?? { node, dev, settings: {} };
    e.settings[key] = String(value);
    out.set(k, e);
  };
  for (const v of exp.variables) {
    for (const t of v.targets) {
      const value = values[v.name] as TomlValue;
      if (t.kind === 'egress') put(t.node, t.dev, t.key, value);
      else if (t.kind === 'link' && t.live) for (const end of linkEnds(lab, t)) put(end.node, end.dev, t.key, value);
    }
  }
  return out;
}

function linkEnds(lab: Lab, t: Extract<Target, { kind: 'link' }>): { node: string; dev: string }[] {
  const m = (e: { node: string; dev: string }, n: string, dev?: string) => e.node === n && (dev === undefined || e.dev === dev);
  const l = lab.plan.links.find((x) => (m(x.a, t.a, t.aDev) && m(x.b, t.b, t.bDev)) || (m(x.a, t.b, t.bDev) && m(x.b, t.a, t.aDev)));
  if (l === undefined) throw new DuneError('no-such-link', `no link ${t.text.slice(0, t.text.lastIndexOf('.'))} in lab ${lab.name}`, { hint: 'check the target against the topology' });
  return [{ node: l.a.node, dev: l.a.dev }, { node: l.b.node, dev: l.b.dev }];
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The lab, kept at the state of the last run, changed as little as each run needs. */
class LabDriver {
  lab: Lab | undefined;
  private structuralKey: string | undefined;
  /** Live settings applied, per direction. */
  private applied = new Map<string, Record<string, string>>();

  constructor(
    private readonly exp: Experiment,
    private readonly topologies: Map<string, Topology>,
    private readonly progress: (message: string) => void,
  ) {}

  async to(values: Values): Promise<ResultRow['labChange']> {
    let change: ResultRow['labChange'] = 'none';
    const key = JSON.stringify(structural(this.exp, values));
    if (this.lab === undefined || key !== this.structuralKey) {
      const topology = this.topologies.get(key) as Topology;
      const next = new Lab({ name: this.exp.lab }, { topology, text: key });
      this.progress(this.lab === undefined ? `building lab ${this.exp.lab}` : `converging lab ${this.exp.lab} (${structural(this.exp, values).map(([t, v]) => `${t} = ${String(v)}`).join(', ')})`);
      await next.up();
      change = this.lab === undefined ? 'built' : 'converged';
      this.lab?.close();
      this.lab = next;
      this.structuralKey = key;
      this.applied.clear();
    }
    const lab = this.lab;
    for (const [k, { node, dev, settings }] of liveSettings(this.exp, lab, values)) {
      const had = this.applied.get(k) ?? {};
      const changed = Object.fromEntries(Object.entries(settings).filter(([s, v]) => had[s] !== v));
      if (Object.keys(changed).length === 0) continue;
      await lab.node(node).iface(dev).set(changed);
      this.applied.set(k, { ...had, ...changed });
      if (change === 'none') change = 'live';
    }
    return change;
  }

  async down(): Promise<void> {
    if (this.lab) await this.lab.down();
    this.lab = undefined;
  }
}

interface RoleRun {
  role: Role;
  output?: RoleOutput;
  error?: string;
}

function defaultEnv(lab: string, node: string, extra: Record<string, string> | undefined): Record<string, string> | undefined {
  if (extra === undefined) return undefined;
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: process.env['LANG'] ?? 'C.UTF-8',
    TERM: 'dumb',
    DUNE_LAB: lab,
    DUNE_NODE: node,
    ...extra,
  };
}

function collect(p: LabProcess): { text: () => { stdout: string; stderr: string }; onData: (f: (s: string) => void) => void } {
  let stdout = '';
  let stderr = '';
  const listeners: ((s: string) => void)[] = [];
  p.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    for (const f of listeners) f(stdout + stderr);
  });
  p.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const f of listeners) f(stdout + stderr);
  });
  return { text: () => ({ stdout, stderr }), onData: (f) => listeners.push(f) };
}

async function waitReady(lab: Lab, role: Role, p: LabProcess, out: ReturnType<typeof collect>): Promise<void> {
  const r = role.ready;
  if (r === undefined) return;
  if (r.kind === 'delay') return sleep(r.ms);
  const deadline = Date.now() + r.timeoutMs;
  const exited = () => {
    const s = p.poll();
    if (s === undefined) return undefined;
    const { stderr, stdout } = out.text();
    return `server ${role.name} ended before it was ready (${s.signal ?? `exit ${s.code}`})${(stderr || stdout).trim() ? `: ${(stderr || stdout).trim().slice(-300)}` : ''}`;
  };
  if (r.kind === 'line') {
    await new Promise<void>((resolve, reject) => {
      const check = (text: string) => {
        if (r.pattern.test(text)) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(() => {
        const e = exited();
        if (e) return void (clearInterval(timer), reject(new Error(e)));
        if (Date.now() > deadline) return void (clearInterval(timer), reject(new Error(`server ${role.name} printed nothing matching /${r.pattern.source}/ within ${r.timeoutMs} ms`)));
      }, 50);
      out.onData(check);
      const t = out.text();
      check(t.stdout + t.stderr);
    });
    return;
  }
  // A port: listening (TCP or UDP) in the server's node, as `ss` in that node shows it.
  for (;;) {
    const e = exited();
    if (e) throw new Error(e);
    const ss = await lab.node(role.node).run(['ss', '-Hlntu']);
    if (ss.stdout.split('\n').some((l) => new RegExp(`[:\\]]${r.port}\\s`).test(l))) return;
    if (Date.now() > deadline) throw new Error(`server ${role.name}: nothing listens on port ${r.port} in node ${role.node} after ${r.timeoutMs} ms`);
    await sleep(50);
  }
}

async function stop(p: LabProcess): Promise<void> {
  if (p.poll() !== undefined) return;
  await p.kill('SIGTERM').catch(() => undefined);
  const t = setTimeout(() => void p.kill('SIGKILL').catch(() => undefined), 2000);
  try {
    await p.wait();
  } finally {
    clearTimeout(t);
  }
}

/** One run: the roles in order; their outputs (or why there is none). */
async function runRoles(exp: Experiment, lab: Lab, values: Values, run: PlannedRun, index: number): Promise<{ roles: RoleRun[]; seconds: number }> {
  const lookup = (name: string): string => {
    if (name in values) return String(values[name]);
    if (name === 'repetition') return String(run.repetition);
    if (name === 'run') return String(index);
    if (name === 'seed') return String(exp.seed);
    if (name === 'lab') return exp.lab;
    const m = /^(addr6?):([^:]+)(?::(.+))?$/.exec(name);
    if (m) {
      const fam = m[1] === 'addr6' ? 6 : 4;
      const node = lab.node(m[2] as string);
      return m[3] !== undefined ? node.iface(m[3]).address(fam) : node.address(fam);
    }
    throw new DuneError('bad-placeholder', `no value for {${name}}`);
  };
  const t0 = performance.now();
  const results: RoleRun[] = [];
  const servers: { rr: RoleRun; p: LabProcess; out: ReturnType<typeof collect>; t0: number }[] = [];
  let pending: Promise<void>[] = [];
  let failed = false;
  const client = async (rr: RoleRun, argv: string[]) => {
    const role = rr.role;
    const s = performance.now();
    try {
      const env = defaultEnv(exp.lab, role.node, role.env);
      const r: RunResult = await lab.node(role.node).run(argv, { timeoutMs: role.timeoutMs, ...(role.user !== undefined ? { user: role.user } : {}), ...(env ? { env } : {}) });
      rr.output = { ...r, seconds: (performance.now() - s) / 1000 };
      if (r.code !== 0) rr.error = `${role.name} ${r.signal ?? `exited ${r.code}`}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-2).join(' ').slice(0, 300)}` : ''}`;
    } catch (e) {
      rr.error = `${role.name}: ${(e as Error).message}`;
      rr.output = { stdout: '', stderr: '', code: null, signal: 'SIGKILL', seconds: (performance.now() - s) / 1000 };
    }
  };
  try {
    for (const role of exp.roles) {
      const rr: RoleRun = { role };
      results.push(rr);
      if (failed) {
        rr.error = `${role.name} not started: an earlier role failed`;
        continue;
      }
      if (role.delayMs > 0) await sleep(role.delayMs);
      const argv = role.argv.map((w) => substitute(w, lookup));
      if (role.server) {
        const s = performance.now();
        const env = defaultEnv(exp.lab, role.node, role.env);
        const p = await lab.node(role.node).spawn(argv, { ...(role.user !== undefined ? { user: role.user } : {}), ...(env ? { env } : {}) });
        const out = collect(p);
        servers.push({ rr, p, out, t0: s });
        try {
          await waitReady(lab, role, p, out);
        } catch (e) {
          rr.error = (e as Error).message;
          failed = true;
        }
      } else if (role.parallel) {
        pending.push(client(rr, argv));
      } else {
        await Promise.all(pending);
        pending = [];
        await client(rr, argv);
        if (rr.error && rr.output?.code === null) failed = true;
      }
    }
    await Promise.all(pending);
  } finally {
    for (const s of servers) {
      await stop(s.p);
      const st = s.p.poll();
      const t = s.out.text();
      s.rr.output = { ...t, code: st?.code ?? null, signal: st?.signal ?? null, seconds: (performance.now() - s.t0) / 1000 };
    }
  }
  return { roles: results, seconds: (performance.now() - t0) / 1000 };
}

/** Runs an experiment (a file or one already read); resolves when every run is in the results. */
export async function runExperiment(file: string | Experiment, opts: RunExperimentOptions = {}): Promise<ExperimentResult> {
  const exp = typeof file === 'string' ? readExperiment(file) : file;
  if (!LAB_NAME.test(exp.lab)) throw new DuneError('bad-lab-name', `the lab name "${exp.lab}" is not usable`, { hint: 'set [experiment] lab = "NAME" (1 to 32 letters, digits, "_", "." or "-")' });
  const plots = [...exp.plots, ...(opts.plots ?? [])];
  for (const p of opts.plots ?? []) {
    const problem = plotProblem(p, exp.metrics, exp.variables);
    if (problem) throw new DuneError('bad-plot', problem.message, { hint: problem.hint });
  }
  if (plots.length === 0 && exp.variables.length > 0) {
    const x = exp.variables.find((v) => numericAxis(v.values)) ?? (exp.variables[0] as Experiment['variables'][number]);
    for (const m of exp.metrics) plots.push({ metric: m.name, x: x.name });
  }
  const runs = planRuns(exp);
  // Every structural state is compiled before anything is built: a bad value fails now, not at run 57.
  const topologies = new Map<string, Topology>();
  for (const r of runs) {
    const key = JSON.stringify(structural(exp, r.values));
    if (!topologies.has(key)) topologies.set(key, topologyFor(exp, r.values));
  }
  const dir = resolvePath(opts.outDir ?? defaultOutDir(exp));
  const results = new ResultsDir(dir, exp);
  results.open(fingerprint(exp), opts.resume ?? false);
  const done = results.doneKeys();
  const todo = runs.map((r, i) => ({ r, index: i + 1 })).filter(({ r }) => !done.has(r.key));
  const skipped = runs.length - todo.length;
  const progress = opts.onProgress ?? (() => undefined);
  progress({ type: 'start', total: runs.length, skipped, dir, lab: exp.lab });
  const driver = new LabDriver(exp, topologies, (message) => progress({ type: 'lab', message }));
  let ran = 0;
  if (todo.length > 0) {
    // A lab of this name left by an experiment killed outright (SIGKILL) still has that
    // run's servers in it: with --resume it is ours to remove; otherwise it may be someone's.
    if ((await localLabs()).includes(exp.lab)) {
      if (!opts.resume) throw new DuneError('lab-exists', `a lab named ${exp.lab} is already running on this machine`, { hint: `run \`dune down --lab ${exp.lab}\` first, pass --resume (which removes it: an interrupted run of this experiment left it), or set [experiment] lab = "OTHER"` });
      progress({ type: 'lab', message: `removing lab ${exp.lab} left by an interrupted run` });
      await downLocal(exp.lab);
    }
    const t0 = performance.now();
    let spent = 0;
    try {
      for (const { r, index } of todo) {
        const started = new Date();
        const s0 = performance.now();
        const labChange = await driver.to(r.values);
        if (exp.settleMs > 0) await sleep(exp.settleMs);
        const setupSeconds = (performance.now() - s0) / 1000;
        const { roles, seconds } = await runRoles(exp, driver.lab as Lab, r.values, r, index);
        const errors = roles.filter((x) => x.error).map((x) => x.error as string);
        const metrics: Record<string, number | null> = {};
        for (const m of exp.metrics) {
          const rr = roles.find((x) => x.role.name === m.role);
          metrics[m.name] = null;
          if (!rr?.output) continue;
          try {
            metrics[m.name] = extractMetric(m.parser, rr.output, { ...(m.field !== undefined ? { field: m.field } : {}), ...(m.pattern ? { pattern: m.pattern } : {}), take: m.take });
          } catch (e) {
            if (!(e instanceof MetricError)) throw e;
            errors.push(`${m.name}: ${e.message}`);
          }
        }
        const row: ResultRow = {
          run: index, combination: r.combination, repetition: r.repetition, variables: r.values, metrics,
          ok: errors.length === 0, ...(errors.length ? { error: errors.join('; ') } : {}),
          startedAt: started.toISOString(), setupSeconds, runSeconds: seconds,
          roleSeconds: Object.fromEntries(roles.filter((x) => x.output).map((x) => [x.role.name, (x.output as RoleOutput).seconds])),
          labChange,
        };
        results.append(row);
        ran++;
        spent = performance.now() - t0;
        const left = todo.length - ran;
        progress({ type: 'run', row, done: skipped + ran, total: runs.length, skipped, elapsedMs: spent, etaMs: (spent / ran) * left });
      }
    } finally {
      if (!opts.keep) await driver.down();
      else driver.lab?.close();
    }
  }
  const summary = results.summary();
  const written = results.writeSummary(summary);
  const plotFiles: string[] = [];
  for (const p of plots) {
    const metric = exp.metrics.find((m) => m.name === p.metric) as Experiment['metrics'][number];
    const x = exp.variables.find((v) => v.name === p.x) as Experiment['variables'][number];
    const svg = renderPlot({ title: `${exp.name}: ${metric.name} vs ${x.name}`, metric, x, others: exp.variables.filter((v) => v !== x), summary });
    const path = join(dir, `${safe(metric.name)}-vs-${safe(x.name)}.svg`);
    writeFileSync(path, svg);
    plotFiles.push(path);
  }
  progress({ type: 'done', dir });
  return { experiment: exp, dir, rows: results.rows, ran, summary, files: { csv: results.csvPath, jsonl: results.jsonlPath, summaryCsv: written.csv, summaryJson: written.json, plots: plotFiles } };
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_');
}
