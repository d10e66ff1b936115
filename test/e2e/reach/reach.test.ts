/**
 * Issue 3, reachability: a lab built by `dune up` routes every node to every other node's
 * loopback, over IPv4 and IPv6, along the path the plan computed.
 *
 * For every ordered pair (s, d) and both families, inside s (one `dune exec s -- node
 * probe.mjs ...` per source node runs these for all its destinations):
 *   ping -c1 -W1 LOOPBACK(d)           the reply arrives, and its TTL is 64 - (routers on the
 *                                      way back), the way back being the plan's path d → s
 *   traceroute -n -q1 -w1 LOOPBACK(d)  the hops are exactly the plan's path s → d
 * The plan's path is read from `dune plan --json` (route ops, next hop by next hop) and is
 * itself checked to be a shortest path of the topology (by hops for the line, by latency,
 * Dijkstra, for the Zoo network).
 *
 * The Zoo network is built from its file unchanged, with its derived delays: by netem where
 * the kernel has it, by the userspace engine (NFQUEUE) where it does not (ours). The round
 * trip of its longest pair is then 2 × the sum of the path's delays. Only a kernel with
 * neither refuses it, and then the same network is checked without the delays.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addressOwners, dune, duneOk, downAndCheck, isRoot, leftovers, parsePing, planJson, planPath, pool, probeFrom, removeTemp, REPO, requireBuilt, ROOT_REASON, status, tempDir,
  type PlanJson,
} from '../helpers.js';

/**
 * What a round trip may take beyond its configured delays, per pass through a delaying
 * link end: the kernel's forwarding (tens of µs) and, with the userspace engine, one
 * NFQUEUE round trip and the engine's wake-up (about 100-150 µs measured on a busy 2-core
 * VM; see test/e2e/userspace). netem needs less.
 */
const PER_PASS_MS = 0.3;

const LINE = 'e2ereach';
const ZOO = 'e2ezoo';
const LINE_FILE = join(REPO, 'test/e2e/reach/line5.toml');
const ABILENE = join(REPO, 'topologies/zoo/Abilene.graphml');
// 2 cores: a few processes at a time keep both busy without starving the forwarding
// (a 1 s ping timeout must not fire from load alone).
const PARALLEL = 4;


/** Pings and traceroutes every ordered pair; returns every disagreement with the plan. */
async function checkAllPairs(lab: string, plan: PlanJson): Promise<{ failures: string[]; pairs: number; ms: number }> {
  const t0 = performance.now();
  const st = await status(lab);
  expect(st.phase).toBe('up');
  expect(st.nodes.every((n) => n.present)).toBe(true);
  // Linux rate-limits ICMP errors per peer (time exceeded and port unreachable: 1 per second
  // after a burst of 6, IPv6 one per 100 ms), and per namespace for every peer together
  // (icmp_msgs_per_sec 1000, burst 50, shared by IPv4 and IPv6; randomised since Linux 6.11,
  // so a router answering many traceroutes at once misses a few at random). Many traceroutes
  // at once from one node through the same router exceed both and show `*` hops; lift the
  // limits in the nodes, as anyone tracing a whole lab would.
  await pool(st.nodes, PARALLEL, (n) =>
    duneOk(['exec', '--lab', lab, n.node, '--', 'sysctl', '-q', '-w', 'net.ipv4.icmp_ratelimit=0', 'net.ipv6.icmp.ratelimit=0', 'net.ipv4.icmp_msgs_per_sec=100000', 'net.ipv4.icmp_msgs_burst=10000']),
  );
  const owners = addressOwners(plan);
  const nodeOf = new Map<string, string>();
  for (const n of st.nodes) {
    if (n.v4) nodeOf.set(n.v4, n.node);
    if (n.v6) nodeOf.set(n.v6, n.node);
  }
  const failures: string[] = [];
  let pairs = 0;
  await pool(st.nodes, 2, async (s) => {
    const results = await probeFrom(lab, s.node, st.nodes.filter((d) => d.node !== s.node).flatMap((d) => [d.v4 as string, d.v6 as string]));
    for (const { family, addr, ping, trace } of results) {
      pairs++;
      const src = s.node;
      const dst = nodeOf.get(addr) as string;
      const p = parsePing(ping.out);
      // The reply is sent with TTL 64 and loses one at every router on the way back: the
      // path d → s has (nodes - 2) routers.
      const back = planPath(plan, dst, src, family);
      const wantTtl = 64 - (back.length - 2);
      if (ping.code !== 0 || p.received !== 1) failures.push(`IPv${family} ${src} → ${dst} (${addr}): no reply (exit ${ping.code}) ${ping.out.trim()}`);
      else if (p.ttl !== wantTtl) failures.push(`IPv${family} ${src} → ${dst}: reply TTL ${p.ttl}, the plan's way back ${back.join(' → ')} gives ${wantTtl}`);

      const hops = trace.out
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/)[1])
        .filter((h): h is string => h !== undefined && h !== '');
      const got = hops.map((h) => owners.get(h) ?? h);
      const want = planPath(plan, src, dst, family).slice(1);
      if (trace.code !== 0 || got.join(' ') !== want.join(' ')) {
        failures.push(`IPv${family} ${src} → ${dst}: traceroute went ${got.join(' → ') || '(nothing)'}, the plan says ${want.join(' → ')}`);
      }
    }
  });
  return { failures, pairs, ms: performance.now() - t0 };
}

/** Shortest distances from every node by Dijkstra over the plan's links with these weights. */
function shortest(plan: PlanJson, weight: (linkIndex: number) => number): Map<string, Map<string, number>> {
  const adj = new Map<string, { to: string; w: number }[]>();
  for (const l of plan.links) {
    const w = weight(l.index);
    adj.set(l.a.node, [...(adj.get(l.a.node) ?? []), { to: l.b.node, w }]);
    adj.set(l.b.node, [...(adj.get(l.b.node) ?? []), { to: l.a.node, w }]);
  }
  const all = new Map<string, Map<string, number>>();
  for (const s of plan.nodes.map((n) => n.node)) {
    const dist = new Map<string, number>([[s, 0]]);
    const done = new Set<string>();
    for (;;) {
      let u: string | undefined;
      for (const [n, d] of dist) if (!done.has(n) && (u === undefined || d < (dist.get(u) as number))) u = n;
      if (u === undefined) break;
      done.add(u);
      for (const { to, w } of adj.get(u) ?? []) {
        const nd = (dist.get(u) as number) + w;
        if (nd < (dist.get(to) ?? Infinity)) dist.set(to, nd);
      }
    }
    all.set(s, dist);
  }
  return all;
}

/** The weight of a path by link weights (the link between consecutive nodes). */
function pathWeight(plan: PlanJson, path: string[], weight: (linkIndex: number) => number): number {
  let sum = 0;
  for (let i = 1; i < path.length; i++) {
    const l = plan.links.find((x) => (x.a.node === path[i - 1] && x.b.node === path[i]) || (x.b.node === path[i - 1] && x.a.node === path[i]));
    if (l === undefined) throw new Error(`no link ${path[i - 1]}–${path[i]}`);
    sum += weight(l.index);
  }
  return sum;
}

function routeOps(plan: PlanJson): string[] {
  return plan.hosts.flatMap((h) => h.ops.filter((o) => o.op === 'route' || o.op === 'routes').map((o) => JSON.stringify(o))).sort();
}

describe.skipIf(!isRoot)(`e2e: every node reaches every loopback along the planned path${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let tmp = '';
  beforeAll(async () => {
    requireBuilt();
    tmp = tempDir('reach');
    // A previous run that was interrupted may have left these labs: start clean.
    await dune(['down', '--lab', LINE]);
    await dune(['down', '--lab', ZOO]);
  });
  afterAll(async () => {
    const left = [...(await downAndCheck(LINE)), ...(await downAndCheck(ZOO))];
    removeTemp(tmp);
    expect(left).toEqual([]);
  });

  it('a 5-node line: all 20 ordered pairs × IPv4/IPv6 ping, with TTL and traceroute hops as planned', async () => {
    const up = await duneOk(['up', LINE_FILE, '--lab', LINE]);
    expect(up.stdout).toMatch(new RegExp(`^lab ${LINE} is up in [\\d.]+s$`, 'm'));
    const plan = await planJson([LINE_FILE, '--lab', LINE]);
    // In a line the shortest path is the only path: n_i, n_i±1, ..., n_j.
    for (let i = 1; i <= 5; i++) {
      for (let j = 1; j <= 5; j++) {
        if (i === j) continue;
        const want = Array.from({ length: Math.abs(j - i) + 1 }, (_, k) => `n${i < j ? i + k : i - k}`);
        expect(planPath(plan, `n${i}`, `n${j}`, 4)).toEqual(want);
        expect(planPath(plan, `n${i}`, `n${j}`, 6)).toEqual(want);
      }
    }
    const r = await checkAllPairs(LINE, plan);
    console.log(`line5: ${r.pairs} ping + traceroute checks in ${(r.ms / 1000).toFixed(1)} s`);
    expect(r.pairs).toBe(40);
    expect(r.failures).toEqual([]);
  }, 180_000);

  it('Topology Zoo Abilene (11 nodes), its file unchanged: all 110 ordered pairs × IPv4/IPv6, along latency-shortest paths; the longest pair\'s RTT = 2 × its path\'s delays', async () => {
    const original = await planJson([ABILENE, '--lab', ZOO]);
    expect(original.nodes).toHaveLength(11);
    expect(original.links).toHaveLength(14);
    // Zoo files have no latencies: each link gets the fibre delay of its great-circle length,
    // and routing follows those delays.
    const delayUs = new Map<number, number>();
    for (const op of original.hosts.flatMap((h) => h.ops)) {
      if (op.op === 'impair' && op.link !== undefined && op.impairment?.['delayUs'] !== undefined) delayUs.set(Number(op.link.split(':')[0]), op.impairment['delayUs']);
    }
    expect(delayUs.size).toBe(14);

    let plan = original;
    const up = await dune(['up', ABILENE, '--lab', ZOO], { timeoutMs: 120_000 });
    if (up.code === 0) {
      // netem where the kernel has it, else the userspace engine (ours): the delays are real.
      const st = JSON.parse((await duneOk(['status', '--lab', ZOO, '--json'])).stdout) as { backend: Record<string, string>; impairEngine?: { running: boolean; pipes?: number } };
      expect(['netem', 'userspace']).toContain(st.backend['delayUs']);
      if (st.backend['delayUs'] === 'userspace') expect(st.impairEngine).toMatchObject({ running: true, pipes: 28 });
      // The pair with the most hops: its round trip crosses every link of its path twice.
      const nodes = plan.nodes.map((n) => n.node);
      const pairs = nodes.flatMap((a) => nodes.filter((b) => b !== a).map((b) => [a, b] as const));
      const [src, dst] = pairs.reduce((best, p) => (planPath(plan, p[0], p[1], 4).length > planPath(plan, best[0], best[1], 4).length ? p : best));
      const there = planPath(plan, src, dst, 4);
      const back = planPath(plan, dst, src, 4);
      const delaysMs = (path: string[]) => pathWeight(plan, path, (i) => delayUs.get(i) as number) / 1000;
      const wantMs = delaysMs(there) + delaysMs(back);
      const passes = there.length - 1 + back.length - 1;
      const addr = plan.nodes.find((n) => n.node === dst)?.v4 as string;
      let got = NaN;
      const seen: number[] = [];
      // On a host busy with other work a run measures the scheduler: up to 3 tries.
      for (let i = 0; i < 3; i++) {
        const r = await duneOk(['exec', '--lab', ZOO, src, '--', 'ping', '-n', '-q', '-i', '0.05', '-c', '20', addr]);
        got = Number(/rtt min\/avg\/max\/mdev = ([\d.]+)\//.exec(r.stdout)?.[1]);
        seen.push(got);
        if (got >= wantMs && got <= wantMs + passes * PER_PASS_MS) break;
      }
      console.log(`Abilene ${src} → ${dst} (${there.join(' → ')}; back ${back.join(' → ')}), by ${st.backend['delayUs']}: min RTT ${seen.join(', ')} ms for 2 × the path's delays ${wantMs.toFixed(3)} ms (${passes} passes, tolerance ${(passes * PER_PASS_MS).toFixed(1)} ms)`);
      expect(got).toBeGreaterThanOrEqual(wantMs);
      expect(got).toBeLessThanOrEqual(wantMs + passes * PER_PASS_MS);
    } else {
      // A kernel with neither sch_netem nor the iptables NFQUEUE target cannot delay packets,
      // and dune says so before building anything. That refusal is part of what is proven here.
      expect(up.code).toBe(1);
      expect(up.stderr).toMatch(/^error\[impairment-unsupported\]: this kernel cannot apply 28 link impairments; nothing was changed:$/m);
      expect(up.stderr).toMatch(/no sch_netem/);
      expect(up.stderr).toMatch(/no iptables' NFQUEUE target/);
      expect(up.stderr).not.toMatch(/^\s+at /m);
      expect(leftovers(ZOO)).toEqual([]);
      // The same network without the delays: every edge gets latency 0 (no impairment) and
      // its derived delay as a routing weight `geo`, so the routes are Abilene's own.
      const text = readFileSync(ABILENE, 'utf8')
        .replace('<graph ', '<key attr.name="latency" attr.type="double" for="edge" id="e2e_lat" />\n  <key attr.name="geo" attr.type="double" for="edge" id="e2e_geo" />\n  <graph ')
        .replace(/<edge source="([^"]+)" target="([^"]+)">/g, (m, s: string, t: string) => {
          const l = original.links.find((x) => (x.a.node === s && x.b.node === t) || (x.a.node === t && x.b.node === s));
          if (l === undefined) throw new Error(`no planned link for edge ${s}–${t}`);
          return `${m}\n      <data key="e2e_lat">0</data>\n      <data key="e2e_geo">${(delayUs.get(l.index) as number) / 1000}</data>`;
        });
      const copy = join(tmp, 'Abilene-undelayed.graphml');
      writeFileSync(copy, text);
      plan = await planJson([copy, '--weight', 'geo', '--lab', ZOO]);
      expect(plan.hosts.flatMap((h) => h.ops).filter((o) => o.op === 'impair')).toEqual([]);
      expect(routeOps(plan)).toEqual(routeOps(original));
      console.log('Abilene: this kernel has neither netem nor NFQUEUE; built with the derived delays as routing weights only');
      await duneOk(['up', copy, '--weight', 'geo', '--lab', ZOO], { timeoutMs: 120_000 });
    }
    // The plan's paths are shortest by latency (ties allowed: any shortest path will do).
    const weight = (i: number) => delayUs.get(i) as number;
    const dist = shortest(plan, weight);
    for (const s of plan.nodes) {
      for (const d of plan.nodes) {
        if (s.node === d.node) continue;
        for (const f of [4, 6] as const) {
          expect(pathWeight(plan, planPath(plan, s.node, d.node, f), weight)).toBe(dist.get(s.node)?.get(d.node));
        }
      }
    }
    const r = await checkAllPairs(ZOO, plan);
    console.log(`Abilene: ${r.pairs} ping + traceroute checks in ${(r.ms / 1000).toFixed(1)} s`);
    expect(r.pairs).toBe(220);
    expect(r.failures).toEqual([]);
  }, 400_000);
});
