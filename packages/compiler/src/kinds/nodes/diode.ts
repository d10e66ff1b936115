/**
 * `diode`: a two-port brick that passes frames one way only, like Packetgraph's diode: what
 * enters from the port facing `from` leaves by the other port; everything entering the other
 * way is dropped and counted. A bridge, and one nftables bridge-family chain at the forward
 * hook:
 *
 *   iifname "eth0" oifname "eth1" counter name "passed" accept
 *   iifname "eth1" counter name "dropped" drop
 *
 * [topology.nodes.d] kind = "diode", from = "a": frames from a pass, frames towards a do not
 * (ARP replies included: the hosts need static neighbour entries to send across it).
 */
import type { NftCounter } from '../../plan.js';
import { bridgePhases } from './bridge.js';
import { BRICK_TABLE, brickOp, counterDecls, nftString, portFacing, unknownKindKeys } from './nft.js';
import { nodeKind, type KindPort } from './types.js';

export interface DiodeOptions {
  /** The port frames enter by (and pass), and the one they leave by. */
  inPort: KindPort;
  outPort: KindPort;
}

export const diode = nodeKind<DiodeOptions | undefined>({
  description: 'passes frames one way only (from one port to the other); the reverse is dropped and counted',
  layer: 2,
  keys: ['from'],
  ports: { exactly: 2 },
  options(c) {
    unknownKindKeys(c, ['from']);
    if (c.ctx['from'] === undefined) {
      c.diags.error('missing-key', `node "${c.node.id}" is a diode and needs from: the neighbour whose frames pass`, c.node.kindLoc ?? c.node.loc,
        `add from = "${c.ports[0]?.peer ?? 'node'}" (frames from it pass; frames towards it are dropped)`);
      return undefined;
    }
    const inPort = portFacing(c, 'from', c.ctx['from']);
    const outPort = c.ports.find((p) => p !== inPort);
    return inPort && outPort ? { inPort, outPort } : undefined;
  },
  phases: {
    ...bridgePhases(),
    filters(n, out) {
      const o = n.options;
      if (o === undefined) return;
      const counters: NftCounter[] = [
        { table: BRICK_TABLE, name: 'passed', label: `${o.inPort.peer} → ${o.outPort.peer}: passed` },
        { table: BRICK_TABLE, name: 'dropped', label: `${o.outPort.peer} → ${o.inPort.peer}: dropped` },
      ];
      out.push(brickOp(n, [BRICK_TABLE], [
        `table ${BRICK_TABLE} {`,
        ...counterDecls(counters, BRICK_TABLE),
        '  chain diode {',
        '    type filter hook forward priority 0; policy accept;',
        `    iifname ${nftString(o.inPort.name)} oifname ${nftString(o.outPort.name)} counter name "passed" accept`,
        `    iifname ${nftString(o.outPort.name)} counter name "dropped" drop`,
        '  }',
        '}',
      ], counters));
    },
  },
});
