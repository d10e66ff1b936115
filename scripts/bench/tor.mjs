#!/usr/bin/env node
// Bootstrap time of a private Tor network (3 authorities, 8 relays of which 2 exits, 2
// clients, an onion service: the e2e test's network) on Abilene's latencies (Topology Zoo,
// 11 routers, one-way latencies from 0.6 to 9 ms per link plus 1 ms per access link), beside
// the same network on a star with no latency, run in the same process tree. Figures and
// ratios, never timed assertions.
//
//   npm run build && flock /tmp/dune-kernel.lock npm run bench:tor     (root; Debian's tor, curl)
//   options: --rounds N (default 1; the variants alternate)
//
// Per run: `dune up` wall time; bootstrap = from the end of `dune up` until `dune tor wait`'s
// conditions hold (every client at 100 % with exits and enough directory information, the
// onion descriptor stored); then one page fetched by client0 through an exit and one through
// the onion service, timed. Authorities vote every 20 s and the first consensus waits for a
// 20 s boundary, so a bootstrap time moves in steps of up to 20 s between runs: compare
// several rounds, not one figure.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, CLI, requireBuilt } from './lib/dune.mjs';
import { loadavg, namespaces } from './lib/proc.mjs';
import { ratio, s2, table } from './lib/report.mjs';

const argv = process.argv.slice(2);
const ROUNDS = Number(argv.includes('--rounds') ? argv[argv.indexOf('--rounds') + 1] : 1);
const ABILENE = join(ROOT, 'topologies/zoo/Abilene.graphml');

if (process.getuid?.() !== 0) {
  console.error('bench:tor builds labs: run it as root (under flock /tmp/dune-kernel.lock)');
  process.exit(1);
}
for (const tool of ['tor', 'tor-gencert', 'curl']) {
  if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0) {
    console.error(`bench:tor needs ${tool}: run scripts/setup`);
    process.exit(1);
  }
}
requireBuilt();
const { torInit, torWait } = await import(join(ROOT, 'packages/tor/dist/index.js'));

function dune(args, timeoutMs = 120_000) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

function duneOk(args, timeoutMs) {
  const r = dune(args, timeoutMs);
  if (r.code !== 0) throw new Error(`dune ${args.join(' ')} exited ${r.code}: ${r.err.slice(0, 800)}`);
  return r;
}

/** curl through client0's SocksPort until the page comes back (up to `tries`); ms of the successful fetch. */
function fetchMs(lab, url, page, tries = 6) {
  for (let i = 0; i < tries; i++) {
    const t0 = performance.now();
    const r = dune(['exec', '--lab', lab, 'client0', '--', 'curl', '-sS', '-m', '30', '--socks5-hostname', '127.0.0.1:9050', url], 45_000);
    const ms = performance.now() - t0;
    if (r.code === 0 && r.out === page) return ms;
    spawnSync('sleep', ['3']);
  }
  return undefined;
}

async function once(variant, round, tmp) {
  const lab = `benchtor${variant.key}`;
  const dir = join(tmp, `${variant.key}${round}`);
  await torInit({ dir, onion: true, authorities: 3, relays: 8, exits: 2, clients: 2, lab, ...variant.init });
  const t0 = performance.now();
  let result;
  try {
    duneOk(['up', join(dir, 'tor.toml')], 180_000);
    const upMs = performance.now() - t0;
    const t1 = performance.now();
    const w = await torWait(dir, { timeoutMs: 300_000 });
    const bootMs = performance.now() - t1;
    const page = readFileSync(join(dir, 'web', 'index.html'), 'utf8');
    const net = JSON.parse(readFileSync(join(dir, 'network.json'), 'utf8'));
    const exitMs = fetchMs(lab, net.web.url, page);
    const onionMs = w.onion ? fetchMs(lab, `http://${w.onion}/`, page) : undefined;
    result = { upMs, bootMs, exitMs, onionMs };
  } finally {
    const d = dune(['down', '--lab', lab]);
    if (d.code !== 0) console.error(`dune down --lab ${lab}: ${d.err}`);
    rmSync(dir, { recursive: true, force: true });
  }
  const left = namespaces(`dune.${lab}.`);
  if (left.length) throw new Error(`lab ${lab} left ${left.length} namespaces behind`);
  return result;
}

const VARIANTS = [
  { key: 'flat', name: 'star, no latency (baseline)', init: { latency: '0' } },
  { key: 'abilene', name: 'Abilene latencies', init: { topology: ABILENE } },
];

const tmp = mkdtempSync(join(tmpdir(), 'dune-bench-tor-'));
console.log(`Tor network: 3 authorities, 8 relays (2 exits), 2 clients, an onion service, web; ${ROUNDS} round(s); load average ${loadavg().toFixed(2)}`);
const results = Object.fromEntries(VARIANTS.map((v) => [v.key, []]));
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of VARIANTS) {
      const r = await once(v, round, tmp);
      results[v.key].push(r);
      console.log(`  round ${round + 1} ${v.name}: up ${s2(r.upMs)}, bootstrap ${s2(r.bootMs)}, fetch via exit ${s2(r.exitMs)}, via onion ${s2(r.onionMs)}`);
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const median = (xs) => {
  const s = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};
const m = (key, f) => median(results[key].map((r) => r[f]));
console.log('');
table(
  ['median', 'dune up', 'bootstrap', 'fetch via exit', 'fetch via onion'],
  VARIANTS.map((v) => [v.name, s2(m(v.key, 'upMs')), s2(m(v.key, 'bootMs')), s2(m(v.key, 'exitMs')), s2(m(v.key, 'onionMs'))]),
);
console.log(`\nAbilene against no latency: bootstrap ${ratio(m('flat', 'bootMs'), m('abilene', 'bootMs'))}, fetch via exit ${ratio(m('flat', 'exitMs'), m('abilene', 'exitMs'))}, via onion ${ratio(m('flat', 'onionMs'), m('abilene', 'onionMs'))}`);
