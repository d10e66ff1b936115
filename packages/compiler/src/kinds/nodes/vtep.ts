/**
 * `vtep`: bridges a lab segment to a VXLAN network outside the lab, like Packetgraph's vtep
 * brick: a bridge with every link end and one VXLAN device (learning MACs) whose UDP socket
 * lives in the host's namespace, so the fabric is reached over the host's underlay.
 *
 *   [topology.nodes.fabric]
 *   kind = "vtep"
 *   vni = 4242               # the fabric's VNI (0 to 16777215), never changed by the lab
 *   remote = "192.0.2.7"     # its peer VTEP; or group = "239.1.1.1" (multicast, needs dev)
 *   port = 4789              # UDP port (default 4789)
 *   local = "192.0.2.1"      # this host's underlay address (optional)
 *   dev = "eth1"             # the host's underlay interface (optional; required with group)
 *   ttl = 64                 # outer TTL (optional)
 *
 * Its device is `vtep0` in the brick's namespace (`ip -n <ns> -d link show vtep0`).
 */
import type { VtepOp } from '../../plan.js';
import { bridgePhases } from './bridge.js';
import { addrKey, intKey, onlyKeys, strKey } from './keys.js';
import { nodeKind } from './types.js';

export const VTEP_KEYS = ['vni', 'remote', 'group', 'port', 'local', 'dev', 'ttl', 'mtu'] as const;
export const VTEP_DEV = 'vtep0';

export type VtepOptions = Omit<VtepOp, 'op' | 'ns' | 'node' | 'name' | 'alias'> | undefined;

const bridge = bridgePhases<VtepOptions>();

export const vtep = nodeKind<VtepOptions>({
  description: 'bridges its links to a VXLAN network outside the lab (VNI, remote or multicast group, UDP port)',
  layer: 2,
  keys: VTEP_KEYS,
  ports: { min: 1 },
  options(c) {
    const ok = onlyKeys(c, VTEP_KEYS);
    const here = c.node.kindLoc ?? c.node.loc;
    const vni = intKey(c, 'vni', 0, 0xffffff, undefined, 4242);
    if (c.ctx['vni'] === undefined) c.diags.error('missing-key', `node "${c.node.id}" is a vtep and needs vni: the VXLAN network's identifier`, here, 'add vni = 4242 (the VNI of the network to join, 0 to 16777215)');
    const remote = addrKey(c, 'remote', '192.0.2.7');
    const group = addrKey(c, 'group', '239.1.1.1');
    const local = addrKey(c, 'local', '192.0.2.1');
    const dev = strKey(c, 'dev', 'eth1');
    const port = intKey(c, 'port', 1, 65535, 4789);
    const ttl = intKey(c, 'ttl', 1, 255);
    const mtu = intKey(c, 'mtu', 68, 65535);
    if (c.ctx['remote'] !== undefined && c.ctx['group'] !== undefined) {
      c.diags.error('bad-value', `node "${c.node.id}" gives both remote and group; a vtep sends to one peer or to one multicast group`, c.loc('group'), 'keep remote (unicast) or group (multicast)');
      return undefined;
    }
    if (c.ctx['remote'] === undefined && c.ctx['group'] === undefined) {
      c.diags.error('missing-key', `node "${c.node.id}" is a vtep and needs remote (the peer VTEP's address) or group (a multicast group)`, here, 'add remote = "<the peer VTEP\'s underlay address>"');
      return undefined;
    }
    if (remote?.multicast === true) {
      c.diags.error('bad-value', `remote = "${remote.text}" of node "${c.node.id}" is a multicast address`, c.loc('remote'), `write group = "${remote.text}" (and dev = "<underlay interface>")`);
      return undefined;
    }
    if (group !== undefined && !group.multicast) {
      c.diags.error('bad-value', `group = "${group.text}" of node "${c.node.id}" is not a multicast address`, c.loc('group'), `write remote = "${group.text}" for a unicast peer`);
      return undefined;
    }
    if (group !== undefined && dev === undefined) {
      c.diags.error('missing-key', `node "${c.node.id}" joins multicast group ${group.text} and needs dev: the host interface to join it on`, c.loc('group'), 'add dev = "<the underlay interface>"');
      return undefined;
    }
    const peer = remote ?? group;
    if (peer !== undefined && local !== undefined && local.family !== peer.family) {
      c.diags.error('bad-value', `local = "${local.text}" of node "${c.node.id}" is IPv${local.family} but its ${remote ? 'remote' : 'group'} is IPv${peer.family}`, c.loc('local'), 'use one address family for the underlay');
      return undefined;
    }
    const clash = c.ports.find((p) => p.name === VTEP_DEV);
    if (clash !== undefined) {
      c.diags.error('name-taken', `node "${c.node.id}" has a link end named ${VTEP_DEV} (towards ${clash.peer}), the name of its VXLAN device`, here, 'name that link end otherwise');
      return undefined;
    }
    if (!ok || vni === undefined || peer === undefined || port === undefined) return undefined;
    return {
      vni,
      remote: peer.text,
      port,
      ...(local !== undefined ? { local: local.text } : {}),
      ...(dev !== undefined ? { underlayDev: dev } : {}),
      ...(ttl !== undefined ? { ttl } : {}),
      ...(mtu !== undefined ? { mtu } : {}),
    };
  },
  phases: {
    ...bridge,
    devices(n, out, stats) {
      bridge.devices?.(n, out, stats);
      if (n.options !== undefined) out.push({ op: 'vtep', ns: n.ns, node: n.node.id, name: VTEP_DEV, ...n.options, alias: n.alias(VTEP_DEV) });
    },
    enslave(n, out, stats) {
      bridge.enslave?.(n, out, stats);
      if (n.options !== undefined) out.push({ op: 'enslave', ns: n.ns, dev: VTEP_DEV, master: n.bridge });
    },
    up(n, out, stats) {
      bridge.up?.(n, out, stats);
      if (n.options !== undefined) out.push({ op: 'up', ns: n.ns, dev: VTEP_DEV });
    },
  },
});
