/**
 * Issue 15, "spread queues over cores": a lab's engine with worker threads
 * (`impairment_engine_threads`), built with the CLI. A line a–b–c–d, 2/3/4 ms on its links (6
 * directions, every delay in the engine), two engine threads, failing open.
 *
 * What is checked: the links are spread over both threads, a link's two directions in one
 * (a flow's data and its acknowledgements meet one engine), and `dune status` says which runs
 * where; a ping crosses both threads and waits exactly the configured delays
 * (never less; within 1.5 ms above them and the path's base, as in userspace.test.ts); the
 * counts the threads keep reach `dune status`; `dune set` changes a delay live in a worker; a
 * converging up that asks for one thread replaces the engine, rules and all (none doubled);
 * down leaves nothing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dune, duneOk, downAndCheck, enginePids, removeTemp, requireBuilt, sh, tempDir, nfqueueSkipReason } from '../helpers.js';

const LAB = 'e2ethreads';
/** 2 × (2 + 3 + 4) ms. */
const SUM_MS = 18;

const skip = nfqueueSkipReason();

function topo(settings: string[], delays = ['2ms', '3ms', '4ms']): string {
  return [
    '[topology]', 'routing_weight = "hops"', 'impairment_backend = "userspace"', ...settings,
    'links = [',
    `  { endpoints = ["a:eth0", "b:eth0"], latency = "${delays[0]}" },`,
    `  { endpoints = ["b:eth1", "c:eth0"], latency = "${delays[1]}" },`,
    `  { endpoints = ["c:eth1", "d:eth0"], latency = "${delays[2]}" },`,
    ']', '[topology.nodes.a]', '[topology.nodes.b]', '[topology.nodes.c]', '[topology.nodes.d]', '',
  ].join('\n');
}

interface Status {
  impairEngine?: {
    pid: number; running: boolean; pipes?: number; failOpen?: boolean;
    threads?: { thread: number; pipes: number; namespaces: number; held: { packets: number }; utilization: number }[];
  };
  links: { node: string; dev: string; engine?: { thread?: number; received: { packets: number }; delivered: { packets: number }; params: Record<string, unknown> } }[];
  nodes: { node: string; v4?: string }[];
}

const status = async (): Promise<Status> => JSON.parse((await duneOk(['status', '--lab', LAB, '--json'])).stdout) as Status;

async function ping(addr: string, count: number): Promise<{ min: number; median: number; n: number }> {
  const r = await dune(['exec', '--lab', LAB, 'a', '--', 'ping', '-n', '-i', '0.02', '-W', '2', '-c', String(count), addr], { timeoutMs: 60_000 });
  const t = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
  if (t.length === 0) throw new Error(`ping ${addr}: no replies (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return { min: t[0] as number, median: t[Math.floor(t.length / 2)] as number, n: t.length };
}

/** The lab's NFQUEUE rules in a node: one line per rule (chain, device, queue). */
function rulesIn(node: string): string[] {
  const out = sh(['nsenter', `--net=/run/netns/dune.${LAB}.${node}`, '--', 'nft', 'list', 'table', 'ip', `dune_impair_${LAB}`]).out;
  let chain = '';
  const rules: string[] = [];
  for (const l of out.split('\n')) {
    const c = /^\s*chain (\S+) \{/.exec(l);
    if (c) chain = c[1] as string;
    if (l.includes('queue num')) rules.push(`${chain}: ${l.trim()}`);
  }
  return rules;
}

describe.skipIf(skip !== '')(`e2e: the lab engine over two threads ${skip}`, () => {
  let tmp = '';
  let far = '';

  beforeAll(async () => {
    requireBuilt();
    tmp = tempDir('threads');
    await dune(['down', '--lab', LAB]);
  });

  afterAll(async () => {
    const left = await downAndCheck(LAB);
    removeTemp(tmp);
    expect(left).toEqual([]);
    expect(enginePids(LAB)).toEqual([]);
  });

  it('up with impairment_engine_threads = 2: the three links spread over both threads, a link\'s directions together, each shown with its thread; fail open reported', async () => {
    writeFileSync(join(tmp, 'line.toml'), topo(['impairment_engine_threads = 2', 'impairment_engine_fail = "open"']));
    await duneOk(['up', join(tmp, 'line.toml'), '--lab', LAB]);
    const st = await status();
    far = st.nodes.find((n) => n.node === 'd')?.v4 as string;
    expect(st.impairEngine).toMatchObject({ running: true, pipes: 6, failOpen: true });
    expect(st.impairEngine?.threads?.map((t) => t.pipes)).toEqual([4, 2]);
    const threadOf = (node: string, dev: string) => st.links.find((l) => l.node === node && l.dev === dev)?.engine?.thread;
    const links = [['a:eth0', 'b:eth0'], ['b:eth1', 'c:eth0'], ['c:eth1', 'd:eth0']].map((ends) => ends.map((e) => threadOf(...(e.split(':') as [string, string]))));
    for (const [x, y] of links) expect(x).toBe(y);
    expect(links.map(([x]) => x)).toEqual([0, 1, 0]);
    const text = (await duneOk(['status', '--lab', LAB])).stdout;
    expect(text).toMatch(/^userspace engine: pid \d+ running, 6 link directions in 4 namespaces, .*, fails open; log /m);
    expect(text).toMatch(/^ {2}2 engine threads: #0 4 directions, \d+ held, \d+ % busy; #1 2 directions, \d+ held, \d+ % busy$/m);
  }, 60_000);

  it(`ping a → d crosses both threads: min RTT ≥ ${SUM_MS} ms and within 1.5 ms above; the threads' counts reach dune status`, async () => {
    const before = await status();
    const r = await ping(far, 100);
    console.log(`a → d over two engine threads: min ${r.min} median ${r.median} ms (${r.n} replies), configured ${SUM_MS} ms`);
    expect(r.n).toBeGreaterThanOrEqual(95);
    expect(r.min).toBeGreaterThanOrEqual(SUM_MS - 0.05);
    expect(r.min).toBeLessThanOrEqual(SUM_MS + 1.5);
    expect(r.median).toBeLessThanOrEqual(SUM_MS + 3);
    const after = await status();
    for (const l of after.links.filter((x) => x.engine !== undefined)) {
      const was = before.links.find((x) => x.node === l.node && x.dev === l.dev)?.engine?.delivered.packets ?? 0;
      // Each direction of the path carried every echo (or its reply) that came back.
      expect(`${l.node}:${l.dev} ${(l.engine?.delivered.packets ?? 0) - was >= r.n}`).toBe(`${l.node}:${l.dev} true`);
    }
  }, 60_000);

  it('dune set c:eth1 latency=10ms: changed live in its thread (+6 ms of RTT), the same engine', async () => {
    const pid = (await status()).impairEngine?.pid;
    await duneOk(['set', '--lab', LAB, 'c:eth1', 'latency=10ms']);
    const st = await status();
    expect(st.impairEngine?.pid).toBe(pid);
    expect(st.links.find((l) => l.node === 'c' && l.dev === 'eth1')?.engine?.params).toEqual({ delayUs: 10_000 });
    const r = await ping(far, 50);
    expect(r.min).toBeGreaterThanOrEqual(SUM_MS + 6 - 0.05);
    expect(r.min).toBeLessThanOrEqual(SUM_MS + 6 + 1.5);
  }, 60_000);

  it('a converging up asking for one thread: another engine, in its own thread, the rules replaced (none doubled), delays as the file says', async () => {
    const pid = (await status()).impairEngine?.pid;
    writeFileSync(join(tmp, 'line.toml'), topo([]));
    await duneOk(['up', join(tmp, 'line.toml'), '--lab', LAB]);
    const st = await status();
    expect(st.impairEngine?.pid).not.toBe(pid);
    expect(st.impairEngine).toMatchObject({ running: true, pipes: 6 });
    expect(st.impairEngine?.failOpen).not.toBe(true);
    expect(st.impairEngine?.threads).toBeUndefined();
    expect(enginePids(LAB)).toEqual([st.impairEngine?.pid]);
    // b has two directions' hooks in it: each rule once.
    const rules = rulesIn('b');
    expect(rules.length).toBeGreaterThan(0);
    expect(new Set(rules).size).toBe(rules.length);
    const r = await ping(far, 50);
    expect(r.min).toBeGreaterThanOrEqual(SUM_MS - 0.05);
    expect(r.min).toBeLessThanOrEqual(SUM_MS + 1.5);
  }, 60_000);

  it('many namespaces at once: two threads open their sockets side by side (a 40-node line, three ups), the engine stays up every time', async () => {
    // The native addon's table of watched sockets is one for the process: two threads adding
    // to it at once lost a socket and crashed the engine (found by CI; 3 of 5 ups failed here
    // before the table took a lock).
    const lab = 'e2ethreads40';
    const n = 40;
    const file = join(tmp, 'line40.toml');
    writeFileSync(file, [
      '[topology]', 'routing = "none"', 'impairment_backend = "userspace"', 'impairment_engine_threads = 2', 'links = [',
      ...Array.from({ length: n - 1 }, (_, i) => `  { endpoints = ["n${i}", "n${i + 1}"], latency = "1ms" },`), ']',
      ...Array.from({ length: n }, (_, i) => `[topology.nodes.n${i}]`), '',
    ].join('\n'));
    try {
      for (let round = 0; round < 3; round++) {
        await duneOk(['up', file, '--lab', lab]);
        const st = JSON.parse((await duneOk(['status', '--lab', lab, '--json'])).stdout) as Status;
        expect(st.impairEngine).toMatchObject({ running: true, pipes: 2 * (n - 1) });
        expect(st.impairEngine?.threads?.map((t) => t.pipes)).toEqual([40, 38]);
        expect(await downAndCheck(lab)).toEqual([]);
      }
    } finally {
      await dune(['down', '--lab', lab]);
    }
  }, 120_000);
});
