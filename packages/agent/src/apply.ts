/**
 * Applying a host's ops to the kernel, over rtnetlink from this one process:
 *
 *   netns   native threads: unshare + bind mount, a routing socket opened inside each
 *   links   one socket (the host's) creates every veth/vxlan/bridge straight into its
 *           namespace (IFLA_NET_NS_FD) with an explicit ifindex, up at creation when the
 *           plan brings it up → drained, so the next phase sees the links
 *   per-ns  alias, enslave, up, addr, route, qdiscs: queued per namespace socket in plan
 *           order (one socket runs its requests in order, so no waits in between), all
 *           sockets flushed, then every ACK read and failures mapped back to their op
 *   sysctl  open(2) inside the namespace, write
 *   nft     one `nft -f -` per namespace for all its loss rules, a few in parallel
 *
 * Ops that are not kernel objects (file, exec, process) are returned as `deferred`.
 */
import { closeSync, constants as fsc, writeSync } from 'node:fs';
import type {
  AdoptOp,
  BridgeOp,
  ImpairOp,
  NetnsOp,
  Op,
  OpKind,
  SysctlOp,
  VethOp,
  VxlanOp,
} from '@dune/compiler';
import { ApplyError, describeErrno, describeOp, emptyJournal, type Journal } from './errors.js';
import { planImpairment, type ImpairmentBackendSetting, type ImpairPlan } from './impair/backends.js';
import { applyNftLoss, nftTableName, type NftLossEntry } from './impair/nft.js';
import { queueTcPlan } from './impair/tc-apply.js';
import { isNativeError, native } from './native.js';
import { getLink, newBridge, newVeth, newVxlan, parseLink, setLink, type BridgeSpec, type LinkSpec } from './netlink/link.js';
import { newAddr, newRoute } from './netlink/addr-route.js';
import { NlSocket } from './netlink/socket.js';
import { addrMsg, moveLinkMsg, ourRoute, ruleMsg, tableRouteMsg, type Rule } from './netlink/rule.js';
import { RTPROT_DUNE } from './netlink/constants.js';
import { createNamespaces, NETNS_INIT_SYSCTLS, nsPath, openNsFd } from './netns.js';
import { mapLimit } from './run.js';
import type { Caps } from './probe-types.js';

export type AgentEvent =
  | { type: 'progress'; kind: OpKind; done: number; total: number }
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
  /** Threads creating namespaces (default: 2). */
  threads?: number;
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

const KERNEL_KINDS = new Set<OpKind>(['netns', 'adopt', 'veth', 'vxlan', 'bridge', 'enslave', 'addr', 'up', 'route', 'rule', 'sysctl', 'impair']);

/** A request on a socket, pointing back at its op. */
interface Ref {
  opIndex: number;
}

/** A namespace the apply works in: its socket, its fd, and the interfaces it knows by name. */
class NsCtx {
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

class Applier {
  private readonly ops: Op[];
  private readonly opts: ApplyOptions;
  private readonly journal = emptyJournal();
  private readonly counts: Partial<Record<OpKind, number>> = {};
  private readonly timings: Record<string, number> = {};
  private readonly nss = new Map<string, NsCtx>();
  private host: NsCtx | undefined;
  /** `ns\0dev` of devices created up, so their `up` op is already done. */
  private readonly upAtCreation = new Set<string>();
  private readonly impairments: ApplyResult['impairments'] = [];
  private t0 = performance.now();

  constructor(ops: Op[], opts: ApplyOptions) {
    this.ops = ops;
    this.opts = opts;
  }

  private phase(name: string): void {
    const now = performance.now();
    this.timings[name] = (this.timings[name] ?? 0) + (now - this.t0);
    this.opts.onEvent?.({ type: 'phase', phase: name, ms: now - this.t0 });
    this.t0 = now;
  }

  private progress(kind: OpKind, done: number): void {
    const total = this.ops.filter((o) => o.op === kind).length;
    this.counts[kind] = done;
    if (total > 0) this.opts.onEvent?.({ type: 'progress', kind, done, total });
  }

  close(): void {
    for (const c of this.nss.values()) c.close();
    this.host?.close();
  }

  private isHost(ns: string | null | undefined): boolean {
    return ns === null || ns === undefined || ns === '' || ns === this.opts.hostNs;
  }

  private hostCtx(): NsCtx {
    if (!this.host) {
      const ns = this.opts.hostNs ?? null;
      this.host = new NsCtx(ns, NlSocket.open<Ref>(ns === null ? null : nsPath(ns), ns ?? 'host'), openNsFd(ns));
      this.host.learn();
    }
    return this.host;
  }

  /** The context of a namespace, opening (and learning) an existing one on first use. */
  private ctx(ns: string | null | undefined, op: Op): NsCtx {
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

  async run(): Promise<ApplyResult> {
    const deferred = this.ops.filter((o) => !KERNEL_KINDS.has(o.op));
    const ups = new Set(this.ops.filter((o) => o.op === 'up').map((o) => key(o.ns, (o as { dev: string }).dev)));

    this.createNamespaces(ups);
    this.phase('netns');
    this.adopt();
    this.phase('adopt');
    this.createLinks(ups);
    this.phase('links');
    this.sysctls();
    this.phase('sysctl');
    const nft = this.perNamespaceOps();
    this.phase('addr-route-tc');
    await this.nftLoss(nft);
    this.phase('nft');

    return {
      counts: this.counts,
      deferred,
      journal: this.journal,
      timingsMs: this.timings,
      impairments: this.impairments,
    };
  }

  private createNamespaces(ups: Set<string>): void {
    const netnsOps = this.ops.map((op, i) => [op, i] as const).filter((x): x is [NetnsOp, number] => x[0].op === 'netns');
    if (netnsOps.length === 0) return;
    const names = netnsOps.map(([op]) => op.ns);
    // DAD off only matters (and costs ~75 µs a namespace) when there is IPv6 to configure.
    const v6 = this.ops.some((o) => (o.op === 'addr' && o.cidr.includes(':')) || (o.op === 'route' && (o.dst.includes(':') || o.via?.includes(':'))));
    // lo's mark is written inside each namespace before it is named (see createNamespaces).
    const r = createNamespaces(names, this.opts.threads ?? 2, v6 ? NETNS_INIT_SYSCTLS : [], netnsOps.map(([op]) => op.alias));
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
    for (const [op, i] of netnsOps) {
      const c = this.nss.get(op.ns);
      if (!c) continue;
      c.nextIndex = base;
      c.ifindex.set('lo', lo);
      // The mark teardown trusts: lo's alias names the lab and node.
      const up = ups.has(key(op.ns, 'lo'));
      if (up) this.upAtCreation.add(key(op.ns, 'lo'));
      c.sock.queue({ opIndex: i }, (w, seq) => setLink(w, seq, { index: lo, alias: op.alias, ...(up ? { up: true } : {}) }));
    }
    for (const c of this.nss.values()) c.sock.flush();
    this.drainAll();
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
      host.sock.queue({ opIndex: i }, (w, seq) => moveLinkMsg(w, seq, index, c.nsFd));
      moved.push([op, c, index, i]);
    }
    host.sock.drain();
    if (host.sock.failures.length > 0) this.throwFailures([host]);
    for (const [op, c, index, i] of moved) {
      host.ifindex.delete(op.dev);
      c.ifindex.set(op.dev, index);
      c.nextIndex = Math.max(c.nextIndex, index + 1);
      const ref = { opIndex: i };
      for (const a of op.saved.addrs) if (!a.includes(':')) c.sock.queue(ref, (w, seq) => addrMsg(w, seq, { ifindex: index, cidr: a }));
      if (op.saved.up) c.sock.queue(ref, (w, seq) => setLink(w, seq, { index, up: true }));
      for (const r of op.saved.routes) if (r.family === 'inet') c.sock.queue(ref, (w, seq) => tableRouteMsg(w, seq, { ...r, oif: index }));
      c.sock.flush();
    }
    for (const [, c] of moved) c.sock.drain();
    // Routes the addresses brought back already (EEXIST) are as they were.
    for (const [, c] of moved) c.sock.failures.splice(0, c.sock.failures.length, ...c.sock.failures.filter((f) => Math.abs(f.ack.errno) !== 17));
    if (moved.some(([, c]) => c.sock.failures.length > 0)) this.throwFailures(moved.map(([, c]) => c));
    this.progress('adopt', adopts.length);
  }

  /** The namespace's context, after checking that `name` is free there. */
  private freeName(ns: string | null | undefined, op: Op, name: string): NsCtx {
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

  private allocIndex(ns: string | null | undefined, op: Op, name: string): [NsCtx, number] {
    const c = this.freeName(ns, op, name);
    const idx = c.nextIndex++;
    c.ifindex.set(name, idx);
    return [c, idx];
  }

  private spec(c: NsCtx, index: number, name: string, extra: Partial<LinkSpec>): LinkSpec {
    return { name, index, nsFd: c.nsFd, ...extra };
  }

  /**
   * The alias setlink that follows every creation also brings the link up when the plan does,
   * so `up` costs no message of its own. (Not at creation: a veth peer created up fails with
   * ENOTCONN, because veth_open runs before the kernel has joined the two ends.)
   */
  private aliasAndUp(c: NsCtx, name: string, ups: Set<string>): boolean {
    const k = key(c.name, name);
    if (!ups.has(k)) return false;
    this.upAtCreation.add(k);
    return true;
  }

  private createLinks(ups: Set<string>): void {
    const host = this.hostCtx();
    const aliases: { c: NsCtx; index: number; alias: string; opIndex: number; up: boolean }[] = [];
    /** Sockets that sent creations, drained together. */
    const creators = new Set<NsCtx>();
    const hostCreated: [string, number][] = [];
    let n: Record<'veth' | 'vxlan' | 'bridge', number> = { veth: 0, vxlan: 0, bridge: 0 };
    this.ops.forEach((op, i) => {
      if (op.op !== 'veth' && op.op !== 'vxlan' && op.op !== 'bridge') return;
      const ref = { opIndex: i };
      if (op.op === 'veth') {
        const v: VethOp = op;
        const [ca, ia] = this.allocIndex(v.ns, op, v.name);
        const [cb, ib] = this.allocIndex(v.peerNs, op, v.peerName);
        // Sent from a socket inside the first end's own namespace, with no IFLA_NET_NS_FD for
        // it: before Linux 6.x's fix, rtnl_newlink looks an explicit ifi_index up in the
        // *requesting* socket's namespace, so from the host socket index 2 (the host's eth0)
        // made Debian 12's 6.1 kernel answer EEXIST. The peer's index is checked where it goes.
        const sa: LinkSpec = { name: v.name, index: ia, ...(v.mtu ? { mtu: v.mtu } : {}), ...(v.mac ? { mac: v.mac } : {}) };
        const sb = this.spec(cb, ib, v.peerName, { ...(v.mtu ? { mtu: v.mtu } : {}), ...(v.peerMac ? { mac: v.peerMac } : {}) });
        ca.sock.queue(ref, (w, seq) => newVeth(w, seq, sa, sb));
        creators.add(ca);
        aliases.push(
          { c: ca, index: ia, alias: v.alias, opIndex: i, up: this.aliasAndUp(ca, v.name, ups) },
          { c: cb, index: ib, alias: v.peerAlias, opIndex: i, up: this.aliasAndUp(cb, v.peerName, ups) },
        );
        if (ca === host) hostCreated.push([v.name, i]);
        if (cb === host) hostCreated.push([v.peerName, i]);
      } else if (op.op === 'vxlan') {
        const x: VxlanOp = op;
        const c = this.freeName(x.ns, op, x.name);
        // The host socket must send it (the UDP socket lives where the request comes from).
        // Older kernels look an explicit ifi_index up in the requesting namespace (see veth
        // above), so the index must be free in the host's namespace as well as in the node's.
        const idx = Math.max(c.nextIndex, host.nextIndex);
        c.nextIndex = idx + 1;
        host.nextIndex = idx + 1;
        c.ifindex.set(x.name, idx);
        let underlayIndex: number | undefined;
        if (x.underlayDev !== undefined) {
          underlayIndex = host.index(x.underlayDev);
          if (underlayIndex === undefined) {
            throw new ApplyError(`${describeOp(op)}: underlay device ${x.underlayDev} not found in ${host.name ?? 'the host namespace'}`, {
              op,
              errno: 19,
              journal: this.journal,
              hint: 'check the phynode\'s `iface` (the underlay interface) on this host',
            });
          }
        }
        const s = {
          ...this.spec(c, idx, x.name, { mtu: x.mtu, ...(x.mac ? { mac: x.mac } : {}) }),
          vni: x.vni,
          local: x.local,
          remote: x.remote,
          port: x.port,
          ...(underlayIndex !== undefined ? { underlayIndex } : {}),
        };
        // Sent on the host's socket: the VXLAN UDP socket belongs to the creating namespace.
        host.sock.queue(ref, (w, seq) => newVxlan(w, seq, s));
        aliases.push({ c, index: idx, alias: x.alias, opIndex: i, up: this.aliasAndUp(c, x.name, ups) });
        if (c === host) hostCreated.push([x.name, i]);
      } else {
        const b: BridgeOp = op;
        const [c, idx] = this.allocIndex(b.ns, op, b.name);
        // nemu's Switch: STP off and no forward delay, so ports forward as soon as they are up.
        const s: BridgeSpec = {
          name: b.name,
          index: idx,
          ...(b.mtu ? { mtu: b.mtu } : {}),
          stpState: 0,
          forwardDelayCs: 0,
          ...(b.ageingTimeCs !== undefined ? { ageingTimeCs: b.ageingTimeCs } : {}),
        };
        c.sock.queue(ref, (w, seq) => newBridge(w, seq, s));
        creators.add(c);
        aliases.push({ c, index: idx, alias: b.alias, opIndex: i, up: this.aliasAndUp(c, b.name, ups) });
        if (c === host) hostCreated.push([b.name, i]);
      }
      n = { ...n, [op.op]: n[op.op] + 1 };
    });
    creators.add(host);
    for (const c of creators) c.sock.flush();
    for (const c of creators) c.sock.drain();
    // Host-side interfaces go in the journal only once they exist.
    const failedOps = new Set([...creators].flatMap((c) => c.sock.failures.map((f) => f.ref.opIndex)));
    for (const [name, i] of hostCreated) if (!failedOps.has(i)) this.journal.hostInterfaces.push(name);
    if (failedOps.size > 0) this.throwFailures([...creators]);
    for (const a of aliases) {
      a.c.sock.queue({ opIndex: a.opIndex }, (w, seq) => setLink(w, seq, { index: a.index, alias: a.alias, ...(a.up ? { up: true } : {}) }));
    }
    for (const k of ['veth', 'vxlan', 'bridge'] as const) this.progress(k, n[k]);
  }

  /**
   * /proc/sys/net of one namespace at a time, open as a directory. Every namespace's
   * /proc/sys/net has the same parent and name in the dentry cache, so looking the path up
   * walks a hash chain as long as the number of namespaces: with 4,000 of them a sysctl
   * write cost 0.38 ms, against 0.09 ms with 1,000. A namespace's sysctls are opened below
   * its own directory instead (through /proc/self/fd, inside the namespace), one long walk
   * per namespace rather than one per sysctl.
   */
  private netDir: { ns: string | null; fd: number } | undefined;

  private sysctls(): void {
    let done = 0;
    try {
      this.ops.forEach((op) => {
        if (op.op !== 'sysctl') return;
        this.writeSysctl(op);
        done++;
      });
    } finally {
      this.closeNetDir();
    }
    if (done > 0) this.progress('sysctl', done);
  }

  private closeNetDir(): void {
    if (this.netDir !== undefined && this.netDir.fd >= 0) closeSync(this.netDir.fd);
    this.netDir = undefined;
  }

  /** Where to open a sysctl: below the namespace's /proc/sys/net when it can be held open. */
  private sysctlOpenPath(ns: string | null, path: string): string {
    if (!path.startsWith('/proc/sys/net/')) return path;
    if (this.netDir?.ns !== ns) {
      this.closeNetDir();
      let fd = -1;
      try {
        fd = native().openInNs(ns === null ? null : nsPath(ns), '/proc/sys/net', fsc.O_RDONLY | fsc.O_DIRECTORY);
      } catch {
        // opened by its full path below, which reports what is wrong
      }
      this.netDir = { ns, fd };
    }
    return this.netDir.fd >= 0 ? `/proc/self/fd/${this.netDir.fd}/${path.slice('/proc/sys/net/'.length)}` : path;
  }

  private writeSysctl(op: SysctlOp): void {
    const path = sysctlPath(op.key);
    const ns = this.isHost(op.ns) ? (this.opts.hostNs ?? null) : op.ns;
    let fd: number;
    try {
      fd = native().openInNs(ns === null ? null : nsPath(ns), this.sysctlOpenPath(ns, path), fsc.O_WRONLY);
    } catch (e) {
      const errno = isNativeError(e) ? e.errno : 0;
      throw new ApplyError(`${describeOp(op)}: cannot open ${path}: ${describeErrno(errno)}`, {
        op,
        errno,
        journal: this.journal,
        hint: errno === 2 ? `no such sysctl in a network namespace on this kernel (${path})` : undefined,
        cause: e,
      });
    }
    try {
      writeSync(fd, `${op.value}\n`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      throw new ApplyError(`${describeOp(op)}: the kernel refused the value (${code})`, {
        op,
        errno: (e as NodeJS.ErrnoException).errno ? -((e as NodeJS.ErrnoException).errno ?? 0) : 22,
        journal: this.journal,
        hint: `check the value's range for ${op.key}`,
        cause: e,
      });
    } finally {
      closeSync(fd);
    }
  }

  /** Everything that talks to one namespace's socket, in plan order, then one drain. */
  private perNamespaceOps(): Map<string | null, NftLossEntry[]> {
    const nft = new Map<string | null, NftLossEntry[]>();
    const done: Partial<Record<OpKind, number>> = {};
    const bump = (k: OpKind) => (done[k] = (done[k] ?? 0) + 1);
    let caps = this.opts.caps;
    this.ops.forEach((op, i) => {
      const ref = { opIndex: i };
      switch (op.op) {
        case 'enslave': {
          const c = this.ctx(op.ns, op);
          const dev = this.devIndex(c, op.dev, op);
          const master = this.devIndex(c, op.master, op);
          c.sock.queue(ref, (w, seq) => setLink(w, seq, { index: dev, master }));
          bump('enslave');
          return;
        }
        case 'up': {
          bump('up');
          if (this.upAtCreation.has(key(this.isHost(op.ns) ? (this.opts.hostNs ?? null) : op.ns, op.dev))) return;
          const c = this.ctx(op.ns, op);
          const dev = this.devIndex(c, op.dev, op);
          c.sock.queue(ref, (w, seq) => setLink(w, seq, { index: dev, up: true }));
          return;
        }
        case 'addr': {
          const c = this.ctx(op.ns, op);
          const dev = this.devIndex(c, op.dev, op);
          c.sock.queue(ref, (w, seq) => newAddr(w, seq, dev, op.cidr));
          bump('addr');
          return;
        }
        case 'rule': {
          const c = this.ctx(op.ns, op);
          const rule: Rule = { family: 'inet', priority: op.priority, table: op.table, action: 'table', protocol: RTPROT_DUNE };
          if (op.src !== undefined) rule.src = op.src;
          if (op.dst !== undefined) rule.dst = op.dst;
          if (op.iif !== undefined) rule.iif = op.iif;
          c.sock.queue(ref, (w, seq) => ruleMsg(w, seq, rule));
          bump('rule');
          return;
        }
        case 'route': {
          const c = this.ctx(op.ns, op);
          const oif = this.devIndex(c, op.dev, op);
          if (op.table !== undefined || op.onlink === true) {
            const r = ourRoute(op.table ?? 254, op.dst, oif, op.via, op.onlink === true);
            if (op.metric !== undefined) r.metric = op.metric;
            if (op.src !== undefined) r.src = op.src;
            c.sock.queue(ref, (w, seq) => tableRouteMsg(w, seq, r));
            bump('route');
            return;
          }
          c.sock.queue(ref, (w, seq) =>
            newRoute(w, seq, {
              dst: op.dst,
              oif,
              ...(op.via !== undefined ? { via: op.via } : {}),
              ...(op.metric !== undefined ? { metric: op.metric } : {}),
              ...(op.src !== undefined ? { src: op.src } : {}),
            }),
          );
          bump('route');
          return;
        }
        case 'impair': {
          caps ??= this.requireCaps();
          const c = this.ctx(op.ns, op);
          const dev = this.devIndex(c, op.dev, op);
          const plan = this.planImpair(op, caps);
          queueTcPlan(c.sock, ref, dev, plan, false);
          if (plan.nftLossPpm !== undefined) {
            const list = nft.get(c.name) ?? [];
            list.push({ dev: op.dev, ppm: plan.nftLossPpm });
            nft.set(c.name, list);
          }
          this.impairments.push({ ns: op.ns, dev: op.dev, link: op.link, plan });
          bump('impair');
          return;
        }
        default:
          return;
      }
    });
    for (const c of this.contexts()) c.sock.flush();
    this.drainAll();
    for (const k of ['enslave', 'up', 'addr', 'route', 'rule', 'impair'] as const) {
      if (done[k] !== undefined) this.progress(k, done[k]);
    }
    return nft;
  }

  private planImpair(op: ImpairOp, caps: Caps): ImpairPlan {
    try {
      return planImpairment(op.impairment, caps, { mtu: op.mtu, where: `${op.ns}/${op.dev} (link ${op.link})`, prefer: this.opts.impairmentBackend ?? 'auto', userspaceEngine: this.opts.userspaceEngine === true });
    } catch (e) {
      // Unsupported is a plan-level problem; keep its message and hint, add the journal.
      const err = e as ApplyError;
      throw new ApplyError(err.message, { op, errno: 95, journal: this.journal, hint: err.hint, cause: e });
    }
  }

  private requireCaps(): Caps {
    throw new ApplyError('impair ops need the capability probe: pass `caps` (from probeCapabilities()) to applyOps', {
      journal: this.journal,
      hint: 'call probeCapabilities() once per host and pass its result as `caps`',
    });
  }

  private async nftLoss(nft: Map<string | null, NftLossEntry[]>): Promise<void> {
    if (nft.size === 0) return;
    const lab = this.opts.lab;
    const entries = [...nft.entries()];
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

  private devIndex(c: NsCtx, dev: string, op: Op): number {
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

function key(ns: string | null, dev: string): string {
  return `${ns ?? ''}\0${dev}`;
}

/** `dune.<lab>.<key>` → `<lab>`. */
export function labOf(ns: string | null): string | undefined {
  if (ns === null) return undefined;
  const m = /^dune\.([^.]+)\./.exec(ns);
  return m?.[1];
}

/**
 * `net.ipv4.conf.eth0.1.rp_filter` → `/proc/sys/net/ipv4/conf/eth0.1/rp_filter`: under
 * conf/neigh the interface name (which may contain dots) is everything between the
 * directory and the last component.
 */
export function sysctlPath(k: string): string {
  const parts = k.split('.');
  let rel: string[];
  if (k.includes('/')) rel = k.replace(/^\/+/, '').split('/');
  else if (parts.length >= 5 && parts[0] === 'net' && (parts[1] === 'ipv4' || parts[1] === 'ipv6') && (parts[2] === 'conf' || parts[2] === 'neigh')) {
    rel = [...parts.slice(0, 3), parts.slice(3, -1).join('.'), parts[parts.length - 1] ?? ''];
  } else rel = parts;
  // Keys come from topology files: never let one climb out of /proc/sys.
  if (rel.some((p) => p === '' || p === '.' || p === '..' || !/^[A-Za-z0-9_.@+:-]+$/.test(p))) {
    throw new Error(`not a sysctl key: ${JSON.stringify(k)}`);
  }
  return `/proc/sys/${rel.join('/')}`;
}
