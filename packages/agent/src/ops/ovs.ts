/**
 * `ovs`: a private Open vSwitch (NetMirage's OVS root switch, reference 4.4 steps 3 and 7):
 * its own ovsdb-server and ovs-vswitchd, never the system's, both started inside the op's
 * namespace (vswitchd opens its ports by name there) with their database, sockets, pids and
 * logs under the op's directory; one bridge on the userspace datapath, its ports at fixed
 * numbers, its flows (the MACs the plan could not know filled in here: a device's read, an
 * edge's learnt by ARP).
 *
 * A batch op: it runs once the devices, addresses and routes exist. Deleting the namespace
 * does not stop the daemons nor remove their files, so the kind has a `release`, run by the
 * lab's down (which reads the journaled plan: after a crash or a failed up too) and when a
 * converging up drops the op. Each step runs with argv only, the directory given to the
 * tools by OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR (so `ovs-ofctl` finds the bridge's management
 * socket there, as NetMirage's users expect).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { OvsOp } from '@dune/compiler';
import { DuneError } from '@dune/topology';
import { inNs, run, type RunResult } from '../run.js';
import { opKind } from './types.js';

const DAEMONS = ['ovs-vswitchd', 'ovsdb-server'] as const;
/** What the instance leaves in its directory besides its logs. */
const FILES = (bridge: string) => ['ovs.db', '.ovs.db.~lock~', 'db.sock', 'ovsdb-server.ctl', 'ovs-vswitchd.ctl', 'ovsdb-server.pid', 'ovs-vswitchd.pid', `${bridge}.mgmt`, `${bridge}.snoop`];

function env(dir: string): string[] {
  return ['env', `OVS_RUNDIR=${dir}`, `OVS_DBDIR=${dir}`, `OVS_LOGDIR=${dir}`, `OVS_SYSCONFDIR=${dir}`];
}

const dbSock = (op: Pick<OvsOp, 'dir'>) => `unix:${join(op.dir, 'db.sock')}`;

/** Runs a tool inside the op's namespace with the instance's directory; a DuneError when it fails. */
async function must(op: OvsOp, ns: string | null, argv: string[], what: string, input?: string): Promise<string> {
  const r: RunResult = await run(inNs(ns, [...env(op.dir), ...argv]), input);
  if (r.code !== 0) {
    const missing = r.code === 127 || /No such file or directory/.test(r.stderr) && r.stderr.includes(argv[0] as string);
    throw new DuneError('ovs-failed', `${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-1500)}`, {
      hint: missing ? 'install Open vSwitch: apt-get install -y openvswitch-switch (the system service is not needed)' : `see the logs in ${op.dir}`,
    });
  }
  return r.stdout;
}

function vsctl(op: OvsOp, ns: string | null, args: string[], what: string): Promise<string> {
  return must(op, ns, ['ovs-vsctl', `--db=${dbSock(op)}`, '--timeout=30', ...args], what);
}

/** A device's MAC in the namespace. */
async function deviceMac(op: OvsOp, ns: string | null, dev: string): Promise<string> {
  const out = await must(op, ns, ['ip', '-j', 'link', 'show', 'dev', dev], `reading the MAC of ${dev}`);
  const mac = (JSON.parse(out || '[]') as { address?: string }[])[0]?.address;
  if (mac === undefined) throw new DuneError('ovs-failed', `${dev} has no MAC address`, { hint: 'the OVS switch carries Ethernet devices only' });
  return mac;
}

/** An edge's MAC, learnt by pinging it through its device (up to 3 times). */
async function neighbourMac(op: OvsOp, ns: string | null, ip: string, dev: string): Promise<string> {
  for (let i = 0; i < 3; i++) {
    await run(inNs(ns, ['ping', '-c', '1', '-W', '1', '-I', dev, ip]));
    const r = await run(inNs(ns, ['ip', '-j', 'neigh', 'show', 'to', ip, 'dev', dev]));
    try {
      const mac = (JSON.parse(r.stdout || '[]') as { lladdr?: string }[]).find((e) => e.lladdr !== undefined)?.lladdr;
      if (mac !== undefined) return mac;
    } catch {
      // not JSON: try again
    }
  }
  throw new DuneError('edge-mac', `the MAC address of edge ${ip} could not be learnt (no ARP answer on ${dev})`, { hint: `give it: -e ${ip},mac=aa:bb:cc:dd:ee:ff, or check that the edge is up` });
}

/** The flows with every `{mac:…}`/`{machex:…}` token replaced. */
async function resolveFlows(op: OvsOp, ns: string | null): Promise<string[]> {
  const macs = new Map<string, string>();
  const learnt = new Map(op.learn.map((l) => [l.ip, l.dev]));
  for (const f of op.flows) {
    for (const m of f.matchAll(/\{mac(?:hex)?:([^}]+)\}/g)) {
      const key = m[1] as string;
      if (macs.has(key)) continue;
      const dev = learnt.get(key);
      macs.set(key, dev !== undefined ? await neighbourMac(op, ns, key, dev) : await deviceMac(op, ns, key));
    }
  }
  return op.flows.map((f) => f.replace(/\{(mac|machex):([^}]+)\}/g, (_, form: string, key: string) => {
    const mac = macs.get(key) as string;
    return form === 'mac' ? mac : `0x${mac.replace(/:/g, '')}`;
  }));
}

async function start(op: OvsOp, ns: string | null): Promise<void> {
  if (!existsSync(op.schema)) throw new DuneError('ovs-schema-missing', `the OVS schema ${op.schema} does not exist`, { hint: 'install openvswitch-switch, or give --ovs-schema' });
  mkdirSync(op.dir, { recursive: true, mode: 0o755 });
  const dbFile = join(op.dir, 'ovs.db');
  rmSync(dbFile, { force: true });
  await must(op, ns, ['ovsdb-tool', 'create', dbFile, op.schema], 'ovsdb-tool create');
  const d = (name: string) => [`--unixctl=${join(op.dir, `${name}.ctl`)}`, `--pidfile=${join(op.dir, `${name}.pid`)}`, `--log-file=${join(op.dir, `${name}.log`)}`, '--detach'];
  await must(op, ns, ['ovsdb-server', dbFile, `--remote=punix:${join(op.dir, 'db.sock')}`, ...d('ovsdb-server')], 'ovsdb-server');
  await vsctl(op, ns, ['--no-wait', 'init'], 'ovs-vsctl init');
  // Veths hand over TCP segments of up to 64 KiB (TSO/GSO); the userspace datapath drops
  // them unless it is told to take them as they are.
  await vsctl(op, ns, ['--no-wait', 'set', 'Open_vSwitch', '.', 'other_config:userspace-tso-enable=true'], 'userspace TSO');
  await must(op, ns, ['ovs-vswitchd', dbSock(op), ...d('ovs-vswitchd')], 'ovs-vswitchd');
  const br = op.bridge;
  await vsctl(op, ns, ['add-br', br, '--', 'set', 'bridge', br, `datapath_type=${op.datapath}`, '--', 'set', 'bridge', br, 'fail-mode=secure'], 'add-br');
  await must(op, ns, ['ovs-ofctl', 'del-flows', br], 'ovs-ofctl del-flows');
  const flows = await resolveFlows(op, ns);
  // One transaction per 200 ports: ovs-vsctl's command line stays short.
  for (let i = 0; i < op.ports.length; i += 200) {
    const args = op.ports.slice(i, i + 200).flatMap((p) => ['--', 'add-port', br, p.dev, '--', 'set', 'Interface', p.dev, `ofport_request=${p.ofport}`]);
    await vsctl(op, ns, args.slice(1), 'add-port');
  }
  await must(op, ns, ['ovs-ofctl', 'add-flows', br, '-'], 'ovs-ofctl add-flows', flows.join('\n') + '\n');
  await must(op, ns, ['ip', 'link', 'set', br, 'up'], `${br} up`);
}

function pidOf(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The daemon `name` of this instance runs as `pid` (not a reused pid: its command line names the directory). */
function ours(pid: number, name: string, dir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => a.endsWith(name)) && argv.some((a) => a.includes(join(dir, `${name}.pid`)));
  } catch {
    return false;
  }
}

/** Stops the instance (if it runs) and removes its files but its logs. Idempotent. */
export async function releaseOvs(op: OvsOp): Promise<string[]> {
  const errors: string[] = [];
  if (!existsSync(op.dir)) return errors;
  for (const name of DAEMONS) {
    const pid = pidOf(join(op.dir, `${name}.pid`));
    if (pid === undefined || !ours(pid, name, op.dir)) continue;
    if (name === 'ovs-vswitchd') await run(['ovs-vsctl', `--db=${dbSock(op)}`, '--timeout=5', '--if-exists', 'del-br', op.bridge]);
    await run(['ovs-appctl', '-t', join(op.dir, `${name}.ctl`), 'exit']);
    for (let i = 0; i < 50 && ours(pid, name, op.dir); i++) await new Promise((r) => setTimeout(r, 100));
    if (ours(pid, name, op.dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (e) {
        errors.push(`stop ${name} (pid ${pid}): ${(e as Error).message}`);
      }
    }
  }
  for (const f of FILES(op.bridge)) rmSync(join(op.dir, f), { force: true });
  try {
    if (readdirSync(op.dir).length === 0) rmdirSync(op.dir);
  } catch {
    // not ours to empty: its logs stay
  }
  return errors;
}

export const ovs = opKind('ovs', {
  describe: (op) => `Open vSwitch ${op.bridge} in ${op.ns} (${op.dir})`,
  key: (op) => `ovs ${op.ns}/${op.bridge}`,
  nss: (op) => [op.ns],
  undoRank: 30,
  diesWithNs: false,
  apply: {
    stage: 'batch',
    async run(ops, s) {
      for (const op of ops) await start(op, s.isHost(op.ns) ? null : op.ns);
    },
  },
  release: releaseOvs,
});
