/** The policy-routing encoders (agent/src/netlink/rule.ts): the bytes the kernel reads, and back. */
import { describe, expect, it } from 'vitest';
import { ruleMsg, parseRule, tableRouteMsg, parseTableRoute, ourRoute, addrMsg, moveLinkMsg, type Rule } from '@dune/agent';
import { NlWriter } from '../../packages/agent/src/netlink/writer.js';
import { messages } from '../../packages/agent/src/netlink/parse.js';

function one(build: (w: NlWriter) => void) {
  const w = new NlWriter(256);
  build(w);
  const m = [...messages(Buffer.from(w.bytes()))];
  expect(m).toHaveLength(1);
  return m[0] as NonNullable<(typeof m)[number]>;
}

describe('rule encoders', () => {
  it('writes fib_rule_hdr and FRA_* as `ip rule add` does, and reads them back', () => {
    const r: Rule = { family: 'inet', priority: 5, table: 255, action: 'table', dst: '10.0.0.0/9', iif: 'eth1' };
    const m = one((w) => ruleMsg(w, 7, r));
    expect(m.type).toBe(32); // RTM_NEWRULE
    expect(m.flags).toBe(0x1 | 0x4 | 0x400 | 0x200);
    expect([...m.data.subarray(0, 8)]).toEqual([2, 9, 0, 0, 255, 0, 0, 1]);
    expect(parseRule(m)).toEqual(r);
    const big: Rule = { family: 'inet', priority: 1000, table: 10_007, action: 'table', src: '10.16.0.0/12', iif: 'nic1', protocol: 0x44 };
    const mb = one((w) => ruleMsg(w, 8, big));
    expect(mb.data.readUInt8(4)).toBe(0); // tables ≥ 256 only in FRA_TABLE
    expect(parseRule(mb)).toEqual(big);
    expect(one((w) => ruleMsg(w, 9, r, true)).type).toBe(33); // RTM_DELRULE
  });

  it('writes routes in any table with onlink, and reads them back', () => {
    const r = ourRoute(10_003, 'default', 42, '100.64.0.9', true);
    const m = one((w) => tableRouteMsg(w, 1, r));
    expect(m.type).toBe(24);
    expect(m.data.readUInt32LE(8)).toBe(4); // RTNH_F_ONLINK
    expect(parseTableRoute(m)).toEqual(r);
    const link = ourRoute(120, '100.95.255.254/32', 3);
    expect(parseTableRoute(one((w) => tableRouteMsg(w, 2, link)))).toEqual(link);
  });

  it('writes noprefixroute addresses and link moves', () => {
    const a = one((w) => addrMsg(w, 1, { ifindex: 3, cidr: '10.0.0.1/9', noPrefixRoute: true }));
    expect(a.type).toBe(20);
    expect([...a.data.subarray(0, 4)]).toEqual([2, 9, 0x80, 0]);
    const mv = one((w) => moveLinkMsg(w, 1, 5, 17));
    expect(mv.type).toBe(19); // RTM_SETLINK
    expect(mv.data.readInt32LE(4)).toBe(5);
  });
});
