/**
 * Byte-level tests of the netlink encoders against vectors computed by hand from the
 * kernel's uapi struct layouts (linux/netlink.h, if_link.h, veth.h, pkt_sched.h, if_addr.h,
 * rtnetlink.h). No root, no kernel: the kernel tests check that the kernel agrees.
 */
import { describe, expect, it } from 'vitest';
import { NlWriter } from '../src/netlink/writer.js';
import { newVeth, newVxlan, setLink } from '../src/netlink/link.js';
import { newAddr, newRoute } from '../src/netlink/addr-route.js';
import { decodeNetem, newClass, handle, writeNetem, pctToU32 } from '../src/netlink/tc.js';
import { messages, parseError } from '../src/netlink/parse.js';
import { forEachPrefix, formatIp, parseIp, parsePrefix } from '../src/netlink/ip.js';
import { expandPrefixRun } from '@dune/compiler';
import { planImpairment, ImpairmentUnsupportedError, netemOptions } from '../src/impair/backends.js';
import { lossChainName, nftLossScript } from '../src/impair/nft.js';
import { sysctlPath } from '../src/apply.js';
import type { Caps } from '../src/probe-types.js';

const hex = (s: string): string => s.replace(/\s+/g, '');
const bytes = (w: NlWriter): string => w.bytes().toString('hex');

describe('NlWriter', () => {
  it('pads attributes to 4 bytes but does not count the padding in nla_len', () => {
    const w = new NlWriter(8);
    w.attrStr(3, 'eth0'); // 4 + 5 bytes → len 9, padded to 12
    w.attrU8(7, 1); // len 5, padded to 8
    expect(bytes(w)).toBe(hex('0900 0300 65746830 00 000000   0500 0700 01 000000'));
  });

  it('patches nested attribute and message lengths', () => {
    const w = new NlWriter(4); // grows as needed
    const m = w.beginMsg(16, 0x5, 42);
    const n = w.beginNest(18);
    w.attrU32(1, 0xdeadbeef);
    w.endNest(n);
    w.endMsg(m);
    expect(bytes(w)).toBe(hex('1c000000 1000 0500 2a000000 00000000   0c00 1200 0800 0100 efbeadde'));
  });
});

describe('RTM_NEWLINK', () => {
  it('veth: both ends with their ifindex, namespace fd and one queue each way, peer inside VETH_INFO_PEER', () => {
    const w = new NlWriter();
    newVeth(w, 7, { name: 'a', index: 5, nsFd: 9, mtu: 1400 }, { name: 'b', index: 6, nsFd: 10 });
    expect(bytes(w)).toBe(
      hex(`
        90000000 1000 0506 07000000 00000000
        00 00 0000 05000000 00000000 00000000
        0600 0300 6100 0000
        0800 0400 78050000
        0800 1c00 09000000
        0800 1f00 01000000
        0800 2000 01000000
        4800 1200
          0900 0100 76657468 00 000000
          3800 0200
            3400 0100
              00 00 0000 06000000 00000000 00000000
              0600 0300 6200 0000
              0800 1c00 0a000000
              0800 1f00 01000000
              0800 2000 01000000`),
    );
  });

  it('vxlan: the UDP port in network byte order, addresses as bytes', () => {
    const w = new NlWriter();
    newVxlan(w, 1, { name: 'vx0', vni: 42, local: '198.51.100.1', remote: '198.51.100.2', port: 4789, underlayIndex: 3 });
    const h = bytes(w);
    expect(h).toContain(hex('0800 0100 2a000000')); // IFLA_VXLAN_ID 42
    expect(h).toContain(hex('0800 0400 c6336401')); // IFLA_VXLAN_LOCAL 198.51.100.1
    expect(h).toContain(hex('0800 0200 c6336402')); // IFLA_VXLAN_GROUP (remote)
    expect(h).toContain(hex('0800 0300 03000000')); // IFLA_VXLAN_LINK
    expect(h).toContain(hex('0600 0f00 12b5 0000')); // IFLA_VXLAN_PORT 4789, big-endian
  });

  it('vxlan of a vtep: learning on, its TTL, and no local address when none is given', () => {
    const w = new NlWriter();
    newVxlan(w, 1, { name: 'vtep0', vni: 4242, local: '', remote: '239.1.1.1', port: 4799, learning: true, ttl: 8 });
    const h = bytes(w);
    expect(h).toContain(hex('0500 0700 01 000000')); // IFLA_VXLAN_LEARNING 1
    expect(h).toContain(hex('0500 0500 08 000000')); // IFLA_VXLAN_TTL 8
    expect(h).toContain(hex('0800 0200 ef010101')); // IFLA_VXLAN_GROUP 239.1.1.1
    expect(h).not.toContain(hex('0800 0400')); // no IFLA_VXLAN_LOCAL
    const p2p = new NlWriter();
    newVxlan(p2p, 1, { name: 'vx0', vni: 42, local: '198.51.100.1', remote: '198.51.100.2', port: 4789 });
    expect(bytes(p2p)).toContain(hex('0500 0700 00 000000')); // a lab link learns nothing
  });

  it('setlink: up via ifi_flags/ifi_change, alias and master', () => {
    const w = new NlWriter();
    setLink(w, 2, { index: 4, up: true, alias: 'dune:l:n:e', master: 9 });
    expect(bytes(w)).toBe(
      hex(`
        38000000 1300 0500 02000000 00000000
        00 00 0000 04000000 01000000 01000000
        0f00 1400 64756e653a6c3a6e3a65 00 00
        0800 0a00 09000000`),
    );
  });
});

describe('RTM_NEWADDR / RTM_NEWROUTE', () => {
  it('IPv6 address with IFA_F_NODAD, so it is usable at once', () => {
    const w = new NlWriter();
    newAddr(w, 3, 4, 'fd00::1/64');
    expect(bytes(w)).toBe(
      hex(`
        34000000 1400 0506 03000000 00000000
        0a 40 82 00 04000000
        1400 0100 fd000000000000000000000000000001
        0800 0800 82000000`),
    );
  });

  it('IPv4 address carries IFA_LOCAL and IFA_ADDRESS', () => {
    const w = new NlWriter();
    newAddr(w, 1, 2, '10.0.0.1/31');
    expect(bytes(w)).toBe(
      hex(`
        30000000 1400 0506 01000000 00000000
        02 1f 80 00 02000000
        0800 0200 0a000001
        0800 0100 0a000001
        0800 0800 80000000`),
    );
  });

  it('route via a gateway of the same family: RTA_GATEWAY, proto 0x44, table main', () => {
    const w = new NlWriter();
    newRoute(w, 5, { dst: '10.1.0.0/16', via: '10.0.0.1', oif: 3, metric: 20 });
    expect(bytes(w)).toBe(
      hex(`
        44000000 1800 0506 05000000 00000000
        02 10 00 00 fe 44 00 01 00000000
        0800 0100 0a010000
        0800 0500 0a000001
        0800 0400 03000000
        0800 0600 14000000
        0800 0f00 fe000000`),
    );
  });

  it('a preferred source goes in RTA_PREFSRC', () => {
    const w = new NlWriter();
    newRoute(w, 1, { dst: '10.1.0.0/16', via: '10.0.0.1', oif: 3, src: '10.0.0.9' });
    expect(bytes(w)).toContain(hex('0800 0700 0a000009'));
  });

  it('`default` takes the family of its gateway', () => {
    const w = new NlWriter();
    newRoute(w, 1, { dst: 'default', via: 'fe80::1', oif: 2 });
    const h = bytes(w);
    expect(h).toContain(hex('0a 00 00 00 fe 44 00 01'));
    expect(h).toContain(hex('1400 0500 fe800000000000000000000000000001'));
  });

  it('IPv4 destination via an IPv6 next hop: RTA_VIA carrying the family', () => {
    const w = new NlWriter();
    newRoute(w, 1, { dst: '10.0.0.0/8', via: 'fe80::1', oif: 2 });
    expect(bytes(w)).toContain(hex('1600 1200 0a00 fe800000000000000000000000000001 0000'));
  });
});

describe('tc', () => {
  it('htb class: tc_htb_opt with ratespecs (linklayer ethernet, no rate table), buffer in 64 ns ticks', () => {
    const w = new NlWriter();
    newClass(w, 1, { ifindex: 2, handle: handle(1, 1), parent: handle(1) }, { kind: 'htb-class', rateBytesPerSec: 6_250_000, burstBytes: 6250, quantumBytes: 200_000 });
    expect(bytes(w)).toBe(
      hex(`
        60000000 2800 0506 01000000 00000000
        00 00 0000 02000000 01000100 00000100 00000000
        0800 0100 68746200
        3400 0200
          3000 0100
            00 01 0000 0000 0000 105e5f00
            00 01 0000 0000 0000 105e5f00
            093d0000 093d0000 400d0300 00000000 00000000`),
    );
  });

  it('htb class at 40 Gbit/s: rate saturates in tc_ratespec and goes in TCA_HTB_RATE64/CEIL64', () => {
    const w = new NlWriter();
    newClass(w, 1, { ifindex: 2, handle: handle(1, 1), parent: handle(1) }, { kind: 'htb-class', rateBytesPerSec: 5e9, burstBytes: 5e6, quantumBytes: 200_000 });
    const h = bytes(w);
    expect(h).toContain(hex('00 01 0000 0000 0000 ffffffff'));
    expect(h).toContain(hex('0c00 0600 00f2052a01000000')); // 5e9 = 0x12a05f200
    expect(h).toContain(hex('0c00 0700 00f2052a01000000'));
  });

  it('netem: tc_netem_qopt (ticks) then REORDER, LATENCY64, JITTER64 in the same TCA_OPTIONS', () => {
    const w = new NlWriter();
    writeNetem(w, { limitPackets: 1000, delayNs: 10_000_000, jitterNs: 1_000_000, lossPct: 1, reorderPct: 25 });
    expect(bytes(w)).toBe(
      hex(`
        4000 0200
          5a620200 e8030000 295c8f02 01000000 00000000 093d0000
          0c00 0300 00000040 00000000
          0c00 0a00 8096980000000000
          0c00 0b00 40420f0000000000`),
    );
  });

  it('netem: Gilbert-Elliott loss nested (NLA_F_NESTED), loss in qopt left 0, rate and correlation', () => {
    const w = new NlWriter();
    writeNetem(w, {
      limitPackets: 10,
      gemodel: { pPct: 1, rPct: 10, hPct: 70, k1Pct: 0 },
      lossCorrPct: 25,
      rateBytesPerSec: 1_250_000,
      corruptPct: 50,
    });
    expect(bytes(w)).toBe(
      hex(`
        6400 0200
          00000000 0a000000 00000000 00000000 00000000 00000000
          1000 0100 00000000 00000040 00000000
          0c00 0400 00000080 00000000
          1800 0580
            1400 0200 295c8f02 9a999919 323333b3 00000000
          1400 0600 d0121300 00000000 00000000 00000000`),
    );
    // 50 % is 2147483647.5 on the u32 scale: rounded half to even by tc's rint(), up by Math.round.
    expect(pctToU32(50)).toBe(0x80000000);
  });

  it('netem decodes back to what was encoded', () => {
    const w = new NlWriter();
    const o = { limitPackets: 5000, delayNs: 20_000_000, jitterNs: 2_000_000, lossPct: 10, duplicatePct: 1, reorderPct: 5, gap: 3, rateBytesPerSec: 6e9 };
    writeNetem(w, o);
    const d = decodeNetem(w.bytes().subarray(4));
    expect(d.limitPackets).toBe(5000);
    expect(d.delayNs).toBe(20_000_000);
    expect(d.jitterNs).toBe(2_000_000);
    expect(d.lossPct).toBeCloseTo(10, 6);
    expect(d.duplicatePct).toBeCloseTo(1, 6);
    expect(d.reorderPct).toBeCloseTo(5, 6);
    expect(d.gap).toBe(3);
    expect(d.rateBytesPerSec).toBe(6e9);
  });
});

describe('NLMSG_ERROR', () => {
  it('decodes errno and the extended ack (message and offset) of a capped ack', () => {
    const buf = Buffer.from(
      hex(`
        38000000 0200 0003 09000000 00000000
        efffffff
        20000000 1000 0506 09000000 00000000
        0900 0100 626f6f6d 00 000000
        0800 0200 24000000`),
      'hex',
    );
    const [m] = [...messages(buf)];
    expect(m).toBeDefined();
    expect(parseError(m!)).toEqual({ seq: 9, errno: 17, extack: 'boom', badAttrOffset: 36 });
  });

  it('reads several messages from concatenated datagrams', () => {
    const ack = (seq: number) => hex(`24000000 0200 0001 0${seq}000000 00000000 00000000 14000000 1000 0506 0${seq}000000 00000000`);
    const list = [...messages(Buffer.from(ack(1) + ack(2) + ack(3), 'hex'))];
    expect(list.map((m) => [m.seq, parseError(m).errno])).toEqual([[1, 0], [2, 0], [3, 0]]);
  });
});

describe('addresses', () => {
  it('parses and formats IPv6 like the kernel and iproute2 do', () => {
    expect(parseIp('fd7a:de00::1').bytes.toString('hex')).toBe('fd7ade00000000000000000000000001');
    expect(parseIp('::ffff:1.2.3.4').bytes.toString('hex')).toBe('00000000000000000000ffff01020304');
    expect(formatIp(10, parseIp('fd7a:de00:0:0:1::').bytes)).toBe('fd7a:de00:0:0:1::');
    expect(formatIp(10, parseIp('fd7a:0:0:1:0:0:0:2').bytes)).toBe('fd7a:0:0:1::2');
    expect(parsePrefix('10.0.0.1/31')).toMatchObject({ family: 2, prefixLen: 31 });
    expect(() => parsePrefix('10.0.0.1/33')).toThrow(/bad prefix length/);
  });

  it('maps sysctl keys to /proc/sys paths, interface names with dots included, and refuses escapes', () => {
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    expect(sysctlPath('net.ipv4.conf.eth0.1.rp_filter')).toBe('/proc/sys/net/ipv4/conf/eth0.1/rp_filter');
    expect(sysctlPath('net.ipv6.conf.all.forwarding')).toBe('/proc/sys/net/ipv6/conf/all/forwarding');
    expect(() => sysctlPath('net.ipv4..ip_forward')).toThrow(/not a sysctl key/);
    expect(() => sysctlPath('../../etc/passwd')).toThrow(/not a sysctl key/);
  });
});

const cap = (ok: boolean, error?: string) => (ok ? { ok } : { ok, error: error ?? 'missing' });
function caps(netem: boolean, nfqueue = true): Caps {
  return {
    veth: cap(true),
    netem: cap(netem, 'Specified qdisc kind is unknown'),
    htb: cap(true),
    tbf: cap(true),
    pfifo: cap(true),
    bfifo: cap(true),
    vxlan: cap(true),
    bridge: cap(true),
    nft: cap(true),
    nfqueue: cap(nfqueue, "iptables v1.8.9 (nf_tables): Couldn't load target `NFQUEUE'"),
    kernel: 'test',
    probeMs: 0,
  };
}

describe('planImpairment', () => {
  it('without netem: rate and queue by htb + fifo leaf, Bernoulli loss by nftables', () => {
    const p = planImpairment({ rateBitsPerSec: 100e6, queueBytes: 30_000, lossPct: 2.5 }, caps(false), { mtu: 1500 });
    expect(p.assignments).toEqual({ rateBitsPerSec: 'htb', queueBytes: 'htb', lossPct: 'nftables-loss' });
    expect(p.tc.map((n) => `${n.type} ${n.handle.toString(16)} ${n.options.kind}`)).toEqual(['qdisc 10000 htb', 'class 10001 htb-class', 'qdisc 100000 bfifo']);
    expect(p.nftLossPpm).toBe(25_000);
  });

  it('without netem nor NFQUEUE: refuses delay, names it and what is missing, and says what to do', () => {
    let err: unknown;
    try {
      planImpairment({ delayUs: 10_000, jitterUs: 1000, rateBitsPerSec: 1e6, lossPct: 1, lossCorrelationPct: 25 }, caps(false, false), { mtu: 1500, where: 'dune.l.a/eth0', userspaceEngine: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ImpairmentUnsupportedError);
    expect((err as Error).message).toMatchInlineSnapshot(
      `"dune.l.a/eth0: cannot apply delayUs, jitterUs, lossPct, lossCorrelationPct on this kernel (no sch_netem (CONFIG_NET_SCH_NETEM): Specified qdisc kind is unknown; no the NFQUEUE target through nf_tables (nft_compat, xt_NFQUEUE) and nfnetlink_queue for the userspace engine: iptables v1.8.9 (nf_tables): Couldn't load target \`NFQUEUE'; nftables drops each packet independently: loss correlation needs netem or the userspace engine)"`,
    );
    expect((err as ImpairmentUnsupportedError).hint).toMatch(/NFQUEUE/);
  });

  it('without netem (auto): the userspace engine takes delay, jitter, correlated loss; htb keeps the rate', () => {
    const p = planImpairment({ delayUs: 10_000, jitterUs: 1000, rateBitsPerSec: 1e6, lossPct: 1, lossCorrelationPct: 25 }, caps(false), { mtu: 1500, userspaceEngine: true });
    expect(p.assignments).toEqual({ delayUs: 'userspace', jitterUs: 'userspace', rateBitsPerSec: 'htb', lossPct: 'userspace', lossCorrelationPct: 'userspace' });
    expect(p.userspace).toEqual({ delayUs: 10_000, jitterUs: 1000, lossPct: 1, lossCorrelationPct: 25 });
    expect(p.tc.map((n) => n.options.kind)).toEqual(['htb', 'htb-class']);
    expect(p.nftLossPpm).toBeUndefined();
  });

  it('userspace: Bernoulli loss stays with nftables, Gilbert-Elliott goes to the engine; netem is not used even where present', () => {
    const a = planImpairment({ delayUs: 5000, lossPct: 3 }, caps(true), { mtu: 1500, prefer: 'userspace', userspaceEngine: true });
    expect(a.assignments).toEqual({ delayUs: 'userspace', lossPct: 'nftables-loss' });
    expect(a.userspace).toEqual({ delayUs: 5000 });
    expect(a.nftLossPpm).toBe(30_000);
    expect(a.tc).toEqual([]);
    const ge = { pPct: 1, rPct: 10, oneMinusHPct: 100, oneMinusKPct: 0 };
    const b = planImpairment({ lossGilbertElliott: ge }, caps(true), { mtu: 1500, prefer: 'userspace', userspaceEngine: true });
    expect(b.assignments).toEqual({ lossGilbertElliott: 'userspace' });
    expect(b.userspace).toEqual({ lossGilbertElliott: ge });
  });

  it('userspace: a queue limit goes with the rate to htb, or, without a rate, to the engine that holds the delayed packets', () => {
    const u = { mtu: 1500, userspaceEngine: true };
    const a = planImpairment({ delayUs: 5000, rateBitsPerSec: 1e6, queuePackets: 50 }, caps(false), u);
    expect(a.assignments).toEqual({ delayUs: 'userspace', rateBitsPerSec: 'htb', queuePackets: 'htb' });
    const b = planImpairment({ delayUs: 5000, queuePackets: 50 }, caps(false), u);
    expect(b.assignments).toEqual({ delayUs: 'userspace', queuePackets: 'userspace' });
    expect(b.userspace).toEqual({ delayUs: 5000, queuePackets: 50 });
    expect(b.tc).toEqual([]);
    // Without a delay there is nothing for the engine to hold: a plain fifo on the egress.
    expect(planImpairment({ queuePackets: 50 }, caps(false), u).assignments).toEqual({ queuePackets: 'htb' });
  });

  it('a caller that runs no userspace engine (NetMirage, applyOps alone) is refused what only the engine could do', () => {
    expect(() => planImpairment({ delayUs: 1000 }, caps(false), { mtu: 1500, where: 'x/eth0' })).toThrow(
      'x/eth0: cannot apply delayUs on this kernel (no sch_netem (CONFIG_NET_SCH_NETEM): Specified qdisc kind is unknown)',
    );
  });

  it('netem: an error without it, whatever else the kernel has', () => {
    expect(() => planImpairment({ delayUs: 1000 }, caps(false), { mtu: 1500, prefer: 'netem', where: 'x/eth0' })).toThrow(
      'x/eth0: cannot apply delayUs on this kernel (sch_netem (CONFIG_NET_SCH_NETEM): Specified qdisc kind is unknown)',
    );
  });

  it('with netem: one netem qdisc carries everything, its limit sized from rate × delay', () => {
    const p = planImpairment({ delayUs: 100_000, rateBitsPerSec: 1e9 }, caps(true), { mtu: 1500 });
    expect(Object.values(p.assignments)).toEqual(['netem', 'netem']);
    expect(p.tc).toHaveLength(1);
    const o = p.tc[0]?.options;
    // 1 Gbit/s × 100 ms = 12.5 MB = 8334 full frames; × 1.5 headroom.
    expect(o).toMatchObject({ kind: 'netem', limitPackets: 12_500, delayNs: 100_000_000, rateBytesPerSec: 125_000_000 });
  });

  it('netem takes 1-h from the model and sends h, as tc does', () => {
    const o = netemOptions({ lossGilbertElliott: { pPct: 1, rPct: 10, oneMinusHPct: 30, oneMinusKPct: 0.1 } }, { mtu: 1500 });
    expect(o.gemodel).toEqual({ pPct: 1, rPct: 10, hPct: 70, k1Pct: 0.1 });
    expect(o.limitPackets).toBe(1000);
  });

  it('an empty impairment plans nothing', () => {
    expect(planImpairment({}, caps(false), { mtu: 1500 })).toEqual({ assignments: {}, tc: [] });
  });
});

describe('nftables loss script', () => {
  it('one transaction per namespace: add chain, flush it, add the rule; removal deletes the chain', () => {
    expect(nftLossScript('lab-1', [{ dev: 'eth0', ppm: 300_000 }, { dev: 'eth1', ppm: null }])).toMatchInlineSnapshot(`
      "add table inet dune_lab-1
      add chain inet dune_lab-1 loss_eth0 { type filter hook postrouting priority 0; policy accept; }
      flush chain inet dune_lab-1 loss_eth0
      add rule inet dune_lab-1 loss_eth0 oifname "eth0" numgen random mod 1000000 < 300000 counter drop
      add chain inet dune_lab-1 loss_eth1 { type filter hook postrouting priority 0; policy accept; }
      delete chain inet dune_lab-1 loss_eth1
      "
    `);
    expect(lossChainName('a@b')).toBe('loss_x614062');
  });
});

describe('route table entries as bytes (forEachPrefix)', () => {
  const texts = (entry: string): string[] => {
    const out: string[] = [];
    forEachPrefix(entry, (p) => out.push(`${formatIp(p.family, p.bytes)}/${p.prefixLen}`));
    return out;
  };

  it('steps through a run exactly as the compiler expands it to text, across bytes, groups and lengths', () => {
    for (const entry of ['10.0.0.250-10.0.1.4/32', '10.1.0.0-10.1.5.0/24', '10.255.255.254-11.0.0.1/32', 'fd7a:d0::fffe-fd7a:d0::1:3/128', 'fd00::-fd00:0:0:3::/64', 'fd7a:d0::2-fd7a:d0::2/128']) {
      expect(texts(entry), entry).toEqual(expandPrefixRun(entry));
    }
    expect(texts('10.0.0.7/32')).toEqual(['10.0.0.7/32']);
  });

  it('refuses a run that does not step to its last prefix', () => {
    expect(() => texts('10.0.0.9-10.0.0.2/32')).toThrow(/does not go up/);
    expect(() => texts('10.0.0.0-10.0.0.1/24')).toThrow(/steps of one \/24/);
    expect(() => texts('10.0.0.1-fd00::1/32')).toThrow(/not a route run/);
  });
});

