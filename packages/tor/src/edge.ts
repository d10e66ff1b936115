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

export function stopScript(net: TorNetwork): string {
  const files = ['web', ...net.nodes.map((n) => n.name)].map((n) => shQuote(pidFile(net.dir, n)));
  return [
    '#!/bin/sh',
    '# Stops what start.sh started (by the pids it recorded), and nothing else.',
    `for f in ${files.join(' ')}; do`,
    '  [ -f "$f" ] || continue',
    '  kill "$(cat "$f")" 2>/dev/null || true',
    '  rm -f "$f"',
    'done',
    '',
  ].join('\n');
}
