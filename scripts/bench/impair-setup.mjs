#!/usr/bin/env node
// What the userspace engine's setup costs per namespace (issue 15, "setup cost"), in parts:
// N namespaces with two veth pairs each (Kdl: 754 namespaces, 1,798 delayed directions),
// then, timed separately:
//   - `ip netns add` + two links + up, one `ip -batch` per namespace: a floor for what a lab's
//     up does per node anyway;
//   - the engine's `sync` as `dune up` calls it: a NETLINK_NETFILTER socket per namespace,
//     a queue bound per direction, and the namespace's rules written (iptables-restore and
//     ip6tables-restore, via nsenter);
//   - for scale, what 2 processes per namespace cost alone (`nsenter … true` twice): the old
//     way of writing the rules (iptables-restore and ip6tables-restore, each started from here).
//
//   npm run build && flock /tmp/dune-kernel.lock node scripts/bench/impair-setup.mjs [N]
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const N = Number(process.argv[2] ?? 150);
const { LabEngine } = await import(fileURLToPath(new URL('../../packages/impair/dist/index.js', import.meta.url)));
const prefix = `dunebench-isetup${process.pid}-`;
const names = Array.from({ length: N }, (_, i) => `${prefix}${i}`);
const LIMIT = 6;

async function pool(items, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(LIMIT, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

function run(argv, input) {
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0], argv.slice(1), { stdio: [input ? 'pipe' : 'ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(' ')}: ${err}`))));
    if (input) c.stdin.end(input);
  });
}

const cpu = () => {
  const u = process.resourceUsage();
  return (u.userCPUTime + u.systemCPUTime) / 1e6;
};
async function timed(what, f) {
  const t0 = performance.now();
  await f();
  const ms = performance.now() - t0;
  console.log(`  ${what.padEnd(62)} ${(ms / 1000).toFixed(2).padStart(6)} s   ${(ms / N).toFixed(1).padStart(6)} ms per namespace`);
  return ms;
}

const cleanup = () => {
  for (const n of names) {
    try {
      execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
    } catch {
      // not made
    }
  }
};
process.on('SIGINT', () => (cleanup(), process.exit(130)));
console.log(`engine setup per namespace: ${N} namespaces, 2 delayed interfaces each, ${LIMIT} at a time (load ${(await import('node:os')).loadavg()[0].toFixed(2)})`);
void cpu;
try {
  const base = await timed('namespaces + 2 veth pairs each (ip netns add; ip -batch)', () => pool(names, async (n) => {
    await run(['ip', 'netns', 'add', n]);
    await run(['ip', '-n', n, '-batch', '-'], 'link add eth0 type veth peer name p0\nlink add eth1 type veth peer name p1\nlink set eth0 up\nlink set eth1 up\nlink set p0 up\nlink set p1 up\nlink set lo up\n');
  }));
  const eng = new LabEngine({ lab: `bisetup${process.pid}` });
  const specs = names.flatMap((ns) => ['eth0', 'eth1'].map((dev) => ({ ns, dev, params: { delay: '1ms' } })));
  let res;
  const sync = await timed('engine sync: sockets, queues, rules (as dune up)', async () => {
    res = await eng.sync(specs);
  });
  console.log(`    (${res.namespaces} namespaces, ${res.added} pipes, rules written in ${res.rulesWritten})`);
  const procs = await timed('  for scale: 2 processes per namespace (nsenter … true), the old way', () => pool(names, async (n) => {
    await run(['nsenter', `--net=/run/netns/${n}`, '--', 'true']);
    await run(['nsenter', `--net=/run/netns/${n}`, '--', 'true']);
  }));
  await eng.close({ keepRules: true }); // the namespaces go, and their rules with them
  console.log(`\n  engine setup / namespaces' own setup: ${(sync / base).toFixed(2)}; 2 processes per namespace alone: ${(procs / sync).toFixed(2)} × the engine's whole setup`);
} finally {
  cleanup();
}
