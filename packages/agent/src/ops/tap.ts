/**
 * `tap`: a persistent TAP device in a brick's namespace (a `tap` or `vhost` brick), for a VM
 * (QEMU's `-netdev tap,ifname=...`) or any program that opens /dev/net/tun. rtnetlink cannot
 * make one (the tun driver refuses RTM_NEWLINK), so iproute2 does (`ip tuntap add`, argv,
 * never a shell). It runs in the batch stage, after every device made over netlink has its
 * explicit index (the kernel picks the tap's), and enslaves and raises the tap itself.
 */
import type { TapOp } from '@dune/compiler';
import { ApplyError } from '../errors.js';
import { inNs, mapLimit, run } from '../run.js';
import { devCounters } from './devcount.js';
import { opKind } from './types.js';
import { deleteIfThere } from './undo.js';

const describe = (op: TapOp) => `tap ${op.ns}/${op.name}${op.vnetHdr ? ' (vnet_hdr)' : ''}`;

/** The `ip` commands that make the tap, in order. */
export function tapCommands(op: TapOp): string[][] {
  const add = ['ip', 'tuntap', 'add', 'dev', op.name, 'mode', 'tap'];
  if (op.vnetHdr) add.push('vnet_hdr');
  if (op.multiQueue) add.push('multi_queue');
  if (op.owner !== undefined) add.push('user', op.owner);
  if (op.group !== undefined) add.push('group', op.group);
  const set = ['ip', 'link', 'set', 'dev', op.name, 'alias', op.alias];
  if (op.mtu !== undefined) set.push('mtu', String(op.mtu));
  if (op.master !== undefined) set.push('master', op.master);
  set.push('up');
  return [add, set];
}

export const tap = opKind('tap', {
  describe,
  key: (op) => `link ${op.ns}/${op.name}`,
  nss: (op) => [op.ns],
  creates: (op) => [`${op.ns}/${op.name}`],
  undoRank: 95,
  diesWithNs: true,
  apply: {
    stage: 'batch',
    async run(ops, s) {
      await mapLimit([...ops], 4, async (op) => {
        for (const argv of tapCommands(op)) {
          const r = await run(inNs(op.ns, argv));
          if (r.code === 0) continue;
          const why = r.stderr.trim() || r.stdout.trim() || 'no output';
          throw new ApplyError(`${describe(op)}: ${argv.join(' ')} failed (exit ${r.code}): ${why}`, {
            op,
            journal: s.journal,
            hint: /user|group/i.test(why) ? 'owner and group must exist on this host (`getent passwd`)' : 'a tap needs the tun driver and /dev/net/tun (modprobe tun)',
          });
        }
      });
    },
  },
  undo: { order: 35, queue: (op, s, index) => deleteIfThere(op, op.name, s, index) },
  counters: (op) => devCounters(op.ns, op.name, op.node, { tx: `${op.name}: frames to the VM`, rx: `${op.name}: frames from the VM` }),
});
