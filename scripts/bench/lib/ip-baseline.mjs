// The baselines: a plan's kernel ops (the plan JSON's ops, or the same shape) done with
// iproute2, either one `ip` command per operation or with `ip -batch`. Same namespaces,
// veth pairs created straight into their namespaces, aliases, addresses, links up,
// sysctls and routes as the plan says; namespaces are renamed (see `renameNs`) so a
// baseline never collides with a dune lab.
import { ipBatch, run } from './proc.mjs';

const KINDS = new Set(['netns', 'veth', 'addr', 'up', 'sysctl', 'route']);

/** The plan's ops with every namespace name mapped by `f` (aliases are kept as they are). */
export function renameNs(ops, f) {
  return ops.map((o) => {
    if (o.op === 'file' || !('ns' in o)) return o;
    const r = { ...o, ns: f(o.ns) };
    if (o.op === 'veth') r.peerNs = f(o.peerNs);
    return r;
  });
}

function check(ops) {
  const bad = [...new Set(ops.filter((o) => !KINDS.has(o.op)).map((o) => o.op))];
  if (bad.length) throw new Error(`the ip baseline does not do ${bad.join(', ')} ops`);
}

const v6 = (cidr) => cidr.includes(':');
const addrArgs = (o) => ['addr', 'add', o.cidr, 'dev', o.dev, ...(v6(o.cidr) ? ['nodad'] : [])];
const routeArgs = (o) => [
  'route', 'add', o.dst, ...(o.via ? ['via', o.via] : []), 'dev', o.dev,
  ...(o.metric !== undefined ? ['metric', String(o.metric)] : []), ...(o.src ? ['src', o.src] : []), 'proto', '68',
];
const vethArgs = (o, upA) => [
  'link', 'add', o.name, 'netns', o.ns, ...(upA ? ['up'] : []), ...(o.mtu ? ['mtu', String(o.mtu)] : []), ...(o.mac ? ['address', o.mac] : []),
  'type', 'veth', 'peer', 'name', o.peerName, 'netns', o.peerNs, ...(o.mtu ? ['mtu', String(o.mtu)] : []), ...(o.peerMac ? ['address', o.peerMac] : []),
];

/**
 * Like dune, which turns off IPv6 duplicate address detection in each new namespace when the
 * plan has IPv6 (one write per namespace): the baseline adds the same write to its sysctls
 * (and `nodad` to its IPv6 addresses).
 */
function initSysctls(ops) {
  return ops.some((o) => o.op === 'addr' && v6(o.cidr)) ? [['net.ipv6.conf.default.accept_dad', '0']] : [];
}

/**
 * One `ip` process per operation, in plan order. An op that is more than one ip command
 * costs them all: netns = `ip netns add` + the lo alias; veth = `ip link add` + one alias per
 * end (`ip link add … alias` is accepted and ignored, the kernel sets aliases on existing
 * links only); sysctl = `ip netns exec NS sysctl -w`. Returns wall/CPU ms per op kind.
 */
export function runPerOp(ops, { aliases = true } = {}) {
  check(ops);
  const byKind = {};
  let commands = 0;
  const init = initSysctls(ops);
  const ip = (kind, args) => {
    const r = run('ip', args);
    const k = (byKind[kind] ??= { ops: 0, commands: 0, wallMs: 0, cpuMs: 0 });
    k.commands++;
    k.wallMs += r.wallMs;
    k.cpuMs += r.cpuMs;
    commands++;
  };
  for (const o of ops) {
    switch (o.op) {
      case 'netns':
        ip('netns', ['netns', 'add', o.ns]);
        if (aliases) ip('netns', ['-n', o.ns, 'link', 'set', 'lo', 'alias', o.alias]);
        for (const [k, v] of init) ip('netns', ['netns', 'exec', o.ns, 'sysctl', '-qw', `${k}=${v}`]);
        break;
      case 'veth':
        ip('veth', vethArgs(o, false));
        if (aliases) {
          ip('veth', ['-n', o.ns, 'link', 'set', o.name, 'alias', o.alias]);
          ip('veth', ['-n', o.peerNs, 'link', 'set', o.peerName, 'alias', o.peerAlias]);
        }
        break;
      case 'addr':
        ip('addr', ['-n', o.ns, ...addrArgs(o)]);
        break;
      case 'up':
        ip('up', ['-n', o.ns, 'link', 'set', o.dev, 'up']);
        break;
      case 'sysctl':
        ip('sysctl', ['netns', 'exec', o.ns, 'sysctl', '-qw', `${o.key}=${o.value}`]);
        break;
      case 'route':
        ip('route', ['-n', o.ns, ...routeArgs(o)]);
        break;
    }
    byKind[o.op].ops++;
  }
  const sum = (f) => Object.values(byKind).reduce((s, k) => s + k[f], 0);
  return { wallMs: sum('wallMs'), cpuMs: sum('cpuMs'), commands, byKind };
}

/**
 * As few ip processes as ip allows:
 *   1. one `ip -batch` on the host: every `netns add`, then every `link add` (veth pairs
 *      straight into their namespaces, the first end up at creation when the plan brings it
 *      up; a peer end cannot be: the kernel answers ENOTCONN);
 *   2. one `ip -n NS -batch` per namespace, in plan order: aliases (with `up` on the same
 *      line where both apply), the remaining ups, addresses, routes (a batch line cannot
 *      switch namespace, and aliases can only be set on existing links);
 *   3. one `ip -batch` on the host with a `netns exec NS sysctl -qw k=v …` line per namespace.
 * Returns wall/CPU ms per step.
 */
export function runBatched(ops, { aliases = true } = {}) {
  check(ops);
  const upWanted = new Set(ops.filter((o) => o.op === 'up').map((o) => `${o.ns}\0${o.dev}`));
  const upDone = new Set();
  const host = [];
  const perNs = new Map();
  const nsLines = (ns) => perNs.get(ns) ?? perNs.set(ns, []).get(ns);
  const sysctls = new Map();
  const init = initSysctls(ops);
  const setLink = (ns, dev, alias) => {
    const up = upWanted.has(`${ns}\0${dev}`) && !upDone.has(`${ns}\0${dev}`);
    if (up) upDone.add(`${ns}\0${dev}`);
    if (up || alias) nsLines(ns).push(`link set ${dev}${up ? ' up' : ''}${alias ? ` alias ${alias}` : ''}`);
  };
  for (const o of ops) if (o.op === 'netns') host.push(`netns add ${o.ns}`);
  for (const o of ops) {
    if (o.op !== 'veth') continue;
    const upA = upWanted.has(`${o.ns}\0${o.name}`);
    if (upA) upDone.add(`${o.ns}\0${o.name}`);
    host.push(vethArgs(o, upA).join(' '));
  }
  for (const o of ops) {
    switch (o.op) {
      case 'netns':
        if (aliases) setLink(o.ns, 'lo', o.alias);
        if (init.length) sysctls.set(o.ns, init.map(([k, v]) => `${k}=${v}`));
        break;
      case 'veth':
        if (aliases) {
          nsLines(o.ns).push(`link set ${o.name} alias ${o.alias}`);
          setLink(o.peerNs, o.peerName, o.peerAlias);
        }
        break;
      case 'addr':
        nsLines(o.ns).push(addrArgs(o).join(' '));
        break;
      case 'up':
        setLink(o.ns, o.dev, undefined);
        break;
      case 'route':
        nsLines(o.ns).push(routeArgs(o).join(' '));
        break;
      case 'sysctl':
        (sysctls.get(o.ns) ?? sysctls.set(o.ns, []).get(o.ns)).push(`${o.key}=${o.value}`);
        break;
    }
  }
  const steps = {};
  const t = (name, r) => {
    steps[name] = { wallMs: (steps[name]?.wallMs ?? 0) + r.wallMs, cpuMs: (steps[name]?.cpuMs ?? 0) + r.cpuMs };
  };
  t('namespaces + links', ipBatch(host));
  for (const [ns, lines] of perNs) t(`ip -n NS -batch ×${perNs.size}`, ipBatch(lines, ns));
  if (sysctls.size) t(`sysctls (${sysctls.size} netns exec)`, ipBatch([...sysctls].map(([ns, kv]) => `netns exec ${ns} sysctl -qw ${kv.join(' ')}`)));
  const sum = (f) => Object.values(steps).reduce((s, k) => s + k[f], 0);
  return { wallMs: sum('wallMs'), cpuMs: sum('cpuMs'), processes: 1 + perNs.size + (sysctls.size ? 1 : 0), steps };
}

/** Teardown baselines: `ip netns del` one process each, or all in one `ip -batch`. */
export function deletePerNs(names) {
  let wallMs = 0;
  let cpuMs = 0;
  for (const n of names) {
    const r = run('ip', ['netns', 'del', n]);
    wallMs += r.wallMs;
    cpuMs += r.cpuMs;
  }
  return { wallMs, cpuMs };
}

export function deleteBatch(names) {
  return ipBatch(names.map((n) => `netns del ${n}`));
}

/** What `ops` create, counted: the line every part prints. */
export function describeOps(ops) {
  const c = {};
  for (const o of ops) c[o.op] = (c[o.op] ?? 0) + 1;
  const aliases = ops.reduce((s, o) => s + (o.op === 'netns' ? 1 : o.op === 'veth' ? 2 : 0), 0);
  const parts = [];
  if (c.netns) parts.push(`${c.netns} namespaces`);
  if (c.veth) parts.push(`${c.veth} veth pairs (${2 * c.veth} ends)`);
  if (aliases) parts.push(`${aliases} interface aliases (lo + every end)`);
  if (c.addr) parts.push(`${c.addr} addresses (${ops.filter((o) => o.op === 'addr' && !v6(o.cidr)).length} IPv4, ${ops.filter((o) => o.op === 'addr' && v6(o.cidr)).length} IPv6)`);
  if (c.up) parts.push(`${c.up} links set up (lo included)`);
  if (c.sysctl) parts.push(`${c.sysctl} sysctls`);
  if (c.route) parts.push(`${c.route} routes`);
  return parts.join(', ');
}
