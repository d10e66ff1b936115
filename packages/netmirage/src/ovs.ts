/**
 * The Open vSwitch root switch, as NetMirage builds it (reference 4.4 step 3 and 7), on a
 * private instance: its own ovsdb-server and ovs-vswitchd under --ovs-dir (db, sockets,
 * pids, logs), never the system's. Without the openvswitch kernel module (our kernel) the
 * bridge uses the userspace `netdev` datapath.
 *
 * Flows on netmirage-br0 (all else is dropped: the table starts empty):
 *   32668  ARP requests for a core NIC address or the root IP → answered by the switch
 *   16384  ip, in_port=NIC, from S_c to S_c → dl_dst = client's self MAC, out self-<c>
 *    8192  ip, in_port=NIC, from S_c        → dl_dst = client's root MAC, out node-<c>
 *    1000  in_port=NIC                      → drop (no edge-to-edge shortcut)
 *     128  ip, to an edge's vsubnet         → dl_src = NIC MAC, dl_dst = edge MAC, out NIC
 *
 * Every command runs with argv only, OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR set to the private
 * directory (so ovs-ofctl finds the bridge's management socket there).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { nsPath } from '@dune/agent';
import type { NetmiragePlan } from '@dune/compiler';
import { DuneError } from '@dune/topology';
import type { SavedIface } from './core.js';
import type { Log } from './util.js';

export interface OvsOptions {
  dir: string;
  schema: string;
}

export const OVS_DEFAULTS: OvsOptions = { dir: '/tmp/netmirage', schema: '/usr/share/openvswitch/vswitch.ovsschema' };
export const OVS_BRIDGE = 'netmirage-br0';
/** The MAC the switch answers with for the root IP. */
export const ROOT_MAC = '02:4e:ff:00:00:01';

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

function run(argv: string[], env: NodeJS.ProcessEnv, input?: string): Promise<Out> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd ?? '', args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => resolve({ code: 127, stdout, stderr: stderr + e.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

function envFor(dir: string): NodeJS.ProcessEnv {
  return { OVS_RUNDIR: dir, OVS_DBDIR: dir, OVS_LOGDIR: dir, OVS_SYSCONFDIR: dir };
}

async function must(argv: string[], dir: string, what: string, input?: string): Promise<string> {
  const r = await run(argv, envFor(dir), input);
  if (r.code !== 0) {
    throw new DuneError('ovs-failed', `${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-1500)}`, {
      hint: r.code === 127 ? 'install Open vSwitch: apt-get install -y openvswitch-switch (the system service is not needed)' : `see the logs in ${dir}`,
    });
  }
  return r.stdout;
}

const db = (o: OvsOptions) => `unix:${join(o.dir, 'db.sock')}`;

function vsctl(o: OvsOptions, args: string[], what: string, input?: string): Promise<string> {
  return must(['ovs-vsctl', `--db=${db(o)}`, '--timeout=30', ...args], o.dir, what, input);
}

export async function ovsStart(o: OvsOptions, nm: NetmiragePlan, log: Log): Promise<void> {
  if (nm.rootNs === null) throw new DuneError('bad-option', 'the OVS switch needs its own root namespace', { hint: 'use --root-ns custom' });
  if (!existsSync(o.schema)) throw new DuneError('ovs-schema-missing', `the OVS schema ${o.schema} does not exist`, { hint: 'install openvswitch-switch, or give --ovs-schema' });
  mkdirSync(o.dir, { recursive: true, mode: 0o755 });
  const dbFile = join(o.dir, 'ovs.db');
  rmSync(dbFile, { force: true });
  await must(['ovsdb-tool', 'create', dbFile, o.schema], o.dir, 'ovsdb-tool create');
  await must(
    ['ovsdb-server', dbFile, `--remote=punix:${join(o.dir, 'db.sock')}`, `--unixctl=${join(o.dir, 'ovsdb-server.ctl')}`, `--pidfile=${join(o.dir, 'ovsdb-server.pid')}`, `--log-file=${join(o.dir, 'ovsdb-server.log')}`, '--detach'],
    o.dir,
    'ovsdb-server',
  );
  await vsctl(o, ['--no-wait', 'init'], 'ovs-vsctl init');
  // Veths hand over TCP segments of up to 64 KiB (TSO/GSO); the userspace datapath drops
  // them unless it is told to take them as they are.
  await vsctl(o, ['--no-wait', 'set', 'Open_vSwitch', '.', 'other_config:userspace-tso-enable=true'], 'userspace TSO');
  // vswitchd opens its ports by name in its own namespace: it runs in the root namespace.
  await must(
    ['nsenter', `--net=${nsPath(nm.rootNs)}`, '--', 'ovs-vswitchd', db(o), `--unixctl=${join(o.dir, 'ovs-vswitchd.ctl')}`, `--pidfile=${join(o.dir, 'ovs-vswitchd.pid')}`, `--log-file=${join(o.dir, 'ovs-vswitchd.log')}`, '--detach'],
    o.dir,
    'ovs-vswitchd',
  );
  const datapath = existsSync('/sys/module/openvswitch') ? 'system' : 'netdev';
  log('info', `private Open vSwitch started in ${o.dir} (datapath ${datapath})`);
  await vsctl(o, ['add-br', OVS_BRIDGE, '--', 'set', 'bridge', OVS_BRIDGE, `datapath_type=${datapath}`, '--', 'set', 'bridge', OVS_BRIDGE, 'fail-mode=secure'], 'add-br');
  await must(['ovs-ofctl', 'del-flows', OVS_BRIDGE], o.dir, 'ovs-ofctl del-flows');
}

function hex(ip: string): string {
  return `0x${ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join('')}`;
}

function arpResponder(ip: string, mac: string): string {
  return (
    `priority=32668,arp,arp_op=1,arp_tpa=${ip},actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:${mac},load:0x2->NXM_OF_ARP_OP[],` +
    `move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],load:0x${mac.replace(/:/g, '')}->NXM_NX_ARP_SHA[],load:${hex(ip)}->NXM_OF_ARP_SPA[],in_port`
  );
}

/** The edge's MAC: given, or learnt by pinging it from the root namespace (up to 3 times). */
async function edgeMac(rootNs: string, nic: string, ip: string, dir: string): Promise<string> {
  for (let i = 0; i < 3; i++) {
    await run(['nsenter', `--net=${nsPath(rootNs)}`, '--', 'ping', '-c', '1', '-W', '1', '-I', nic, ip], envFor(dir));
    const r = await run(['ip', '-j', '-n', rootNs, 'neigh', 'show', 'to', ip, 'dev', nic], envFor(dir));
    try {
      const entries = JSON.parse(r.stdout || '[]') as { lladdr?: string }[];
      const mac = entries.find((e) => e.lladdr !== undefined)?.lladdr;
      if (mac !== undefined) return mac;
    } catch {
      // not JSON: try again
    }
  }
  throw new DuneError('edge-mac', `the MAC address of edge ${ip} could not be learnt (no ARP answer on ${nic})`, { hint: `give it: -e ${ip},mac=aa:bb:cc:dd:ee:ff, or check that the edge is up` });
}

export async function ovsConfigure(o: OvsOptions, nm: NetmiragePlan, nics: SavedIface[], log: Log): Promise<void> {
  const root = nm.rootNs as string;
  const macs = new Map<string, string>();
  for (const e of nm.edges) macs.set(e.ip, e.mac ?? (await edgeMac(root, e.iface, e.ip, o.dir)));
  // The kernel of the root namespace must not route what the switch carries.
  await must(['nsenter', `--net=${nsPath(root)}`, '--', 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0'], o.dir, 'ip_forward off in the root namespace');

  // Ports with fixed numbers: NICs from 1, clients' node-<i> at 1000+2i, self-<i> at 1001+2i.
  const port = new Map<string, number>();
  nm.ifaces.forEach((n, i) => port.set(n, i + 1));
  for (const c of nm.clients) {
    port.set(c.rootDev, 1000 + 2 * c.index);
    port.set(c.selfDev, 1001 + 2 * c.index);
  }
  // One transaction per 200 ports: ovs-vsctl's command line stays short.
  const ports = [...port];
  for (let i = 0; i < ports.length; i += 200) {
    const args = ports.slice(i, i + 200).flatMap(([dev, n]) => ['--', 'add-port', OVS_BRIDGE, dev, '--', 'set', 'Interface', dev, `ofport_request=${n}`]);
    await vsctl(o, args.slice(1), 'add-port');
  }

  const flows: string[] = [];
  for (const n of nics) {
    const mac = n.mac as string;
    for (const a of n.addrs) if (!a.includes(':')) flows.push(arpResponder(a.split('/')[0] as string, mac));
  }
  flows.push(arpResponder(nm.rootIp, ROOT_MAC));
  for (const c of nm.clients) {
    const edge = nm.edges[c.edge];
    if (edge === undefined) continue;
    const nicPort = port.get(edge.iface) as number;
    flows.push(`priority=16384,ip,in_port=${nicPort},nw_src=${c.subnet},nw_dst=${c.subnet},actions=mod_dl_dst:${c.clientSelfMac},output:${port.get(c.selfDev)}`);
    flows.push(`priority=8192,ip,in_port=${nicPort},nw_src=${c.subnet},actions=mod_dl_dst:${c.clientRootMac},output:${port.get(c.rootDev)}`);
  }
  for (const n of nm.ifaces) flows.push(`priority=1000,in_port=${port.get(n)},actions=drop`);
  for (const e of nm.edges) {
    const nic = nics.find((x) => x.name === e.iface);
    flows.push(`priority=128,ip,nw_dst=${e.vsubnet},actions=mod_dl_src:${nic?.mac},mod_dl_dst:${macs.get(e.ip)},output:${port.get(e.iface)}`);
  }
  await must(['ovs-ofctl', 'add-flows', OVS_BRIDGE, '-'], o.dir, 'ovs-ofctl add-flows', flows.join('\n') + '\n');
  await must(['ip', '-n', root, 'link', 'set', OVS_BRIDGE, 'up'], o.dir, 'bridge up');
  log('info', `${OVS_BRIDGE}: ${port.size} ports, ${flows.length} flows`);
}

function pidOf(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the private instance under `dir` (if one runs) and removes its files. True if one ran. */
export async function ovsDestroy(dir: string, log: Log): Promise<boolean> {
  if (!existsSync(dir)) return false;
  let stopped = false;
  for (const d of ['ovs-vswitchd', 'ovsdb-server']) {
    const pidFile = join(dir, `${d}.pid`);
    const pid = pidOf(pidFile);
    if (pid === undefined || !alive(pid)) continue;
    if (d === 'ovs-vswitchd') await run(['ovs-vsctl', `--db=unix:${join(dir, 'db.sock')}`, '--timeout=5', '--if-exists', 'del-br', OVS_BRIDGE], envFor(dir));
    await run(['ovs-appctl', '-t', join(dir, `${d}.ctl`), 'exit'], envFor(dir));
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    // Our own daemon by the pid it wrote: stop it if it did not listen.
    if (alive(pid)) process.kill(pid, 'SIGTERM');
    stopped = true;
    log('info', `stopped ${d} (pid ${pid})`);
  }
  for (const f of ['ovs.db', '.ovs.db.~lock~', 'db.sock', 'ovsdb-server.ctl', 'ovs-vswitchd.ctl', 'ovsdb-server.pid', 'ovs-vswitchd.pid', `${OVS_BRIDGE}.mgmt`, `${OVS_BRIDGE}.snoop`]) rmSync(join(dir, f), { force: true });
  return stopped;
}
