// Checks that a lab (dune's or a baseline's) really is in the kernel: every namespace, and
// in a sample of them every link up, alias, global address, route and sysctl of the plan.
// So no figure can be the time of a no-op.
import { spawnSync } from 'node:child_process';
import { namespaces } from './proc.mjs';

const ip = (args) => {
  const r = spawnSync('ip', args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
};
const lines = (s) => s.split('\n').filter(Boolean);

/**
 * `ops`: the plan's ops (namespace names as created). `prefix`: the namespaces' common
 * prefix. Returns { ok, summary, problems }.
 */
export function verifyLab(ops, prefix, { sample = 8, aliases = true } = {}) {
  const problems = [];
  const want = ops.filter((o) => o.op === 'netns').map((o) => o.ns);
  const have = new Set(namespaces(prefix));
  const missing = want.filter((n) => !have.has(n));
  if (missing.length) problems.push(`${missing.length} of ${want.length} namespaces missing (e.g. ${missing[0]})`);
  const picked = [];
  for (let i = 0; i < sample && want.length; i++) picked.push(want[Math.floor((i * want.length) / sample)]);
  const totals = { up: 0, alias: 0, addr: 0, route: 0, sysctl: 0 };
  for (const ns of new Set(picked)) {
    if (!have.has(ns)) continue;
    const mine = ops.filter((o) => o.ns === ns || (o.op === 'veth' && o.peerNs === ns));
    const exp = {
      up: mine.filter((o) => o.op === 'up' && o.ns === ns).length,
      alias: aliases ? mine.filter((o) => o.op === 'netns' || o.op === 'bridge').length + mine.filter((o) => o.op === 'veth').reduce((s, o) => s + Number(o.ns === ns) + Number(o.peerNs === ns), 0) : 0,
      addr: mine.filter((o) => o.op === 'addr').length,
      route: mine.filter((o) => o.op === 'route').length,
    };
    const links = lines(ip(['-n', ns, '-o', '-d', 'link', 'show']));
    const got = {
      up: links.filter((l) => /<([^>]*,)?UP(,[^>]*)?>/.test(l)).length,
      alias: links.filter((l) => / alias dune:/.test(l)).length,
      addr: lines(ip(['-n', ns, '-o', 'addr', 'show', 'scope', 'global'])).length,
      route: exp.route ? lines(ip(['-n', ns, 'route', 'show', 'proto', '68'])).length + lines(ip(['-n', ns, '-6', 'route', 'show', 'proto', '68'])).length : 0,
    };
    for (const k of Object.keys(exp)) {
      totals[k] += got[k];
      if (got[k] !== exp[k]) problems.push(`${ns}: ${got[k]} ${k} in the kernel, plan says ${exp[k]}`);
    }
    const sys = mine.filter((o) => o.op === 'sysctl');
    if (sys.length) {
      const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-n', ...sys.map((o) => o.key)], { encoding: 'utf8' });
      const vals = lines(r.stdout);
      sys.forEach((o, i) => {
        if (vals[i] === o.value) totals.sysctl++;
        else problems.push(`${ns}: sysctl ${o.key} = ${vals[i]}, plan says ${o.value}`);
      });
    }
  }
  const summary = `${want.length - missing.length}/${want.length} namespaces present; in ${new Set(picked).size} sampled: ${totals.up} links up, ${totals.alias} aliases, ${totals.addr} global addresses, ${totals.route} routes (proto 68), ${totals.sysctl} sysctls${problems.length ? '' : ', all as planned'}`;
  return { ok: problems.length === 0, summary, problems };
}
