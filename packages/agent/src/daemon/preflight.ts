/**
 * Pre-flight on one host, before anything is built: can this host carry its part of the
 * plan? Every problem is collected, none stops the others from being looked at.
 *
 *   kernel     the capability probe; vxlan/veth/bridge as the ops need them; every
 *              impairment planned against the probed backends (netem, htb, nftables)
 *   tools      ip (processes run under `ip netns exec`), nsenter, taskset for pinning
 *   cores      pinned cpus exist here
 *   vnis       (reported, not checked) the VXLAN VNIs other labs' journals hold here
 *   underlay   each VXLAN `local` address is configured here; the route to every peer
 *              leaves through an interface whose MTU carries the inner MTU plus VXLAN's
 *              overhead (50 bytes over IPv4, 70 over IPv6) without fragmenting
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus as osCpus, networkInterfaces } from 'node:os';
import { delimiter, join } from 'node:path';
import { DuneError } from '@dune/topology';
import { CAPTURE_TAG, type Op } from '@dune/compiler';
import { planImpairment } from '../impair/backends.js';
import { probeCapabilities } from '../probe.js';
import { run } from '../run.js';
import { readVnis } from '../lab/journal.js';
import type { PreflightParams, PreflightProblem, PreflightResult } from './protocol.js';

/** Outer Ethernet is not counted by the underlay MTU: IP (20 | 40) + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export function vxlanOverhead(underlay: string): number {
  return underlay.includes(':') ? 70 : 50;
}

function onPath(cmd: string): boolean {
  const dirs = (process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter);
  return dirs.some((d) => d !== '' && existsSync(join(d, cmd)));
}

function ifaceOf(address: string): string | undefined {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (addrs?.some((a) => a.address === address)) return name;
  }
  return undefined;
}

function mtuOf(dev: string): number | undefined {
  try {
    return Number(readFileSync(`/sys/class/net/${dev}/mtu`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

function onlineCpus(): number {
  try {
    // "0-3,6": the highest id + 1 is what matters for pinning.
    const text = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
    return Math.max(...text.split(',').map((r) => Number(r.split('-').pop()))) + 1;
  } catch {
    return osCpus().length;
  }
}

export async function preflight(p: PreflightParams): Promise<PreflightResult> {
  const ops: Op[] = p.plan.hosts.flatMap((h) => h.ops);
  const problems: PreflightProblem[] = [];
  const checked: string[] = [];
  const caps = await probeCapabilities({ fresh: true });
  const has = (k: Op['op']): boolean => ops.some((o) => o.op === k);

  for (const [kind, cap] of [['veth', 'veth'], ['vxlan', 'vxlan'], ['bridge', 'bridge']] as const) {
    if (!has(kind)) continue;
    const c = caps[cap];
    if (c.ok) checked.push(`kernel: ${kind}`);
    else problems.push({ code: `no-${kind}`, message: `the kernel cannot create ${kind} devices: ${c.error ?? 'unknown reason'}`, hint: `use a kernel with CONFIG_${kind.toUpperCase()}` });
  }

  let impairs = 0;
  const refused = new Map<string, { n: number; hint?: string; example: string }>();
  for (const op of ops) {
    if (op.op !== 'impair') continue;
    impairs++;
    try {
      // As `up` will: the lab's impairment_backend, with this host's userspace engine.
      planImpairment(op.impairment, caps, { mtu: op.mtu, where: `${op.ns}/${op.dev}`, prefer: p.plan.impairmentBackend ?? 'auto', userspaceEngine: true });
    } catch (e) {
      if (!(e instanceof DuneError)) throw e;
      const key = e.message.replace(/^.*?: /, '');
      const r = refused.get(key) ?? { n: 0, example: e.message, ...(e.hint !== undefined ? { hint: e.hint } : {}) };
      r.n++;
      refused.set(key, r);
    }
  }
  for (const r of refused.values()) {
    problems.push({ code: 'impairment-unsupported', message: `${r.n} link direction${r.n === 1 ? '' : 's'} cannot be impaired here, e.g. ${r.example}`, ...(r.hint !== undefined ? { hint: r.hint } : {}) });
  }
  if (impairs > 0 && refused.size === 0) checked.push(`impairments: ${impairs} planned against the probed backends`);

  const tools = ['ip', 'nsenter'];
  if (ops.some((o) => o.op === 'process' && o.cpus.length > 0)) tools.push('taskset');
  // A capture brick's process.
  if (ops.some((o) => o.op === 'process' && o.argv[3] === CAPTURE_TAG)) tools.push('tcpdump');
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length > 0) problems.push({ code: 'tool-missing', message: `${missing.join(', ')} not found in PATH`, hint: `install iproute2 and util-linux${missing.includes('tcpdump') ? ', and tcpdump (capture bricks)' : ''}` });
  else checked.push(`tools: ${tools.join(', ')}`);

  // Device bricks: a tap needs the tun driver; a vtep's underlay must be on this host.
  if (ops.some((o) => o.op === 'tap')) {
    if (existsSync('/dev/net/tun')) checked.push('tap bricks: /dev/net/tun present');
    else problems.push({ code: 'tun-missing', message: 'tap and vhost bricks need /dev/net/tun, which this host lacks', hint: 'modprobe tun' });
  }
  for (const o of ops) {
    if (o.op !== 'vtep') continue;
    if (o.underlayDev !== undefined && !existsSync(join('/sys/class/net', o.underlayDev))) {
      problems.push({ code: 'underlay-missing', message: `vtep ${o.node}: its underlay device ${o.underlayDev} is not an interface of this host`, hint: 'set the vtep\'s dev to an interface of this host (`ip link`)' });
    }
    if (o.local !== undefined && ifaceOf(o.local) === undefined) {
      problems.push({ code: 'underlay-missing', message: `vtep ${o.node}: its local address ${o.local} is not configured on any interface of this host`, hint: 'set the vtep\'s local to one of this host\'s addresses, or drop it' });
    }
  }

  const cpus = onlineCpus();
  const pinned = ops.flatMap((o) => (o.op === 'process' ? o.cpus : []));
  const tooHigh = [...new Set(pinned.filter((c) => c >= cpus))].sort((a, b) => a - b);
  if (tooHigh.length > 0) {
    problems.push({ code: 'cpu-missing', message: `processes are pinned to cpu ${tooHigh.join(', ')}, but this host has ${cpus} (0-${cpus - 1})`, hint: 'fix `cores` of this phynode in [infrastructure.nodes]' });
  } else if (pinned.length > 0) checked.push(`cores: ${new Set(pinned).size} pinned, all present`);

  const vx = ops.filter((o): o is Extract<Op, { op: 'vxlan' }> => o.op === 'vxlan');
  let underlay: PreflightResult['underlay'];
  if (vx.length > 0) {
    const locals = [...new Set(vx.map((o) => o.local))];
    for (const local of locals) {
      const dev = ifaceOf(local);
      if (dev === undefined) {
        problems.push({ code: 'underlay-missing', message: `the underlay address ${local} is not configured on any interface of this host`, hint: 'set `underlay` of this phynode to one of its own addresses facing the other phynodes' });
        continue;
      }
      const mtu = mtuOf(dev) ?? 1500;
      underlay = { address: local, dev, mtu };
      checked.push(`underlay: ${local} on ${dev} (mtu ${mtu})`);
    }
    const named = [...new Set(vx.map((o) => o.underlayDev).filter((d): d is string => d !== undefined))];
    for (const d of named) if (mtuOf(d) === undefined) problems.push({ code: 'underlay-dev-missing', message: `the underlay interface ${d} does not exist here`, hint: 'fix `iface` of this phynode' });

    const innerMtu = Math.max(...vx.map((o) => o.mtu));
    for (const peer of [...new Set(p.peers)].sort()) {
      const local = vx.find((o) => o.remote === peer)?.local ?? locals[0] ?? '';
      const r = await run(['ip', '-j', 'route', 'get', peer, ...(ifaceOf(local) ? ['from', local] : [])]);
      if (r.code !== 0) {
        problems.push({ code: 'underlay-unreachable', message: `no route to the underlay address ${peer} of another phynode: ${r.stderr.trim()}`, hint: 'the phynodes must reach each other\'s underlay addresses (UDP to the VXLAN port)' });
        continue;
      }
      const route = (JSON.parse(r.stdout) as { dev?: string; metrics?: { mtu?: number }[] }[])[0] ?? {};
      const dev = route.dev ?? '?';
      const pathMtu = route.metrics?.find((m) => m.mtu !== undefined)?.mtu ?? mtuOf(dev) ?? 1500;
      const need = innerMtu + vxlanOverhead(peer);
      if (pathMtu < need) {
        problems.push({
          code: 'underlay-mtu',
          message: `VXLAN to ${peer} leaves through ${dev} with MTU ${pathMtu}, but the cross-host links' MTU ${innerMtu} needs ${need} (${vxlanOverhead(peer)} bytes of VXLAN overhead): full-size packets would be dropped`,
          hint: `set mtu = ${pathMtu - vxlanOverhead(peer)} on the links between phynodes, or raise the underlay MTU to ${need}`,
        });
      } else checked.push(`route to ${peer}: via ${dev}, mtu ${pathMtu} ≥ ${need}`);
    }
  }
  return { caps, problems, checked, cpus, vnis: readVnis(), ...(underlay ? { underlay } : {}) };
}
