/**
 * `hub`: a switch whose bridge forgets every MAC at once (ageing time 0), so it floods every
 * frame to every port, like Packetgraph's hub brick.
 */
import { bridgePhases } from './bridge.js';
import { nodeKind } from './types.js';

export const hub = nodeKind({
  description: 'an L2 hub: floods every frame (bridge ageing time 0)',
  layer: 2,
  phases: bridgePhases(0),
});
