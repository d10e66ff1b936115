/**
 * @dune/transport: reaching phynodes. SSH (ssh2) with host keys checked against
 * known_hosts, the agent deployed into a versioned cache and run as a daemon, and the
 * orchestration of a lab across hosts.
 */
export { shQuote, shJoin } from './quote.js';
export { KnownHosts, fingerprint, knownHostName, parseKnownHosts, patternsMatch, defaultKnownHostsFile, keyBlobType, type HostKeyVerdict } from './known-hosts.js';
export { resolveSshConfig, defaultSshConfigFile, type SshConfigEntry } from './ssh-config.js';
export { SshHost, withTimeout, type RemoteTarget, type SshOptions, type ExecResult, type ResolvedTarget } from './ssh.js';
