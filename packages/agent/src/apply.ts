/**
 * Applying a host's ops to the kernel, over rtnetlink from this one process:
 *
 *   netns   native threads: unshare + bind mount, a routing socket opened inside each
 *   links   every veth/vxlan/bridge created straight into its namespace (IFLA_NET_NS_FD)
 *           with an explicit ifindex, from a namespace's socket → drained, so the next
 *           phase sees the links
 *   sysctl  open(2) inside the namespace, write (native threads, a visit per namespace)
 *   alias   each new link's alias, and up where the plan says so: a veth's two ends one
 *           right after the other (in order across their sockets, a background thread)
 *   per-ns  enslave, up, addr, route, qdiscs: queued per namespace socket in plan order
 *           (one socket runs its requests in order, so no waits in between), all sockets
 *           flushed, then every ACK read and failures mapped back to their op
 *   nft     one `nft -f -` per namespace for all its loss rules, a few in parallel
 *
 * Ops that are not kernel objects (file, exec, process) are returned as `deferred`.
 */
import { closeSync } from 'node:fs';
import type { AdoptOp, NetnsOp, Op, OpKind } from '@dune/compiler';
import { ApplyError, describeOp, emptyJournal, type Journal } from './errors.js';
import type { ImpairmentBackendSetting, ImpairPlan } from './impair/backends.js';
import { applyNftLoss, nftTableName, type NftLossEntry } from './impair/nft.js';
import { isNativeError } from './native.js';
import { getLink, parseLink, setLink, type LinkSpec } from './netlink/link.js';
import { NlSocket, setSenders, type OrderedRequest } from './netlink/socket.js';
import type { NlWriter } from './netlink/writer.js';
import { addrMsg, moveLinkMsg, tableRouteMsg } from './netlink/rule.js';
import { closeCreated, createNamespacesFor, NETNS_INIT_SYSCTLS, pickJob, nsPath, openNsFd, type CreateResult, type NamespaceJob } from './netns.js';
import { kindOfOp, opKinds, type LinkStage, type NsContext, type Ref, type SocketStage } from './ops/index.js';
import { mapLimit } from './run.js';
import type { Caps } from './probe-types.js';

export type AgentEvent =
  /** `stage`: the kinds a stage applies together report at its end, one after the other, with its name. */
  | { type: 'progress'; kind: OpKind; done: number; total: number; stage?: string }
  | { type: 'phase'; phase: string; ms: number };

export interface ApplyOptions {
  onEvent?: (e: AgentEvent) => void;
  /**
   * The namespace this agent treats as its host's own: where VXLAN sockets live and underlay
   * devices are looked up. Absent: the namespace the agent runs in. (Several "phynodes" on
   * one machine are namespaces; each one's agent is given its own.)
   */
  hostNs?: string;
  /** The capability probe's result; probed on first need (an impair op) when absent. */
  caps?: Caps;
  /** The lab name, for nftables table names; derived from `dune.<lab>.` namespace names if absent. */
  lab?: string;
  /** The lab's `impairment_backend` (default `auto`). */
  impairmentBackend?: ImpairmentBackendSetting;
  /**
   * The caller runs the lab's userspace engine: parts the userspace backend carries are
   * left to it (in the result's `impairments`) instead of refused. See PlanOptions.
   */
  userspaceEngine?: boolean;
  /** Threads creating namespaces (default: 4). */
  threads?: number;
  /**
   * The namespaces of these ops' netns ops, already being made (createNamespacesAsync of
   * namespaceJob(ops), started by `up` of a new lab while it staged the plan): called once,
   * when the apply takes them over (their fds are its from then on); any they lack are made
   * here as usual.
   */
  namespaces?: () => Promise<CreateResult>;
  /**
   * The caller's own work that needs no kernel object of these ops (a lab's files), run once
   * on this thread while the kernel makes the links, which this thread would otherwise only
   * wait for. A throw is rethrown once the links' answers are read.
   */
  meanwhile?: () => void;
}

/**
 * The namespaces the ops' netns ops make: each with lo's mark and lo up where an `up` op says
 * so; DAD off from the start when there is IPv6 to configure (it only matters then, and costs
 * ~75 µs a namespace).
 */
export function namespaceJob(ops: readonly Op[]): NamespaceJob {
  const netns = ops.filter((o): o is NetnsOp => o.op === 'netns');
  const loUp = new Set(ops.flatMap((o) => (o.op === 'up' && o.dev === 'lo' ? [o.ns] : [])));
  const v6 = ops.some((o) => (o.op === 'addr' && o.cidr.includes(':')) || (o.op === 'route' && (o.dst.includes(':') || o.via?.includes(':'))) || (o.op === 'routes' && o.via.includes(':')));
  return { names: netns.map((o) => o.ns), init: v6 ? NETNS_INIT_SYSCTLS : [], loAliases: netns.map((o) => o.alias), loUp: netns.map((o) => loUp.has(o.ns)) };
}

export interface ApplyResult {
  /** Ops applied, per kind. */
  counts: Partial<Record<OpKind, number>>;
  /** Ops that are not the kernel layer's (file, exec, process), in plan order. */
  deferred: Op[];
  journal: Journal;
  /** Wall time per phase. */
  timingsMs: Record<string, number>;
  /** Per impaired device, which backend carries which parameter. */
  impairments: { ns: string; dev: string; link: string; plan: ImpairPlan }[];
}

/** A namespace the apply works in: its socket, its fd, and the interfaces it knows by name. */
class NsCtx implements NsContext {
  readonly name: string | null;
  sock: NlSocket<Ref>;
  nsFd: number;
  readonly ifindex = new Map<string, number>();
  nextIndex = 2;
  constructor(name: string | null, sock: NlSocket<Ref>, nsFd: number) {
    this.name = name;
    this.sock = sock;
    this.nsFd = nsFd;
  }

  /** Learns the interfaces already there, so new ones get free indexes. */
  learn(): void {
    let max = 1;
    for (const m of this.sock.dump((w, seq, flags) => getLink(w, seq, flags), 'links')) {
      const l = parseLink(m);
      this.ifindex.set(l.name, l.index);
      if (l.index > max) max = l.index;
    }
    this.nextIndex = Math.max(this.nextIndex, max + 1);
  }

  index(dev: string): number | undefined {
    return this.ifindex.get(dev);
  }

  close(): void {
    this.sock.close();
    if (this.nsFd >= 0) closeSync(this.nsFd);
  }
}

export async function applyOps(ops: Op[], opts: ApplyOptions = {}): Promise<ApplyResult> {
  const a = new Applier(ops, opts);
  try {
    return await a.run();
  } finally {
    a.close();
  }
}

class Applier implements LinkStage, SocketStage {
  private readonly ops: Op[];
  readonly opts: ApplyOptions;
  readonly journal = emptyJournal();
  private readonly counts: Partial<Record<OpKind, number>> = {};
  private readonly timings: Record<string, number> = {};
  private readonly nss = new Map<string, NsCtx>();
  private host: NsCtx | undefined;
  /** `ns\0dev` of devices created up, so their `up` op is already done. */
  private readonly upAtCreationSet = new Set<string>();
  private readonly impairments: ApplyResult['impairments'] = [];
  private readonly nft = new Map<string | null, NftLossEntry[]>();
  private ups = new Set<string>();
  private probed: Caps | undefined;
  /** The link stage's state: sockets that sent creations, aliases to set after, host devices made. */
  private readonly creators = new Set<NsCtx>();
  private aliases: { c: NsCtx; index: number; alias: string; opIndex: number; up: boolean; peer: boolean }[] = [];
  private hostCreated: [string, number][] = [];
  private t0 = performance.now();

  constructor(ops: Op[], opts: ApplyOptions) {
    this.ops = ops;
    this.opts = opts;
    this.probed = opts.caps;
  }

  private phase(name: string): void {
    const now = performance.now();
    this.timings[name] = (this.timings[name] ?? 0) + (now - this.t0);
    this.opts.onEvent?.({ type: 'phase', phase: name, ms: now - this.t0 });
    this.t0 = now;
  }

  private progress(kind: OpKind, done: number, stage?: string): void {
    const total = this.ops.filter((o) => o.op === kind).length;
    this.counts[kind] = done;
    if (total > 0) this.opts.onEvent?.({ type: 'progress', kind, done, total, ...(stage !== undefined ? { stage } : {}) });
  }

  close(): void {
    for (const c of this.nss.values()) c.close();
    this.host?.close();
  }

  isHost(ns: string | null | undefined): boolean {
    return ns === null || ns === undefined || ns === '' || ns === this.opts.hostNs;
  }

  hostCtx(): NsCtx {
    if (!this.host) {
      const ns = this.opts.hostNs ?? null;
      this.host = new NsCtx(ns, NlSocket.open<Ref>(ns === null ? null : nsPath(ns), ns ?? 'host'), openNsFd(ns));
      this.host.learn();
    }
    return this.host;
  }

  /** The context of a namespace, opening (and learning) an existing one on first use. */
  ctx(ns: string | null | undefined, op: Op): NsCtx {
    if (this.isHost(ns)) return this.hostCtx();
    const name = ns as string;
    let c = this.nss.get(name);
    if (c) return c;
    try {
      c = new NsCtx(name, NlSocket.open<Ref>(nsPath(name), name), openNsFd(name));
    } catch (e) {
      throw new ApplyError(`${describeOp(op)}: namespace ${name} cannot be opened: ${(e as Error).message}`, {
        op,
        errno: isNativeError(e) ? e.errno : 2,
        journal: this.journal,
        hint: 'the plan uses a namespace that neither exists nor is created by a netns op before it',
        cause: e,
      });
    }
    c.learn();
    this.nss.set(name, c);
    return c;
  }

  caps(): Caps {
    if (this.probed === undefined) {
      throw new ApplyError('impair ops need the capability probe: pass `caps` (from probeCapabilities()) to applyOps', {
        journal: this.journal,
        hint: 'call probeCapabilities() once per host and pass its result as `caps`',
      });
    }
    return this.probed;
  }

  async run(): Promise<ApplyResult> {
    const deferred = this.ops.filter((o) => kindOfOp(o).apply.stage === 'deferred');
    this.ups = new Set(this.ops.filter((o) => o.op === 'up').map((o) => key(o.ns, (o as { dev: string }).dev)));

    await this.createNamespaces();
    this.phase('netns');
    this.adopt();
    this.phase('adopt');
    try {
      // Links, aliases, addresses: each request takes RTNL. Routes: IPv6 ones do not.
      setSenders(1);
      this.createLinks();
      this.phase('links');
      this.sysctls();
      this.phase('sysctl');
      if (this.ops.some((o) => o.op === 'route' || o.op === 'routes')) setSenders(2);
      this.aliasAndUp();
      this.perNamespaceOps();
      this.phase('addr-route-tc');
    } finally {
      setSenders(2);
    }
    await this.applyNftLoss();
    await this.batches();
    this.phase('nft');

    return {
      counts: this.counts,
      deferred,
      journal: this.journal,
      timingsMs: this.timings,
      impairments: this.impairments,
    };
  }

  private async createNamespaces(): Promise<void> {
    const netnsOps = this.ops.map((op, i) => [op, i] as const).filter((x): x is [NetnsOp, number] => x[0].op === 'netns');
    if (netnsOps.length === 0) {
      if (this.opts.namespaces) closeCreated(await this.opts.namespaces());
      return;
    }
    // lo's mark is written inside each namespace before it is named, and lo brought up in the
    // same message where the plan has it up (see createNamespaces).
    const job = namespaceJob(this.ops);
    const { loUp, names } = job;
    const threads = this.opts.threads ?? 4;
    let r: CreateResult;
    if (this.opts.namespaces) {
      // Made ahead; whatever those lack, made now.
      r = await this.opts.namespaces();
      const have = new Set([...r.created, ...r.failed].map((c) => c.name));
      const more = createNamespacesFor(pickJob(job, (n) => !have.has(n)), threads);
      r = { created: [...r.created, ...more.created], failed: [...r.failed, ...more.failed] };
    } else r = createNamespacesFor(job, threads);
    for (const c of r.created) {
      this.journal.namespaces.push(c.name);
      const sock = c.nlFd >= 0 ? new NlSocket<Ref>(c.nlFd, c.name) : NlSocket.open<Ref>(nsPath(c.name), c.name);
      this.nss.set(c.name, new NsCtx(c.name, sock, c.nsFd >= 0 ? c.nsFd : openNsFd(c.name)));
    }
    if (r.failed.length > 0) {
      const f = r.failed[0];
      const op = netnsOps.find(([o]) => o.ns === f?.name)?.[0];
      throw new ApplyError(
        `${op ? describeOp(op) : 'netns'}: ${f?.message}${r.failed.length > 1 ? ` (and ${r.failed.length - 1} more)` : ''}`,
        { ...(op ? { op } : {}), errno: f?.errno ?? 0, journal: this.journal },
      );
    }
    // Every new namespace starts alike (lo, plus whatever fallback devices this kernel adds):
    // learn one and start every namespace's own indexes after it.
    const first = this.nss.get(names[0] as string);
    first?.learn();
    const base = first?.nextIndex ?? 2;
    const lo = first?.index('lo') ?? 1;
    netnsOps.forEach(([op], i) => {
      const c = this.nss.get(op.ns);
      if (!c) return;
      c.nextIndex = base;
      c.ifindex.set('lo', lo);
      if (loUp[i]) this.upAtCreationSet.add(key(op.ns, 'lo'));
    });
    this.progress('netns', netnsOps.length);
  }

  /**
   * Interfaces of the host's namespace moved into theirs (before any link is made there, so
   * each keeps its ifindex), with their IPv4 addresses, state and IPv4 routes put back.
   */
  private adopt(): void {
    const adopts = this.ops.map((op, i) => [op, i] as const).filter((x): x is [AdoptOp, number] => x[0].op === 'adopt');
    if (adopts.length === 0) return;
    const host = this.hostCtx();
    const moved: [AdoptOp, NsCtx, number, number][] = [];
    for (const [op, i] of adopts) {
      const index = host.index(op.dev);
      if (index === undefined) {
        throw new ApplyError(`${describeOp(op)}: no interface ${op.dev} in ${host.name ?? 'the host namespace'}`, { op, errno: 19, journal: this.journal, hint: 'name an interface of the namespace the command runs in' });
      }
      const c = this.ctx(op.ns, op);
      host.sock.queue({ opIndex: i }, (w, seq) => moveLinkMsg(w, seq, index, c.nsFd, op.name));
      moved.push([op, c, index, i]);
    }
    host.sock.drain();
    if (host.sock.failures.length > 0) this.throwFailures([host]);
    for (const [op, c, index, i] of moved) {
      host.ifindex.delete(op.dev);
      c.ifindex.set(op.name ?? op.dev, index);
      c.nextIndex = Math.max(c.nextIndex, index + 1);
      const ref = { opIndex: i };
      // A bare one (a bridge's port) keeps nothing of its addresses and routes inside: its node's ops set it up.
      const saved = op.bare === true ? undefined : op.saved;
      for (const a of saved?.addrs ?? []) if (!a.includes(':')) c.sock.queue(ref, (w, seq) => addrMsg(w, seq, { ifindex: index, cidr: a }));
      if (saved?.up === true) c.sock.queue(ref, (w, seq) => setLink(w, seq, { index, up: true }));
      for (const r of saved?.routes ?? []) if (r.family === 'inet') c.sock.queue(ref, (w, seq) => tableRouteMsg(w, seq, { ...r, oif: index }));
      c.sock.flush();
    }
    for (const [, c] of moved) c.sock.drain();
    // Routes the addresses brought back already (EEXIST) are as they were.
    for (const [, c] of moved) c.sock.failures.splice(0, c.sock.failures.length, ...c.sock.failures.filter((f) => Math.abs(f.ack.errno) !== 17));
    if (moved.some(([, c]) => c.sock.failures.length > 0)) this.throwFailures(moved.map(([, c]) => c));
    this.progress('adopt', adopts.length);
  }

  // --- LinkStage: what a `link` op kind's create() uses (ops/types.ts) ---

  /** The namespace's context, after checking that `name` is free there. */
  freeName(ns: string | null | undefined, op: Op, name: string): NsCtx {
    const c = this.ctx(ns, op);
    if (c.ifindex.has(name)) {
      throw new ApplyError(`${describeOp(op)}: ${name} already exists in ${c.name ?? 'the host namespace'}`, {
        op,
        errno: 17,
        journal: this.journal,
      });
    }
    return c;
  }

  allocIndex(ns: string | null | undefined, op: Op, name: string): [NsCtx, number] {
    const c = this.freeName(ns, op, name);
    const idx = c.nextIndex++;
    c.ifindex.set(name, idx);
    return [c, idx];
  }

  reserve(c: NsContext, name: string | undefined, index: number): void {
    const n = c as NsCtx;
    n.nextIndex = index + 1;
    if (name !== undefined) n.ifindex.set(name, index);
  }

  nextIndex(c: NsContext): number {
    return (c as NsCtx).nextIndex;
  }

  spec(c: NsContext, index: number, name: string, extra: Partial<LinkSpec>): LinkSpec {
    return { name, index, nsFd: c.nsFd, ...extra };
  }

  create(c: NsContext, ref: Ref, build: Parameters<NlSocket<Ref>['queue']>[1]): void {
    c.sock.queue(ref, build);
    this.creators.add(c as NsCtx);
  }

  /**
   * The alias setlink that follows every creation also brings the link up when the plan does,
   * so `up` costs no message of its own. (Not at creation: a veth peer created up fails with
   * ENOTCONN, because veth_open runs before the kernel has joined the two ends.)
   */
  alias(c: NsContext, index: number, alias: string, ref: Ref, name: string, peer = false): void {
    const k = key(c.name, name);
    const up = this.ups.has(k);
    if (up) this.upAtCreationSet.add(k);
    this.aliases.push({ c: c as NsCtx, index, alias, opIndex: ref.opIndex, up, peer });
  }

  createdOnHost(name: string, ref: Ref): void {
    this.hostCreated.push([name, ref.opIndex]);
  }

  private createLinks(): void {
    const host = this.hostCtx();
    const n: Partial<Record<OpKind, number>> = {};
    this.ops.forEach((op, i) => {
      const a = kindOfOp(op).apply;
      if (a.stage !== 'link') return;
      a.create(op, { opIndex: i }, this);
      n[op.op] = (n[op.op] ?? 0) + 1;
    });
    this.creators.add(host);
    for (const c of this.creators) c.sock.flush();
    let meanwhile: { error: unknown } | undefined;
    try {
      this.opts.meanwhile?.();
    } catch (error) {
      meanwhile = { error };
    }
    for (const c of this.creators) c.sock.drain();
    if (meanwhile) throw meanwhile.error;
    // Host-side interfaces go in the journal only once they exist.
    const failedOps = new Set([...this.creators].flatMap((c) => c.sock.failures.map((f) => f.ref.opIndex)));
    for (const [name, i] of this.hostCreated) if (!failedOps.has(i)) this.journal.hostInterfaces.push(name);
    if (failedOps.size > 0) this.throwFailures([...this.creators]);
    for (const k of linkStageKinds()) this.progress(k, n[k] ?? 0, 'link');
  }

  /**
   * The aliases of the links just made, with `up` where the plan brings them up: after the
   * sysctls, so a device's own settings (addr_gen_mode, disable_ipv6, accept_dad…) are in place
   * before it comes up, and ahead of everything else each namespace's socket sends.
   */
  private aliasAndUp(): void {
    // A veth end up while its peer is still down has no carrier, and the kernel's link watcher
    // (which runs whenever another pair's carrier comes on) deactivates it: an expedited RCU
    // grace period with RTNL held, per end. With each socket's setlinks sent as one batch, most
    // first ends waited long for their peers (a 1,000-node up: 1,015 such waits; 89 now). So
    // both ends of a pair come up back to back, in order across the two namespaces' sockets,
    // sent by a background thread while the namespaces' requests are built.
    const ordered: OrderedRequest<Ref>[] = [];
    const setAlias = (a: (typeof this.aliases)[number]) => (w: NlWriter, seq: number) =>
      setLink(w, seq, { index: a.index, alias: a.alias, ...(a.up ? { up: true } : {}) });
    const al = this.aliases;
    for (let i = 0; i < al.length; i++) {
      const a = al[i]!;
      const b = al[i + 1];
      if (b?.peer === true && a.up && b.up) {
        ordered.push({ sock: a.c.sock, ref: { opIndex: a.opIndex }, build: setAlias(a) }, { sock: b.c.sock, ref: { opIndex: b.opIndex }, build: setAlias(b) });
        i++;
      } else a.c.sock.queue({ opIndex: a.opIndex }, setAlias(a));
    }
    NlSocket.sendInOrder(ordered);
  }

  private sysctls(): void {
    // Per kind, its ops grouped by namespace (each group in plan order, written in one visit
    // to the namespace; different namespaces' groups may be written at once).
    const groups = new Map<OpKind, Map<string | undefined, Op[]>>();
    for (const op of this.ops) {
      if (kindOfOp(op).apply.stage !== 'sysctl') continue;
      const byNs = groups.get(op.op) ?? new Map<string | undefined, Op[]>();
      groups.set(op.op, byNs);
      const ns = 'ns' in op ? (op.ns ?? undefined) : undefined;
      const g = byNs.get(ns);
      if (g) g.push(op);
      else byNs.set(ns, [op]);
    }
    for (const [k, byNs] of groups) {
      const list = [...byNs.values()];
      const a = kindOfOp(list[0]?.[0] as Op).apply;
      if (a.stage === 'sysctl') a.write(list as never, this);
      this.progress(k, list.reduce((n, g) => n + g.length, 0), 'sysctl');
    }
  }

  // --- SocketStage ---

  upAtCreation(ns: string | null, dev: string): boolean {
    return this.upAtCreationSet.has(key(ns, dev));
  }

  nftLoss(ns: string | null, entry: NftLossEntry): void {
    const list = this.nft.get(ns) ?? [];
    list.push(entry);
    this.nft.set(ns, list);
  }

  impaired(record: { ns: string; dev: string; link: string; plan: ImpairPlan }): void {
    this.impairments.push(record);
  }

  /** Everything that talks to one namespace's socket, in plan order, then one drain. */
  private perNamespaceOps(): void {
    const done: Partial<Record<OpKind, number>> = {};
    this.ops.forEach((op, i) => {
      const a = kindOfOp(op).apply;
      if (a.stage !== 'socket') return;
      a.queue(op, { opIndex: i }, this);
      done[op.op] = (done[op.op] ?? 0) + 1;
    });
    for (const c of this.contexts()) c.sock.flush();
    this.drainAll();
    for (const [k, d] of Object.entries(done) as [OpKind, number][]) this.progress(k, d, 'socket');
  }

  /** Ops of `batch` kinds, each kind given all of its ops at once, in plan order. */
  private async batches(): Promise<void> {
    const byKind = new Map<OpKind, Op[]>();
    for (const op of this.ops) {
      if (kindOfOp(op).apply.stage !== 'batch') continue;
      const l = byKind.get(op.op) ?? [];
      l.push(op);
      byKind.set(op.op, l);
    }
    for (const [k, list] of byKind) {
      const a = kindOfOp(list[0] as Op).apply;
      if (a.stage === 'batch') await a.run(list, this);
      this.progress(k, list.length);
    }
  }

  private async applyNftLoss(): Promise<void> {
    if (this.nft.size === 0) return;
    const lab = this.opts.lab;
    const entries = [...this.nft.entries()];
    await mapLimit(entries, 4, async ([ns, list]) => {
      const l = lab ?? labOf(ns);
      if (l === undefined) {
        throw new ApplyError(`nftables loss in ${ns ?? 'the host namespace'}: the lab name is unknown`, {
          journal: this.journal,
          hint: 'pass `lab` to applyOps',
        });
      }
      try {
        await applyNftLoss(ns, l, list);
      } catch (e) {
        const op = this.ops.find((o) => o.op === 'impair' && o.ns === ns);
        throw new ApplyError(`${op ? describeOp(op) : 'impair'}: ${(e as Error).message}`, {
          ...(op ? { op } : {}),
          journal: this.journal,
          hint: 'is nftables installed (`apt-get install nftables`) and the kernel built with nf_tables?',
          cause: e,
        });
      }
      this.journal.nftTables.push({ ns: ns ?? 'host', table: nftTableName(l) });
    });
  }

  devIndex(c: NsContext, dev: string, op: Op): number {
    const idx = c.index(dev);
    if (idx !== undefined) return idx;
    throw new ApplyError(`${describeOp(op)}: no interface ${dev} in ${c.name ?? 'the host namespace'}`, {
      op,
      errno: 19,
      journal: this.journal,
    });
  }

  private contexts(): NsCtx[] {
    return this.host ? [...this.nss.values(), this.host] : [...this.nss.values()];
  }

  private drainAll(): void {
    const cs = this.contexts();
    for (const c of cs) c.sock.drain();
    if (cs.some((c) => c.sock.failures.length > 0)) this.throwFailures(cs);
  }

  private throwFailures(cs: NsCtx[]): never {
    const all = cs.flatMap((c) => c.sock.takeFailures()).sort((x, y) => x.ref.opIndex - y.ref.opIndex);
    const first = all[0];
    if (!first) throw new Error('internal: throwFailures without failures');
    throw ApplyError.fromAck(this.ops[first.ref.opIndex] as Op, first.ack, this.journal, all.length - 1);
  }
}

/** The op kinds of the link stage, for progress (each reported, even when a plan has none). */
function linkStageKinds(): OpKind[] {
  return (Object.keys(opKinds) as OpKind[]).filter((k) => opKinds[k].apply.stage === 'link');
}

function key(ns: string | null, dev: string): string {
  return `${ns ?? ''}\0${dev}`;
}

/** `dune.<lab>.<key>` → `<lab>`. */
export function labOf(ns: string | null): string | undefined {
  if (ns === null) return undefined;
  const m = /^dune\.([^.]+)\./.exec(ns);
  return m?.[1];
}

export { sysctlPath } from './ops/sysctl.js';
