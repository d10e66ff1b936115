/**
 * @dune/transport: reaching phynodes. SSH (ssh2) with host keys checked against
 * known_hosts, the agent deployed into a versioned cache and run as a daemon, and the
 * orchestration of a lab across hosts.
 */
export { shQuote, shJoin } from './quote.js';
export { KnownHosts, fingerprint, knownHostName, parseKnownHosts, patternsMatch, defaultKnownHostsFile, keyBlobType, type HostKeyVerdict } from './known-hosts.js';
export { resolveSshConfig, defaultSshConfigFile, type SshConfigEntry } from './ssh-config.js';
export { SshHost, withTimeout, type RemoteTarget, type SshOptions, type ExecResult, type ResolvedTarget } from './ssh.js';
export { AgentClient, type CallOptions } from './rpc.js';
export { agentBundle, agentCacheRoot, DEFAULT_AGENT_CACHE, BUNDLE_FILES, type AgentBundle } from './bundle.js';
export { spawnArgv, type HostAgent, type AttachedIo, type SpawnSpec, type HostProcess, type ExitStatus } from './host-agent.js';
export { RemoteAgent, MIN_NODE_MAJOR, type HostFacts, type RemoteAgentOptions } from './remote-agent.js';
export { LocalAgent, exitCode } from './local-agent.js';
export { readRecord, writeRecord, removeRecord, recordedLabs, recordFromPlan, recordDir, type LabRecord, type LabRecordHost } from './lab-record.js';
export {
  upLab, downLab, statusLab, setLab, execNode, checkLab, hostView, hasRemoteHosts, isRemoteTarget, planOfLab, mergePlans, LabHosts,
  locationOfPlan, locationOfRecord, recordedLocation, MultiHostError, type Member,
  type HostEvent, type OrchestrateOptions, type LabHost, type LabLocation, type HostCheck, type MultiUpResult, type MultiStatus, type HostFailure,
} from './orchestrate.js';
