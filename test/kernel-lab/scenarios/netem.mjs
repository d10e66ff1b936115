#!/usr/bin/env node
/**
 * netem scenarios, run INSIDE the UML guest by ../netem.test.ts:
 *
 *   test/kernel-lab/uml-run 'node test/kernel-lab/scenarios/netem.mjs GROUP'
 *
 * Each group brings up a small lab with the built `dune` CLI (TOML topology, `dune up`,
 * `dune set`, `dune down`), measures it with ping (kernel timestamps: the reference for
 * delay and jitter) and the UDP probe (exact counts of loss, duplicates, reordering,
 * corruption; one-way delays and throughput), and prints ONE line, `KLRESULT {json}`, which
 * the test parses and asserts on. Nothing is asserted here: this side only measures.
 *
 * Every node is a namespace and every link a veth pair; an impairment sits on the egress of
 * one end (`"a:eth0" = {...}` impairs a → r only; a link-level key impairs both ways). Each
 * group's lab is a line whose links each carry one impairment that a ping can isolate (the
 * other direction of that link is left plain, or carries something only the one-way UDP
 * probe looks at), so one lab measures several things without them mixing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readImpairment } from '../../../packages/agent/dist/index.js';
import { dune, loopbackV4, main, nsExec, ping, probeStats, qdiscStats, run, summary, udpProbe, up } from './lib.mjs';

if (process.env.DUNE_IN_UML !== '1') {
  process.stderr.write('netem.mjs runs inside the UML guest: test/kernel-lab/uml-run \'node test/kernel-lab/scenarios/netem.mjs GROUP\'\n');
  process.exit(2);
}

// The guest is its own kernel: raise the global socket buffer caps and the per-CPU input
// backlog so that the probe's receiver (a Node process on UML's one slow CPU) never drops
// what netem delivered. Loss must come from netem alone.
for (const [k, v] of [
  ['net/core/rmem_max', '16777216'],
  ['net/core/wmem_max', '16777216'],
  ['net/core/netdev_max_backlog', '100000'],
]) writeFileSync(`/proc/sys/${k}`, v);

const line = (...links) => `[topology]\nlinks = [\n${links.map((l) => `  ${l},`).join('\n')}\n]\n`;

/** Only what the test needs from a probe run (the per-packet arrays stay in the guest). */
function brief(s, keep = []) {
  const out = { ...s };
  for (const k of ['owdMs', 'txUs']) if (!keep.includes(k)) delete out[k];
  return out;
}

function addrs(lab, nodes) {
  return Object.fromEntries(nodes.map((n) => [n, loopbackV4(lab.ns(n))]));
}

/**
 * What the kernel holds on each device, decoded by the agent's own reader (the qdisc dump →
 * model values): the other half of the netem encoding, checked against the real kernel.
 */
async function readBack(lab, devs) {
  const out = {};
  for (const d of devs) {
    const [node, dev] = d.split(':');
    out[d] = (await readImpairment(lab.ns(node), dev, { lab: lab.lab })).impairment;
  }
  return out;
}

function pingSummary(p, raw = false) {
  return { ...summary(p.rtts), transmitted: p.transmitted, received: p.received, duplicates: p.duplicates, ...(raw ? { rtts: p.rtts } : {}) };
}

const groups = {
  /**
   * Delay, line a — r — b. Base RTTs on the plain line; then the same lab re-upped (`dune up`
   * converges, changing impairments live) with 20 ms on a→r only and 20 ms both ways on
   * r↔b; then `dune set` raises r→b to 50 ms.
   */
  async delay() {
    const lab = up('kd', line('{ endpoints = ["a:eth0", "r:eth0"] }', '{ endpoints = ["r:eth1", "b:eth0"] }'));
    try {
      const ip = addrs(lab, ['a', 'r', 'b']);
      const pings = async (n) => {
        const [ar, rb, ab] = await Promise.all([ping(lab.ns('a'), ip.r, n), ping(lab.ns('r'), ip.b, n), ping(lab.ns('a'), ip.b, n)]);
        return { ar: pingSummary(ar), rb: pingSummary(rb), ab: pingSummary(ab) };
      };
      const base = await pings(100);
      const again = lab.reup(line('{ endpoints = ["a:eth0", "r:eth0"], "a:eth0" = { latency = "20ms" } }', '{ endpoints = ["r:eth1", "b:eth0"], latency = "20ms" }'));
      const impaired = await pings(200);
      const udp = probeStats(await udpProbe({ fromNs: lab.ns('a'), toNs: lab.ns('r'), dst: ip.r, count: 200, intervalUs: 5000, drainMs: 300 }));
      const qdisc = { a: qdiscStats(lab.ns('a'), 'eth0'), r0: qdiscStats(lab.ns('r'), 'eth0'), r1: qdiscStats(lab.ns('r'), 'eth1') };
      const readback = await readBack(lab, ['a:eth0', 'r:eth0', 'r:eth1', 'b:eth0']);
      dune('set', '--lab', 'kd', 'r:eth1', 'latency=50ms');
      const [rb, ar] = await Promise.all([ping(lab.ns('r'), ip.b, 200), ping(lab.ns('a'), ip.r, 100)]);
      const afterSet = { rb: pingSummary(rb), ar: pingSummary(ar), qdisc: qdiscStats(lab.ns('r'), 'eth1').text, readback: await readBack(lab, ['r:eth1', 'b:eth0']) };
      return { reUpOut: again.out, base, impaired, udp: brief(udp), qdisc, readback, afterSet };
    } finally {
      lab.down();
    }
  },

  /**
   * Jitter and reordering, line n0 — n1 — n2 — n3 — n4:
   *   n0→n1 20 ms ± 5 ms uniform; n1→n2 20 ms ± 5 ms normal (iproute2's table);
   *   n2↔n3 plain (the base RTT); n3→n4 10 ms with 25 % reordering (gap 1, the default:
   *   a quarter of the packets skip the delay; ping sees them near the base RTT, the UDP
   *   probe sees them overtake the packets sent up to 10 ms before them).
   */
  async jitter() {
    const lab = up(
      'kj',
      line(
        '{ endpoints = ["n0:eth0", "n1:eth0"], "n0:eth0" = { latency = "20ms", jitter = "5ms", jitter_distribution = "uniform" } }',
        '{ endpoints = ["n1:eth1", "n2:eth0"], "n1:eth1" = { latency = "20ms", jitter = "5ms", jitter_distribution = "normal" } }',
        '{ endpoints = ["n2:eth1", "n3:eth0"] }',
        '{ endpoints = ["n3:eth1", "n4:eth0"], "n3:eth1" = { latency = "10ms", reorder = "25%" } }',
      ),
    );
    try {
      const ip = addrs(lab, ['n1', 'n2', 'n3', 'n4']);
      const [uniform, normal, base, reorder] = await Promise.all([
        ping(lab.ns('n0'), ip.n1, 500),
        ping(lab.ns('n1'), ip.n2, 500),
        ping(lab.ns('n2'), ip.n3, 200),
        ping(lab.ns('n3'), ip.n4, 500),
      ]);
      const udp = probeStats(await udpProbe({ fromNs: lab.ns('n3'), toNs: lab.ns('n4'), dst: ip.n4, count: 1000, intervalUs: 4000, drainMs: 300 }));
      return {
        base: pingSummary(base),
        uniform: pingSummary(uniform, true),
        normal: pingSummary(normal, true),
        reorderPing: { ...pingSummary(reorder), early: reorder.rtts.filter((x) => x < 5).length },
        reorderUdp: brief(udp, ['txUs']),
        readback: await readBack(lab, ['n0:eth0', 'n1:eth1', 'n2:eth1', 'n3:eth1']),
        qdisc: {
          uniform: qdiscStats(lab.ns('n0'), 'eth0').text,
          normal: qdiscStats(lab.ns('n1'), 'eth1').text,
          reorder: qdiscStats(lab.ns('n3'), 'eth1').text,
        },
      };
    } finally {
      lab.down();
    }
  },

  /**
   * Loss, duplication, corruption, rate and queue limit, line a — r — b — c:
   *   a→r loss 10 %; r→b duplicate 5 %; b→r corrupt 5 % (the three UDP probes run at once);
   *   b→c 1 Mbit/s + 20 ms (netem's own rate): throughput;
   *   c→b 10 Mbit/s + 2 s: rate × delay exceeds netem's default limit of 1000 packets, so the
   *   backend must size the limit; a burst that fits the sized limit loses nothing, and the
   *   same burst through a hand-set `limit 1000` (iproute2) loses the excess: the control.
   */
  async loss() {
    const lab = up(
      'kl',
      line(
        '{ endpoints = ["a:eth0", "r:eth0"], "a:eth0" = { loss = "10%" } }',
        '{ endpoints = ["r:eth1", "b:eth0"], "r:eth1" = { duplicate = "5%" }, "b:eth0" = { corrupt = "5%" } }',
        '{ endpoints = ["b:eth1", "c:eth0"], "b:eth1" = { bw = "1mbit", latency = "20ms" }, "c:eth0" = { bw = "10mbit", latency = "2s" } }',
      ),
    );
    try {
      const ip = addrs(lab, ['a', 'r', 'b', 'c']);
      // c's first packets to b wait for neighbour resolution, and c's ARP request itself
      // leaves through c:eth0 and waits 2 s there; meanwhile the neighbour layer queues only
      // a few packets and drops the rest before netem ever sees them. Resolve it now, in the
      // background, while the other probes run.
      const prime = run('ip', ['netns', 'exec', lab.ns('c'), 'ping', '-c', '1', '-W', '8', '-n', ip.b]);
      const n = 1000;
      const common = { count: n, intervalUs: 1000, drainMs: 500 };
      const [loss, dup, corrupt] = (
        await Promise.all([
          udpProbe({ fromNs: lab.ns('a'), toNs: lab.ns('r'), dst: ip.r, port: 9001, ...common }),
          udpProbe({ fromNs: lab.ns('r'), toNs: lab.ns('b'), dst: ip.b, port: 9002, ...common }),
          udpProbe({ fromNs: lab.ns('b'), toNs: lab.ns('r'), dst: ip.r, port: 9003, ...common }),
        ])
      ).map(probeStats);
      const pingLoss = pingSummary(await ping(lab.ns('a'), ip.r, 300));
      const lossQdisc = { a: qdiscStats(lab.ns('a'), 'eth0'), r1: qdiscStats(lab.ns('r'), 'eth1'), b0: qdiscStats(lab.ns('b'), 'eth0') };
      const readback = await readBack(lab, ['a:eth0', 'r:eth0', 'r:eth1', 'b:eth0', 'b:eth1', 'c:eth0']);

      // 1000-byte payloads (1042 bytes at layer 2, what netem's rate counts) every 4 ms:
      // 2.08 Mbit/s offered to 1 Mbit/s. The queue grows to ~175 packets (< limit): no drops.
      const tput = probeStats(await udpProbe({ fromNs: lab.ns('b'), toNs: lab.ns('c'), dst: ip.c, count: 300, intervalUs: 4000, size: 1000, drainMs: 2500 }));
      const tputQdisc = qdiscStats(lab.ns('b'), 'eth1');

      const primed = await prime;
      // 1500 (+50 warm-up) small datagrams sent in well under 2 s: all of them sit in netem at once.
      const burst = { fromNs: lab.ns('c'), toNs: lab.ns('b'), dst: ip.b, count: 1500, intervalUs: 400, drainMs: 3000, prime: false };
      const sized = probeStats(await udpProbe(burst));
      const sizedQdisc = qdiscStats(lab.ns('c'), 'eth0');
      nsExec(lab.ns('c'), ['tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '1:', 'netem', 'limit', '1000', 'delay', '2s', 'rate', '10mbit']);
      const control = probeStats(await udpProbe(burst));
      const controlQdisc = qdiscStats(lab.ns('c'), 'eth0');
      return {
        loss: brief(loss),
        dup: brief(dup),
        corrupt: brief(corrupt),
        pingLoss,
        lossQdisc,
        readback,
        tput: brief(tput),
        tputQdisc,
        primed: primed.code,
        sized: brief(sized),
        sizedQdisc,
        control: brief(control),
        controlQdisc,
      };
    } finally {
      lab.down();
    }
  },
};

const names = process.argv.slice(2);
const unknown = names.filter((n) => !(n in groups));
if (names.length === 0 || unknown.length > 0) {
  process.stderr.write(`usage: netem.mjs GROUP...; groups: ${Object.keys(groups).join(', ')}\n`);
  process.exit(2);
}
// The guest's kernel, for the record.
const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
await main(Object.fromEntries(names.map((n) => [n, groups[n]])), { kernel });
