/**
 * Who is who in a private Tor network, and where its files live. Pure.
 *
 *   auth0…  directory authorities (also relays)
 *   relay0… non-exit relays
 *   exit0…  exit relays (`--relays` counts them too: 8 relays with 2 exits = relay0-5, exit0-1)
 *   client0… clients, SocksPort 9050
 *   web     an HTTP server on port 80 (python3 -m http.server)
 *   onion   an onion service whose port 80 is web's port 80 (with --onion)
 *
 * Every file is under DIR: `DIR/nodes/<name>/{torrc,notice.log,data/}`, the page
 * `DIR/web/index.html`, the manifest `DIR/network.json`.
 */
import { join } from 'node:path';
import { DuneError } from '@dune/topology';
import type { TorRole } from './torrc.js';

export const MANIFEST = 'network.json';
export const MANIFEST_FORMAT = 'dune-tor/1';

export interface Counts {
  authorities: number;
  /** All relays that are not authorities, exits included. */
  relays: number;
  exits: number;
  clients: number;
  onion: boolean;
}

export const DEFAULT_COUNTS: Counts = { authorities: 3, relays: 8, exits: 2, clients: 2, onion: false };

export interface TorNodeFiles {
  name: string;
  role: TorRole;
  addr: string;
  torrc: string;
  /** `Log notice file`: bootstrap progress. */
  log: string;
  dataDir: string;
  /** Only the onion node: its info-level log (descriptor uploads). */
  infoLog?: string;
}

/** What `dune tor init` wrote, as `DIR/network.json`: what `dune tor wait` and the tests read. */
export interface TorNetwork {
  format: typeof MANIFEST_FORMAT;
  /** Absolute. */
  dir: string;
  /** `lab`: DIR/tor.toml for `dune up`; `edge`: torrc files and start.sh for a NetMirage edge. */
  mode: 'lab' | 'edge';
  /** The lab name written into tor.toml (lab mode). */
  lab?: string;
  /** DIR/tor.toml, or DIR/start.sh on an edge. */
  entry: string;
  nodes: TorNodeFiles[];
  web: { name: 'web'; addr: string; port: number; url: string; root: string };
  onion?: { node: string; hostnameFile: string };
}

export function checkCounts(c: Counts): void {
  const bad = (flag: string, what: string, hint: string): never => {
    throw new DuneError('bad-option', `${flag}: ${what}`, { hint });
  };
  for (const [flag, v] of [['--authorities', c.authorities], ['--relays', c.relays], ['--exits', c.exits], ['--clients', c.clients]] as const) {
    if (!Number.isInteger(v) || v < 0) bad(flag, `${v} is not a count`, 'give a whole number ≥ 0');
  }
  if (c.authorities < 1) bad('--authorities', 'a network needs at least one directory authority', 'use --authorities 3 (Chutney\'s choice)');
  if (c.exits < 1) bad('--exits', 'with no exit no client can reach web', 'use --exits 1 or more');
  if (c.exits > c.relays) bad('--exits', `${c.exits} exits but only ${c.relays} relays (--relays counts the exits too)`, `use --relays ${c.exits} or more`);
  if (c.clients < 1) bad('--clients', 'a network needs at least one client', 'use --clients 1 or more');
  // A path has 3 relays and never reuses one; keep a spare (reference §1).
  if (c.authorities + c.relays < 4) {
    bad('--relays', `${c.authorities + c.relays} relays in all (authorities included): a circuit needs 3 distinct ones and a spare`, `use --relays ${4 - c.authorities} or more`);
  }
  // An onion service needs HSDirs, introduction points and a rendezvous point (reference §1).
  if (c.onion && c.authorities + c.relays < 5) {
    bad('--onion', `${c.authorities + c.relays} relays in all: an onion service needs at least 5`, `use --relays ${5 - c.authorities} or more`);
  }
}

/** The Tor nodes' names and roles, in a fixed order; web is not a tor node. */
export function torRoles(c: Counts): { name: string; role: TorRole }[] {
  const out: { name: string; role: TorRole }[] = [];
  for (let i = 0; i < c.authorities; i++) out.push({ name: `auth${i}`, role: 'authority' });
  for (let i = 0; i < c.relays - c.exits; i++) out.push({ name: `relay${i}`, role: 'relay' });
  for (let i = 0; i < c.exits; i++) out.push({ name: `exit${i}`, role: 'exit' });
  for (let i = 0; i < c.clients; i++) out.push({ name: `client${i}`, role: 'client' });
  if (c.onion) out.push({ name: 'onion', role: 'onion' });
  return out;
}

export function nodeFiles(dir: string, name: string, role: TorRole, addr: string): TorNodeFiles {
  const home = join(dir, 'nodes', name);
  const f: TorNodeFiles = { name, role, addr, torrc: join(home, 'torrc'), log: join(home, 'notice.log'), dataDir: join(home, 'data') };
  if (role === 'onion') f.infoLog = join(home, 'info.log');
  return f;
}

export function onionDir(n: TorNodeFiles): string {
  return join(n.dataDir, 'onion-service');
}

/** Lab mode: node i's address, 172.16.0.1 onwards (dune's own pools are all in 10/8). */
export function labAddress(i: number): string {
  const n = i + 1;
  if (n > 65534) throw new DuneError('bad-option', 'more than 65,534 Tor nodes', { hint: 'use fewer relays and clients' });
  return `172.16.${n >> 8}.${n & 255}`;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * The edge's `--ip-file`: one address per line (NetMirage's format). Blank lines and `#`
 * comments are skipped. Tor's DirAuthority lines need IPv4.
 */
export function parseIpFile(text: string, file: string, needed: number): string[] {
  const addrs: string[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const addr = line.replace(/\/\d+$/, '');
    if (!IPV4.test(addr)) {
      throw new DuneError('bad-ip-file', `${file}:${i + 1}: "${line}" is not an IPv4 address`, {
        hint: 'give the file netmirage-edge --ip-file wrote (one IPv4 address per line); Tor\'s directory authorities need IPv4',
      });
    }
    if (seen.has(addr)) throw new DuneError('bad-ip-file', `${file}:${i + 1}: ${addr} is listed twice`, { hint: 'each Tor process needs an address of its own' });
    seen.add(addr);
    addrs.push(addr);
  });
  if (addrs.length < needed) {
    throw new DuneError('bad-ip-file', `${file} has ${addrs.length} address${addrs.length === 1 ? '' : 'es'}, the network needs ${needed} (one per Tor process and one for web)`, {
      hint: `run netmirage-edge with ${needed} applications or more, or ask for fewer relays/clients`,
    });
  }
  return addrs.slice(0, needed);
}
