/**
 * torrc text for every role of a private Tor network. Pure: the caller gives addresses,
 * paths and fingerprints; nothing here reads or runs anything.
 *
 * The options are Chutney's fast-bootstrap set (reference tor-testing.md §4–5), with four
 * differences that matter to us:
 * - `AssumeReachable 1` on every relay, not only on authorities (see below).
 * - `RunAsDaemon 0`: the lab's agent (or the edge's start script) supervises tor.
 * - `TestingDirAuthVoteExit` lists the exits' fingerprints instead of `*`, so clients never
 *   pick an authority or a non-exit relay as their exit (chutney #40013).
 * - every listener and `OutboundBindAddress` is an explicit address, so on a NetMirage edge
 *   no tor listens on or connects from a non-virtual address.
 */

export const TOR_ROLES = ['authority', 'relay', 'exit', 'client', 'onion'] as const;
export type TorRole = (typeof TOR_ROLES)[number];

/** The ports every tor uses on its own address (each node has an address of its own). */
export const TOR_PORTS = { or: 9001, dir: 9030, socks: 9050, control: 9051 } as const;
export const WEB_PORT = 80;

/** Chutney's voting timing (authority.i): a consensus every 20 s. */
export const VOTING_INTERVAL_S = 20;

export interface DirAuthority {
  nick: string;
  addr: string;
  orPort: number;
  dirPort: number;
  /** The `fingerprint` line of its authority_certificate (v3 identity). */
  v3ident: string;
  /** Its relay identity (RSA) fingerprint, 40 hex digits. */
  fingerprint: string;
}

export interface TorrcInput {
  nick: string;
  role: TorRole;
  /** The node's own address: ORPort, DirPort, Address, OutboundBindAddress. */
  addr: string;
  /** Where SocksPort/ControlPort listen: 127.0.0.1 inside a namespace, `addr` on an edge. */
  localAddr: string;
  dataDir: string;
  noticeLog: string;
  /** An extra info-level log (the onion service logs its descriptor uploads at info). */
  infoLog?: string;
  authorities: readonly DirAuthority[];
  /** Relay fingerprints the authorities vote Exit for. */
  exitFingerprints: readonly string[];
  /** The onion service's directory and what port 80 of the onion address forwards to. */
  onion?: { dir: string; target: string };
}

/** `DirAuthority` line (identical on every node). The address must be IPv4. */
export function dirAuthorityLine(a: DirAuthority): string {
  return `DirAuthority ${a.nick} orport=${a.orPort} no-v2 v3ident=${a.v3ident} ${a.addr}:${a.dirPort} ${a.fingerprint}`;
}

/** The whole torrc of one node. */
export function torrc(t: TorrcInput): string {
  const l: string[] = [];
  const add = (...lines: string[]) => l.push(...lines);
  add(`# ${t.nick}: ${t.role}. Written by \`dune tor init\`; a private test network (TestingTorNetwork).`);
  add('TestingTorNetwork 1', '');
  add('## Fast bootstrap (Chutney common.i)');
  add('PathsNeededToBuildCircuits 0.67');
  add(`TestingDirAuthVoteExit ${t.exitFingerprints.map((f) => `$${f}`).join(',')}`);
  add('TestingDirAuthVoteGuard *', 'TestingDirAuthVoteHSDir *', 'TestingMinExitFlagThreshold 0', 'V3AuthNIntervalsValid 2', '');
  add('## This node');
  add(`Nickname ${t.nick}`, `DataDirectory ${t.dataDir}`, 'RunAsDaemon 0', 'ShutdownWaitLength 2', 'ConnLimit 60');
  add(`Log notice file ${t.noticeLog}`);
  if (t.infoLog !== undefined) add(`Log info file ${t.infoLog}`);
  add('SafeLogging 0', 'LogTimeGranularity 1', 'ProtocolWarnings 1');
  add(`ControlPort ${t.localAddr}:${TOR_PORTS.control}`, 'CookieAuthentication 1');
  add(`OutboundBindAddress ${t.addr}`, '');

  switch (t.role) {
    case 'authority':
    case 'relay':
    case 'exit':
      add('## Relay');
      add('SocksPort 0', `ORPort ${t.addr}:${TOR_PORTS.or}`, `Address ${t.addr}`);
      // Publish at once, without the ORPort self-test: that test needs circuits through a
      // network of relays that are themselves waiting for it, and measured here it could
      // leave every relay out of the consensus for minutes (older Chutney did the same).
      add('AssumeReachable 1');
      if (t.role === 'authority') add(`DirPort ${t.addr}:${TOR_PORTS.dir}`);
      // Exits resolve nothing: the lab has no DNS (Chutney's offline setting).
      add('ServerDNSDetectHijacking 0', 'ServerDNSTestAddresses', 'ServerDNSResolvConfFile /dev/null');
      if (t.role === 'exit') {
        // An accept covering public space, or the consensus summary says "reject 1-65535"
        // and clients find no exit (tor #11264).
        add('ExitRelay 1', 'ExitPolicyRejectPrivate 0', 'ExitPolicy accept private:*', 'ExitPolicy accept *:*', 'ExitPolicy reject *:*');
      } else {
        add('ExitRelay 0');
      }
      if (t.role === 'authority') {
        add('', '## Directory authority (Chutney authority.i)');
        add('AuthoritativeDirectory 1', 'V3AuthoritativeDirectory 1', `ContactInfo ${t.nick}@test.invalid`);
        add('TestingV3AuthInitialVotingInterval 20', 'TestingV3AuthInitialVoteDelay 4', 'TestingV3AuthInitialDistDelay 4');
        add(`V3AuthVotingInterval ${VOTING_INTERVAL_S}`, 'V3AuthVoteDelay 4', 'V3AuthDistDelay 4');
      }
      break;
    case 'client':
      add('## Client', `SocksPort ${t.localAddr}:${TOR_PORTS.socks}`);
      break;
    case 'onion':
      if (t.onion === undefined) throw new Error(`torrc: onion node ${t.nick} without an onion service`);
      add('## Onion service (v3)', 'SocksPort 0', `HiddenServiceDir ${t.onion.dir}`, `HiddenServicePort ${WEB_PORT} ${t.onion.target}`);
      break;
  }
  add('', '## Directory authorities (the same on every node)');
  for (const a of t.authorities) add(dirAuthorityLine(a));
  return `${l.join('\n')}\n`;
}
