/**
 * Failures on demand through the API: the schedule's timeline and runner (a fake clock),
 * and on real namespaces a node stopped and started (its pinned process, its links, ping),
 * and a schedule run with lab.runEvents().
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { expandSchedule, Lab, runSchedule, type LabNode, type PlanEvent } from '@dune/lab';

const isRoot = process.getuid?.() === 0;

const ev = (e: Partial<PlanEvent> & Pick<PlanEvent, 'atMs' | 'action' | 'node'>): PlanEvent => ({
  target: e.iface !== undefined ? `${e.node}:${e.iface}` : e.node, count: 1, periodMs: 0, ...e,
});

describe('the schedule', () => {
  const flap = [
    ev({ atMs: 1000, node: 'r', iface: 'eth1', action: 'down', count: 2, periodMs: 2000 }),
    ev({ atMs: 2000, node: 'r', iface: 'eth1', action: 'up', count: 2, periodMs: 2000 }),
    ev({ atMs: 3000, node: 'b', action: 'restart' }),
  ];

  it('expands repeats into one timeline, ties in file order', () => {
    expect(expandSchedule(flap).map((e) => `${e.atMs} ${e.event.action} ${e.event.target} ${e.occurrence}`)).toEqual([
      '1000 down r:eth1 1', '2000 up r:eth1 1', '3000 down r:eth1 2', '3000 restart b 1', '4000 up r:eth1 2',
    ]);
  });

  it('applies each at its time, link events as link changes and node events as node actions', async () => {
    let t = 0;
    const done: string[] = [];
    const reports = await runSchedule(flap, {
      link: async (node, dev, up) => { done.push(`${t} ${node}:${dev} ${up ? 'up' : 'down'}`); t += 10; },
      node: async (node, action) => { done.push(`${t} ${node} ${action}`); },
    }, { now: () => t, sleep: async (ms) => { t += Math.max(0, ms); } });
    // The 3000 ms restart waits for the down before it (10 ms): late, never early.
    expect(done).toEqual(['1000 r:eth1 down', '2000 r:eth1 up', '3000 r:eth1 down', '3010 b restart', '4000 r:eth1 up']);
    expect(reports.map((r) => r.elapsedMs)).toEqual([1000, 2000, 3000, 3010, 4000]);
  });

  it('stops at the first failure, and between events when aborted', async () => {
    const failing = runSchedule(flap, { link: async () => { throw new Error('gone'); }, node: async () => undefined }, { sleep: async () => undefined });
    await expect(failing).rejects.toThrow('gone');
    const stop = new AbortController();
    const seen: string[] = [];
    const r = await runSchedule(flap, {
      link: async (_n, _d, up) => { seen.push(up ? 'up' : 'down'); stop.abort(); },
      node: async () => undefined,
    }, { signal: stop.signal, sleep: async () => undefined });
    expect(seen).toEqual(['down']);
    expect(r).toHaveLength(1);
  });
});

function alive(pid: number): boolean {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(s.slice(s.lastIndexOf(')') + 2).split(' ')[0] ?? '');
  } catch {
    return false;
  }
}

async function pings(from: LabNode, to: string, n: number): Promise<number> {
  const r = await from.run(['ping', '-n', '-c', String(n), '-i', '0.2', '-W', '1', to]);
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? NaN);
}

describe.skipIf(!isRoot)(`LabNode.stop/start and lab.runEvents() on real namespaces${isRoot ? '' : ' (needs root: namespaces, veth)'}`, () => {
  const lab = new Lab({ name: 'apifault' });
  const a = lab.node('a');
  const b = lab.node('b', { pinned: [{ cmd: 'sleep 1000' }] });
  const ab = lab.link(a, b);

  afterAll(async () => {
    await lab.down();
    expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain('dune.apifault.');
  });

  it('a stopped node loses its process and its link; started, it has them back', async () => {
    await lab.up();
    const pid0 = (await lab.status()).processes.find((p) => p.node === 'b')?.pid as number;
    expect(alive(pid0)).toBe(true);
    expect(await pings(a, b.address(4), 2)).toBe(2);

    await b.stop();
    const s = await lab.status();
    expect(s.nodes.find((n) => n.node === 'b')?.stopped).toBe(true);
    expect(s.links.filter((l) => l.node === 'b').map((l) => l.up)).toEqual([false]);
    expect(alive(pid0)).toBe(false);
    expect(await pings(a, b.address(4), 2)).toBe(0);

    await b.start();
    const s2 = await lab.status();
    expect(s2.nodes.find((n) => n.node === 'b')?.stopped).toBe(false);
    const pid1 = s2.processes.find((p) => p.node === 'b')?.pid as number;
    expect(pid1).not.toBe(pid0);
    expect(alive(pid1)).toBe(true);
    expect(await pings(a, b.address(4), 2)).toBe(2);
  });

  it('runEvents() cuts and repairs a link on schedule', async () => {
    const seen: string[] = [];
    const states: (boolean | null)[] = [];
    await lab.runEvents({
      events: [ev({ atMs: 0, node: 'a', iface: ab.ends[0].name, action: 'down' }), ev({ atMs: 300, node: 'a', iface: ab.ends[0].name, action: 'up' })],
      onEvent: (r) => seen.push(`${r.event.action} ${r.event.target}`),
      // The link's state in between: down after the first event.
      sleep: async (ms) => {
        states.push((await lab.status()).links.find((l) => l.node === 'a')?.up ?? null);
        await new Promise((res) => setTimeout(res, Math.max(0, ms)));
      },
    });
    expect(seen).toEqual(['down a:eth0', 'up a:eth0']);
    expect(states).toEqual([true, false]);
    expect(await pings(a, b.address(4), 2)).toBe(2);
  });
});
