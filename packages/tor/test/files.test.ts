/**
 * The files `dune tor init` writes, without a kernel: torrc content per role, the edge's
 * ip file, the counts it refuses, tor.toml through the real reader and compiler, and (with
 * Debian's tor installed) real keys checked against the torrc files and every torrc checked
 * by `tor --verify-config`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DuneError, parseDuneToml, readTopology } from '@dune/topology';
import { compile, type ProcessOp } from '@dune/compiler';
import {
  checkCounts, DEFAULT_COUNTS, dirAuthorityLine, graphBackbone, parseIpFile, starBackbone, torInit, torrc, torRoles, torToml,
  type DirAuthority, type TorNetwork,
} from '@dune/tor';

const REPO = new URL('../../../', import.meta.url).pathname;
const hasTor = spawnSync('sh', ['-c', 'command -v tor && command -v tor-gencert']).status === 0;
const NO_TOR = 'skipped: Debian\'s tor is not installed (scripts/setup installs it)';

const AUTH: DirAuthority = { nick: 'auth0', addr: '172.16.0.1', orPort: 9001, dirPort: 9030, v3ident: 'A'.repeat(40), fingerprint: 'B'.repeat(40) };
const base = { addr: '172.16.0.9', localAddr: '127.0.0.1', dataDir: '/d/data', noticeLog: '/d/notice.log', authorities: [AUTH], exitFingerprints: ['C'.repeat(40), 'D'.repeat(40)] };
const lines = (text: string) => text.split('\n');

describe('torrc', () => {
  it('DirAuthority line: nick, orport, v3ident, IPv4 dir address, fingerprint', () => {
    expect(dirAuthorityLine(AUTH)).toBe(`DirAuthority auth0 orport=9001 no-v2 v3ident=${'A'.repeat(40)} 172.16.0.1:9030 ${'B'.repeat(40)}`);
  });

  it('every node: TestingTorNetwork, the authorities, Exit votes for the exits only, explicit addresses', () => {
    for (const role of ['authority', 'relay', 'exit', 'client'] as const) {
      const t = lines(torrc({ ...base, nick: 'n1', role }));
      expect(t).toContain('TestingTorNetwork 1');
      expect(t).toContain(dirAuthorityLine(AUTH));
      expect(t).toContain(`TestingDirAuthVoteExit $${'C'.repeat(40)},$${'D'.repeat(40)}`);
      expect(t).toContain('OutboundBindAddress 172.16.0.9');
      expect(t).toContain('RunAsDaemon 0');
      expect(t).toContain('Log notice file /d/notice.log');
      expect(t).toContain('DataDirectory /d/data');
      expect(t).toContain('ControlPort 127.0.0.1:9051');
    }
  });

  it('roles: authority votes with Chutney timing, exit accepts, relay does not exit, client has SocksPort 9050', () => {
    const a = lines(torrc({ ...base, nick: 'auth0', role: 'authority' }));
    expect(a).toEqual(expect.arrayContaining(['AuthoritativeDirectory 1', 'V3AuthoritativeDirectory 1', 'V3AuthVotingInterval 20', 'TestingV3AuthInitialVotingInterval 20', 'DirPort 172.16.0.9:9030', 'ORPort 172.16.0.9:9001', 'ExitRelay 0', 'AssumeReachable 1']));
    const e = lines(torrc({ ...base, nick: 'exit0', role: 'exit' }));
    expect(e).toEqual(expect.arrayContaining(['ExitRelay 1', 'ExitPolicyRejectPrivate 0', 'ExitPolicy accept *:*', 'ServerDNSResolvConfFile /dev/null']));
    expect(e.some((l) => l.startsWith('DirPort'))).toBe(false);
    expect(e.indexOf('ExitPolicy accept *:*')).toBeLessThan(e.indexOf('ExitPolicy reject *:*'));
    const r = lines(torrc({ ...base, nick: 'relay0', role: 'relay' }));
    expect(r).toContain('ExitRelay 0');
    expect(r.some((l) => l.startsWith('AuthoritativeDirectory'))).toBe(false);
    const c = lines(torrc({ ...base, nick: 'client0', role: 'client' }));
    expect(c).toContain('SocksPort 127.0.0.1:9050');
    expect(c.some((l) => l.startsWith('ORPort'))).toBe(false);
    const o = lines(torrc({ ...base, nick: 'onion', role: 'onion', onion: { dir: '/d/hs', target: '172.16.0.15:80' }, infoLog: '/d/info.log' }));
    expect(o).toEqual(expect.arrayContaining(['SocksPort 0', 'HiddenServiceDir /d/hs', 'HiddenServicePort 80 172.16.0.15:80', 'Log info file /d/info.log']));
  });
});

describe('counts and the ip file', () => {
  it('names: authorities, non-exit relays, exits (counted in --relays), clients, onion', () => {
    const names = torRoles({ authorities: 3, relays: 8, exits: 2, clients: 2, onion: true }).map((r) => `${r.name}:${r.role}`);
    expect(names).toEqual([
      'auth0:authority', 'auth1:authority', 'auth2:authority',
      ...[0, 1, 2, 3, 4, 5].map((i) => `relay${i}:relay`), 'exit0:exit', 'exit1:exit', 'client0:client', 'client1:client', 'onion:onion',
    ]);
  });

  it.each([
    [{ exits: 0 }, /--exits: with no exit/],
    [{ exits: 9 }, /--exits: 9 exits but only 8 relays/],
    [{ authorities: 0 }, /--authorities/],
    [{ clients: 0 }, /--clients/],
    [{ authorities: 1, relays: 2, exits: 1 }, /a circuit needs 3 distinct ones/],
    [{ authorities: 1, relays: 3, exits: 1, onion: true }, /an onion service needs at least 5/],
  ])('refuses %o', (over, message) => {
    expect(() => checkCounts({ ...DEFAULT_COUNTS, ...over })).toThrow(message);
  });

  it('reads netmirage-edge --ip-file: one address a line, too few or not IPv4 is an error', () => {
    expect(parseIpFile('10.0.0.1\n10.0.0.2/8\n\n# c\n10.0.0.3\n10.0.0.4\n', 'ips', 3)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(() => parseIpFile('10.0.0.1\n', 'ips', 3)).toThrow(/ips has 1 address, the network needs 3/);
    expect(() => parseIpFile('10.0.0.1\nfd00::1\n', 'ips', 2)).toThrow(/ips:2: "fd00::1" is not an IPv4 address/);
    expect(() => parseIpFile('10.0.0.1\n10.0.0.1\n', 'ips', 2)).toThrow(/listed twice/);
  });
});

/** A network as torInit describes it, for torToml without keys. */
function fakeNet(dir: string): TorNetwork {
  const roles = torRoles({ authorities: 3, relays: 8, exits: 2, clients: 2, onion: true });
  return {
    format: 'dune-tor/1', dir, mode: 'lab', lab: 'tor', entry: join(dir, 'tor.toml'),
    nodes: roles.map((r, i) => ({ ...r, addr: `172.16.0.${i + 1}`, torrc: join(dir, 'nodes', r.name, 'torrc'), log: join(dir, 'nodes', r.name, 'notice.log'), dataDir: join(dir, 'nodes', r.name, 'data') })),
    web: { name: 'web', addr: '172.16.0.15', port: 80, url: 'http://172.16.0.15/', root: join(dir, 'web') },
  };
}

const WEB = ['python3', '-m', 'http.server', '80', '--bind', '::', '--directory', '/t/web'];

describe('tor.toml', () => {
  it('a star: compiles; one pinned tor per Tor node and web, each on its own lo address; 5ms links', () => {
    const net = fakeNet('/t dir');
    const text = torToml(net, starBackbone(), { accessLatency: '5ms', webCmd: WEB });
    const topo = parseDuneToml(text, '/t dir/tor.toml');
    expect(topo.lab.name).toBe('tor');
    const plan = compile(topo);
    const procs = plan.hosts.flatMap((h) => h.ops).filter((o): o is ProcessOp => o.op === 'process');
    expect(procs.map((p) => `${p.node}:${p.argv.join(' ')}`).sort()).toEqual(
      [...net.nodes.map((n) => `${n.name}:tor -f /t dir/nodes/${n.name}/torrc`), `web:${WEB.join(' ')}`].sort(),
    );
    for (const n of topo.nodes.filter((x) => x.id !== 'core')) {
      const want = n.id === 'web' ? net.web.addr : net.nodes.find((x) => x.name === n.id)?.addr;
      expect(n.addrs['lo']).toEqual([`${want}/32`]);
    }
    expect(topo.links).toHaveLength(15);
    expect(topo.links.every((l) => l.a.node === 'core' && l.a.impairment.delayUs === 5000 && l.b.impairment.delayUs === 5000)).toBe(true);
    expect(procs.every((p) => p.cpus.length === 0)).toBe(true);
  });

  it('--cores: every process is pinned to a core of its own', () => {
    const text = torToml(fakeNet('/t'), starBackbone(), { webCmd: WEB, cores: Array.from({ length: 16 }, (_, i) => i + 1) });
    const procs = compile(parseDuneToml(text, '/t/tor.toml')).hosts.flatMap((h) => h.ops).filter((o): o is ProcessOp => o.op === 'process');
    expect(procs).toHaveLength(15);
    const cpus = procs.map((p) => p.cpus);
    expect(cpus.every((c) => c.length === 1)).toBe(true);
    expect(new Set(cpus.map((c) => c[0])).size).toBe(15);
  });

  it('on Abilene: its routers and latencies kept, the Tor nodes hang off its routers', () => {
    const zoo = readTopology(join(REPO, 'topologies/zoo/Abilene.graphml'));
    const net = fakeNet('/t');
    const text = torToml(net, graphBackbone(zoo, [...net.nodes.map((n) => n.name), 'web']), { accessLatency: '1ms', webCmd: WEB });
    const topo = parseDuneToml(text, '/t/tor.toml');
    compile(topo);
    const routers = topo.nodes.filter((n) => n.pinned.length === 0 && n.id !== 'web');
    expect(routers.map((n) => n.id).sort()).toEqual(zoo.nodes.map((n) => `r${n.id}`).sort());
    expect(routers.find((n) => n.id === 'r0')?.ctx['label']).toBe('New York');
    // the 14 backbone links with the Zoo's latency (derived from distance), then 15 access links of 1ms
    expect(topo.links).toHaveLength(14 + 15);
    zoo.links.forEach((l, i) => {
      const t = topo.links[i];
      expect([t?.a.node, t?.b.node]).toEqual([`r${l.a.node}`, `r${l.b.node}`]);
      expect(t?.a.impairment.delayUs).toBe(l.a.impairment.delayUs);
    });
    const access = topo.links.slice(14);
    expect(new Set(access.map((l) => l.a.node)).size).toBe(11);
    expect(access.every((l) => l.b.impairment.delayUs === 1000)).toBe(true);
  });
});

describe.skipIf(!hasTor)(`torInit with the real tor tools ${hasTor ? '' : NO_TOR}`, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'dune-tor-unit-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('lab mode: keys from tor-gencert and --list-fingerprint match every DirAuthority line; tor accepts every torrc', async () => {
    const net = await torInit({ dir: join(tmp, 'lab'), onion: true });
    const auths = net.nodes.filter((n) => n.role === 'authority');
    expect(auths).toHaveLength(3);
    const torrcs = net.nodes.map((n) => readFileSync(n.torrc, 'utf8'));
    for (const a of auths) {
      const v3 = /^fingerprint ([0-9A-F]{40})$/m.exec(readFileSync(join(a.dataDir, 'keys', 'authority_certificate'), 'utf8'))?.[1];
      const fp = readFileSync(join(a.dataDir, 'fingerprint'), 'utf8').trim().split(' ')[1];
      const line = `DirAuthority ${a.name} orport=9001 no-v2 v3ident=${v3} ${a.addr}:9030 ${fp}`;
      for (const t of torrcs) expect(t).toContain(line);
    }
    const exitFps = net.nodes.filter((n) => n.role === 'exit').map((n) => `$${readFileSync(join(n.dataDir, 'fingerprint'), 'utf8').trim().split(' ')[1]}`);
    expect(torrcs[0]).toContain(`TestingDirAuthVoteExit ${exitFps.join(',')}`);
    for (const n of net.nodes) {
      expect(statSync(n.dataDir).mode & 0o777).toBe(0o700);
      const r = spawnSync('tor', ['--verify-config', '-f', n.torrc], { encoding: 'utf8' });
      expect(r.stdout, `${n.name}: ${r.stdout}${r.stderr}`).toContain('Configuration was valid');
    }
    // tor.toml compiles, and the manifest says where everything is
    compile(readTopology(net.entry));
    expect(JSON.parse(readFileSync(join(tmp, 'lab', 'network.json'), 'utf8'))).toEqual(net);
    expect(readFileSync(join(net.web.root, 'index.html'), 'utf8')).toContain('Hello from web');
    await expect(torInit({ dir: join(tmp, 'lab') })).rejects.toThrow(/is not empty/);
  }, 120_000);

  it('edge mode (--ip-file): every port and outbound address is a virtual address; start.sh and stop.sh', async () => {
    const ips = Array.from({ length: 20 }, (_, i) => `10.9.0.${i + 10}`);
    writeFileSync(join(tmp, 'ips'), `${ips.join('\n')}\n`);
    const net = await torInit({ dir: join(tmp, 'edge'), ipFile: join(tmp, 'ips'), authorities: 3, relays: 4, exits: 1, clients: 1 });
    expect(net.mode).toBe('edge');
    expect(net.nodes.map((n) => n.addr)).toEqual(ips.slice(0, net.nodes.length));
    expect(net.web.addr).toBe(ips[net.nodes.length]);
    for (const n of net.nodes) {
      const t = readFileSync(n.torrc, 'utf8');
      for (const m of t.matchAll(/^(\w*Port|OutboundBindAddress) (\S+)/gm)) {
        const v = m[2] as string;
        if (v === '0') continue;
        expect(v.startsWith(`${n.addr}:`) || v === n.addr, `${n.name}: ${m[0]}`).toBe(true);
      }
      expect(t).not.toContain('127.0.0.1');
      const r = spawnSync('tor', ['--verify-config', '-f', n.torrc], { encoding: 'utf8' });
      expect(r.stdout, `${n.name}: ${r.stdout}${r.stderr}`).toContain('Configuration was valid');
    }
    const start = readFileSync(join(tmp, 'edge', 'start.sh'), 'utf8');
    expect(start).toContain(`python3 -m http.server 80 --bind ${net.web.addr} --directory ${net.web.root}`);
    expect(start.match(/^tor -f /gm)).toHaveLength(net.nodes.length);
    expect(spawnSync('sh', ['-n', join(tmp, 'edge', 'start.sh')]).status).toBe(0);
    expect(spawnSync('sh', ['-n', join(tmp, 'edge', 'stop.sh')]).status).toBe(0);
    expect(() => readFileSync(join(tmp, 'edge', 'tor.toml'))).toThrow();
  }, 120_000);

  it('stop.sh: TERM, then KILL after 10 s for a process that ignores it; a reused pid is left alone', async () => {
    const ips = Array.from({ length: 12 }, (_, i) => `10.9.1.${i + 10}`);
    writeFileSync(join(tmp, 'ips2'), `${ips.join('\n')}\n`);
    const net = await torInit({ dir: join(tmp, 'edge2'), ipFile: join(tmp, 'ips2'), authorities: 3, relays: 2, exits: 1, clients: 1 });
    const [a, b, c] = net.nodes;
    // Stand-ins carrying the marker stop.sh checks (the torrc path) in their command lines.
    const polite = spawn('sh', ['-c', 'sleep 60', 'x', a!.torrc], { stdio: 'ignore' });
    const stubborn = spawn('sh', ['-c', 'trap "" TERM; while :; do sleep 0.1; done', 'x', b!.torrc], { stdio: 'ignore' });
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
    const alive = (pid: number) => spawnSync('kill', ['-0', String(pid)]).status === 0 && !/State:\s+Z/.test(spawnSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }).stdout);
    try {
      writeFileSync(join(net.dir, 'nodes', a!.name, 'pid'), `${polite.pid}\n`);
      writeFileSync(join(net.dir, 'nodes', b!.name, 'pid'), `${stubborn.pid}\n`);
      writeFileSync(join(net.dir, 'nodes', c!.name, 'pid'), `${stranger.pid}\n`);
      const exited = new Set<number>();
      for (const p of [polite, stubborn, stranger]) p.on('exit', () => exited.add(p.pid!));
      const t0 = Date.now();
      const r = await new Promise<{ code: number | null; stderr: string }>((res) => {
        const s = spawn('sh', [join(net.dir, 'stop.sh')], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        s.stderr.on('data', (d: Buffer) => { err += d.toString(); });
        s.on('exit', (code) => res({ code, stderr: err }));
      });
      await new Promise((res) => setTimeout(res, 300));
      expect(r.code).toBe(0);
      expect(exited.has(polite.pid!)).toBe(true);
      expect(exited.has(stubborn.pid!)).toBe(true);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(9000);
      expect(r.stderr).toContain(`killed (no exit 10 s after TERM): ${stubborn.pid}`);
      expect(alive(stranger.pid!)).toBe(true);
      expect(() => statSync(join(net.dir, 'nodes', a!.name, 'pid'))).toThrow();
    } finally {
      for (const p of [polite, stubborn, stranger]) p.kill('SIGKILL');
    }
  }, 60_000);

  it('refuses a TOML topology and a missing ip file before writing anything', async () => {
    await expect(torInit({ dir: join(tmp, 'x1'), topology: join(REPO, 'topologies/dune-example.toml') })).rejects.toThrow(DuneError);
    await expect(torInit({ dir: join(tmp, 'x2'), ipFile: join(tmp, 'nope') })).rejects.toThrow(/cannot read the ip file/);
    expect(() => statSync(join(tmp, 'x1'))).toThrow();
    expect(() => statSync(join(tmp, 'x2'))).toThrow();
  });
});
