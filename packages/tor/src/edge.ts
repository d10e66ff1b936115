/**
 * NetMirage edge mode (`dune tor init --ip-file FILE`): the Tor processes run on the edge
 * machine itself, as NetMirage's users run them, each bound to one of the virtual addresses
 * `netmirage-edge --ip-file` wrote. The output is DIR/start.sh and DIR/stop.sh instead of a
 * tor.toml. Pure: this only writes the scripts' text; every word is quoted with shQuote.
 */
import { join } from 'node:path';
import { shJoin, shQuote } from '@dune/transport';
import type { TorNetwork } from './layout.js';

export function pidFile(dir: string, name: string): string {
  return join(dir, 'nodes', name, 'pid');
}

export function startScript(net: TorNetwork, webCmd: readonly string[]): string {
  const l = [
    '#!/bin/sh',
    `# Starts the private Tor network written by \`dune tor init --ip-file\` (${net.nodes.length} tor processes and web)`,
    '# on this NetMirage edge: every process listens on and connects from its own virtual address.',
    '# Progress: dune tor wait --dir DIR. Stop: stop.sh.',
    'set -e',
    `${shJoin(webCmd)} >${shQuote(join(net.dir, 'web', 'server.log'))} 2>&1 &`,
    `echo $! >${shQuote(pidFile(net.dir, 'web'))}`,
  ];
  for (const n of net.nodes) {
    l.push(`${shJoin(['tor', '-f', n.torrc])} >/dev/null 2>&1 &`, `echo $! >${shQuote(pidFile(net.dir, n.name))}`);
  }
  l.push(`echo ${shQuote(`started ${net.nodes.length} tor processes and web (${net.web.url})`)}`);
  return `${l.join('\n')}\n`;
}

/**
 * stop.sh: TERM to each pid start.sh recorded whose command line is still the one it started
 * (a pid reused by another program is left alone), up to 10 s for them to exit, then KILL for
 * any that did not (a tor busy with a directory fetch at shutdown has been seen to linger).
 */
export function stopScript(net: TorNetwork): string {
  const entries = [
    { name: 'web', mark: net.web.root },
    ...net.nodes.map((n) => ({ name: n.name, mark: n.torrc })),
  ];
  const l = [
    '#!/bin/sh',
    '# Stops what start.sh started (by the pids it recorded, each checked against its command line), and nothing else.',
    'ours() { [ -r "/proc/$1/cmdline" ] && tr \'\\000\' \' \' <"/proc/$1/cmdline" | grep -qF -- "$2"; }',
    'pids=',
  ];
  for (const e of entries) {
    const f = shQuote(pidFile(net.dir, e.name));
    l.push(
      `if [ -f ${f} ]; then`,
      `  p=$(cat ${f}); rm -f ${f}`,
      `  if ours "$p" ${shQuote(e.mark)}; then kill "$p" 2>/dev/null && pids="$pids $p"; fi`,
      'fi',
    );
  }
  l.push(
    'i=0',
    'while [ $i -lt 50 ]; do',
    '  left=',
    '  for p in $pids; do kill -0 "$p" 2>/dev/null && ! grep -q \'^State:.*Z\' "/proc/$p/status" 2>/dev/null && left="$left $p"; done',
    '  [ -z "$left" ] && exit 0',
    '  sleep 0.2; i=$((i + 1))',
    'done',
    'for p in $left; do kill -KILL "$p" 2>/dev/null || true; done',
    'echo "stop.sh: killed (no exit 10 s after TERM):$left" >&2',
    '',
  );
  return l.join('\n');
}
