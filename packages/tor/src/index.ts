export { torInit, readNetwork, webPage, STAR_LATENCY, TOPOLOGY_ACCESS_LATENCY, type TorInitOptions } from './init.js';
export { torWait, nodeProgress, describeProgress, type NodeProgress, type TorWaitOptions, type TorWaitResult } from './wait.js';
export { torrc, dirAuthorityLine, TOR_PORTS, TOR_ROLES, WEB_PORT, VOTING_INTERVAL_S, type TorRole, type DirAuthority, type TorrcInput } from './torrc.js';
export { torRoles, checkCounts, parseIpFile, labAddress, DEFAULT_COUNTS, MANIFEST, type Counts, type TorNetwork, type TorNodeFiles } from './layout.js';
export { torToml, starBackbone, graphBackbone, type Backbone } from './toml.js';
export { startScript, stopScript } from './edge.js';
export { makeAuthorityKeys, relayFingerprint } from './keys.js';
