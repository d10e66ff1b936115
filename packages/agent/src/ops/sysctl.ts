/** `sysctl`: a value written under /proc/sys, opened inside the node's namespace. */
import { closeSync, constants as fsc, writeSync } from 'node:fs';
import type { SysctlOp } from '@dune/compiler';
import { ApplyError, describeErrno } from '../errors.js';
import { isNativeError, native } from '../native.js';
import { nsPath } from '../netns.js';
import { opKind, type ApplyContext } from './types.js';

const describe = (op: SysctlOp) => `sysctl ${op.key}=${op.value} in ${op.ns}`;

export const sysctl = opKind('sysctl', {
  describe,
  key: (op) => `sysctl ${op.ns}/${op.key}`,
  nss: (op) => [op.ns],
  inPlace: 'reapply',
  undoRank: 70,
  diesWithNs: true,
  runtime: true,
  apply: { stage: 'sysctl', write: writeSysctl },
});

function writeSysctl(op: SysctlOp, s: ApplyContext): void {
  const path = sysctlPath(op.key);
  const ns = s.isHost(op.ns) ? (s.opts.hostNs ?? null) : op.ns;
  let fd: number;
  try {
    fd = native().openInNs(ns === null ? null : nsPath(ns), s.sysctlOpenPath(ns, path), fsc.O_WRONLY);
  } catch (e) {
    const errno = isNativeError(e) ? e.errno : 0;
    throw new ApplyError(`${describe(op)}: cannot open ${path}: ${describeErrno(errno)}`, {
      op,
      errno,
      journal: s.journal,
      hint: errno === 2 ? `no such sysctl in a network namespace on this kernel (${path})` : undefined,
      cause: e,
    });
  }
  try {
    writeSync(fd, `${op.value}\n`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    throw new ApplyError(`${describe(op)}: the kernel refused the value (${code})`, {
      op,
      errno: (e as NodeJS.ErrnoException).errno ? -((e as NodeJS.ErrnoException).errno ?? 0) : 22,
      journal: s.journal,
      hint: `check the value's range for ${op.key}`,
      cause: e,
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * `net.ipv4.conf.eth0.1.rp_filter` → `/proc/sys/net/ipv4/conf/eth0.1/rp_filter`: under
 * conf/neigh the interface name (which may contain dots) is everything between the
 * directory and the last component.
 */
export function sysctlPath(k: string): string {
  const parts = k.split('.');
  let rel: string[];
  if (k.includes('/')) rel = k.replace(/^\/+/, '').split('/');
  else if (parts.length >= 5 && parts[0] === 'net' && (parts[1] === 'ipv4' || parts[1] === 'ipv6') && (parts[2] === 'conf' || parts[2] === 'neigh')) {
    rel = [...parts.slice(0, 3), parts.slice(3, -1).join('.'), parts[parts.length - 1] ?? ''];
  } else rel = parts;
  // Keys come from topology files: never let one climb out of /proc/sys.
  if (rel.some((p) => p === '' || p === '.' || p === '..' || !/^[A-Za-z0-9_.@+:-]+$/.test(p))) {
    throw new Error(`not a sysctl key: ${JSON.stringify(k)}`);
  }
  return `/proc/sys/${rel.join('/')}`;
}
