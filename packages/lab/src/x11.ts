/**
 * nemu's forward_X11: programs in a node reach the X display of the process that drives the
 * lab. A local display (`:N`) is a unix socket in /tmp/.X11-unix, which every network
 * namespace shares through the file system (only the abstract socket is per namespace, and
 * X clients fall back to the file): the node's processes get the same DISPLAY, and an
 * XAUTHORITY they can read (a copy owned by the user they run as).
 */
import { spawnSync } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DuneError } from '@dune/topology';

/** Cookie copies per lab, removed with the lab. */
const copies = new Map<string, string>();

export function x11Env(lab: string, node: string, remote: boolean, user: string | undefined): Promise<Record<string, string>> {
  const display = process.env['DISPLAY'];
  if (display === undefined || display === '') {
    throw new DuneError('no-display', `node ${node} has x11 on, but this process has no DISPLAY`, { hint: 'run the script inside an X session, or under Xvfb (e.g. `xvfb-run node script.js`)' });
  }
  if (remote) {
    throw new DuneError('x11-remote', `node ${node} of lab ${lab} is on another host: X11 reaches nodes on this machine only`, { hint: 'place x11 nodes on a phynode without `host`' });
  }
  const m = /^(?:unix)?:(\d+)(?:\.\d+)?$/.exec(display);
  if (!m || !existsSync(`/tmp/.X11-unix/X${m[1]}`)) {
    throw new DuneError('x11-display', `DISPLAY=${display} is not a local display with a socket in /tmp/.X11-unix, which is what nodes can reach`, { hint: 'use a local X server or Xvfb (DISPLAY=:N)' });
  }
  const env: Record<string, string> = { DISPLAY: display };
  const auth = process.env['XAUTHORITY'];
  if (auth !== undefined && existsSync(auth)) {
    if (user === undefined) env['XAUTHORITY'] = auth;
    else env['XAUTHORITY'] = authFor(lab, auth, user);
  }
  return Promise.resolve(env);
}

/** A copy of the cookie file the user can read (their own file, mode 0600). */
function authFor(lab: string, auth: string, user: string): string {
  const key = `${lab}\0${auth}\0${user}`;
  const had = copies.get(key);
  if (had !== undefined && existsSync(had)) return had;
  const id = (flag: string): number => Number(spawnSync('id', [flag, '--', user], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new DuneError('no-user', `no user ${user} on this host`, { hint: 'give an existing user name or uid' });
  const dir = mkdtempSync(join(tmpdir(), 'dune-xauth-'));
  const f = join(dir, 'Xauthority');
  copyFileSync(auth, f);
  chownSync(dir, uid, gid);
  chownSync(f, uid, gid);
  copies.set(key, f);
  return f;
}

/** Removes the cookie copies made for a lab's programs. */
export function forgetX11(lab: string): void {
  for (const [k, f] of copies) {
    if (!k.startsWith(`${lab}\0`)) continue;
    rmSync(dirname(f), { recursive: true, force: true });
    copies.delete(k);
  }
}
