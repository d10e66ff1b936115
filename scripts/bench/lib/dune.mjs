// The `dune` command as a user runs it: a child process per command, timed from spawn to exit.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ipBatch, namespaces, run, sleep } from './proc.mjs';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = `${ROOT}packages/cli/dist/bin/dune.js`;

export function requireBuilt() {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
}

function dune(args, { allowFail = false, nodeArgs = [] } = {}) {
  return run(process.execPath, [...nodeArgs, CLI, ...args], { allowFail });
}

/** `dune plan FILE --lab LAB --json`, parsed. */
export function plan(file, lab) {
  return JSON.parse(dune(['plan', file, '--lab', lab, '--json']).stdout);
}

/**
 * `dune up FILE --lab LAB --json`: wall and CPU time of the whole command, what it reports
 * created, and when each of its steps ended (from its event stream), for a breakdown.
 * `profileDir`: run it under `node --cpu-prof` writing there.
 */
export function up(file, lab, { profileDir } = {}) {
  const t0 = Date.now();
  const r = dune(['up', file, '--lab', lab, '--json'], { nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] });
  const events = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const done = events.find((e) => e.type === 'done');
  if (!done) throw new Error(`dune up printed no result: ${r.stderr.slice(0, 500)}`);
  const at = (e) => Date.parse(e.t) - t0;
  const steps = [];
  let last = 0;
  const step = (name, t) => {
    if (t === undefined) return;
    steps.push({ name, ms: t - last });
    last = t;
  };
  const phase = (p) => events.find((e) => e.type === 'phase' && e.phase === p);
  const progress = (k) => events.filter((e) => e.type === 'progress' && e.kind === k).pop();
  step('start, read, compile, journal', phase('probe') && at(phase('probe')));
  step('probe kernel, write plan', phase('network') && at(phase('network')));
  step('namespaces', progress('netns') && at(progress('netns')));
  step('veth pairs', progress('veth') && at(progress('veth')));
  step('sysctls', progress('sysctl') && at(progress('sysctl')));
  const perNs = events.filter((e) => e.type === 'progress' && ['up', 'addr', 'route', 'routes', 'enslave', 'impair'].includes(e.kind)).pop();
  step('aliases, ups, addresses, routes', perNs && at(perNs));
  step('journal, exit', r.wallMs);
  return { wallMs: r.wallMs, cpuMs: r.cpuMs, created: done.created, agentMs: done.elapsedMs, steps };
}

/** `dune down --lab LAB --json`. */
export function down(lab) {
  const r = dune(['down', '--lab', lab, '--json']);
  const res = JSON.parse(r.stdout.trim().split('\n').pop()).labs?.[0] ?? {};
  return { wallMs: r.wallMs, cpuMs: r.cpuMs, namespaces: res.namespaces, agentMs: res.elapsedMs };
}

/**
 * Removes the lab if it exists (cleanup, also after a failure); never throws. `dune down` is
 * retried for a while (the checkout is shared: its build may be half-done for a moment), and
 * if the lab's namespaces are still there after that, they are deleted with ip.
 */
export async function downQuietly(lab) {
  const left = () => namespaces(`dune.${lab}.`);
  for (let i = 0; i < 4; i++) {
    try {
      dune(['down', '--lab', lab], { allowFail: true });
    } catch {
      // cleanup only
    }
    if (left().length === 0) return;
    await sleep(15_000);
  }
  const rest = left();
  console.log(`  cleanup: \`dune down --lab ${lab}\` keeps failing; deleting its ${rest.length} namespaces with ip (its journal stays in /run/dune/${lab})`);
  try {
    ipBatch(rest.map((n) => `netns del ${n}`));
  } catch (e) {
    console.log(`  cleanup failed: ${e instanceof Error ? e.message : e}`);
  }
}
