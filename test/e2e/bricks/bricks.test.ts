/**
 * Bricks on a real kernel, through the built CLI, with real traffic:
 *
 *   diode.toml      a → d → b: UDP from a reaches b; the same from b never reaches a, and the
 *                   diode's counters say how many it dropped (`dune status`)
 *   antispoof.toml  h1, h2 on an antispoof switch: frames from h1 with its own MAC and
 *                   addresses pass; a spoofed ARP, a spoofed IPv4 and IPv6 source, a spoofed
 *                   neighbour advertisement and a foreign Ethernet source are dropped before
 *                   h2 sees them, each counted under its reason
 *   firewall.toml   client → fw → server: the allowed service (tcp 8080) and ping pass, the
 *                   other service (9090) and pings from the server do not, the rules' counters
 *                   move; `dune firewall` swaps the rules live (9090 allowed, 8080 not), and a
 *                   stateless allow lets the SYN through but not its answer
 * Raw frames come from scapy (Debian's python3-scapy) inside the nodes (packets.py).
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dune, duneOk, downAndCheck, duneSpawn, isRoot, REPO, requireBuilt, ROOT_REASON, sh } from '../helpers.js';

const DIR = join(REPO, 'test/e2e/bricks');
const PY = '/usr/bin/python3';
const PACKETS = join(DIR, 'packets.py');
const LABS = { diode: 'e2ediode', spoof: 'e2espoof', fw: 'e2efw' } as const;
const hasScapy = sh([PY, '-c', 'import scapy.all']).code === 0;

interface Counter { node: string; name: string; label: string; packets: number | null; bytes: number | null }

async function counters(lab: string): Promise<Map<string, number>> {
  const r = await duneOk(['status', '--lab', lab, '--json']);
  const s = JSON.parse(r.stdout) as { counters?: Counter[] };
  return new Map((s.counters ?? []).map((c) => [`${c.node} ${c.name}`, c.packets ?? -1]));
}

/** A packets.py command in a node, to completion. */
function py(lab: string, node: string, ...args: (string | number)[]) {
  return dune(['exec', '--lab', lab, node, '--', PY, PACKETS, ...args.map(String)], { timeoutMs: 30_000 });
}

/** A packets.py receiver started in a node; resolves once it is listening, then `result` gives its last line. */
async function receiver(lab: string, node: string, ...args: (string | number)[]): Promise<{ result: Promise<number> }> {
  const child: ChildProcess = duneSpawn(['exec', '--lab', lab, node, '--', PY, PACKETS, ...args.map(String)]);
  let out = '';
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const done = new Promise<number>((resolve, reject) => {
    child.once('exit', () => {
      const last = out.trim().split('\n').pop() ?? '';
      if (/^\d+$/.test(last)) resolve(Number(last));
      else reject(new Error(`receiver in ${node} ended without a count: ${out} ${err}`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`receiver in ${node} not ready: ${out} ${err}`)), 20_000);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { result: done };
}

async function ifaceInfo(lab: string, node: string, dev: string): Promise<{ mac: string; v4: string; v6: string; ll: string }> {
  const r = await duneOk(['exec', '--lab', lab, node, '--', 'ip', '-j', 'addr', 'show', 'dev', dev]);
  const [j] = JSON.parse(r.stdout) as { address: string; addr_info: { family: string; local: string; scope: string }[] }[];
  const a = j?.addr_info ?? [];
  return {
    mac: j?.address ?? '',
    v4: a.find((x) => x.family === 'inet')?.local ?? '',
    v6: a.find((x) => x.family === 'inet6' && x.scope === 'global')?.local ?? '',
    ll: a.find((x) => x.family === 'inet6' && x.scope === 'link')?.local ?? '',
  };
}

describe.skipIf(!isRoot)(`e2e: bricks (diode, antispoof, firewall)${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  afterAll(async () => {
    for (const lab of Object.values(LABS)) await dune(['down', '--lab', lab]);
  });

  it('a diode passes UDP from a to b, drops all of it from b to a, and counts what it dropped', async () => {
    requireBuilt();
    await duneOk(['up', '--lab', LABS.diode, join(DIR, 'diode.toml')], { timeoutMs: 60_000 });
    const a = await ifaceInfo(LABS.diode, 'a', 'eth0');
    const b = await ifaceInfo(LABS.diode, 'b', 'eth0');
    // A diode lets no ARP reply back: each side knows the other's MAC from the topology.
    await duneOk(['exec', '--lab', LABS.diode, 'a', '--', 'ip', 'neigh', 'replace', b.v4, 'lladdr', b.mac, 'dev', 'eth0', 'nud', 'permanent']);
    await duneOk(['exec', '--lab', LABS.diode, 'b', '--', 'ip', 'neigh', 'replace', a.v4, 'lladdr', a.mac, 'dev', 'eth0', 'nud', 'permanent']);
    const before = await counters(LABS.diode);

    const atB = await receiver(LABS.diode, 'b', 'udp-count', 5000, 3);
    expect((await py(LABS.diode, 'a', 'udp-send', b.v4, 5000, 20)).code).toBe(0);
    expect(await atB.result).toBe(20);

    const atA = await receiver(LABS.diode, 'a', 'udp-count', 5000, 3);
    expect((await py(LABS.diode, 'b', 'udp-send', a.v4, 5000, 20)).code).toBe(0);
    expect(await atA.result).toBe(0);

    const after = await counters(LABS.diode);
    const delta = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
    console.log(`diode: forward passed +${delta('d passed')}, reverse dropped +${delta('d dropped')}`);
    expect(delta('d passed')).toBeGreaterThanOrEqual(20);
    expect(delta('d dropped')).toBeGreaterThanOrEqual(20);
    const text = await duneOk(['status', '--lab', LABS.diode]);
    expect(text.stdout).toMatch(/d\s+\d+\s+\d+\s+b → a: dropped/);
    expect(await downAndCheck(LABS.diode)).toEqual([]);
  }, 120_000);

  it.skipIf(!hasScapy)('antispoof drops a spoofed ARP, IPv4/IPv6 source, NA and MAC from h1, while its true frames pass', async () => {
    requireBuilt();
    await duneOk(['up', '--lab', LABS.spoof, join(DIR, 'antispoof.toml')], { timeoutMs: 60_000 });
    const h1 = await ifaceInfo(LABS.spoof, 'h1', 'eth0');
    const h2 = await ifaceInfo(LABS.spoof, 'h2', 'eth0');
    expect(h2.mac).toBe('02:00:00:00:02:02');
    // The port's MAC was fixed by the compiler: the kernel's link-local follows from it.
    expect(h1.mac).toMatch(/^02:/);
    const c0 = await counters(LABS.spoof);
    const delta = async (name: string) => ((await counters(LABS.spoof)).get(`sw ${name}`) ?? 0) - (c0.get(`sw ${name}`) ?? 0);

    // What h2 sees of each kind of frame, while h1 sends it.
    const seen = async (bpf: string, send: () => Promise<unknown>) => {
      // 6 s from the capture's start (the sender's own start is slow under load); a fourth frame
      // (3 are sent) ends it early, and fails the count.
      const r = await receiver(LABS.spoof, 'h2', 'sniff-count', 'eth0', 6, bpf, 4);
      await send();
      return r.result;
    };
    // True frames pass: an ARP request from h1's address and MAC, pings from its addresses.
    expect(await seen(`arp and arp[14:4] = 0x${ipHex(h1.v4)}`, () => py(LABS.spoof, 'h1', 'arp', 'eth0', 'who-has', h1.v4, h1.mac, h2.v4, 3))).toBe(3);
    expect(await seen(`icmp and icmp[0] = 8 and src host ${h1.v4}`, () => py(LABS.spoof, 'h1', 'ip4', 'eth0', h1.v4, h2.v4, h2.mac, 3))).toBe(3);
    expect(await seen(`icmp6 and ip6[40] = 128 and src host ${h1.v6}`, () => py(LABS.spoof, 'h1', 'ip6', 'eth0', h1.v6, h2.v6, h2.mac, 3))).toBe(3);
    // Spoofed: another sender address in ARP, another source address, another target in an NA, another MAC.
    expect(await seen('arp and arp[14:4] = 0x0a40004d', () => py(LABS.spoof, 'h1', 'arp', 'eth0', 'is-at', '10.64.0.77', h1.mac, h2.v4, 3))).toBe(0);
    expect(await seen('arp and arp[8:4] = 0x02000000', () => py(LABS.spoof, 'h1', 'arp', 'eth0', 'is-at', h1.v4, '02:00:00:00:00:99', h2.v4, 3))).toBe(0);
    expect(await seen('icmp and src host 10.64.0.77', () => py(LABS.spoof, 'h1', 'ip4', 'eth0', '10.64.0.77', h2.v4, h2.mac, 3))).toBe(0);
    expect(await seen('icmp6 and src host fd7a:5e00::77', () => py(LABS.spoof, 'h1', 'ip6', 'eth0', 'fd7a:5e00::77', h2.v6, h2.mac, 3))).toBe(0);
    expect(await seen('icmp6 and ip6[40] = 136', () => py(LABS.spoof, 'h1', 'na', 'eth0', h1.ll, 'fd7a:5e00::77', 3))).toBe(0);
    expect(await seen('ether src 02:00:00:00:00:66', () => py(LABS.spoof, 'h1', 'ether', 'eth0', '02:00:00:00:00:66', h2.mac, h1.v4, h2.v4, 3))).toBe(0);

    const drops = { arp: await delta('p0_arp'), ip: await delta('p0_ip'), nd: await delta('p0_nd'), mac: await delta('p0_mac'), passed: await delta('p0_passed') };
    console.log(`antispoof h1 port: ${JSON.stringify(drops)}`);
    expect(drops.arp).toBeGreaterThanOrEqual(6);
    expect(drops.ip).toBeGreaterThanOrEqual(6);
    expect(drops.nd).toBeGreaterThanOrEqual(3);
    expect(drops.mac).toBeGreaterThanOrEqual(3);
    expect(drops.passed).toBeGreaterThanOrEqual(9);
    // The hosts' own traffic is unharmed: ping both ways over both families.
    for (const [from, to] of [['h1', h2.v4], ['h2', h1.v4], ['h1', h2.v6], ['h2', h1.v6]] as const) {
      expect((await dune(['exec', '--lab', LABS.spoof, from, '--', 'ping', '-c', '2', '-W', '2', to])).code, `${from} → ${to}`).toBe(0);
    }
    expect(await downAndCheck(LABS.spoof)).toEqual([]);
  }, 180_000);

  it('a firewall allows tcp 8080 and ping from the client only, counts per rule, and takes new rules live', async () => {
    requireBuilt();
    await duneOk(['up', '--lab', LABS.fw, join(DIR, 'firewall.toml')], { timeoutMs: 60_000 });
    const server = (await ifaceInfo(LABS.fw, 'server', 'eth0')).v4;
    const client = (await ifaceInfo(LABS.fw, 'client', 'eth0')).v4;
    const connect = async (port: number) => (await py(LABS.fw, 'client', 'tcp-connect', server, port)).code === 0;
    const ping = async (from: string, to: string) => (await dune(['exec', '--lab', LABS.fw, from, '--', 'ping', '-c', '1', '-W', '1', to])).code === 0;
    // The servers may take a moment to listen.
    for (let i = 0; i < 50 && !(await connect(8080)); i++) await new Promise((r) => setTimeout(r, 100));

    expect(await connect(8080)).toBe(true);
    expect(await connect(9090)).toBe(false);
    expect(await ping('client', server)).toBe(true);
    expect(await ping('server', client)).toBe(false);
    let c = await counters(LABS.fw);
    expect(c.get('fw rule0')).toBeGreaterThanOrEqual(2); // two SYNs: the warm-up's and the test's
    expect(c.get('fw rule1')).toBeGreaterThanOrEqual(1);
    expect(c.get('fw replies')).toBeGreaterThan(0);
    expect(c.get('fw unmatched')).toBeGreaterThanOrEqual(2); // 9090's SYN (and its retries), the server's ping
    const shown = await duneOk(['firewall', '--lab', LABS.fw, 'fw']);
    expect(shown.stdout).toMatch(/\d+\s+\d+\s+rule 1: web/);

    // Live: 9090 instead of 8080, ping no more; one transaction, the counters start again.
    const set = await duneOk(['firewall', '--lab', LABS.fw, 'fw', '--rule', 'action=allow proto=tcp from=client dport=9090 name=alt', '--policy', 'deny']);
    expect(set.stdout).toContain('firewall fw: 1 rule, policy deny');
    expect(await connect(9090)).toBe(true);
    expect(await connect(8080)).toBe(false);
    expect(await ping('client', server)).toBe(false);
    c = await counters(LABS.fw);
    expect(c.get('fw rule0')).toBeGreaterThanOrEqual(1);
    expect([...c.keys()].sort()).toEqual(['fw replies', 'fw rule0', 'fw unmatched']);
    const st = await duneOk(['status', '--lab', LABS.fw]);
    expect(st.stdout).toContain('rule 1: alt');

    // Stateless: the SYN passes (counted) but the server's SYN-ACK matches no rule.
    await duneOk(['firewall', '--lab', LABS.fw, 'fw', '--rule', 'action=allow proto=tcp from=client dport=9090 stateful=false']);
    expect(await connect(9090)).toBe(false);
    c = await counters(LABS.fw);
    expect(c.get('fw rule0')).toBeGreaterThanOrEqual(1);
    expect(c.has('fw replies')).toBe(false);

    // A bad rule changes nothing and says why.
    const bad = await dune(['firewall', '--lab', LABS.fw, 'fw', '--rule', 'action=alow proto=tcp']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('rules.0.action = "alow" is not an action');
    expect(await downAndCheck(LABS.fw)).toEqual([]);
  }, 180_000);
});

function ipHex(v4: string): string {
  return v4.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join('');
}
