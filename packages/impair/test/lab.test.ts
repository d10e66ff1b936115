/**
 * A lab's engine (src/lab) without a kernel: the kernel side faked at its boundary (namespace
 * identity, NFQUEUE front ends, rule writes), time by FakeClock. What is checked: which
 * queues are bound, in what order rules are written against binds and unbinds, what a sync
 * changes and what it leaves alone, and the control socket's answers to good and bad input.
 * The real thing (NFQUEUE, iptables, pings) is test/e2e/userspace.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  FakeClock, LabControlServer, LabEngine, LabEngineError, removeScript, rulesScript, type Engine, type LabKernel, type LabPipeSpec, type NfqueueFrontend, type Pipe,
  type QueueRule,
} from '../src/index.js';

class FakeFrontend {
  readonly queues = new Map<number, Pipe>();
  readonly stats = { packets: 0, stamped: 0 };
  closed = false;
  constructor(
    readonly ns: string,
    private readonly log: string[],
    private readonly busy: Set<string>,
  ) {}
  addQueue(q: number, pipe: Pipe): void {
    if (this.queues.has(q)) throw new Error(`queue ${q} is already bound by this engine`);
    if (this.busy.has(`${this.ns} ${q}`)) throw new Error('Device or resource busy (errno 16)');
    this.log.push(`bind ${this.ns} ${q}`);
    this.queues.set(q, pipe);
  }
  removeQueue(q: number): void {
    this.log.push(`unbind ${this.ns} ${q}`);
    this.queues.delete(q);
  }
  close(): void {
    this.log.push(`close ${this.ns}`);
    this.closed = true;
  }
}

class FakeKernel implements LabKernel {
  readonly ino = new Map<string, number>();
  readonly log: string[] = [];
  readonly frontends: FakeFrontend[] = [];
  failRules = new Set<string>();
  /** `ns queue`: bound by another program (a bind fails). */
  busy = new Set<string>();
  /** The options front ends were opened with. */
  opened: unknown[] = [];
  private next = 100;
  add(...nss: string[]): void {
    for (const ns of nss) this.ino.set(ns, this.next++);
  }
  nsIno(ns: string): number | undefined {
    return this.ino.get(ns);
  }
  openFrontend(_engine: Engine, ns: string, _buf: Buffer, opts?: { failOpen?: boolean }): NfqueueFrontend {
    this.log.push(`open ${ns}`);
    this.opened.push(opts);
    const f = new FakeFrontend(ns, this.log, this.busy);
    this.frontends.push(f);
    return f as unknown as NfqueueFrontend;
  }
  async writeRules(ns: string, _lab: string, rules: readonly QueueRule[], addJump: boolean): Promise<void> {
    if (this.failRules.has(ns)) throw new Error(`iptables-restore in ${ns}: boom`);
    this.log.push(`rules ${ns}${addJump ? ' +jump' : ''} ${rules.map((r) => `${r.dir === 'in' ? 'in:' : ''}${r.dev}${r.proto ? `/${r.proto}` : ''}=${r.nfqueue}`).join(',') || '-'}`);
  }
  async removeRules(ns: string): Promise<void> {
    this.log.push(`unrule ${ns}`);
  }
  async removeStaleJumps(ns: string): Promise<number> {
    this.log.push(`stale ${ns}`);
    return 1;
  }
  take(): string[] {
    return this.log.splice(0);
  }
}

const spec = (ns: string, dev: string, params: LabPipeSpec['params'], link = `${ns}:${dev}`): LabPipeSpec => ({ ns, dev, link, params });

let k: FakeKernel;
let clock: FakeClock;
let lab: LabEngine;
beforeEach(() => {
  k = new FakeKernel();
  k.add('n1', 'n2', 'n3');
  clock = new FakeClock();
  lab = new LabEngine({ lab: 'l1', seed: 7, clock, kernel: k });
});

describe('sync', () => {
  it('binds one queue per direction, lowest free from 1000 per namespace, before the namespace\'s rules (with the jump, once)', async () => {
    const r = await lab.sync([spec('n1', 'eth0', { delayUs: 10_000 }), spec('n1', 'eth1', { delayUs: 20_000 }), spec('n2', 'eth0', { delayUs: 10_000 })]);
    expect(r).toMatchObject({ added: 3, removed: 0, changed: 0, unchanged: 0, namespaces: 2, rulesWritten: 2 });
    expect(k.take()).toEqual(['open n1', 'bind n1 1000', 'bind n1 1001', 'open n2', 'bind n2 1000', 'rules n1 +jump eth0=1000,eth1=1001', 'rules n2 +jump eth0=1000']);
    const st = lab.status();
    expect(st.pipes.map((p) => `${p.ns}/${p.dev} q${p.nfqueue} ${JSON.stringify(p.params)}`)).toEqual([
      'n1/eth0 q1000 {"delayUs":10000}', 'n1/eth1 q1001 {"delayUs":20000}', 'n2/eth0 q1000 {"delayUs":10000}',
    ]);
    expect(st).toMatchObject({ lab: 'l1', seed: 7, namespaces: 2, held: { packets: 0, bytes: 0 } });
  });

  it('a direction with a far end: its TCP queued where it arrives, the rest where it leaves, one pipe; one that duplicates wholly where it leaves; moves live', async () => {
    const ab = { ...spec('n1', 'eth0', { delayUs: 1000 }), ingress: { ns: 'n2', dev: 'eth0' } };
    const ba = { ...spec('n2', 'eth0', { delayUs: 1000, duplicatePct: 1 }), ingress: { ns: 'n1', dev: 'eth0' } };
    expect(await lab.sync([ab, ba])).toMatchObject({ added: 2, namespaces: 2 });
    // n1 → n2: TCP at n2's ingress, the rest at n1's egress; n2 → n1 (duplicating) at n2's egress.
    expect(k.take()).toEqual(['open n2', 'bind n2 1000', 'open n1', 'bind n1 1000', 'bind n2 1001', 'rules n2 +jump in:eth0/tcp=1000,eth0=1001', 'rules n1 +jump eth0/other=1000']);
    const where = () => lab.status().pipes.map((p) => `${p.ns}/${p.dev}: ${(p.queuedAt ?? []).map((h) => `${h.dir} ${h.ns}/${h.dev}${h.proto ? ` ${h.proto}` : ''} q${h.nfqueue}`).join(', ')}`);
    expect(where()).toEqual(['n1/eth0: in n2/eth0 tcp q1000, out n1/eth0 other q1000', 'n2/eth0: out n2/eth0 q1001']);
    // Both hooks feed the one pipe: one clock, one queue.
    const [f2, f1] = k.frontends;
    expect(f2?.queues.get(1000)).toBe(f1?.queues.get(1000));
    // n1/eth0 duplicates from now on: wholly at n1's egress.
    await lab.set('n1', 'eth0', { delayUs: 1000, duplicatePct: 5 });
    // Moved wholly first: n1 had nothing else, so its tables and socket go and come back.
    expect(k.take()).toEqual(['unrule n1', 'rules n2 eth0=1001', 'unbind n2 1000', 'close n1', 'open n1', 'bind n1 1000', 'rules n1 +jump eth0=1000']);
    expect(where()).toEqual(['n1/eth0: out n1/eth0 q1000', 'n2/eth0: out n2/eth0 q1001']);
    // And back.
    await lab.set('n1', 'eth0', { delayUs: 2000 });
    expect(where()).toEqual(['n1/eth0: in n2/eth0 tcp q1000, out n1/eth0 other q1000', 'n2/eth0: out n2/eth0 q1001']);
    k.take();
    // A sync splits n2 → n1 too when it stops duplicating; with `all`, everything where it arrives.
    expect(await lab.sync([{ ...ab, ingress: { ns: 'n2', dev: 'eth0', all: true } }, { ...ba, params: { delayUs: 1000 } }])).toMatchObject({ changed: 2, added: 0 });
    expect(where()).toEqual(['n1/eth0: in n2/eth0 q1000', 'n2/eth0: in n1/eth0 tcp q1000, out n2/eth0 other q1001']);
    expect(lab.status().pipes.map((p) => `${p.ns}/${p.dev} ${JSON.stringify(p.params)}`)).toEqual(['n1/eth0 {"delayUs":1000}', 'n2/eth0 {"delayUs":1000}']);
    // A far end that does not exist: where it leaves.
    await lab.sync([{ ...spec('n3', 'eth0', { delayUs: 1 }), ingress: { ns: 'gone', dev: 'eth0' } }]);
    expect(where()).toEqual(['n3/eth0: out n3/eth0 q1000']);
  });

  it('the same pipes again: nothing done; a changed parameter: changed live, no rule written', async () => {
    const pipes = [spec('n1', 'eth0', { delayUs: 10_000 }), spec('n2', 'eth0', { delayUs: 10_000 })];
    await lab.sync(pipes);
    k.take();
    expect(await lab.sync(pipes)).toMatchObject({ added: 0, removed: 0, changed: 0, unchanged: 2, rulesWritten: 0 });
    expect(await lab.sync([pipes[0] as LabPipeSpec, spec('n2', 'eth0', { delayUs: 40_000, jitterUs: 1000 })])).toMatchObject({ changed: 1, unchanged: 1, rulesWritten: 0 });
    expect(k.take()).toEqual([]);
    expect(lab.status().pipes[1]?.params).toEqual({ delayUs: 40_000, jitterUs: 1000 });
  });

  it('a direction removed: the rules first (without it), its queue unbound after; a new one meanwhile gets another queue', async () => {
    await lab.sync([spec('n1', 'eth0', { delayUs: 1 }), spec('n1', 'eth1', { delayUs: 1 })]);
    k.take();
    const r = await lab.sync([spec('n1', 'eth1', { delayUs: 1 }), spec('n1', 'eth2', { delayUs: 1 })]);
    expect(r).toMatchObject({ added: 1, removed: 1 });
    expect(k.take()).toEqual(['bind n1 1002', 'rules n1 eth1=1001,eth2=1002', 'unbind n1 1000']);
    // 1000 is free again for the next one.
    await lab.sync([spec('n1', 'eth1', { delayUs: 1 }), spec('n1', 'eth2', { delayUs: 1 }), spec('n1', 'eth3', { delayUs: 1 })]);
    expect(k.take()).toEqual(['bind n1 1000', 'rules n1 eth1=1001,eth2=1002,eth3=1000']);
  });

  it('a namespace no longer served: its rules removed, its socket closed', async () => {
    await lab.sync([spec('n1', 'eth0', { delayUs: 1 }), spec('n2', 'eth0', { delayUs: 1 })]);
    k.take();
    expect(await lab.sync([spec('n1', 'eth0', { delayUs: 1 })])).toMatchObject({ removed: 1, namespaces: 1 });
    expect(k.take()).toEqual(['unrule n2', 'close n2']);
    expect(lab.status().namespaces).toBe(1);
  });

  it('a namespace deleted and created again under its name: the old socket closed, the pipes bound anew, the jump added again', async () => {
    await lab.sync([spec('n1', 'eth0', { delayUs: 1 })]);
    k.take();
    k.add('n1'); // a new inode
    expect(await lab.sync([spec('n1', 'eth0', { delayUs: 1 })])).toMatchObject({ added: 1, rulesWritten: 1 });
    expect(k.take()).toEqual(['close n1', 'open n1', 'bind n1 1000', 'rules n1 +jump eth0=1000']);
    expect(k.frontends.map((f) => f.closed)).toEqual([true, false]);
  });

  it('recovering after an engine that died: a dead engine\'s jumps go before the first rules of each namespace', async () => {
    await lab.sync([spec('n1', 'eth0', { delayUs: 1 }), spec('n2', 'eth0', { delayUs: 1 })], true);
    // Namespaces are written concurrently: the order holds within each.
    const log = k.take();
    for (const ns of ['n1', 'n2']) expect(log.filter((l) => l.endsWith(` ${ns}`) || l.includes(` ${ns} `)).filter((l) => !l.startsWith('bind') && !l.startsWith('open'))).toEqual([`stale ${ns}`, `rules ${ns} +jump eth0=1000`]);
    // Once only: later writes trust the jump this engine put there.
    await lab.sync([spec('n1', 'eth0', { delayUs: 1 }), spec('n1', 'eth1', { delayUs: 1 }), spec('n2', 'eth0', { delayUs: 1 })]);
    expect(k.take()).toEqual(['bind n1 1001', 'rules n1 eth0=1000,eth1=1001']);
  });

  it('validates every pipe first: all problems at once, nothing applied', async () => {
    const err = (await lab
      .sync([spec('n1', 'eth0', { delayUs: -5 } as never), spec('n2', 'eth0', { bogus: 1 } as never), spec('n2', 'eth0', {}), { ns: '', dev: 'x' } as never])
      .catch((e: unknown) => e)) as LabEngineError;
    expect(err).toBeInstanceOf(LabEngineError);
    expect(err.code).toBe('invalid-parameters');
    expect(err.message).toMatchInlineSnapshot(`"n1/eth0.delayUs: delayUs -5 is negative; n2/eth0.bogus: unknown key "bogus"; use one of: delay, loss, bandwidth, buffer, jitter, distribution, jitterCorrelation, lossCorrelation, gemodel, duplicate, corrupt, reorder, gap, rate, queue, delayUs, jitterUs, jitterDistribution, jitterCorrelationPct, lossPct, lossCorrelationPct, lossGilbertElliott, duplicatePct, corruptPct, reorderPct, reorderGap, rateBitsPerSec, queuePackets, queueBytes; n2/eth0: given twice; (pipe): a pipe needs "ns" (a namespace name) and "dev" (an interface), got {"ns":"","dev":"x"}"`);
    expect(k.take()).toEqual([]);
  });

  it('a namespace that does not exist is an error naming it', async () => {
    await expect(lab.sync([spec('nope', 'eth0', { delayUs: 1 })])).rejects.toThrow('there is no namespace nope (/run/netns/nope)');
  });

  it('a bind that fails (a queue another program holds): that pipe left out, the others applied, the error names it', async () => {
    k.busy.add('n2 1000');
    await expect(lab.sync([spec('n1', 'eth0', { delayUs: 1000 }), spec('n2', 'eth0', { delayUs: 1000 }), spec('n3', 'eth0', { delayUs: 1000 })])).rejects.toMatchObject({
      code: 'nfqueue-failed', message: expect.stringContaining('binding queue 1000 in n2 for n2/eth0: Device or resource busy') as unknown,
    });
    expect(k.take()).toEqual(['open n1', 'bind n1 1000', 'open n2', 'open n3', 'bind n3 1000', 'rules n1 +jump eth0=1000', 'rules n3 +jump eth0=1000']);
    expect(lab.status().pipes.map((p) => `${p.ns}/${p.dev}`)).toEqual(['n1/eth0', 'n3/eth0']);
    // Once the queue is free, the next sync adds it; the others are left alone.
    k.busy.clear();
    const r = await lab.sync([spec('n1', 'eth0', { delayUs: 1000 }), spec('n2', 'eth0', { delayUs: 1000 }), spec('n3', 'eth0', { delayUs: 1000 })]);
    expect(r).toMatchObject({ added: 1, unchanged: 2, rulesWritten: 1 });
    expect(k.take()).toEqual(['bind n2 1000', 'rules n2 +jump eth0=1000']);
  });

  it('fail open is asked of every queue\'s socket when the engine is made so; threads must be 1..256', async () => {
    const open = new LabEngine({ lab: 'lo', clock, kernel: k, failOpen: true });
    await open.sync([spec('n1', 'eth0', { delayUs: 1000 })]);
    expect(k.opened).toEqual([{ failOpen: true }]);
    expect(open.hello()).toMatchObject({ threads: 1, failOpen: true });
    expect(open.status()).toMatchObject({ failOpen: true });
    await open.close();
    expect(() => new LabEngine({ lab: 'l3', kernel: k, threads: 0 })).toThrow('threads must be a whole number from 1 to 256, got 0');
  });

  it('a failed rule write is reported with the namespace and the fix', async () => {
    k.failRules.add('n2');
    const err = (await lab.sync([spec('n1', 'eth0', { delayUs: 1 }), spec('n2', 'eth0', { delayUs: 1 })]).catch((e: unknown) => e)) as LabEngineError;
    expect(err.code).toBe('rules-failed');
    expect(err.message).toBe('iptables-restore in n2: boom');
    expect(err.hint).toMatch(/apt-get install iptables/);
  });
});

describe('add, set, remove, close', () => {
  it('set changes a pipe live, adds one with create, refuses a missing one without', async () => {
    await lab.sync([spec('n1', 'eth0', { delayUs: 1000 })]);
    k.take();
    expect(await lab.set('n1', 'eth0', { delayUs: 5000 })).toEqual({ nfqueue: 1000, created: false });
    await expect(lab.set('n1', 'eth1', { delayUs: 5000 })).rejects.toMatchObject({ code: 'no-such-pipe' });
    expect(await lab.set('n1', 'eth1', { delayUs: 5000 }, { create: true, link: '2:a' })).toEqual({ nfqueue: 1001, created: true });
    expect(await lab.add(spec('n3', 'eth0', { delayUs: 1 }))).toEqual({ nfqueue: 1000 });
    await expect(lab.add(spec('n3', 'eth0', { delayUs: 1 }))).rejects.toMatchObject({ code: 'pipe-exists' });
    expect(k.take()).toEqual(['bind n1 1001', 'rules n1 eth0=1000,eth1=1001', 'open n3', 'bind n3 1000', 'rules n3 +jump eth0=1000']);
    await expect(lab.set('n1', 'eth0', { delay: 'soon' })).rejects.toMatchObject({ code: 'invalid-parameters' });
    expect(lab.status().pipes.find((p) => p.dev === 'eth0' && p.ns === 'n1')?.params).toEqual({ delayUs: 5000 });
  });

  it('remove: rules first, then the queue; the last one of a namespace takes the chain and the socket with it', async () => {
    await lab.sync([spec('n1', 'eth0', { delayUs: 1 }), spec('n1', 'eth1', { delayUs: 1 })]);
    k.take();
    expect(await lab.remove('n1', 'eth0')).toEqual({ removed: true });
    expect(await lab.remove('n1', 'eth0')).toEqual({ removed: false });
    expect(await lab.remove('n1', 'eth1')).toEqual({ removed: true });
    expect(k.take()).toEqual(['rules n1 eth1=1001', 'unbind n1 1000', 'unrule n1', 'close n1']);
  });

  it('close leaves the rules when asked (the namespaces are about to go), removes them otherwise', async () => {
    await lab.sync([spec('n1', 'eth0', { delayUs: 1 })]);
    k.take();
    await lab.close({ keepRules: true });
    expect(k.take()).toEqual(['close n1']);
    await expect(lab.sync([])).rejects.toMatchObject({ code: 'shutting-down' });
    const other = new LabEngine({ lab: 'l2', clock, kernel: k });
    await other.sync([spec('n2', 'eth0', { delayUs: 1 })]);
    k.take();
    await other.close();
    expect(k.take()).toEqual(['unrule n2', 'close n2']);
  });

  it('a pipe\'s packets wait their delay on the engine\'s one clock; status counts them', async () => {
    await lab.sync([spec('n1', 'eth0', { delayUs: 10_000, lossPct: 0 })]);
    const pipe = k.frontends[0]?.queues.get(1000) as Pipe;
    pipe.input({ size: 100 });
    pipe.input({ size: 200 });
    expect(lab.status().pipes[0]).toMatchObject({ received: { packets: 2, bytes: 300 }, held: { packets: 2, bytes: 300 }, delivered: { packets: 0 } });
    clock.advance(9_999);
    expect(lab.status().pipes[0]?.delivered.packets).toBe(0);
    clock.advance(1);
    expect(lab.status().pipes[0]).toMatchObject({ delivered: { packets: 2, bytes: 300 }, held: { packets: 0 }, latencyUs: { p50: 10_000 } });
  });

  it('a lab name that could not be a comment or a path is refused', () => {
    expect(() => new LabEngine({ lab: 'a"b', kernel: k })).toThrow('"a"b" is not a lab name');
  });
});

describe('rules', () => {
  it('one transaction per namespace: the chain (emptied by its declaration), the jump the first time, one NFQUEUE rule per direction', () => {
    expect(rulesScript('l1', [{ dev: 'eth1', nfqueue: 1001 }, { dev: 'eth0', nfqueue: 1000 }, { dev: 'eth2', nfqueue: 1002, dir: 'in' }], true)).toMatchInlineSnapshot(`
      "*mangle
      :DUNE-IMPAIR - [0:0]
      :DUNE-IMPAIR-IN - [0:0]
      -A POSTROUTING -m comment --comment "dune:l1:impair" -j DUNE-IMPAIR
      -A PREROUTING -m comment --comment "dune:l1:impair" -j DUNE-IMPAIR-IN
      -A DUNE-IMPAIR -o eth0 -m mark ! --mark 0x1d0e1d0e -m comment --comment "dune:l1:impair q=1000" -j NFQUEUE --queue-num 1000
      -A DUNE-IMPAIR -o eth1 -m mark ! --mark 0x1d0e1d0e -m comment --comment "dune:l1:impair q=1001" -j NFQUEUE --queue-num 1001
      -A DUNE-IMPAIR-IN -i eth2 -m mark ! --mark 0x1d0e1d0e -m comment --comment "dune:l1:impair q=1002" -j NFQUEUE --queue-num 1002
      COMMIT
      "
    `);
    expect(removeScript('l1')).toMatchInlineSnapshot(`
      "*mangle
      -D POSTROUTING -m comment --comment "dune:l1:impair" -j DUNE-IMPAIR
      -D PREROUTING -m comment --comment "dune:l1:impair" -j DUNE-IMPAIR-IN
      -F DUNE-IMPAIR
      -X DUNE-IMPAIR
      -F DUNE-IMPAIR-IN
      -X DUNE-IMPAIR-IN
      COMMIT
      "
    `);
    expect(() => rulesScript('l1', [{ dev: 'eth0 -j ACCEPT', nfqueue: 1 }], false)).toThrow('not an interface name');
  });
});

describe('the control socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dune-impair-lab-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Sends lines on one connection; resolves with one parsed reply per line. */
  function talk(path: string, lines: string[]): Promise<Record<string, unknown>[]> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      const out: Record<string, unknown>[] = [];
      let buf = '';
      s.setEncoding('utf8');
      s.on('connect', () => s.write(lines.map((l) => `${l}\n`).join('')));
      s.on('data', (d: string) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          out.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
          buf = buf.slice(nl + 1);
        }
        if (out.length === lines.length) {
          s.end();
          resolve(out);
        }
      });
      s.on('error', reject);
    });
  }

  it('answers in order, survives bad input, refuses a second server on its path, shuts down on request', async () => {
    const path = join(dir, 'impair.sock');
    const server = new LabControlServer(lab, path);
    let shut: unknown;
    server.onShutdown = (o) => (shut = o);
    await server.listen();
    await expect(new LabControlServer(lab, path).listen()).rejects.toMatchObject({ code: 'engine-running' });
    const replies = await talk(path, [
      '{"id":1,"method":"hello"}',
      'this is not json',
      '{"id":2,"method":"launch"}',
      JSON.stringify({ id: 3, method: 'sync', params: { pipes: [spec('n1', 'eth0', { delayUs: 20_000 })] } }),
      JSON.stringify({ id: 4, method: 'set', params: { ns: 'n1', dev: 'eth0', params: { delay: '30ms' } } }),
      JSON.stringify({ id: 5, method: 'set', params: { ns: 'n1', dev: 'eth9', params: {} } }),
      JSON.stringify({ id: 6, method: 'sync', params: { pipes: 'all' } }),
      '{"id":7,"method":"counters"}',
      '{"id":8,"method":"remove","params":{"ns":"n1"}}',
      '{"id":9,"method":"shutdown","params":{"keepRules":true}}',
    ]);
    // Requests that change pipes run one after the other; the rest answer at once: by id.
    const by = new Map(replies.map((r) => [r['id'] as number, r]));
    expect(by.get(1)).toMatchObject({ ok: true, result: { protocol: 'dune-impair-engine/1', lab: 'l1', pipes: 0, namespaces: 0 } });
    expect(by.get(0)).toMatchObject({ ok: false, error: { code: 'bad-request' } });
    expect(by.get(2)).toMatchObject({ ok: false, error: { code: 'unknown-method', message: 'unknown method "launch"; methods: hello, sync, add, remove, set, counters, shutdown' } });
    expect(by.get(3)).toMatchObject({ ok: true, result: { added: 1 } });
    expect(by.get(4)).toEqual({ id: 4, ok: true, result: { nfqueue: 1000, created: false } });
    expect(by.get(5)).toMatchObject({ ok: false, error: { code: 'no-such-pipe' } });
    expect(by.get(6)).toMatchObject({ ok: false, error: { code: 'bad-request' } });
    expect(by.get(7)).toMatchObject({ ok: true, result: { protocol: 'dune-impair-engine/1', lab: 'l1' } });
    expect(by.get(8)).toMatchObject({ ok: false, error: { code: 'bad-request', message: '"dev" must be a non-empty string' } });
    expect(by.get(9)).toEqual({ id: 9, ok: true, result: {} });
    expect(shut).toEqual({ keepRules: true });
    expect(lab.status().pipes[0]?.params).toEqual({ delayUs: 30_000 });
    await server.close();
  });
});
