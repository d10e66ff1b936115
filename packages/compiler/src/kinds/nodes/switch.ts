/** `switch`: a learning L2 switch, one Linux bridge (bridge.ts) with every link end enslaved. */
import { bridgePhases } from './bridge.js';
import { nodeKind } from './types.js';

export const switchKind = nodeKind({
  description: 'a learning L2 switch (Linux bridge)',
  layer: 2,
  phases: bridgePhases(),
});
