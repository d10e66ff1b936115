/**
 * Where the userspace engine may queue a direction as it arrives (farEnds, enginePipes): the
 * other end of a veth between two node namespaces, never a bridge port nor a namespace the
 * lab did not make; by default (DUNE_IMPAIR_QUEUE_AT=egress: never). Plain ops, no kernel.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Op } from '@dune/compiler';
import { enginePipes, farEnds } from '../src/impair/userspace.js';
import type { Caps } from '../src/probe-types.js';

const ops: Op[] = [
  { op: 'netns', ns: 'dune.l.a', node: 'a', alias: 'dune:l:a:lo' },
  { op: 'netns', ns: 'dune.l.b', node: 'b', alias: 'dune:l:b:lo' },
  { op: 'netns', ns: 'dune.l.s', node: 's', alias: 'dune:l:s:lo' },
  { op: 'veth', ns: 'dune.l.a', name: 'eth0', peerNs: 'dune.l.b', peerName: 'eth0', alias: 'x' },
  // a's eth1 goes to a switch's bridge port: a bridged frame meets no PREROUTING there.
  { op: 'veth', ns: 'dune.l.a', name: 'eth1', peerNs: 'dune.l.s', peerName: 'p1', alias: 'x' },
  { op: 'enslave', ns: 'dune.l.s', dev: 'p1', master: 'br0' },
  // to a namespace the lab did not make (the host's, NetMirage's root): never.
  { op: 'veth', ns: 'dune.l.b', name: 'eth1', peerNs: 'root', peerName: 'r1', alias: 'x' },
  { op: 'impair', ns: 'dune.l.a', dev: 'eth0', link: '0:a', impairment: { delayUs: 1000 }, mtu: 1500 },
  { op: 'impair', ns: 'dune.l.b', dev: 'eth0', link: '0:b', impairment: { delayUs: 1000 }, mtu: 1500 },
  { op: 'impair', ns: 'dune.l.a', dev: 'eth1', link: '1:a', impairment: { delayUs: 1000 }, mtu: 1500 },
] as Op[];

const noNetem = { netem: { ok: false }, nfqueue: { ok: true }, htb: { ok: true }, nftables: { ok: true } } as unknown as Caps;

afterEach(() => {
  delete process.env['DUNE_IMPAIR_QUEUE_AT'];
});

describe('farEnds', () => {
  it('pairs both ends of a veth between node namespaces, and nothing else', () => {
    expect(Object.fromEntries(farEnds(ops))).toEqual({
      'dune.l.a/eth0': { ns: 'dune.l.b', dev: 'eth0' },
      'dune.l.b/eth0': { ns: 'dune.l.a', dev: 'eth0' },
    });
  });

  it('enginePipes carries them by default (TCP queued there), all of it there with DUNE_IMPAIR_QUEUE_AT=ingress, none with egress', () => {
    const show = (ps: ReturnType<typeof enginePipes>) => ps.map((p) => `${p.ns}/${p.dev} ${p.ingress ? `${p.ingress.ns}/${p.ingress.dev}${p.ingress.all ? ' all' : ''}` : '-'}`);
    expect(show(enginePipes(ops, noNetem, 'userspace'))).toEqual(['dune.l.a/eth0 dune.l.b/eth0', 'dune.l.b/eth0 dune.l.a/eth0', 'dune.l.a/eth1 -']);
    process.env['DUNE_IMPAIR_QUEUE_AT'] = 'ingress';
    expect(show(enginePipes(ops, noNetem, 'userspace'))).toEqual(['dune.l.a/eth0 dune.l.b/eth0 all', 'dune.l.b/eth0 dune.l.a/eth0 all', 'dune.l.a/eth1 -']);
    process.env['DUNE_IMPAIR_QUEUE_AT'] = 'egress';
    expect(show(enginePipes(ops, noNetem, 'userspace'))).toEqual(['dune.l.a/eth0 -', 'dune.l.b/eth0 -', 'dune.l.a/eth1 -']);
  });
});
