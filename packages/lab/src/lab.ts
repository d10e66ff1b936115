/**
 * nemu's API in TypeScript, over the same engine as `dune`:
 *
 *   const lab = new Lab({ name: 'demo' });
 *   const a = lab.node('a'), r = lab.node('r'), s = lab.switch('s');
 *   const ar = lab.link(a, r, { latency: '5ms', bw: '10mbit' });
 *   await lab.up();                               // compile → plan → every host's agent
 *   await a.run(['ping', '-c', '3', r.address(4)]);
 *   await ar.set({ loss: '10%' }); await ar.down(); await ar.up();
 *   await lab.down();
 *
 * Declarations are TOML in disguise (builder.ts): the same reader, keys, units and errors
 * as a file. Runtime changes (addresses, routes, link state) are plan ops applied and
 * journaled by the agent of the node's host, and kept by the Lab so a later `up()` keeps
 * them. A lab this process created is torn down when the process exits, unless `keep`.
 */
import { followTraces, type FollowOptions, type TraceReport } from './traces.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  DuneError, formatDiagnostic, parseCidr, parseImpairmentAssignments, sortDiagnostics,
  type Diagnostic, type Impairment, type Phynode, type Topology,
} from '@dune/topology';
import { compileWithDiagnostics, cidr, type FirewallSpec, type Op, type Plan } from '@dune/compiler';
import { opKey, type LabStatus } from '@dune/agent';
import * as transport from '@dune/transport';
import { callSite, mergeTopologies, readRendered, renderToml, type LabSettingsDecl, type LinkDecl, type NodeDecl, type TomlLike } from './builder.js';
import { labStatus, labPlan, locateLab, setImpairment, upLab, downLab, isLocal } from './engine.js';
import { loadTopology, type LoadOptions } from './load.js';
import { LabProcess, type RunResult } from './process.js';
import { forgetOnExit, tearDownOnExit } from './exit.js';
import { nodeSteps, runSchedule, type NodeActionName, type RunScheduleOptions, type ScheduleReport } from './faults.js';
import { firewallChange, type FirewallInput } from './bricks.js';
import { forgetX11, x11Env } from './x11.js';

/** A phynode, as `[infrastructure.nodes.NAME]` in TOML. */
export type HostSpec = Partial<Pick<Phynode, 'host' | 'port' | 'user' | 'identity' | 'underlay' | 'iface' | 'cores'>>;

export interface SshSettings {
  /** Record the host key of a phynode seen for the first time. */
  acceptNewHostKeys?: boolean;
  knownHostsFile?: string;
  connectTimeoutMs?: number;
}

export type LabEvent = transport.HostEvent;

export interface LabOptions {
  /** Lab name (namespaces `dune.<name>.*`, state in /run/dune/<name>); default `api-<pid>`. */
  name?: string;
  /** Phynodes by name; absent: this machine. */
  hosts?: Record<string, HostSpec>;
  /** `static` (default), `none`, ... as `[topology] routing`. */
  routing?: string;
  routingWeight?: string;
  impairmentBackend?: 'auto' | 'netem' | 'userspace';
  /**
   * The userspace impairment engine's worker threads, as `[topology] impairment_engine_threads`:
   * 1 to 256, or `auto` (one per core of each host). Default: one.
   */
  engineThreads?: number | 'auto';
  /**
   * As `[topology] impairment_engine_fail = "open"`: when the userspace engine falls behind and
   * a kernel queue is full, packets pass unimpaired instead of being dropped. Default: false.
   */
  engineFailOpen?: boolean;
  /** `[topology.addressing]` keys: node_v4, link_v4, segment_v4, ... */
  addressing?: Record<string, string | number>;
  /** `[topology.defaults.links]` and `[topology.defaults.nodes]`. */
  defaults?: { links?: Record<string, TomlLike>; nodes?: Record<string, TomlLike> };
  /** Keep the lab when this process exits (default: a lab this process brought up is torn down). */
  keep?: boolean;
  ssh?: SshSettings;
  /** Progress of up and down, per host. */
  onEvent?: (e: LabEvent) => void;
}

/** Link settings with TOML's keys and units: `{ latency: '5ms', bw: '10mbit', loss: '1%' }`. */
export type LinkSettings = Record<string, TomlLike | null | undefined>;

export interface NodeOptions {
  kind?: 'router' | 'switch' | 'hub' | string;
  /** The phynode to place it on. */
  phynode?: string;
  /** CPUs every process started in the node is pinned to (taskset). */
  cores?: number[];
  sysctls?: Record<string, string | number>;
  /** User addresses per interface: `{ lo: ['192.0.2.1/32'] }`. */
  addrs?: Record<string, string[]>;
  /** Commands run once at up (argv strings, as in TOML). */
  exec?: string[];
  /** Processes started at up and supervised by the agent (TOML's `pinned`). */
  pinned?: Record<string, TomlLike>[];
  /** Processes in the node get a working DISPLAY (nemu's forward_X11). */
  x11?: boolean;
  /** Any other TOML node key. */
  [key: string]: unknown;
}

export interface SpawnOptions {
  /** Run as this user (nemu's run_as); default: root. */
  user?: string;
  /** The whole environment; default: PATH, HOME, LANG, TERM and DUNE_LAB / DUNE_NODE. */
  env?: Record<string, string>;
  cwd?: string;
}

export interface RunOptions extends SpawnOptions {
  /** Written to stdin, which is then closed. */
  input?: string | Buffer;
  /** Kill it (SIGKILL) after this long and fail. */
  timeoutMs?: number;
  /** Throw when it exits non-zero or by a signal. */
  check?: boolean;
}

export interface RouteSpec {
  /** Destination prefix, or `default`. */
  to: string;
  via?: string;
  /** Device; found from `via` when it is on one of the node's links. */
  dev?: string;
  metric?: number;
}

type State = 'defined' | 'up' | 'down';

const NODE_API_KEYS = new Set(['x11', 'cores']);

function labError(code: string, message: string, hint: string): DuneError {
  return new DuneError(code, message, { hint });
}

function nodeName(n: LabNode | string): string {
  return typeof n === 'string' ? n : n.name;
}

/** `{ loss: '10%', latency: null }` → dune set's `key=value` words. */
function assignments(settings: LinkSettings): string[] {
  return Object.entries(settings).map(([k, v]) => `${k}=${v === null || v === undefined ? 'none' : typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
}

function defaultEnv(lab: string, node: string): Record<string, string> {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: process.env['LANG'] ?? 'C.UTF-8',
    TERM: process.env['TERM'] ?? 'dumb',
    DUNE_LAB: lab,
    DUNE_NODE: node,
  };
}

export class Lab {
  readonly name: string;
  private readonly opts: LabOptions;
  private readonly base: { topology: Topology; text: string } | undefined;
  private readonly nodeDecls: NodeDecl[] = [];
  private readonly linkDecls: LinkDecl[] = [];
  private readonly nodes = new Map<string, LabNode>();
  private readonly links: LabLink[] = [];
  /** Runtime ops this Lab applied (by op key) and base ops it removed: kept across up(). */
  private readonly extras = new Map<string, Op>();
  private readonly dropped = new Set<string>();
  private state: State = 'defined';
  private attached = false;
  private planValue: Plan | undefined;
  private loc: transport.LabLocation | undefined;
  private hostsValue: transport.LabHosts | undefined;
  /** The reader's and compiler's warnings and notes of the last up. */
  diagnostics: Diagnostic[] = [];

  constructor(opts: LabOptions = {}, base?: { topology: Topology; text: string }) {
    this.opts = opts;
    this.base = base;
    this.name = opts.name ?? base?.topology.lab.name ?? `api-${process.pid}`;
    if (base) for (const n of base.topology.nodes) this.nodes.set(n.id, new LabNode(this, n.id, {}));
  }

  /** A lab made by `dune up` (or another script), on whatever hosts it is: for runtime work and down. */
  static async attach(name: string, opts: Omit<LabOptions, 'name'> = {}): Promise<Lab> {
    const lab = new Lab({ ...opts, name, keep: true });
    const loc = await locateLab({ lab: name });
    lab.attached = true;
    lab.loc = loc;
    lab.hostsValue = new transport.LabHosts(loc.hosts, lab.orchestrate());
    lab.planValue = await labPlan(loc, lab.orchestrate());
    for (const n of lab.planValue.nodes) lab.nodes.set(n.node, new LabNode(lab, n.node, {}));
    lab.state = 'up';
    return lab;
  }

  /** A lab described by a topology file (TOML or GraphML), to add to and bring up. */
  static fromFile(file: string, opts: LabOptions & { read?: LoadOptions } = {}): Promise<Lab> {
    const loaded = loadTopology(file, { ...(opts.read ?? {}), ...(opts.name !== undefined ? { lab: opts.name } : {}) });
    return Promise.resolve(new Lab(opts, { topology: loaded.topology, text: loaded.text }));
  }

  get isUp(): boolean {
    return this.state === 'up';
  }

  /** The plan of the last up (or of the attached lab). */
  get plan(): Plan {
    if (this.planValue === undefined) throw labError('lab-not-up', `lab ${this.name} is not up`, 'call `await lab.up()` first');
    return this.planValue;
  }

  private orchestrate(): transport.OrchestrateOptions {
    const s = this.opts.ssh ?? {};
    return {
      ...(s.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}),
      ...(s.knownHostsFile !== undefined ? { knownHostsFile: s.knownHostsFile } : {}),
      ...(s.connectTimeoutMs !== undefined ? { connectTimeoutMs: s.connectTimeoutMs } : {}),
      ...(this.opts.onEvent ? { onEvent: this.opts.onEvent } : {}),
      ...(this.hostsValue ? { hosts: this.hostsValue } : {}),
    };
  }

  private mustDefine(what: string): void {
    if (this.attached) throw labError('lab-attached', `cannot ${what}: lab ${this.name} was attached, not described here`, 'use `Lab.fromFile(FILE)` to add to a lab described by a file, then `up()`');
  }

  /** A node (created when new; the existing one when it exists and no options are given). */
  node(name: string, options?: NodeOptions): LabNode {
    const had = this.nodes.get(name);
    if (had !== undefined && options === undefined) return had;
    this.mustDefine(`add node ${name}`);
    if (had !== undefined) throw labError('duplicate-node', `lab ${this.name} already has a node "${name}"`, 'give each node its own name, or call `lab.node(name)` without options to get it');
    const o = options ?? {};
    const keys: Record<string, TomlLike | undefined> = {};
    for (const [k, v] of Object.entries(o)) if (!NODE_API_KEYS.has(k) && v !== undefined) keys[k] = v as TomlLike;
    this.nodeDecls.push({ id: name, keys, site: callSite() });
    const n = new LabNode(this, name, { x11: Boolean(o.x11), cores: o.cores ?? [] });
    this.nodes.set(name, n);
    return n;
  }

  /** nemu's Switch: a Linux bridge (STP off, forward delay 0) in its own namespace. */
  switch(name: string, options: Omit<NodeOptions, 'kind'> = {}): LabNode {
    return this.node(name, { ...options, kind: 'switch' });
  }

  /** A switch that floods every frame. */
  hub(name: string, options: Omit<NodeOptions, 'kind'> = {}): LabNode {
    return this.node(name, { ...options, kind: 'hub' });
  }

  /**
   * A link between two nodes (objects or names; `name:iface` names the interface), with
   * TOML's link keys and units; endpoint overrides under `"node:iface"` keys.
   */
  link(a: LabNode | string, b: LabNode | string, settings: LinkSettings = {}): LabLink {
    this.mustDefine('add a link');
    const ends: [string, string] = [nodeName(a), nodeName(b)];
    const keys: Record<string, TomlLike | undefined> = {};
    for (const [k, v] of Object.entries(settings)) if (v !== null && v !== undefined) keys[k] = v;
    this.linkDecls.push({ endpoints: ends, keys, site: callSite() });
    const l = new LabLink(this, this.links.length + (this.base?.topology.links.length ?? 0), ends);
    this.links.push(l);
    return l;
  }

  /** The topology as declared: the file's (if any) plus every call. */
  topology(): Topology {
    const s = this.opts;
    const settings: LabSettingsDecl = {
      name: this.name,
      topology: {
        ...(s.routing !== undefined ? { routing: s.routing } : {}),
        ...(s.routingWeight !== undefined ? { routing_weight: s.routingWeight } : {}),
        ...(s.impairmentBackend !== undefined ? { impairment_backend: s.impairmentBackend } : {}),
        ...(s.engineThreads !== undefined ? { impairment_engine_threads: s.engineThreads } : {}),
        ...(s.engineFailOpen !== undefined ? { impairment_engine_fail: s.engineFailOpen ? 'open' : 'closed' } : {}),
      },
      addressing: s.addressing ?? {},
      defaults: s.defaults ?? {},
      phynodes: Object.fromEntries(Object.entries(s.hosts ?? {}).map(([k, v]) => [k, v as Record<string, TomlLike>])),
    };
    const file = `<lab ${this.name}>`;
    if (!this.base) return readRendered(renderToml(settings, this.nodeDecls, this.linkDecls), file);
    if (this.nodeDecls.length === 0 && this.linkDecls.length === 0) return this.base.topology;
    const stubs = this.base.topology.nodes.map((n) => n.id);
    const added = readRendered(renderToml({ ...settings, phynodes: {} }, this.nodeDecls, this.linkDecls, stubs), file);
    return mergeTopologies(this.base.topology, added, new Set(stubs));
  }

  /** Compiles what is declared (plus this Lab's runtime changes) into a plan. */
  compile(): Plan {
    const topo = this.topology();
    const sha = createHash('sha256').update(this.base?.text ?? '').update(JSON.stringify([this.opts, this.nodeDecls.map((n) => [n.id, n.keys]), this.linkDecls.map((l) => [l.endpoints, l.keys])])).digest('hex');
    const r = compileWithDiagnostics(topo, { readFile: (p: string) => readFileSync(p), sourceSha256: sha, lab: this.name });
    this.diagnostics = sortDiagnostics([...topo.notes, ...r.diagnostics]);
    const plan = r.plan;
    for (const h of plan.hosts) {
      h.ops = h.ops.filter((o) => !this.dropped.has(opKey(o)));
      const mine = new Set(h.nodes.map((n) => n.ns));
      for (const op of this.extras.values()) if (mine.has((op as { ns: string }).ns)) h.ops.push(op);
    }
    return plan;
  }

  /** Builds the lab on its hosts, or converges it to what is declared now. */
  async up(): Promise<this> {
    this.mustDefine('bring it up again');
    const plan = this.compile();
    for (const d of this.diagnostics) if (d.severity === 'warning') this.opts.onEvent?.({ phynode: '', type: 'warning', message: formatDiagnostic(d) });
    const loc = transport.locationOfPlan(plan);
    const sameHosts = this.loc !== undefined && JSON.stringify(this.loc.hosts) === JSON.stringify(loc.hosts);
    if (!sameHosts) {
      this.hostsValue?.close();
      this.hostsValue = new transport.LabHosts(loc.hosts, { ...this.orchestrate(), hosts: undefined });
    }
    // Registered before anything is built: a process that dies during up still tears down.
    if (!this.opts.keep) tearDownOnExit(this);
    this.loc = loc;
    try {
      await upLab(plan, this.orchestrate());
    } catch (e) {
      if (this.state !== 'up') forgetOnExit(this);
      throw e;
    }
    this.planValue = plan;
    this.state = 'up';
    return this;
  }

  /** Removes the lab from every host: processes, namespaces, interfaces, files. */
  async down(): Promise<void> {
    const loc = this.loc ?? (this.attached ? undefined : transport.locationOfPlan(this.compile()));
    if (loc === undefined) return;
    try {
      await downLab(loc, this.orchestrate());
    } finally {
      this.hostsValue?.close();
      this.hostsValue = undefined;
      this.state = 'down';
      forgetOnExit(this);
      forgetX11(this.name);
    }
  }

  /** Where the lab is (for the exit handler). */
  get location(): transport.LabLocation | undefined {
    return this.loc;
  }

  /** Closes the connections to the lab's hosts; the lab keeps running. */
  close(): void {
    forgetOnExit(this);
    this.hostsValue?.close();
    this.hostsValue = undefined;
  }

  /** Status as `dune status --json` shows it. */
  status(): Promise<LabStatus> {
    return labStatus(this.running(), this.orchestrate());
  }

  /** @internal */
  running(): transport.LabLocation {
    if (this.state !== 'up' || this.loc === undefined) throw labError('lab-not-up', `lab ${this.name} is not up`, 'call `await lab.up()` first');
    return this.loc;
  }

  /** @internal the host agent and namespace of a node. */
  where(node: string): { agent: transport.HostAgent; ns: string; remote: boolean } {
    const loc = this.running();
    const hosts = this.hostsValue as transport.LabHosts;
    const { m, ns } = hosts.node(loc, node);
    return { agent: m.agent, ns, remote: m.agent.remote };
  }

  /** @internal applies runtime ops on the node's host and remembers them for later ups. */
  async change(node: string, apply: Op[], remove: Op[]): Promise<void> {
    const { agent } = this.where(node);
    await agent.change({ lab: this.name, apply, remove });
    for (const op of remove) {
      const k = opKey(op);
      if (this.extras.has(k)) this.extras.delete(k);
      else this.dropped.add(k);
    }
    for (const op of apply) {
      const k = opKey(op);
      this.dropped.delete(k);
      this.extras.set(k, op);
    }
    const planned = this.planValue;
    if (planned) {
      const drop = new Set(remove.map(opKey));
      for (const h of planned.hosts) h.ops = h.ops.filter((o) => !drop.has(opKey(o)));
      const ns = this.where(node).ns;
      const h = planned.hosts.find((x) => x.nodes.some((n) => n.ns === ns));
      if (h) for (const op of apply) h.ops.push(op);
    }
  }

  /** @internal stops or starts a node on its host (agent `change` with node actions). */
  async nodeAction(node: string, action: NodeActionName): Promise<void> {
    const { agent } = this.where(node);
    await agent.change({ lab: this.name, apply: [], remove: [], nodes: nodeSteps(node, action) });
  }

  /**
   * Runs the topology's failure schedule (`[[topology.events]]`, or `events`) against the
   * running lab: each event at its time after the call, reported to `onEvent` as applied.
   * Resolves when the last one is done; `signal` stops it between events.
   */
  runEvents(o: RunScheduleOptions & { events?: Plan['events'] } = {}): Promise<ScheduleReport[]> {
    this.running();
    return runSchedule(o.events ?? this.plan.events ?? [], {
      link: (node, dev, up) => (up ? this.node(node).iface(dev).up() : this.node(node).iface(dev).down()),
      node: (node, action) => this.nodeAction(node, action),
    }, o);
  }

  /**
   * Follows the plan's links that change over time (`trace = "FILE"`, `[[topology.schedule]]`)
   * on the running lab: each change at its time after the call (traces.ts). Resolves at the
   * end of the longest trace, or after `durationMs`; `signal` stops it between changes. A
   * Mahimahi trace is followed per packet on a lab whose impairment_backend is userspace,
   * else as its rate per window (`mahimahi` chooses).
   */
  followTraces(o: FollowOptions & { traces?: Plan['traces'] } = {}): Promise<TraceReport[]> {
    const loc = this.running();
    const mahimahi = o.mahimahi ?? (this.plan.impairmentBackend === 'userspace' ? 'packets' : 'rate');
    return followTraces(loc, o.traces ?? this.plan.traces ?? [], { ...o, mahimahi, orchestrate: this.orchestrate() });
  }

  /** @internal */
  async setDirection(node: string, dev: string, settings: LinkSettings): Promise<Impairment> {
    const { set, removed } = parseImpairmentAssignments(assignments(settings));
    return setImpairment(this.running(), node, dev, set, removed, this.orchestrate());
  }

  /** @internal */
  labOptions(): LabOptions {
    return this.opts;
  }

  /** @internal */
  linkByIndex(index: number): LabLink {
    return this.links.find((l) => l.index === index) ?? new LabLink(this, index, ['', '']);
  }

  /** The link objects declared here, or, once up, every link of the plan. */
  allLinks(): LabLink[] {
    if (!this.planValue) return [...this.links];
    return this.planValue.links.map((l) => this.linkByIndex(l.index));
  }

  /** Every node's handle. */
  allNodes(): LabNode[] {
    return [...this.nodes.values()];
  }
}

export class LabNode {
  readonly name: string;
  private readonly lab: Lab;
  private readonly x11: boolean;
  private readonly cores: number[];

  /** @internal */
  constructor(lab: Lab, name: string, o: { x11?: boolean; cores?: number[] }) {
    this.lab = lab;
    this.name = name;
    this.x11 = Boolean(o.x11);
    this.cores = o.cores ?? [];
  }

  private info(): Plan['nodes'][number] {
    const n = this.lab.plan.nodes.find((x) => x.node === this.name);
    if (n === undefined) throw labError('no-such-node', `lab ${this.lab.name} has no node "${this.name}"`, 'declare it with `lab.node(name)` before `up()`');
    return n;
  }

  /** The node's own (loopback) address: `address(4)`, `address(6)`. */
  address(family: 4 | 6 = 4): string {
    const n = this.info();
    const a = family === 4 ? n.v4 : n.v6;
    if (a === undefined || a === '') throw labError('no-address', `node ${this.name} has no IPv${family} address of its own`, this.lab.plan.nodes.length ? 'switches and hubs have none; ask a router' : '');
    return a;
  }

  /** The namespace (`ip netns exec NS ...` on its host). */
  get ns(): string {
    return this.info().ns;
  }

  get phynode(): string {
    return this.info().phynode;
  }

  /** Its link interfaces: name, peer and addresses as planned. */
  interfaces(): LabInterface[] {
    const out: LabInterface[] = [];
    for (const l of this.lab.plan.links) {
      if (l.a.node === this.name) out.push(new LabInterface(this.lab, this, l.a.dev));
      if (l.b.node === this.name) out.push(new LabInterface(this.lab, this, l.b.dev));
    }
    return out;
  }

  /** One interface by name (`eth0`). */
  iface(dev: string): LabInterface {
    return new LabInterface(this.lab, this, dev);
  }

  /** Starts a program in the node: streams, pid, wait(), kill(). A string runs through /bin/sh. */
  async spawn(argv: readonly string[] | string, o: SpawnOptions = {}): Promise<LabProcess> {
    const words = typeof argv === 'string' ? ['/bin/sh', '-c', argv] : [...argv];
    if (words.length === 0 || words[0] === '') throw labError('empty-command', `no command to run in node ${this.name}`, 'pass argv, e.g. [\'ping\', \'-c\', \'1\', \'10.0.0.2\']');
    if ((words[0] as string).includes('=')) throw labError('bad-command', `"${words[0]}" cannot be a program name (it contains "=")`, 'pass the environment in `env`, not as the first word');
    const env = { ...(o.env ?? defaultEnv(this.lab.name, this.name)) };
    for (const k of Object.keys(env)) {
      if (k === '' || k.includes('=') || k.includes('\0')) throw labError('bad-env', `"${k}" is not an environment variable name`, 'names are non-empty and contain no "=" or NUL');
    }
    const { agent, ns, remote } = this.lab.where(this.name);
    if (this.x11) Object.assign(env, await x11Env(this.lab.name, this.name, remote, o.user), o.env ?? {});
    const full = this.cores.length > 0 ? ['taskset', '-c', this.cores.join(','), ...words] : words;
    const hp = await agent.spawn({ ns, argv: full, env, ...(o.cwd !== undefined ? { cwd: o.cwd } : {}), ...(o.user !== undefined ? { user: o.user } : {}) });
    return new LabProcess(this.name, words, hp);
  }

  /** nemu's Popen: spawn() by its name. */
  popen(argv: readonly string[] | string, o: SpawnOptions = {}): Promise<LabProcess> {
    return this.spawn(argv, o);
  }

  /** Runs a program to its end: { code, signal, stdout, stderr }. */
  async run(argv: readonly string[] | string, o: RunOptions = {}): Promise<RunResult> {
    const p = await this.spawn(argv, o);
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    if (o.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        void p.kill('SIGKILL');
      }, o.timeoutMs);
    }
    try {
      const r = await p.communicate(o.input);
      const shown = typeof argv === 'string' ? argv : argv.join(' ');
      if (timedOut) throw labError('run-timeout', `\`${shown}\` in node ${this.name} did not end within ${o.timeoutMs} ms (killed)`, 'raise timeoutMs, or spawn() it and wait yourself');
      if (o.check && (r.code !== 0 || r.signal !== null)) {
        throw labError('run-failed', `\`${shown}\` in node ${this.name} failed (${r.signal ?? `exit ${r.code}`})${r.stderr.trim() ? `: ${r.stderr.trim().slice(-500)}` : ''}`, 'run it by hand with `dune exec` to see why');
      }
      return r;
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** Adds a route: `{ to: '192.0.2.0/24', via: '10.128.0.1' }` (dev found from via). */
  async addRoute(r: RouteSpec): Promise<void> {
    await this.lab.change(this.name, [this.routeOp(r)], []);
  }

  async delRoute(r: RouteSpec): Promise<void> {
    await this.lab.change(this.name, [], [this.routeOp(r)]);
  }

  /** The node's routes, as `ip -j route` reports them (both families). */
  async routes(): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    for (const fam of ['-4', '-6']) {
      const r = await this.run(['ip', '-j', fam, 'route', 'show'], { check: true });
      out.push(...(JSON.parse(r.stdout || '[]') as Record<string, unknown>[]));
    }
    return out;
  }

  private routeOp(r: RouteSpec): Op {
    const dst = r.to === 'default' ? 'default' : r.to;
    if (dst !== 'default') {
      const p = parseCidr(dst, true);
      if ('problem' in p) throw labError('bad-route', `route to ${dst}: ${p.problem}`, 'give a prefix such as 192.0.2.0/24, or "default"');
    }
    if (r.via !== undefined && 'problem' in parseCidr(r.via, true)) throw labError('bad-route', `route via ${r.via}: not an address`, 'give the next hop\'s address on one of the node\'s links');
    const dev = r.dev ?? (r.via !== undefined ? this.devFor(r.via) : undefined);
    if (dev === undefined) throw labError('bad-route', `route to ${dst} in node ${this.name} needs a device or a next hop on one of its links`, 'give `via` (an address on a link of the node) or `dev`');
    return { op: 'route', ns: this.ns, dst, dev, ...(r.via !== undefined ? { via: r.via } : {}), ...(r.metric !== undefined ? { metric: r.metric } : {}) } as Op;
  }

  /** The device whose subnet holds `addr`, from the plan's addresses (and runtime ones). */
  private devFor(addr: string): string | undefined {
    const a = cidr.parseAddr(addr);
    if (a === undefined) return undefined;
    for (const h of this.lab.plan.hosts) {
      for (const op of h.ops) {
        if (op.op !== 'addr' || op.ns !== this.ns) continue;
        const p = cidr.parsePrefix(op.cidr);
        if (typeof p === 'string' || p.family !== a.family) continue;
        const [lo, hi] = cidr.rangeOf(p);
        if (a.addr >= lo && a.addr <= hi && p.len < (p.family === 4 ? 32 : 128)) return op.dev;
      }
    }
    return undefined;
  }

  /**
   * A node failure: its supervised processes (the topology's `pinned`) are stopped and its
   * link ends set down, until start(). `dune status` shows it stopped.
   */
  async stop(): Promise<void> {
    await this.lab.nodeAction(this.name, 'stop');
  }

  /** The repair: processes started again from the plan, link ends up with their addresses and routes. */
  async start(): Promise<void> {
    await this.lab.nodeAction(this.name, 'start');
  }

  /** stop() then start(), in one change on the node's host. */
  async restart(): Promise<void> {
    await this.lab.nodeAction(this.name, 'restart');
  }

  /**
   * A firewall node's rules (and policy, statefulness) replaced while the lab runs, in one
   * nftables transaction; its counters start again from zero. The keys are the topology's.
   */
  async firewall(input: FirewallInput): Promise<FirewallSpec> {
    const { op, spec } = firewallChange(this.lab.plan, this.name, input);
    await this.lab.change(this.name, [op], []);
    return spec;
  }

  /** @internal */
  labName(): string {
    return this.lab.name;
  }
}

export class LabInterface {
  readonly node: LabNode;
  readonly name: string;
  private readonly lab: Lab;

  /** @internal */
  constructor(lab: Lab, node: LabNode, name: string) {
    this.lab = lab;
    this.node = node;
    this.name = name;
  }

  /** The address the plan gave this end of its link (without prefix length), if any. */
  address(family: 4 | 6 = 4): string {
    for (const l of this.lab.plan.links) {
      for (const e of [l.a, l.b]) {
        if (e.node !== this.node.name || e.dev !== this.name) continue;
        const a = family === 4 ? e.v4 : e.v6;
        if (a !== undefined) return a.replace(/\/\d+$/, '');
      }
    }
    throw labError('no-address', `${this.node.name}:${this.name} has no planned IPv${family} address`, 'switch ports and unaddressed links have none; see `addresses()` for what the kernel has');
  }

  private addrOp(text: string): Op {
    const p = parseCidr(text, false);
    if ('problem' in p) throw labError('bad-address', `${this.node.name}:${this.name}: ${p.problem}`, 'give an address with its prefix length, e.g. 192.0.2.1/24 or 2001:db8::1/64');
    return { op: 'addr', ns: this.node.ns, dev: this.name, cidr: p.cidr } as Op;
  }

  async addAddress(address: string): Promise<void> {
    await this.lab.change(this.node.name, [this.addrOp(address)], []);
  }

  async delAddress(address: string): Promise<void> {
    await this.lab.change(this.node.name, [], [this.addrOp(address)]);
  }

  /** Addresses as `ip -j addr` reports them: [{ address, prefixLen, family }]. */
  async addresses(): Promise<{ address: string; prefixLen: number; family: 'inet' | 'inet6' }[]> {
    const r = await this.node.run(['ip', '-j', 'addr', 'show', 'dev', this.name], { check: true });
    const j = JSON.parse(r.stdout || '[]') as { addr_info?: { local: string; prefixlen: number; family: 'inet' | 'inet6' }[] }[];
    return (j[0]?.addr_info ?? []).map((a) => ({ address: a.local, prefixLen: a.prefixlen, family: a.family }));
  }

  /** Sets the interface administratively up (after down()). */
  async up(): Promise<void> {
    await this.lab.change(this.node.name, [{ op: 'up', ns: this.node.ns, dev: this.name } as Op], []);
  }

  /** Sets the interface down: its link carries nothing until up(). */
  async down(): Promise<void> {
    await this.lab.change(this.node.name, [], [{ op: 'up', ns: this.node.ns, dev: this.name } as Op]);
  }

  /** Changes the impairment of traffic leaving through this interface; keys not given are kept. */
  set(settings: LinkSettings): Promise<Impairment> {
    return this.lab.setDirection(this.node.name, this.name, settings);
  }
}

export class LabLink {
  /** The link's index (file order; the plan's `links[].index`). */
  readonly index: number;
  private readonly lab: Lab;
  private readonly declared: [string, string];

  /** @internal */
  constructor(lab: Lab, index: number, declared: [string, string]) {
    this.lab = lab;
    this.index = index;
    this.declared = declared;
  }

  private info(): Plan['links'][number] {
    const l = this.lab.plan.links.find((x) => x.index === this.index);
    if (l === undefined) throw labError('no-such-link', `lab ${this.lab.name} has no link ${this.index} (${this.declared.join(' -- ')})`, 'links exist once the lab is up');
    return l;
  }

  /** Both ends, once up: [a, b] as interfaces. */
  get ends(): [LabInterface, LabInterface] {
    const l = this.info();
    return [this.lab.node(l.a.node).iface(l.a.dev), this.lab.node(l.b.node).iface(l.b.dev)];
  }

  private end(from: LabNode | string): LabInterface {
    const name = nodeName(from);
    const e = this.ends.find((x) => x.node.name === name);
    if (e === undefined) throw labError('not-an-end', `node ${name} is not an end of link ${this.index} (${this.ends.map((x) => x.node.name).join(' -- ')})`, 'pass one of its two nodes as `from`');
    return e;
  }

  /** Changes the link's impairments live: both directions, or `{ from: node }` for one. */
  async set(settings: LinkSettings, o: { from?: LabNode | string } = {}): Promise<Impairment[]> {
    const targets = o.from !== undefined ? [this.end(o.from)] : this.ends;
    const out: Impairment[] = [];
    for (const t of targets) out.push(await t.set(settings));
    return out;
  }

  /** A link failure: both ends down (their routes stay; traffic is lost, not rerouted, under static routing). */
  async down(): Promise<void> {
    for (const e of this.ends) await e.down();
  }

  /** The repair. */
  async up(): Promise<void> {
    for (const e of this.ends) await e.up();
  }
}

export { isLocal };
