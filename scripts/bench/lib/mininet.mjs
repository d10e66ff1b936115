// Mininet (Debian's `mininet` package) as a baseline: `--topo linear,K --switch lxbr
// --controller none`, driven through its Python API so that building and stopping are timed
// apart. Its cleanup is targeted: `mn -c` is not run, because on a shared machine it kills
// every `ping` and `controller` process (killall) and deletes /tmp/*.log and /tmp/*.out,
// whoever they belong to. What it would remove of ours is removed here by name and by pid.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childCpuMs } from './proc.mjs';

const SCRIPT = String.raw`
import json, re, subprocess, sys, time
from mininet.net import Mininet
from mininet.topo import LinearTopo
from mininet.nodelib import LinuxBridge
from mininet.log import setLogLevel

def emit(**kw):
    print(json.dumps(kw), flush=True)

emit(event='imported', t=time.time())
setLogLevel('error')
k = int(sys.argv[1])
net = None
try:
    # What 'mn --topo linear,K --switch lxbr --controller none --test none' builds and starts.
    net = Mininet(topo=LinearTopo(k=k, n=1), switch=LinuxBridge, controller=None)
    net.start()
    emit(event='started', t=time.time(), pids=[h.pid for h in net.hosts], hosts=len(net.hosts),
         switches=len(net.switches), links=len(net.links))
    out = subprocess.run(['ip', '-o', 'link', 'show', 'type', 'bridge'], capture_output=True, text=True).stdout
    bridges = sum(1 for l in out.splitlines() if re.match(r'^\d+: s\d+[:@]', l))
    alive = sum(1 for h in net.hosts if h.shell is not None and h.shell.poll() is None)
    ping = net.hosts[0].cmd('ping -c1 -W10 %s' % net.hosts[-1].IP())
    emit(event='verified', bridges=bridges, alive=alive, ping=(' 0% packet loss' in ping), to=net.hosts[-1].IP())
finally:
    if net is not None:
        t = time.time()
        net.stop()
        emit(event='stopped', t0=t, t=time.time())
`;

/**
 * The Python that `mn` runs with (its shebang: Debian's /usr/bin/python3), not whichever
 * python3 comes first on PATH (a pyenv one would not see Debian's mininet module).
 */
function python() {
  const mn = spawnSync('sh', ['-c', 'command -v mn'], { encoding: 'utf8' }).stdout.trim();
  if (mn) {
    const m = /^#!\s*(\S+python\S*)/.exec(readFileSync(mn, 'utf8').split('\n')[0] ?? '');
    if (m) return m[1];
  }
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** Why Mininet cannot run here, or undefined when it can. */
export function mininetMissing() {
  const py = spawnSync(python(), ['-c', 'import mininet.net, mininet.nodelib; print(mininet.net.VERSION)'], { encoding: 'utf8' });
  if (py.status !== 0) return `${python()} cannot import mininet (${(py.stderr || py.error?.message || '').trim().split('\n').pop()}): apt-get install -y mininet`;
  const br = spawnSync('sh', ['-c', 'command -v brctl'], { encoding: 'utf8' });
  if (br.status !== 0) return "brctl is missing (Mininet's LinuxBridge switch needs it): apt-get install -y bridge-utils";
  return undefined;
}

export function mininetVersion() {
  return spawnSync(python(), ['-c', 'import mininet.net; print(mininet.net.VERSION)'], { encoding: 'utf8' }).stdout.trim();
}

/** Mininet's objects in the host namespace: bridges sN, veth ends hN-ethM / sN-ethM. */
export function mininetLinks() {
  const out = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  return out.split('\n').map((l) => /^\d+: ([^:@\s]+)/.exec(l)?.[1]).filter((n) => n && /^(s\d+|[hs]\d+-eth\d+)$/.test(n));
}

function alive(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('mininet:');
  } catch {
    return false;
  }
}

/** Removes what a Mininet run left (its links by name, its node shells by pid); returns what it found. */
export function cleanMininet(pids = []) {
  const links = mininetLinks();
  for (const l of links) spawnSync('ip', ['link', 'del', l]);
  const shells = pids.filter(alive);
  for (const p of shells) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  return { links: links.length, shells: shells.length };
}

/**
 * Builds linear,K, checks it (bridges, node shells, a ping end to end, outside the timing),
 * stops it. `upMs`: from spawning python to net.start() returning (interpreter start and
 * imports included, as our CLI's Node start is); `downMs`: net.stop().
 */
export function runMininetLinear(k, dir) {
  const file = join(dir, 'mininet-linear.py');
  writeFileSync(file, SCRIPT);
  const t0 = Date.now();
  const c0 = childCpuMs();
  const r = spawnSync(python(), [file, String(k)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const cpuMs = childCpuMs() - c0;
  const ev = Object.fromEntries(r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).map((e) => [e.event, e]));
  const pids = ev.started?.pids ?? [];
  if (r.status !== 0 || !ev.started || !ev.stopped) {
    cleanMininet(pids);
    throw new Error(`mininet run failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-6).join(' | ')}`);
  }
  return {
    upMs: ev.started.t * 1000 - t0,
    importMs: ev.imported.t * 1000 - t0,
    downMs: (ev.stopped.t - ev.stopped.t0) * 1000,
    cpuMs,
    started: ev.started,
    verified: ev.verified,
    pids,
  };
}
