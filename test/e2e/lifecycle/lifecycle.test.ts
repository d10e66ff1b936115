/**
 * Issue 3, a lab's whole life with the built CLI: pinned processes on the planned cores with
 * their environment rendered, templates rendered to files, `exec` commands run; then `dune
 * exec` and `dune capture` inside it; then `dune down`, after which nothing of it is left.
 *
 * Two labs, because the machine has two cores: e2elife reserves both for one process
 * (`{{core_1}}` in its environment), e2epin gives each of two nodes one core, so that a
 * process's affinity is not just every core there is.
 */
import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dune, duneOk, duneSpawn, downAndCheck, isRoot, labNamespaces, leftovers, planJson, removeTemp, requireBuilt, ROOT_REASON, run, sh, status, tempDir, waitFor,
  type PlanJson, type Status,
} from '../helpers.js';

const LAB = 'e2elife';
const PIN = 'e2epin';

function lifeTopology(out: string): string {
  return `# written by test/e2e/lifecycle/lifecycle.test.ts
[infrastructure.nodes.local]
cores = [[0, 1]]

[topology]
routing_weight = "hops"
links = [ { endpoints = ["p:eth0", "q:eth0"] } ]

[topology.defaults.nodes.templates]
"node.tmpl" = "${out}/{{node}}.conf"
"extra.tmpl" = "${out}/made/{{node}}/extra.conf"

[topology.defaults.nodes]
exec = ["touch ${out}/{{node}}.ran"]

[topology.nodes.p]
rid = "0.0.0.1"
[[topology.nodes.p.pinned]]
cmd = "sleep 1000"
environ.X = "{{core_1}}"
environ.WHO = "{{node}} of {{lab}}"

[topology.nodes.q]
rid = "0.0.0.2"
`;
}

const TEMPLATE = `node={{ node }} lab={{ lab }} rid={{ ctx.rid }}
eth0={{ ifaces.eth0.addrs | join(" ") }} peer={{ ifaces.eth0.peer }}
lo={{ loopback.v4 }} {{ loopback.v6 }}
`;

const PIN_TOPOLOGY = `# written by test/e2e/lifecycle/lifecycle.test.ts
[infrastructure.nodes.local]
cores = [[0, 1]]

[topology]
routing_weight = "hops"
links = [ { endpoints = ["a:eth0", "b:eth0"] } ]

[[topology.nodes.a.pinned]]
cmd = "sleep 1000"

[[topology.nodes.b.pinned]]
cmd = "sleep 1000"
`;

/** "0-1,3" → [0, 1, 3] */
function cpuList(text: string): number[] {
  return text
    .trim()
    .split(',')
    .flatMap((r) => {
      const [a, b] = r.split('-').map(Number);
      return b === undefined ? [a as number] : Array.from({ length: (b as number) - (a as number) + 1 }, (_, i) => (a as number) + i);
    });
}

function procStatus(pid: number, key: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}:`));
  return (line ?? '').slice(key.length + 1).trim();
}

function procEnviron(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

/** The node's own addresses on a device, as `ip` shows them (link-local left out). */
async function kernelAddrs(lab: string, node: string, dev: string): Promise<string[]> {
  const r = await duneOk(['exec', '--lab', lab, node, '--', 'ip', '-j', 'addr', 'show', 'dev', dev]);
  const j = JSON.parse(r.stdout) as { addr_info: { local: string; prefixlen: number; scope: string }[] }[];
  return (j[0]?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);
}

describe.skipIf(!isRoot)(`e2e: a lab's life — processes, templates, exec, capture, down${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let tmp = '';
  let out = '';
  let plan: PlanJson;
  let pinPlan: PlanJson;
  let st: Status;
  let pinSt: Status;
  let upText = '';
  let upJson = '';
  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', LAB]);
    await dune(['down', '--lab', PIN]);
    tmp = tempDir('life');
    out = join(tmp, 'out');
    mkdirSync(out);
    // A file at q's template destination exists before the lab: down must put it back.
    writeFileSync(join(out, 'q.conf'), 'what was here before\n');
    writeFileSync(join(tmp, 'node.tmpl'), TEMPLATE);
    // Its destination directories do not exist: the lab creates them, and down removes them.
    writeFileSync(join(tmp, 'extra.tmpl'), '{{ node }} has {{ cores | length }} cores\n');
    writeFileSync(join(tmp, 'life.toml'), lifeTopology(out));
    writeFileSync(join(tmp, 'pin.toml'), PIN_TOPOLOGY);
    upText = (await duneOk(['up', join(tmp, 'life.toml'), '--lab', LAB])).stdout;
    upJson = (await duneOk(['up', join(tmp, 'pin.toml'), '--lab', PIN, '--json'])).stdout;
    plan = await planJson([join(tmp, 'life.toml'), '--lab', LAB]);
    pinPlan = await planJson([join(tmp, 'pin.toml'), '--lab', PIN]);
    st = await status(LAB);
    pinSt = await status(PIN);
  });
  afterAll(async () => {
    const left = [...(await downAndCheck(LAB)), ...(await downAndCheck(PIN))];
    removeTemp(tmp);
    expect(left).toEqual([]);
  });

  it('up says where its time went, step by step; the steps add up to the whole', () => {
    // Printed: the steps of 10 ms or more, in the order they ran.
    expect(upText).toMatch(/^ {2}time: [a-z +]+ \d+\.\d\ds(, [a-z +]+ \d+\.\d\ds)*$/m);
    const done = JSON.parse(upJson.split('\n').filter((l) => l.startsWith('{"type":"done"')).at(-1) ?? '{}') as { elapsedMs: number; stepsMs: Record<string, number> };
    expect(Object.keys(done.stepsMs)).toEqual(expect.arrayContaining(['prepare', 'probe', 'netns']));
    // The kinds one apply stage applies together share its time: veth's link stage, addr+up+route's socket stage.
    expect(Object.keys(done.stepsMs).some((k) => /^veth\b/.test(k))).toBe(true);
    expect(Object.keys(done.stepsMs).find((k) => /\baddr\b/.test(k))).toMatch(/^addr(\+[a-z]+)+$/);
    const sum = Object.values(done.stepsMs).reduce((a, b) => a + b, 0);
    // Each step is rounded to the ms.
    expect(Math.abs(sum - done.elapsedMs)).toBeLessThan(Object.keys(done.stepsMs).length + 5);
  });

  it('pinned processes run in their node on the planned cores, with {{core_1}} and {{node}} rendered in their environment', () => {
    // p's process reserves core_0 and core_1: both cores of [[0, 1]].
    const pCpus = plan.nodes.find((n) => n.node === 'p')?.cpus;
    expect(pCpus?.slice().sort()).toEqual([0, 1]);
    expect(st.nodes.find((n) => n.node === 'p')?.cpus).toEqual(pCpus);
    expect(st.processes).toHaveLength(1);
    const proc = st.processes[0];
    // As DUNE runs it: through sh -c, which execs a plain command, so the pid is sleep's own.
    expect(proc).toMatchObject({ name: 'p.0', node: 'p', alive: true, argv: ['sh', '-c', 'exec sleep 1000'], cpus: pCpus });
    const pid = proc?.pid as number;
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('sleep\x001000\x00');
    expect(cpuList(procStatus(pid, 'Cpus_allowed_list'))).toEqual(pCpus?.slice().sort());
    // Its network namespace is node p's.
    expect(sh(['readlink', `/proc/${pid}/ns/net`]).out.trim()).toBe(`net:[${statSync(`/run/netns/dune.${LAB}.p`).ino}]`);
    const env = procEnviron(pid);
    expect(env['X']).toBe(String(pCpus?.[1]));
    expect(env['WHO']).toBe(`p of ${LAB}`);

    // One core each: the affinity is a real restriction, not every core of the machine.
    const a = pinPlan.nodes.find((n) => n.node === 'a')?.cpus;
    const b = pinPlan.nodes.find((n) => n.node === 'b')?.cpus;
    expect(a).toHaveLength(1);
    expect(b).toHaveLength(1);
    expect([...(a ?? []), ...(b ?? [])].sort()).toEqual([0, 1]);
    for (const node of ['a', 'b']) {
      const p = pinSt.processes.find((x) => x.node === node);
      const want = pinPlan.nodes.find((n) => n.node === node)?.cpus;
      expect(p?.alive).toBe(true);
      expect(cpuList(procStatus(p?.pid as number, 'Cpus_allowed_list'))).toEqual(want);
    }
  });

  it('templates are rendered (node, lab, ctx, ifaces.eth0.addrs, peer, loopback) and exec commands ran', async () => {
    for (const [node, peer, rid] of [['p', 'q:eth0', '0.0.0.1'], ['q', 'p:eth0', '0.0.0.2']] as const) {
      const n = st.nodes.find((x) => x.node === node);
      // The addresses the template saw are the ones the kernel has.
      const addrs = await kernelAddrs(LAB, node, 'eth0');
      expect(addrs).toHaveLength(2);
      expect(readFileSync(join(out, `${node}.conf`), 'utf8')).toBe(`node=${node} lab=${LAB} rid=${rid}\neth0=${addrs.join(' ')} peer=${peer}\nlo=${n?.v4} ${n?.v6}\n`);
      expect(readFileSync(join(out, 'made', node, 'extra.conf'), 'utf8')).toBe(`${node} has ${node === 'p' ? 2 : 0} cores\n`);
      // exec = ["touch .../{{node}}.ran"]: split into argv, no shell, run in the node.
      expect(existsSync(join(out, `${node}.ran`))).toBe(true);
    }
  });

  it('dune exec passes the exit status through', async () => {
    expect((await dune(['exec', '--lab', LAB, 'p', '--', 'sh', '-c', 'exit 7'])).code).toBe(7);
    expect((await dune(['exec', '--lab', LAB, 'p', '--', 'true'])).code).toBe(0);
    const r = await dune(['exec', '--lab', LAB, 'nosuchnode', '--', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error\[no-such-node\]: lab e2elife has no node "nosuchnode"$/m);
  });

  it('dune capture -c 3 -w FILE writes a pcap of 3 packets while a node pings', async () => {
    const pcap = join(tmp, 'q-eth0.pcap');
    const cap = duneSpawn(['capture', '--lab', LAB, 'q:eth0', '-c', '3', '-w', pcap, 'icmp']);
    let err = '';
    cap.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => cap.once('close', (code) => resolve(code)));
    await waitFor('tcpdump to listen', () => err.includes('listening on'), 10_000);
    const q = st.nodes.find((n) => n.node === 'q')?.v4 as string;
    await dune(['exec', '--lab', LAB, 'p', '--', 'ping', '-c', '4', '-i', '0.2', q]);
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
    if (code !== 0) cap.kill('SIGKILL');
    expect(code).toBe(0);
    // A pcap file header is 24 bytes; 3 ICMP packets are 3 × (16 + 98).
    expect(statSync(pcap).size).toBeGreaterThan(24);
    const read = await run(['tcpdump', '-r', pcap, '-n']);
    expect(read.stdout.trim().split('\n')).toHaveLength(3);
    expect(read.stdout).toMatch(/ICMP echo request/);
  });

  it('dune down leaves nothing: namespaces, marked interfaces, nft tables, processes, template files, journal', async () => {
    const pids = [...st.processes, ...pinSt.processes].map((p) => p.pid);
    expect(pids.every((pid) => existsSync(`/proc/${pid}`))).toBe(true);
    // A process started by hand in a node (not by the lab) is stopped too.
    const stray: ChildProcess = duneSpawn(['exec', '--lab', LAB, 'q', '--', 'sleep', '300']);
    const strayDone = new Promise<void>((resolve) => stray.once('close', () => resolve()));
    const qNs = `net:[${statSync(`/run/netns/dune.${LAB}.q`).ino}]`;
    await waitFor('the stray sleep to start in q', () => sh(['pgrep', '-x', 'sleep']).out.split('\n').filter(Boolean).some((p) => sh(['readlink', `/proc/${p}/ns/net`]).out.trim() === qNs), 10_000, 50);

    const r = await duneOk(['down', '--lab', LAB]);
    expect(r.stdout).toMatch(new RegExp(`^lab ${LAB} removed in [\\d.]+s: 2 namespaces, 2 processes, 6 files$`, 'm'));
    const r2 = await duneOk(['down', '--lab', PIN]);
    expect(r2.stdout).toMatch(new RegExp(`^lab ${PIN} removed in [\\d.]+s: 2 namespaces, 2 processes, 2 files$`, 'm'));
    await Promise.race([strayDone, new Promise((_, rej) => setTimeout(() => rej(new Error('the stray dune exec did not end')), 10_000))]);

    expect(labNamespaces(LAB)).toEqual([]);
    expect(sh(['ip', 'netns', 'list']).out).not.toMatch(new RegExp(`dune\\.(${LAB}|${PIN})\\.`));
    expect(sh(['ip', '-d', 'link', 'show']).out).not.toMatch(/alias dune:(e2elife|e2epin):/);
    expect(sh(['nft', 'list', 'tables']).out).not.toMatch(/dune_(e2elife|e2epin)\b/);
    expect(leftovers(LAB, pids)).toEqual([]);
    expect(leftovers(PIN, pids)).toEqual([]);
    // p's file did not exist before: removed. q's did: put back as it was.
    expect(existsSync(join(out, 'p.conf'))).toBe(false);
    expect(readFileSync(join(out, 'q.conf'), 'utf8')).toBe('what was here before\n');
    // The directories made for the files are gone too; the one that was there stays.
    expect(existsSync(join(out, 'made'))).toBe(false);
    expect(existsSync(out)).toBe(true);
    // The lab's journal (plan, state, logs, backups) is gone with it.
    expect(existsSync(`/run/dune/${LAB}`)).toBe(false);
    expect(existsSync(`/run/dune/${PIN}`)).toBe(false);
  });
});
