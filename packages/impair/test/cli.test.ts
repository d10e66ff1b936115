/**
 * The command line: option parsing in-process, then the built commands run as a user would
 * (skipped with a reason when `npm run build` has not been run).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ImpairRuntime, listRules, parseCli, startShell, UsageError } from '../src/index.js';

const BIN = (name: string) => fileURLToPath(new URL(`../dist/bin/${name}.js`, import.meta.url));
const built = existsSync(BIN('impaired-network-server'));
const isRoot = process.getuid?.() === 0;

function usageError(argv: string[], cmd: 'server' | 'shell' = 'server'): string {
  try {
    parseCli(cmd, argv);
  } catch (e) {
    if (e instanceof UsageError) return `${e.message}${e.hint ? ` | hint: ${e.hint}` : ''}`;
    throw e;
  }
  throw new Error('expected a UsageError');
}

describe('options', () => {
  it("packet_queue's flags, its defaults, and initial parameters", () => {
    const o = parseCli('server', ['-t', 'udp', '-l', 'user', '-p', '5000', '-x', '6000', '-a', '9100', '--up', 'delay=50ms,loss=1%', '--down', 'rate=10mbit', '--both', 'jitter=1ms', '--seed', '7']);
    expect(o.restApiPort).toBe(9100);
    expect(o.runtime).toMatchObject({ level: 'user', transport: 'udp', port: 5000, proxyPort: 6000, seed: 7, iface: 'lo' });
    expect(o.runtime.params).toEqual({ up: { jitterUs: 1000, delayUs: 50_000, lossPct: 1 }, down: { jitterUs: 1000, rateBitsPerSec: 10_000_000 } });
    expect(parseCli('server', ['-p', '80']).runtime).toMatchObject({ level: 'kernel', transport: 'tcp', iface: 'lo' });
    expect(parseCli('server', ['-p', '80', '--proxy_port', '1', '--rest_api_port', '2']).restApiPort).toBe(2);
  });

  it('--queue-balance, --queue-cpu-fanout, --fail-open and --fail-closed', () => {
    expect(parseCli('server', ['-p', '80', '--queue-balance', '3', '--queue-cpu-fanout', '--fail-open']).runtime).toMatchObject({ queueBalance: 3, cpuFanout: true, failOpen: true });
    expect(parseCli('server', ['-p', '80', '--queue-balance', 'auto']).runtime.queueBalance).toBe(availableParallelism());
    expect(parseCli('server', ['-p', '80', '--fail-closed']).runtime).toMatchObject({ failOpen: false, queueBalance: undefined, cpuFanout: false });
    expect([
      usageError(['-p', '80', '--fail-open', '--fail-closed']),
      usageError(['-p', '80', '--queue-balance', '0']),
      usageError(['-p', '80', '--queue-balance', 'many']),
      usageError(['-p', '80', '--queue-cpu-fanout']),
      usageError(['-p', '80', '-l', 'user', '-t', 'udp', '-x', '0', '--queue-balance', '2']),
      usageError(['-p', '80', '--queue-num', '65534', '--queue-balance', '2']),
    ]).toEqual([
      '--fail-open and --fail-closed contradict each other: give one',
      '--queue-balance takes 1..64 queues per direction, or auto (one per core), not "0"',
      '--queue-balance takes 1..64 queues per direction, or auto (one per core), not "many"',
      '--queue-cpu-fanout spreads a balanced range: give --queue-balance N (N ≥ 2) too',
      '--queue-balance spreads NFQUEUE queues: it is for -l kernel',
      '--queue-num 65534 leaves no room for 4 queues below 65536',
    ]);
  });

  it('a config file, overridden by flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'impair-cli-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ level: 'user', transport: 'udp', port: 5000, proxyPort: 0, pipes: { delay: '10ms', down: { loss: '2%' } } }));
    const o = parseCli('server', ['--config', file, '-p', '5001', '--up', 'delay=20ms']);
    expect(o.runtime).toMatchObject({ level: 'user', port: 5001, proxyPort: 0 });
    expect(o.runtime.params).toEqual({ up: { delayUs: 20_000 }, down: { delayUs: 10_000, lossPct: 2 } });
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    expect(usageError(['--config', file])).toMatch(/unknown key "prot" \| hint: did you mean `port`\?/);
  });

  it('mistakes are explained', () => {
    expect([
      usageError([]),
      usageError(['-p', '70000']),
      usageError(['-p', '80', '-l', 'usr']),
      usageError(['-p', '80', '-l', 'user']),
      usageError(['-p', '80', '-l', 'user', '-t', 'udp']),
      usageError(['-p', '80', '--porxy-port', '1']),
      usageError(['-p', '80', '--up', 'delay']),
      usageError(['-p', '80', '--up', 'delay=-4ms,lost=1%']),
      usageError(['-p', '80', '-a', '1'], 'shell'),
      usageError(['-p', '80', '--netns', '../x']),
    ]).toMatchSnapshot();
  });
});

describe('shell', () => {
  async function shell() {
    const rt = await ImpairRuntime.start({ level: 'user', transport: 'udp', port: 9, proxyPort: 0, params: { up: {}, down: { delayUs: 5000 } } });
    const input = new PassThrough();
    const output = new PassThrough();
    let text = '';
    output.on('data', (d: Buffer) => (text += d.toString()));
    const r = startShell(rt, { input, output, prompt: '> ' });
    const run = async (line: string) => {
      const from = text.length;
      input.write(`${line}\n`);
      await new Promise((res) => setTimeout(res, 30));
      return text.slice(from);
    };
    return { rt, r, run, close: async () => (r.close(), await rt.stop()) };
  }

  it('sets parameters live, shows meters, explains errors', async () => {
    const s = await shell();
    try {
      await s.run("p.up.delay = '300ms'");
      expect(s.rt.parameters.up).toEqual({ delayUs: 300_000 });
      expect(await s.run('p.up.delay')).toContain("'300ms'");
      await s.run("p.both.loss = '1%'");
      expect(s.rt.parameters).toEqual({ up: { delayUs: 300_000, lossPct: 1 }, down: { delayUs: 5000, lossPct: 1 } });
      await s.run('p.delay = 0.02');
      expect(s.rt.parameters.down.delayUs).toBe(20_000);
      const bad = await s.run("p.down.rate = 'fast'");
      expect(bad).toContain('down.rate: "fast" is not a rate');
      expect(s.rt.parameters.down).toEqual({ delayUs: 20_000, lossPct: 1 });
      await s.run("p.up.set({rate: '10mbit', queue: '100p'})");
      expect(s.rt.parameters.up).toMatchObject({ rateBitsPerSec: 10_000_000, queuePackets: 100 });
      expect(await s.run('m')).toContain('received');
      expect(await s.run('m.reset()')).toContain('counters reset');
      expect(await s.run('help')).toContain("p.up.delay = '300ms'");
      await s.run('p.reset()');
      expect(s.rt.parameters).toEqual({ up: {}, down: { delayUs: 5000 } });
    } finally {
      await s.close();
    }
  });

  it('completes names with tab', async () => {
    const s = await shell();
    try {
      const complete = (line: string) =>
        new Promise<string[]>((res, rej) => s.r.completer(line, (err, out) => (err ? rej(err) : res((out?.[0] ?? []) as string[]))));
      expect(await complete('p.up.de')).toEqual(expect.arrayContaining(['p.up.delay']));
      expect(await complete('p.do')).toEqual(expect.arrayContaining(['p.down']));
      expect(await complete('m.re')).toEqual(expect.arrayContaining(['m.reset']));
    } finally {
      await s.close();
    }
  });
});

function startBin(name: string, args: string[]): { child: ChildProcess; output: () => string; waitFor: (re: RegExp) => Promise<RegExpExecArray>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN(name), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const waitFor = async (re: RegExp) => {
    for (let i = 0; i < 200; i++) {
      const m = re.exec(out);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`timed out waiting for ${re} in: ${out}`);
  };
  return { child, output: () => out, waitFor, exit };
}

describe.skipIf(!built)(`the built commands${built ? '' : ' (skipped: run `npm run build` first)'}`, () => {
  it('impaired-network-server in user mode: serves the API, stops cleanly on SIGTERM', async () => {
    const s = startBin('impaired-network-server', ['-l', 'user', '-t', 'udp', '-p', '9', '-x', '0', '-a', '0', '--up', 'delay=5ms']);
    const [, url] = await s.waitFor(/Configure at (http:\S+)/);
    const pipes = (await (await fetch(`${url}pipes`)).json()) as { up: unknown };
    expect(pipes.up).toEqual({ delayUs: 5000 });
    s.child.kill('SIGTERM');
    expect(await s.exit).toBe(0);
    expect(s.output()).toMatch(/SIGTERM: removing what was set up/);
  });

  it('impaired-network-shell reads commands from stdin and quits on .exit', async () => {
    const s = startBin('impaired-network-shell', ['-l', 'user', '-t', 'udp', '-p', '9', '-x', '0']);
    await s.waitFor(/Type help\./);
    s.child.stdin!.write("p.up.delay = '7ms'\np.up.delay\nm.up.received\n.exit\n");
    expect(await s.exit).toBe(0);
    expect(s.output()).toContain("'7ms'");
    expect(s.output()).toContain('{ packets: 0, bytes: 0 }');
  });

  it('--help, and a usage error exits 2', async () => {
    expect(execFileSync(process.execPath, [BIN('impaired-network-shell'), '--help'], { encoding: 'utf8' })).toContain('Usage: impaired-network-shell -p PORT');
    const s = startBin('impaired-network-server', ['-p', 'x']);
    expect(await s.exit).toBe(2);
    expect(s.output()).toBe('impaired-network-server: error: -p/--port takes a port number 1..65535, not "x"\n');
  });

  describe.skipIf(!isRoot)('kernel mode (root)', () => {
    const ns = `dunetest-impair-cli${process.pid}`;
    afterAll(() => {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // not created
      }
    });

    it('rules exist while it runs and are gone after SIGINT; after kill -9, clear-iptables removes them', async () => {
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const a = startBin('impaired-network-server', ['-t', 'tcp', '-p', '8080', '--netns', ns, '-a', '0']);
      await a.waitFor(/Configure at/);
      expect(await listRules({ netns: ns })).toHaveLength(4);
      a.child.kill('SIGINT');
      expect(await a.exit).toBe(0);
      expect(await listRules({ netns: ns })).toEqual([]);

      const b = startBin('impaired-network-server', ['-t', 'udp', '-p', '8081', '--netns', ns, '-a', '0']);
      await b.waitFor(/Configure at/);
      b.child.kill('SIGKILL');
      await b.exit;
      expect(await listRules({ netns: ns })).toHaveLength(4);
      const out = execFileSync(process.execPath, [BIN('impaired-network-clear-iptables'), '--netns', ns], { encoding: 'utf8' });
      expect(out).toContain('4 rules removed');
      expect(await listRules({ netns: ns })).toEqual([]);
    });
  });
});
