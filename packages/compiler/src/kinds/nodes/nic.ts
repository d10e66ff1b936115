/**
 * `nic`: gives the lab an existing interface of the host (a NIC, or any veth or dummy), like
 * Packetgraph's nic brick and nemu's import_if: the interface is moved into the brick's
 * namespace (optionally renamed) and made a port of its bridge beside its links, so the
 * routers linked to it share a segment with whatever is on the wire. `down` moves it back
 * with its name, MTU, addresses, routes and state as they were (the agent reads them at
 * `up`, before anything is built, and journals them: a down after a kill -9 restores too).
 *
 *   [topology.nodes.uplink]
 *   kind = "nic"
 *   dev = "enp3s0"           # the host's interface (required)
 *   name = "wan0"            # its name inside the brick (default: dev)
 *
 * The routers it joins get the segment's lab addresses; to talk to the hosts on the wire,
 * give them addresses of that network (`addrs`).
 */
import { bridgePhases } from './bridge.js';
import { ifNameKey, onlyKeys } from './keys.js';
import { nodeKind } from './types.js';

export const NIC_KEYS = ['dev', 'name'] as const;

export interface NicOptions {
  /** The host's name of the interface. */
  dev: string;
  /** Its name inside the brick. */
  name: string;
}

const bridge = bridgePhases<NicOptions | undefined>();

export const nic = nodeKind<NicOptions | undefined>({
  description: 'an existing host interface moved in as a port of its links\' segment, given back as it was by down',
  layer: 2,
  keys: NIC_KEYS,
  ports: { min: 1 },
  options(c) {
    const ok = onlyKeys(c, NIC_KEYS);
    if (c.ctx['dev'] === undefined) {
      c.diags.error('missing-key', `node "${c.node.id}" is a nic and needs dev: the host interface it takes`, c.node.kindLoc ?? c.node.loc, 'add dev = "<a host interface>" (`ip link` lists them)');
      return undefined;
    }
    const dev = ifNameKey(c, 'dev', 'eth1', { ports: [] });
    const name = c.ctx['name'] === undefined ? dev : ifNameKey(c, 'name', 'wan0', { ports: c.ports });
    if (name !== undefined && c.ctx['name'] === undefined && c.ports.some((p) => p.name === name)) {
      c.diags.error('name-taken', `dev = "${name}" of node "${c.node.id}" has the name of its interface towards ${c.ports.find((p) => p.name === name)?.peer}`, c.loc('dev'), 'rename it inside the brick: name = "wan0"');
      return undefined;
    }
    return ok && dev !== undefined && name !== undefined ? { dev, name } : undefined;
  },
  phases: {
    ...bridge,
    devices(n, out, stats) {
      bridge.devices?.(n, out, stats);
      const o = n.options;
      if (o !== undefined) out.push({ op: 'adopt', ns: n.ns, dev: o.dev, ...(o.name !== o.dev ? { name: o.name } : {}), bare: true, node: n.node.id });
    },
    enslave(n, out, stats) {
      bridge.enslave?.(n, out, stats);
      if (n.options !== undefined) out.push({ op: 'enslave', ns: n.ns, dev: n.options.name, master: n.bridge });
    },
    up(n, out, stats) {
      bridge.up?.(n, out, stats);
      if (n.options !== undefined) out.push({ op: 'up', ns: n.ns, dev: n.options.name });
    },
  },
});
