/**
 * Issue 13, routing daemons: with `routing = "ospf"` or `"bgp"` every router runs BIRD 2,
 * `dune up` returns once every node has a route to every loopback, and packets then follow
 * the paths the static plan computes for the same file:
 *
 *   OSPF  costs are the routing weight, so every path is the static plan's path exactly
 *   BGP   paths follow the fewest ASes (one per node): the static plan by hop count; on the
 *         odd ring that path is unique, on Abilene only its length is (ties fall either way)
 *
 * Each pair is checked both ways and in both families with ping and traceroute from inside
 * the source node (probe.mjs, as test/e2e/reach does). A link set down (`ip link set down`
 * in one end's namespace) is routed around: the daemons reconverge.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addressOwners, dune, duneOk, downAndCheck, isRoot, parsePing, planJson, planPath, pool, probeFrom, REPO, requireBuilt, ROOT_REASON, removeTemp, sh, status, tempDir,
  type PlanJson,
} from '../helpers.js';

const RING = join(REPO, 'test/e2e/routing/ring5.toml');
const ABILENE = join(REPO, 'topologies/zoo/Abilene.graphml');
const LABS = ['e2eospfring', 'e2ebgpring', 'e2eospfabi', 'e2ebgpabi', 'e2ebgpasn'];

interface RoutingStatus {
  phase: string;
  nodes: { node: string; v4?: string; v6?: string }[];
  routing?: { node: string; running: boolean; protocols: { name: string; proto: string; state: string; info: string }[]; neighbours: { state: string; protocol: string }[] }[];
}

/** Pings and traceroutes every ordered pair, both families; every disagreement with the expected path. */
async function checkPaths(lab: string, expected: PlanJson, exact: boolean): Promise<string[]> {
  const st = (await status(lab)) as unknown as RoutingStatus;
  // Many traceroutes at once exceed Linux's ICMP error rate limits (see test/e2e/reach).
  await pool(st.nodes, 4, (n) =>
    duneOk(['exec', '--lab', lab, n.node, '--', 'sysctl', '-q', '-w', 'net.ipv4.icmp_ratelimit=0', 'net.ipv6.icmp.ratelimit=0', 'net.ipv4.icmp_msgs_per_sec=100000', 'net.ipv4.icmp_msgs_burst=10000']),
  );
  const owners = addressOwners(expected);
  const nodeOf = new Map<string, string>();
  for (const n of st.nodes) {
    if (n.v4) nodeOf.set(n.v4, n.node);
    if (n.v6) nodeOf.set(n.v6, n.node);
  }
  const failures: string[] = [];
  await pool(st.nodes, 2, async (s) => {
    const results = await probeFrom(lab, s.node, st.nodes.filter((d) => d.node !== s.node).flatMap((d) => [d.v4 as string, d.v6 as string]));
    for (const { family, addr, ping, trace } of results) {
      const dst = nodeOf.get(addr) as string;
      if (ping.code !== 0 || parsePing(ping.out).received !== 1) failures.push(`IPv${family} ${s.node} → ${dst}: no reply`);
      const hops = trace.out.split('\n').slice(1).map((l) => l.trim().split(/\s+/)[1]).filter((h): h is string => h !== undefined && h !== '');
      const got = hops.map((h) => owners.get(h) ?? h);
      const want = planPath(expected, s.node, dst, family).slice(1);
      const agree = exact ? got.join(' ') === want.join(' ') : got.length === want.length && got[got.length - 1] === dst;
      if (!agree) failures.push(`IPv${family} ${s.node} → ${dst}: went ${got.join(' → ') || '(nothing)'}, expected ${exact ? '' : 'as long as '}${want.join(' → ')}`);
    }
  });
  return failures;
}

/** The hops of one traceroute from `src` to `dst`'s loopback, as node names. */
async function trace(lab: string, plan: PlanJson, src: string, dst: string): Promise<string[]> {
  const addr = plan.nodes.find((n) => n.node === dst)?.v4 as string;
  const [r] = await probeFrom(lab, src, [addr]);
  const owners = addressOwners(plan);
  return (r?.trace.out ?? '').split('\n').slice(1).map((l) => l.trim().split(/\s+/)[1]).filter((h): h is string => h !== undefined && h !== '').map((h) => owners.get(h) ?? h);
}

async function waitPath(lab: string, plan: PlanJson, src: string, dst: string, want: string[], timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const got = await trace(lab, plan, src, dst);
    if (got.join(' ') === want.join(' ')) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`${src} → ${dst} still goes ${got.join(' → ')} after ${timeoutMs} ms, expected ${want.join(' → ')}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

let tmp = '';
/** A copy of a TOML file routed by hop count. */
function byHops(file: string): string {
  tmp ||= tempDir('routing');
  const out = join(tmp, 'hops.toml');
  writeFileSync(out, readFileSync(file, 'utf8').replace(/routing_weight = "\w+"/, 'routing_weight = "hops"'));
  return out;
}

describe.skipIf(!isRoot)(`e2e: OSPF and BGP daemons converge along the planned paths${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  beforeAll(async () => {
    requireBuilt();
    for (const lab of LABS) await dune(['down', '--lab', lab]);
  });
  afterAll(async () => {
    for (const lab of LABS) expect(await downAndCheck(lab)).toEqual([]);
    if (tmp) removeTemp(tmp);
  });

  for (const mode of ['ospf', 'bgp'] as const) {
    it(`${mode} on a 5-node ring: converged at up, static paths, status shows the daemons, a link down is routed around`, async () => {
      const lab = mode === 'ospf' ? 'e2eospfring' : 'e2ebgpring';
      const up = await duneOk(['up', RING, '--routing', mode, '--lab', lab, '--json'], { timeoutMs: 180_000 });
      expect(up.code).toBe(0);
      // BGP: the fewest ASes, i.e. the static plan by hop count (unique on an odd ring).
      const expected = await planJson([mode === 'bgp' ? byHops(RING) : RING, '--routing', 'static', '--lab', lab]);
      expect(await checkPaths(lab, expected, true)).toEqual([]);

      const st = (await status(lab)) as unknown as RoutingStatus;
      expect(st.routing?.map((d) => d.node)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
      for (const d of st.routing ?? []) {
        expect(d.running).toBe(true);
        if (mode === 'ospf') {
          expect(d.protocols.filter((p) => p.proto === 'OSPF').map((p) => `${p.name} ${p.state} ${p.info}`)).toEqual(['ospf4 up Running', 'ospf6 up Running']);
          expect(d.neighbours.map((n) => n.state)).toEqual(['Full/PtP', 'Full/PtP', 'Full/PtP', 'Full/PtP']);
        } else {
          expect(d.protocols.filter((p) => p.proto === 'BGP').map((p) => `${p.state} ${p.info}`)).toEqual(Array(4).fill('up Established'));
        }
      }

      // r1–r2 down at r1's end: both directions go the long way round.
      const plan = await planJson([RING, '--routing', mode, '--lab', lab]);
      const dev = plan.links.find((l) => l.a.node === 'r1' && l.b.node === 'r2')?.a.dev as string;
      expect(sh(['ip', '-n', `dune.${lab}.r1`, 'link', 'set', dev, 'down']).code).toBe(0);
      const ms = await waitPath(lab, plan, 'r1', 'r2', ['r5', 'r4', 'r3', 'r2'], 30_000);
      await waitPath(lab, plan, 'r2', 'r1', ['r3', 'r4', 'r5', 'r1'], 30_000);
      console.log(`${mode} ring: rerouted around a link set down in ${Math.round(ms)} ms`);
      expect(sh(['ip', '-n', `dune.${lab}.r1`, 'link', 'set', dev, 'up']).code).toBe(0);
      await waitPath(lab, plan, 'r1', 'r2', ['r2'], 30_000);
      await duneOk(['down', '--lab', lab]);
    }, 300_000);

    if (mode === 'bgp') {
      it('bgp with nodes grouped by asn: iBGP between loopbacks over OSPF inside the AS, eBGP outside; every pair reaches', async () => {
        const lab = 'e2ebgpasn';
        tmp ||= tempDir('routing');
        const file = join(tmp, 'asn.toml');
        writeFileSync(file, readFileSync(RING, 'utf8').replace(/\[topology\.nodes\.(r[123])\]/g, '[topology.nodes.$1]\nasn = 65001'));
        await duneOk(['up', file, '--routing', 'bgp', '--lab', lab], { timeoutMs: 180_000 });
        const st = (await status(lab)) as unknown as RoutingStatus;
        const r2 = st.routing?.find((d) => d.node === 'r2');
        // r2 is inside the AS: iBGP to r1 and r3 (both families), OSPF to both neighbours.
        expect(r2?.protocols.filter((p) => p.proto === 'BGP').map((p) => `${p.name} ${p.info}`)).toEqual(['i0_4 Established', 'i0_6 Established', 'i2_4 Established', 'i2_6 Established']);
        expect(r2?.neighbours.map((n) => `${n.protocol} ${n.state}`)).toEqual(['ospf4 Full/PtP', 'ospf4 Full/PtP', 'ospf6 Full/PtP', 'ospf6 Full/PtP']);
        const failures: string[] = [];
        await pool(st.nodes, 2, async (s) => {
          for (const r of await probeFrom(lab, s.node, st.nodes.filter((d) => d !== s).flatMap((d) => [d.v4 as string, d.v6 as string]), true)) {
            if (r.ping.code !== 0) failures.push(`${s.node} → ${r.addr}: no reply`);
          }
        });
        expect(failures).toEqual([]);
        await duneOk(['down', '--lab', lab]);
      }, 240_000);
    }

    it(`${mode} on Abilene (its file unchanged, delays included): converged, every pair on a static path`, async () => {
      const lab = mode === 'ospf' ? 'e2eospfabi' : 'e2ebgpabi';
      await duneOk(['up', ABILENE, '--routing', mode, '--lab', lab], { timeoutMs: 240_000 });
      const expected = await planJson([ABILENE, '--routing', 'static', '--lab', lab, ...(mode === 'bgp' ? ['-w', 'hops'] : [])]);
      expect(await checkPaths(lab, expected, mode === 'ospf')).toEqual([]);
      await duneOk(['down', '--lab', lab]);
    }, 400_000);
  }
});

