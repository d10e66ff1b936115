/**
 * `dune tor init` and `dune tor wait`: a private Tor network on a lab (or a NetMirage edge).
 * The work is in @dune/tor; this file wires the flags and prints.
 */
import { dirname, join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { DuneError } from '@dune/topology';
import * as lab from '@dune/lab';
import { describeProgress, MANIFEST, readNetwork, torInit, torWait, type TorInitOptions } from '@dune/tor';
import type { Output } from './output.js';
import { readerOptions, type ReaderFlags } from './reader-options.js';

function count(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('give a whole number');
  return Number(v);
}

function coreList(v: string): number[] {
  const out: number[] = [];
  for (const part of v.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new InvalidArgumentError('give core ids like 1-4 or 1,2,5');
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let c = a; c <= b; c++) out.push(c);
  }
  return out;
}

/** The directory of the Tor network a lab runs: from its processes' `tor -f DIR/nodes/<n>/torrc`. */
export async function torDirOfLab(name0: string | undefined): Promise<string> {
  const loc = await lab.locateLab(name0 !== undefined ? { lab: name0 } : {}, 'tor wait');
  const name = loc.lab;
  const plan = await lab.labPlan(loc);
  for (const h of plan.hosts) {
    for (const op of h.ops) {
      if (op.op !== 'process' || op.argv[0] !== 'tor' || op.argv[1] !== '-f' || op.argv[2] === undefined) continue;
      const dir = dirname(dirname(dirname(op.argv[2])));
      if (existsSync(join(dir, MANIFEST))) return dir;
    }
  }
  throw new DuneError('no-tor-network', `lab ${name} runs no Tor network written by \`dune tor init\``, {
    hint: 'give the directory with --dir DIR, or start the network with `dune up DIR/tor.toml`',
  });
}

/**
 * The onion address of a Tor network among a lab's processes (`tor -f DIR/nodes/<n>/torrc`),
 * when its directory is on this machine and the service has published its hostname.
 */
export function onionOfProcesses(processes: readonly { argv: string[] }[]): string | undefined {
  for (const p of processes) {
    if (p.argv[0] !== 'tor' || p.argv[1] !== '-f' || p.argv[2] === undefined) continue;
    const dir = dirname(dirname(dirname(p.argv[2])));
    if (!existsSync(join(dir, MANIFEST))) continue;
    const f = readNetwork(dir).onion?.hostnameFile;
    if (f === undefined || !existsSync(f)) return undefined;
    return readFileSync(f, 'utf8').trim() || undefined;
  }
  return undefined;
}

interface InitFlags extends ReaderFlags {
  output: string;
  topology?: string;
  authorities: number;
  relays: number;
  exits: number;
  clients: number;
  onion?: boolean;
  latency?: string;
  ipFile?: string;
  cores?: number[];
}

export function registerTorCommands(program: Command, o: Output): void {
  const tor = program.command('tor').description('a private Tor network (real tor, TestingTorNetwork) on a lab or on NetMirage edges');

  tor
    .command('init')
    .description('write DIR/tor.toml and every file it needs: keys, torrc files, a web server, an optional onion service')
    .requiredOption('-o, --output <dir>', 'output directory (new or empty)')
    .option('--topology <file>', 'a GraphML/Zoo topology: the Tor nodes hang off its routers, latencies kept (default: a star)')
    .option('--authorities <n>', 'directory authorities', count, 3)
    .option('--relays <n>', 'relays besides the authorities, exits included', count, 8)
    .option('--exits <n>', 'how many of the relays are exits', count, 2)
    .option('--clients <n>', 'clients client0… (SocksPort 9050)', count, 2)
    .option('--onion', 'an onion service in front of web\'s port 80')
    .option('--latency <delay>', 'latency of each Tor node\'s link (default 5ms on the star, 1ms to a topology\'s router; 0 for none)')
    .option('--ip-file <file>', 'NetMirage edge mode: bind every tor to the addresses netmirage-edge --ip-file wrote; writes start.sh instead of tor.toml')
    .option('--cores <list>', 'declare these cores (e.g. 1-16): every process is pinned to one', coreList)
    .option('--lab <name>', 'the lab name written into tor.toml', 'tor')
    .option('--client-type <type>', 'GraphML: hang the Tor nodes off the nodes of this `type` only')
    .addHelpText('after', `
Examples:
  dune tor init -o /tmp/tornet --onion && dune up /tmp/tornet/tor.toml && dune tor wait --dir /tmp/tornet
  dune tor init -o /tmp/tornet --topology topologies/zoo/Abilene.graphml --relays 8 --exits 2
  dune tor init -o /tmp/tornet --ip-file edge-ips.txt    # on a NetMirage edge; then /tmp/tornet/start.sh`)
    .action(async (flags: InitFlags) => {
      const opts: TorInitOptions = {
        dir: flags.output,
        authorities: flags.authorities,
        relays: flags.relays,
        exits: flags.exits,
        clients: flags.clients,
        onion: flags.onion === true,
        readOptions: readerOptions({ ...(flags.clientType !== undefined ? { clientType: flags.clientType } : {}) }),
        ...(flags.lab !== undefined ? { lab: flags.lab } : {}),
        ...(flags.topology !== undefined ? { topology: flags.topology } : {}),
        ...(flags.latency !== undefined ? { latency: flags.latency } : {}),
        ...(flags.ipFile !== undefined ? { ipFile: flags.ipFile } : {}),
        ...(flags.cores !== undefined ? { cores: flags.cores } : {}),
      };
      const net = await torInit(opts);
      const count = (r: string) => net.nodes.filter((n) => n.role === r).length;
      o.out(`${net.dir}: ${count('authority')} authorities, ${count('relay') + count('exit')} relays (${count('exit')} exits), ${count('client')} clients${net.onion ? ', an onion service' : ''}, web at ${net.web.url}`);
      if (net.mode === 'lab') {
        o.out(`next: dune up ${net.entry} && dune tor wait --dir ${net.dir}`);
        o.out(`then: dune exec --lab ${net.lab ?? 'tor'} client0 -- curl --socks5-hostname 127.0.0.1:9050 ${net.web.url}`);
      } else {
        o.out(`next: ${net.entry} && dune tor wait --dir ${net.dir}   (stop: ${join(net.dir, 'stop.sh')})`);
        const c = net.nodes.find((n) => n.role === 'client');
        if (c) o.out(`then: curl --socks5-hostname ${c.addr}:9050 ${net.web.url}`);
      }
    });

  tor
    .command('wait')
    .description('wait until every client has bootstrapped (progress shown); print the onion address')
    .option('--dir <dir>', 'the directory `dune tor init` wrote')
    .option('--lab <name>', 'the lab running the network (default: the only lab), when --dir is not given')
    .option('--timeout <seconds>', 'give up after this long', count, 180)
    .action(async (flags: { dir?: string; lab?: string; timeout: number }) => {
      const dir = flags.dir ?? (await torDirOfLab(flags.lab));
      const r = await torWait(dir, { timeoutMs: flags.timeout * 1000, onProgress: (p) => o.err(describeProgress(p)) });
      o.out(`bootstrapped: ${r.clients.map((c) => c.node).join(', ')} in ${(r.elapsedMs / 1000).toFixed(1)} s`);
      if (r.onion !== undefined) o.out(`onion service: http://${r.onion}/`);
    });
}
