/**
 * Issue 3, impairments on a live lab (topo.toml beside this file), measured from inside the
 * nodes with the built CLI: htb rate with iperf3, nftables loss with ping, and `dune set`
 * changing both live.
 *
 * Expected TCP goodput through htb: htb meters whole frames (an skb of 1500 bytes of IP plus
 * the 14-byte Ethernet header = 1514), iperf3 counts TCP payload (MSS 1460 minus 12 bytes of
 * timestamp option = 1448). So goodput = rate × 1448/1514; at 50 Mbit/s the agent's kernel
 * test measured 47.78 for 47.82 expected. The ±5 % tolerance covers TCP's start (the first
 * round trips do not fill the link: a few hundred ms of a 5 s run) and htb's token-bucket
 * granularity; a rate applied wrongly (not at all, in bytes instead of bits, on the wrong
 * device) is off by far more.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { binomialInterval, dune, duneOk, downAndCheck, iperf, isRoot, parsePing, REPO, requireBuilt, ROOT_REASON, status, type Status } from '../helpers.js';

const LAB = 'e2eimpair';
const FILE = join(REPO, 'test/e2e/impair/topo.toml');
const SECONDS = 5;
const goodput = (rateBps: number) => (rateBps * 1448) / 1514;

function link(st: Status, node: string, dev: string) {
  const l = st.links.find((x) => x.node === node && x.dev === dev);
  if (l === undefined) throw new Error(`no ${node}:${dev} in dune status`);
  return l;
}

describe.skipIf(!isRoot)(`e2e: rate and loss on a live lab, and changed live${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let srv = '';
  let far = '';
  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', LAB]);
    await duneOk(['up', FILE, '--lab', LAB]);
    const st = await status(LAB);
    srv = st.nodes.find((n) => n.node === 'srv')?.v4 as string;
    far = st.nodes.find((n) => n.node === 'far')?.v4 as string;
    expect(link(st, 'cli', 'eth0').impairment).toEqual({ rateBitsPerSec: 20_000_000 });
    expect(link(st, 'srv', 'eth0').impairment).toEqual({ rateBitsPerSec: 20_000_000 });
    expect(link(st, 'cli', 'eth1').impairment).toEqual({ lossPct: 20 });
    expect(link(st, 'far', 'eth0').impairment).toEqual({});
  });
  afterAll(async () => {
    expect(await downAndCheck(LAB)).toEqual([]);
  });

  it('iperf3 through bw = "20mbit" (htb) gets 20 Mbit/s × 1448/1514 of goodput, ±5 %', async () => {
    const got = await iperf(LAB, 'srv', srv, 'cli', SECONDS);
    const want = goodput(20_000_000);
    console.log(`htb 20mbit: iperf3 ${(got / 1e6).toFixed(2)} Mbit/s, expected ${(want / 1e6).toFixed(2)} (${(((got - want) / want) * 100).toFixed(1)} %)`);
    expect(Math.abs(got - want) / want).toBeLessThan(0.05);
  }, 60_000);

  it('loss = "20%" on one endpoint drops round trips within the exact binomial 99 % interval (500 pings)', async () => {
    // Only cli → far is lossy (the endpoint override), so a round trip from cli is lost with
    // p = 0.2 exactly: its request may be dropped, its reply cannot be. Were the loss applied
    // both ways the round-trip loss would be 1 - 0.8² = 0.36 (180 of 500), far outside.
    const n = 500;
    const [lo, hi] = binomialInterval(n, 0.2, 0.99);
    // Mean 100, sd 8.94: the normal approximation would give 77..123.
    expect([lo, hi]).toEqual([78, 124]);
    // -i 0.002 (root only) keeps it to ~1 s; -W 1 bounds the wait for the last replies.
    const r = await dune(['exec', '--lab', LAB, 'cli', '--', 'ping', '-i', '0.002', '-q', '-c', String(n), '-W', '1', far], { timeoutMs: 30_000 });
    const p = parsePing(r.stdout);
    const lost = p.sent - p.received;
    console.log(`nftables 20 % loss: ${lost}/${n} round trips lost (99 % interval ${lo}..${hi})`);
    expect(p.sent).toBe(n);
    expect(lost).toBeGreaterThanOrEqual(lo);
    expect(lost).toBeLessThanOrEqual(hi);
  }, 60_000);

  it('dune set: bw=5mbit takes effect (iperf3), loss=none removes the loss (0 of 200 lost), status shows both', async () => {
    const s1 = await duneOk(['set', '--lab', LAB, 'cli:eth0', 'bw=5mbit']);
    expect(s1.stdout.trim()).toBe('cli:eth0 → rate 5mbit');
    const s2 = await duneOk(['set', '--lab', LAB, 'cli:eth1', 'loss=none']);
    expect(s2.stdout.trim()).toBe('cli:eth1 → -');

    const st = await status(LAB);
    expect(link(st, 'cli', 'eth0').impairment).toEqual({ rateBitsPerSec: 5_000_000 });
    // One direction only: the other end of the link keeps its 20 Mbit/s.
    expect(link(st, 'srv', 'eth0').impairment).toEqual({ rateBitsPerSec: 20_000_000 });
    expect(link(st, 'cli', 'eth1').impairment).toEqual({});

    const got = await iperf(LAB, 'srv', srv, 'cli', SECONDS);
    const want = goodput(5_000_000);
    console.log(`after dune set bw=5mbit: iperf3 ${(got / 1e6).toFixed(2)} Mbit/s, expected ${(want / 1e6).toFixed(2)} (${(((got - want) / want) * 100).toFixed(1)} %)`);
    expect(Math.abs(got - want) / want).toBeLessThan(0.05);

    // With p = 0.2 still in place, 200 pings all arriving would have probability 0.8^200 ≈ 4e-20.
    const r = await dune(['exec', '--lab', LAB, 'cli', '--', 'ping', '-i', '0.002', '-q', '-c', '200', '-W', '1', far], { timeoutMs: 30_000 });
    const p = parsePing(r.stdout);
    console.log(`after dune set loss=none: ${p.sent - p.received}/200 lost`);
    expect(r.code).toBe(0);
    expect(p).toMatchObject({ sent: 200, received: 200 });
  }, 90_000);
});
