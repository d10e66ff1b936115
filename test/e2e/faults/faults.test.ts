/**
 * Issue 11, failures on demand with the built CLI and real traffic: a link cut (ping lost)
 * and repaired (ping back, its routes restored); a node stopped (its pinned process gone,
 * its links down, status says stopped) and started (the process running again from the
 * plan); the topology's schedule flapping a link while a ping runs through it.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dune, duneOk, duneSpawn, downAndCheck, isRoot, parsePing, pidAlive, REPO, requireBuilt, ROOT_REASON, status, waitFor, type Status } from '../helpers.js';

const LAB = 'e2efault';
const FILE = join(REPO, 'test/e2e/faults/faults.toml');

type FaultStatus = Omit<Status, 'nodes' | 'links'> & { nodes: (Status['nodes'][number] & { stopped: boolean })[]; links: (Status['links'][number] & { up: boolean | null })[] };

async function st(): Promise<FaultStatus> {
  return (await status(LAB)) as unknown as FaultStatus;
}

function linkUp(s: FaultStatus, end: string): boolean | null | undefined {
  return s.links.find((l) => `${l.node}:${l.dev}` === end)?.up;
}

async function ping(from: string, to: string, count: number, extra: string[] = []): Promise<{ sent: number; received: number }> {
  const r = await dune(['exec', '--lab', LAB, from, '--', 'ping', '-n', '-c', String(count), '-W', '1', ...extra, to], { timeoutMs: 60_000 });
  return parsePing(r.stdout);
}

describe.skipIf(!isRoot)(`failures on demand (dune link, dune node, dune events run)${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let bAddr = '';

  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', LAB]);
    await duneOk(['up', FILE]);
    const s = await st();
    bAddr = s.nodes.find((n) => n.node === 'b')?.v4 ?? '';
  }, 120_000);

  afterAll(async () => {
    expect(await downAndCheck(LAB)).toEqual([]);
  }, 120_000);

  it('a cut link loses every packet; repaired, it carries them again (routes restored)', async () => {
    expect(await ping('a', bAddr, 3, ['-i', '0.2'])).toMatchObject({ sent: 3, received: 3 });
    expect((await duneOk(['link', 'down', 'r:eth1', '--lab', LAB])).stdout.trim()).toBe('r:eth1 down');
    const down = await st();
    expect(linkUp(down, 'r:eth1')).toBe(false);
    expect(await ping('a', bAddr, 3, ['-i', '0.2'])).toMatchObject({ sent: 3, received: 0 });
    // The picture of the running lab marks it cut.
    const dot = (await duneOk(['graph', '--lab', LAB, '--format', 'dot'])).stdout;
    expect(dot).toContain('"r" -- "b" [label="CUT", taillabel="eth1", headlabel="eth0", color=red, fontcolor=red, style=dashed];');
    expect(dot).toContain('"a" -- "r" [label="", taillabel="eth0", headlabel="eth0"];');
    await duneOk(['link', 'up', 'r:eth1', '--lab', LAB]);
    expect(linkUp(await st(), 'r:eth1')).toBe(true);
    expect(await ping('a', bAddr, 3, ['-i', '0.2'])).toMatchObject({ sent: 3, received: 3 });
  });

  it('a bad target or action is refused with the valid ones', async () => {
    const r = await dune(['link', 'down', 'r:eth7', '--lab', LAB]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('node r has no link interface "eth7"');
    expect(r.stderr).toContain('its interfaces: eth0, eth1');
    const n = await dune(['node', 'halt', 'b', '--lab', LAB]);
    expect(n.code).toBe(1);
    expect(n.stderr).toContain('use one of: stop, start, restart');
  });

  it('a stopped node has no pinned process and no links; started, both come back', async () => {
    const before = await st();
    const p0 = before.processes.find((p) => p.node === 'b');
    expect(p0?.alive).toBe(true);
    const pid0 = p0?.pid as number;

    await duneOk(['node', 'stop', 'b', '--lab', LAB]);
    const stopped = await st();
    expect(stopped.nodes.find((n) => n.node === 'b')?.stopped).toBe(true);
    expect(stopped.nodes.find((n) => n.node === 'a')?.stopped).toBe(false);
    expect(pidAlive(pid0)).toBe(false);
    expect(stopped.processes.filter((p) => p.node === 'b')).toEqual([]);
    expect(linkUp(stopped, 'b:eth0')).toBe(false);
    expect((await duneOk(['status', '--lab', LAB])).stdout).toMatch(/^b\s.*STOPPED$/m);
    expect(await ping('a', bAddr, 2, ['-i', '0.2'])).toMatchObject({ received: 0 });

    await duneOk(['node', 'start', 'b', '--lab', LAB]);
    const started = await st();
    expect(started.nodes.find((n) => n.node === 'b')?.stopped).toBe(false);
    const p1 = started.processes.find((p) => p.node === 'b');
    expect(p1?.alive).toBe(true);
    expect(p1?.pid).not.toBe(pid0);
    expect(linkUp(started, 'b:eth0')).toBe(true);
    expect(await ping('a', bAddr, 3, ['-i', '0.2'])).toMatchObject({ received: 3 });

    await duneOk(['node', 'restart', 'b', '--lab', LAB]);
    const p2 = (await st()).processes.find((p) => p.node === 'b');
    expect(p2?.alive).toBe(true);
    expect(p2?.pid).not.toBe(p1?.pid);
    expect(pidAlive(p1?.pid as number)).toBe(false);
  });

  it('`dune up` of the file converges a stopped node back to running', async () => {
    await duneOk(['node', 'stop', 'b', '--lab', LAB]);
    await duneOk(['up', FILE]);
    const s = await st();
    expect(s.nodes.find((n) => n.node === 'b')?.stopped).toBe(false);
    expect(s.processes.find((p) => p.node === 'b')?.alive).toBe(true);
    expect(await ping('a', bAddr, 2, ['-i', '0.2'])).toMatchObject({ received: 2 });
  });

  it('dune ui serves the live view of the lab on 127.0.0.1 until it is stopped', async () => {
    const ui = duneSpawn(['ui', '--lab', LAB, '--port', '0']);
    let out = '';
    ui.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((res) => ui.once('close', (code) => res(code)));
    try {
      const url = await waitFor('the ui URL', () => /live view on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1], 20_000);
      const page = await fetch(url);
      expect(await page.text()).toContain(`<title>dune ui: lab ${LAB}</title>`);
      const g = (await (await fetch(`${url}api/graph`)).json()) as { model: { nodes: { id: string }[] }; svg: string };
      expect(g.model.nodes.map((n) => n.id)).toEqual(['a', 'r', 'b']);
      expect(g.svg).toContain('data-node="b"');
    } finally {
      ui.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('the schedule flaps r:eth1 twice while a ping runs through it', async () => {
    // 50 pings, 0.1 s apart (5 s) from a to b; the link is down from 1 s to 2 s and 3 s to 4 s.
    const pinging = ping('a', bAddr, 50, ['-i', '0.1']);
    const r = await duneOk(['events', 'run', '--lab', LAB], { timeoutMs: 30_000 });
    const got = await pinging;
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`lab ${LAB}: 4 events over 4.0s`);
    expect(lines.slice(1).map((l) => l.trim().split(/\s+/).slice(1).join(' '))).toEqual([
      'down r:eth1 (1/2)', 'up r:eth1 (1/2)', 'down r:eth1 (2/2)', 'up r:eth1 (2/2)',
    ]);
    // Never early (the runner sleeps until each one is due), in order.
    const at = lines.slice(1).map((l) => Number.parseFloat(l));
    for (const [i, due] of [1, 2, 3, 4].entries()) expect(at[i]).toBeGreaterThanOrEqual(due);
    // About 2 s of 5 lost: not a timed assertion, a wide band that only a schedule that did not run (0) or did not repair (≥ 30) misses.
    expect(got.sent).toBe(50);
    const lost = got.sent - got.received;
    console.log(`schedule: events at ${at.join(', ')} s; ${lost} of ${got.sent} pings lost (two 1 s cuts in 5 s)`);
    expect(lost).toBeGreaterThanOrEqual(8);
    expect(lost).toBeLessThanOrEqual(30);
    expect(linkUp(await st(), 'r:eth1')).toBe(true);
  });
});
