/** The agent daemon: protocol types, the server, the pre-flight check, the `dune-agent` entry. */
export * from './protocol.js';
export { AgentServer, socketAlive, type ServeOptions } from './server.js';
export { preflight, vxlanOverhead } from './preflight.js';
export { NetnsGuard, nsInode } from './netns-guard.js';
export { agentMain, callDaemon, startDaemon, AGENT_USAGE } from './main.js';
