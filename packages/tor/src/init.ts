/**
 * `dune tor init`: a private Tor network in DIR.
 *
 *   counts ─► roles and addresses ─► keys (tor-gencert, tor --list-fingerprint)
 *     ─► torrc per node ─► web page ─► tor.toml (lab) | start.sh + stop.sh (edge) ─► network.json
 *
 * Keys come first because every torrc carries every authority's fingerprints and the exits'.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { DuneError, readTopology, type ReadOptions } from '@dune/topology';
import { startScript, stopScript } from './edge.js';
import { makeAuthorityKeys, relayFingerprint } from './keys.js';
import {
  checkCounts, DEFAULT_COUNTS, labAddress, MANIFEST, MANIFEST_FORMAT, nodeFiles, onionDir, parseIpFile, torRoles,
  type Counts, type TorNetwork, type TorNodeFiles,
} from './layout.js';
import { graphBackbone, starBackbone, torToml, type Backbone } from './toml.js';
import { torrc, TOR_PORTS, WEB_PORT, type DirAuthority } from './torrc.js';

export interface TorInitOptions extends Partial<Counts> {
  /** Output directory; created. It must not already hold a network. */
  dir: string;
  /** A GraphML/Zoo topology whose routers the Tor nodes hang off. */
  topology?: string;
  /** Reader options for `topology` (units, client type, weight). */
  readOptions?: ReadOptions;
  /** Latency of each Tor node's access link; default 5ms on the star, 1ms on a topology; "0" for none. */
  latency?: string;
  /** NetMirage edge mode: the edge's `--ip-file`. */
  ipFile?: string;
  /** Lab name written into tor.toml (default `tor`). */
  lab?: string;
  /** Core ids to declare (`[infrastructure.nodes.local] cores`): processes are pinned. */
  cores?: number[];
}

export const STAR_LATENCY = '5ms';
export const TOPOLOGY_ACCESS_LATENCY = '1ms';

/** The web page every client fetches; the same text through an exit and through the onion service. */
export function webPage(net: Pick<TorNetwork, 'nodes'>): string {
  return `<!doctype html>\n<title>dune tor</title>\n<p>Hello from web, through a private Tor network of ${net.nodes.length} tor processes.</p>\n`;
}

export async function torInit(opts: TorInitOptions): Promise<TorNetwork> {
  const counts: Counts = {
    authorities: opts.authorities ?? DEFAULT_COUNTS.authorities,
    relays: opts.relays ?? DEFAULT_COUNTS.relays,
    exits: opts.exits ?? DEFAULT_COUNTS.exits,
    clients: opts.clients ?? DEFAULT_COUNTS.clients,
    onion: opts.onion ?? DEFAULT_COUNTS.onion,
  };
  checkCounts(counts);
  if (opts.ipFile !== undefined && opts.topology !== undefined) {
    throw new DuneError('bad-option', '--ip-file and --topology exclude each other', {
      hint: 'on a NetMirage edge the topology is netmirage-core\'s: give only --ip-file',
    });
  }
  const dir = resolve(opts.dir);
  checkOutputDir(dir);

  // Read the topology before writing anything: its errors are the user's most likely ones.
  const roles = torRoles(counts);
  let backbone: Backbone | undefined;
  if (opts.ipFile === undefined) {
    if (opts.topology !== undefined) {
      const ext = extname(opts.topology).toLowerCase();
      if (ext === '.toml') {
        throw new DuneError('bad-option', `--topology ${opts.topology}: a TOML topology cannot be extended here`, {
          hint: 'give a GraphML file (NetMirage/Shadow or Topology Zoo), or add the Tor nodes of a default tor.toml to your own TOML',
        });
      }
      backbone = graphBackbone(readTopology(opts.topology, opts.readOptions), [...roles.map((r) => r.name), 'web']);
    } else backbone = starBackbone();
  }
  const edge = opts.ipFile !== undefined;
  const addrs = edge
    ? parseIpFile(readIpFile(opts.ipFile as string), opts.ipFile as string, roles.length + 1)
    : Array.from({ length: roles.length + 1 }, (_, i) => labAddress(i));

  mkdirSync(dir, { recursive: true });
  const nodes: TorNodeFiles[] = roles.map((r, i) => nodeFiles(dir, r.name, r.role, addrs[i] as string));
  for (const n of nodes) mkdirSync(n.dataDir, { recursive: true, mode: 0o700 });

  // Keys: authorities' v3 identities and every relay's fingerprint, in parallel.
  const relays = nodes.filter((n) => n.role === 'authority' || n.role === 'relay' || n.role === 'exit');
  const fps = new Map<string, string>();
  const v3 = new Map<string, string>();
  await Promise.all([
    ...relays.map(async (n) => fps.set(n.name, await relayFingerprint(n.dataDir))),
    ...nodes.filter((n) => n.role === 'authority').map(async (n) => v3.set(n.name, await makeAuthorityKeys(n.dataDir, n.name, n.addr, TOR_PORTS.dir))),
  ]);
  const authorities: DirAuthority[] = nodes
    .filter((n) => n.role === 'authority')
    .map((n) => ({ nick: n.name, addr: n.addr, orPort: TOR_PORTS.or, dirPort: TOR_PORTS.dir, v3ident: v3.get(n.name) as string, fingerprint: fps.get(n.name) as string }));
  const exitFingerprints = nodes.filter((n) => n.role === 'exit').map((n) => fps.get(n.name) as string);

  const webAddr = addrs[roles.length] as string;
  const webRoot = join(dir, 'web');
  const web: TorNetwork['web'] = { name: 'web', addr: webAddr, port: WEB_PORT, url: `http://${webAddr}/`, root: webRoot };
  const onionNode = nodes.find((n) => n.role === 'onion');
  const net: TorNetwork = {
    format: MANIFEST_FORMAT,
    dir,
    mode: edge ? 'edge' : 'lab',
    ...(edge ? {} : { lab: opts.lab ?? 'tor' }),
    entry: join(dir, edge ? 'start.sh' : 'tor.toml'),
    nodes,
    web,
    ...(onionNode ? { onion: { node: onionNode.name, hostnameFile: join(onionDir(onionNode), 'hostname') } } : {}),
  };

  for (const n of nodes) {
    const text = torrc({
      nick: n.name,
      role: n.role,
      addr: n.addr,
      localAddr: edge ? n.addr : '127.0.0.1',
      dataDir: n.dataDir,
      noticeLog: n.log,
      ...(n.infoLog !== undefined ? { infoLog: n.infoLog } : {}),
      authorities,
      exitFingerprints,
      ...(n.role === 'onion' ? { onion: { dir: onionDir(n), target: `${webAddr}:${WEB_PORT}` } } : {}),
    });
    writeFileSync(n.torrc, text);
  }
  mkdirSync(webRoot, { recursive: true });
  writeFileSync(join(webRoot, 'index.html'), webPage(net));
  // `--bind ::` inside a node (its own namespace); on an edge only web's virtual address.
  const webCmd = ['python3', '-m', 'http.server', String(WEB_PORT), '--bind', edge ? webAddr : '::', '--directory', webRoot];

  if (edge) {
    mkdirSync(join(dir, 'nodes', 'web'), { recursive: true });
    writeFileSync(join(dir, 'start.sh'), startScript(net, webCmd), { mode: 0o755 });
    writeFileSync(join(dir, 'stop.sh'), stopScript(net), { mode: 0o755 });
    chmodSync(join(dir, 'start.sh'), 0o755);
    chmodSync(join(dir, 'stop.sh'), 0o755);
  } else {
    const latency = opts.latency ?? (opts.topology !== undefined ? TOPOLOGY_ACCESS_LATENCY : STAR_LATENCY);
    writeFileSync(net.entry, torToml(net, backbone as Backbone, { accessLatency: latency, webCmd, ...(opts.cores ? { cores: opts.cores } : {}) }));
  }
  writeFileSync(join(dir, MANIFEST), `${JSON.stringify(net, null, 2)}\n`);
  return net;
}

function checkOutputDir(dir: string): void {
  if (!existsSync(dir)) return;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    throw new DuneError('bad-output', `${dir} is not a directory I can read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { hint: 'give -o a new directory' });
  }
  if (entries.length > 0) {
    throw new DuneError('bad-output', `${dir} is not empty`, {
      hint: entries.includes(MANIFEST) ? 'it holds a Tor network already: remove it (after `dune down`) or choose another -o' : 'give -o a new or empty directory',
    });
  }
}

function readIpFile(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new DuneError('file-unreadable', `cannot read the ip file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: 'give the file netmirage-edge --ip-file wrote',
    });
  }
}

/** Reads DIR/network.json. */
export function readNetwork(dir: string): TorNetwork {
  const file = join(resolve(dir), MANIFEST);
  let net: TorNetwork;
  try {
    net = JSON.parse(readFileSync(file, 'utf8')) as TorNetwork;
  } catch (e) {
    throw new DuneError('no-tor-network', `${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: 'give the directory `dune tor init -o DIR` wrote',
    });
  }
  if (net.format !== MANIFEST_FORMAT) {
    throw new DuneError('no-tor-network', `${file} is not a network written by this version of \`dune tor init\` (format ${JSON.stringify(net.format)})`, {
      hint: 'run dune tor init again into a new directory',
    });
  }
  return net;
}
