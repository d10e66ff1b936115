/** The device bricks' ops as the agent runs them: the tap's iproute2 argv (no shell, every value one argument). */
import { describe, expect, it } from 'vitest';
import { tapCommands } from '../src/ops/tap.js';

describe('tap op', () => {
  it('makes the tap, then aliases, enslaves and raises it: argv only', () => {
    expect(tapCommands({ op: 'tap', ns: 'dune.l.vm', node: 'vm', name: 'tap0', alias: 'dune:l:vm:tap0', vnetHdr: false, multiQueue: false, master: 'br0' })).toEqual([
      ['ip', 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap'],
      ['ip', 'link', 'set', 'dev', 'tap0', 'alias', 'dune:l:vm:tap0', 'master', 'br0', 'up'],
    ]);
  });

  it('vhost: vnet_hdr; multi_queue, owner, group and MTU when asked; a strange owner stays one argument', () => {
    const [add, set] = tapCommands({ op: 'tap', ns: 'n', node: 'vh', name: 'vhost0', alias: 'a', vnetHdr: true, multiQueue: true, owner: 'qemu; reboot', group: 'kvm', mtu: 9000 });
    expect(add).toEqual(['ip', 'tuntap', 'add', 'dev', 'vhost0', 'mode', 'tap', 'vnet_hdr', 'multi_queue', 'user', 'qemu; reboot', 'group', 'kvm']);
    expect(set).toEqual(['ip', 'link', 'set', 'dev', 'vhost0', 'alias', 'a', 'mtu', '9000', 'up']);
  });
});
