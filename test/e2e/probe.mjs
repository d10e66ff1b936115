// Runs inside one lab node, started by the test as
//   dune exec --lab LAB NODE -- node probe.mjs [--ping-only] 4:10.0.0.2 6:fd7a:d0::2 ...
// and for every target runs `ping -c1 -W1` and `traceroute -n -q1 -w1` (argv only, a few
// at a time), then prints one JSON array of the raw results for the test to judge.
// One `dune exec` per node instead of one per probe: the CLI's start-up (~0.3 s) times
// 440 probes would dominate the test on a 2-core machine.
import { spawn } from 'node:child_process';

const PARALLEL = 4;

function run(argv) {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', (e) => resolve({ code: -1, out: String(e) }));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const args = process.argv.slice(2);
const pingOnly = args[0] === '--ping-only';
const targets = args.slice(pingOnly ? 1 : 0).map((t) => {
  const i = t.indexOf(':');
  return { family: t.slice(0, i), addr: t.slice(i + 1) };
});
const results = new Array(targets.length);
let next = 0;
async function worker() {
  while (next < targets.length) {
    const i = next++;
    const { family, addr } = targets[i];
    const ping = await run(['ping', `-${family}`, '-c1', '-W1', addr]);
    const trace = pingOnly ? { code: 0, out: '' } : await run(['traceroute', `-${family}`, '-n', '-q1', '-w1', addr]);
    results[i] = { family: Number(family), addr, ping, trace };
  }
}
await Promise.all(Array.from({ length: PARALLEL }, worker));
process.stdout.write(JSON.stringify(results));
