/**
 * Node kinds `switch` and `hub` on a real kernel, through the built CLI: each is a namespace
 * holding a Linux bridge (STP off, forward delay 0; a hub's ageing time 0), the routers on it
 * share one subnet and reach each other in one hop.
 *
 *   star4.toml     4 hosts on one switch: every ordered pair pings over IPv4 and IPv6, TTL 64
 *                  (no router on the way)
 *   linear10.toml  Mininet's linear,10: ten switches in a line, one host each; h1 → h10
 *   hub.toml       3 hosts and a router on a hub, a 4th host behind the router
 * After each, `dune down` leaves nothing of the lab.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dune, duneOk, downAndCheck, isRoot, leftovers, parsePing, pool, probeFrom, REPO, requireBuilt, ROOT_REASON, status } from '../helpers.js';

const DIR = join(REPO, 'test/e2e/switch');
const LABS = { star: 'e2estar', linear: 'e2elin10', hub: 'e2ehub' } as const;

/** Pings every address from every listed node; returns the failures. */
async function pingAll(lab: string, from: readonly string[], to: (node: string) => string[]): Promise<{ failures: string[]; ttls: Set<number> }> {
  const failures: string[] = [];
  const ttls = new Set<number>();
  await pool(from, 2, async (node) => {
    for (const r of await probeFrom(lab, node, to(node), true)) {
      const p = parsePing(r.ping.out);
      if (r.ping.code !== 0 || p.received !== 1) failures.push(`${node} → ${r.addr}: no reply (exit ${r.ping.code}) ${r.ping.out.trim()}`);
      else if (p.ttl !== undefined) ttls.add(p.ttl);
    }
  });
  return { failures, ttls };
}

async function loopbacks(lab: string): Promise<Map<string, [string, string]>> {
  const st = await status(lab);
  expect(st.phase).toBe('up');
  const out = new Map<string, [string, string]>();
  for (const n of st.nodes) if (n.v4 && n.v6) out.set(n.node, [n.v4, n.v6]);
  return out;
}

describe.skipIf(!isRoot)(`e2e: switch and hub node kinds${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  afterAll(async () => {
    for (const lab of Object.values(LABS)) await dune(['down', '--lab', lab]);
  });

  it('a star of 4 hosts on one switch: all 12 ordered pairs ping over IPv4 and IPv6, with no router between', async () => {
    requireBuilt();
    await duneOk(['up', '--lab', LABS.star, join(DIR, 'star4.toml')], { timeoutMs: 60_000 });
    const lo = await loopbacks(LABS.star);
    expect([...lo.keys()].sort()).toEqual(['h1', 'h2', 'h3', 'h4']);
    const sw = await duneOk(['exec', '--lab', LABS.star, 'sw', '--', 'ip', '-d', 'link', 'show', 'br0']);
    expect(sw.stdout).toMatch(/stp_state 0/);
    expect(sw.stdout).toMatch(/forward_delay 0/);
    const ports = await duneOk(['exec', '--lab', LABS.star, 'sw', '--', 'ip', '-o', 'link', 'show', 'master', 'br0']);
    expect(ports.stdout.trim().split('\n')).toHaveLength(4);
    const hosts = [...lo.keys()];
    const { failures, ttls } = await pingAll(LABS.star, hosts, (s) => hosts.filter((d) => d !== s).flatMap((d) => lo.get(d) as [string, string]));
    expect(failures).toEqual([]);
    expect([...ttls]).toEqual([64]);
    expect(await downAndCheck(LABS.star)).toEqual([]);
  }, 120_000);

  it("Mininet's linear,10: h1 pings h10 across ten bridges, over IPv4 and IPv6", async () => {
    requireBuilt();
    await duneOk(['up', '--lab', LABS.linear, join(DIR, 'linear10.toml')], { timeoutMs: 60_000 });
    const lo = await loopbacks(LABS.linear);
    expect(lo.size).toBe(10);
    const { failures, ttls } = await pingAll(LABS.linear, ['h1', 'h10'], (s) => (lo.get(s === 'h1' ? 'h10' : 'h1') as [string, string]).slice());
    expect(failures).toEqual([]);
    expect([...ttls]).toEqual([64]);
    expect(await downAndCheck(LABS.linear)).toEqual([]);
  }, 120_000);

  it('a hub floods (ageing time 0); its hosts reach each other and, through a router, a host beyond', async () => {
    requireBuilt();
    await duneOk(['up', '--lab', LABS.hub, join(DIR, 'hub.toml')], { timeoutMs: 60_000 });
    const lo = await loopbacks(LABS.hub);
    const br = await duneOk(['exec', '--lab', LABS.hub, 'hub', '--', 'ip', '-d', 'link', 'show', 'br0']);
    expect(br.stdout).toMatch(/ageing_time 0/);
    const hosts = [...lo.keys()];
    const { failures } = await pingAll(LABS.hub, ['h1', 'h4'], (s) => hosts.filter((d) => d !== s).flatMap((d) => lo.get(d) as [string, string]));
    expect(failures).toEqual([]);
    expect(await downAndCheck(LABS.hub)).toEqual([]);
    expect(leftovers(LABS.hub)).toEqual([]);
  }, 120_000);
});
