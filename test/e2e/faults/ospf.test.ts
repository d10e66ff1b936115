/**
 * Issue 11, "routing around a failed link when routing daemons run": three routers in a
 * triangle, BIRD 2 with OSPF in each (the topology's `pinned`, `routing = "none"`). r1
 * reaches r3's loopback over their direct link; `dune link down r1:eth1` cuts it and OSPF
 * moves the route through r2 (ping passes again); `dune link up` brings the direct route back.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dune, duneOk, downAndCheck, isRoot, parsePing, removeTemp, requireBuilt, ROOT_REASON, status, tempDir } from '../helpers.js';

const LAB = 'e2eospf';
const BIRD = '/usr/sbin/bird';
const skip = !isRoot ? ` (${ROOT_REASON})` : !existsSync(BIRD) ? ` (skipped: ${BIRD} is absent; scripts/setup installs bird2)` : '';

const BIRD_CONF = `router id {{ loopback.v4 }};
protocol device { scan time 1; }
protocol direct { ipv4; interface "lo"; }
protocol kernel { ipv4 { export where source = RTS_OSPF; }; }
protocol ospf v2 {
  ipv4 { import all; export none; };
  area 0 {
    interface "lo" { stub yes; };
    interface "eth*" { type ptp; hello 1; dead 3; };
  };
}
`;

function topology(dir: string): string {
  return `# written by test/e2e/faults/ospf.test.ts
[topology]
lab = "${LAB}"
routing = "none"
links = [
  { endpoints = ["r1:eth0", "r2:eth0"] },
  { endpoints = ["r2:eth1", "r3:eth0"] },
  { endpoints = ["r1:eth1", "r3:eth1"] },
]

[topology.defaults.nodes.templates]
"bird.conf" = "${dir}/{{node}}.conf"

[[topology.defaults.nodes.pinned]]
cmd = "${BIRD} -f -c ${dir}/{{node}}.conf -s ${dir}/{{node}}.ctl -P ${dir}/{{node}}.pid"

[topology.nodes.r1]
[topology.nodes.r2]
[topology.nodes.r3]
`;
}

/** The device r1's route to `addr` leaves through, or undefined when it has none. */
async function routeDev(addr: string): Promise<string | undefined> {
  const r = await dune(['exec', '--lab', LAB, 'r1', '--', 'ip', '-j', 'route', 'get', addr]);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as { dev?: string }[])[0]?.dev;
}

/**
 * The routers r1's own router-LSA links to, as its OSPF database holds it (`show ospf
 * state`: under "router <id>", the "router <id> metric N" lines).
 */
async function lsaNeighbours(dir: string, r1: string): Promise<string[] | undefined> {
  const r = await dune(['exec', '--lab', LAB, 'r1', '--', 'birdc', '-s', join(dir, 'r1.ctl'), 'show', 'ospf', 'state']);
  if (r.code !== 0) return undefined;
  const out: string[] = [];
  let mine = false;
  for (const line of r.stdout.split('\n')) {
    const head = /^\trouter (\S+)$/.exec(line);
    if (head) mine = head[1] === r1;
    const link = /^\t\trouter (\S+) metric/.exec(line);
    if (mine && link?.[1] !== undefined) out.push(link[1]);
  }
  return out.sort();
}

async function pingOk(addr: string): Promise<boolean> {
  const r = await dune(['exec', '--lab', LAB, 'r1', '--', 'ping', '-n', '-c', '2', '-i', '0.2', '-W', '1', addr]);
  return parsePing(r.stdout).received === 2;
}

describe.skipIf(skip !== '')(`OSPF (BIRD) routes around a cut link${skip}`, () => {
  let dir = '';
  let r1 = '';
  let r2 = '';
  let r3 = '';

  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', LAB]);
    dir = tempDir('ospf');
    writeFileSync(join(dir, 'bird.conf'), BIRD_CONF);
    writeFileSync(join(dir, 'ospf.toml'), topology(dir));
    await duneOk(['up', join(dir, 'ospf.toml')]);
    const nodes = (await status(LAB)).nodes;
    [r1, r2, r3] = ['r1', 'r2', 'r3'].map((id) => nodes.find((n) => n.node === id)?.v4 ?? '') as [string, string, string];
  }, 120_000);

  afterAll(async () => {
    expect(await downAndCheck(LAB)).toEqual([]);
    removeTemp(dir);
  }, 120_000);

  it('converges on the direct link, reroutes through r2 when it is cut, and comes back when repaired', async () => {
    await expect.poll(() => routeDev(r3), { timeout: 30_000, interval: 500 }).toBe('eth1');
    expect(await pingOk(r3)).toBe(true);

    await duneOk(['link', 'down', 'r1:eth1', '--lab', LAB]);
    await expect.poll(() => routeDev(r3), { timeout: 30_000, interval: 500 }).toBe('eth0');
    expect(await pingOk(r3)).toBe(true);
    const tr = await duneOk(['exec', '--lab', LAB, 'r1', '--', 'traceroute', '-n', '-w', '1', '-q', '1', r3]);
    expect(tr.stdout.trim().split('\n').length).toBe(3); // header, r2, r3
    // The cut held until OSPF itself has it: r1's router-LSA without r3. BIRD 2.0.12 waits
    // MinLSInterval (5 s) between two of a router's LSAs; a cut repaired inside that wait
    // leaves the LSA as it was and BIRD never recomputes the route back (reproduced: 2 of
    // 6 fresh labs with the cut repaired ~3 s after it, the route stuck on eth0 for minutes).
    await expect.poll(() => lsaNeighbours(dir, r1), { timeout: 30_000, interval: 500 }).toEqual([r2]);

    await duneOk(['link', 'up', 'r1:eth1', '--lab', LAB]);
    await expect.poll(() => routeDev(r3), { timeout: 30_000, interval: 500 }).toBe('eth1');
    expect(await pingOk(r3)).toBe(true);
  });
});
