#!/usr/bin/env node
import { edgeMain } from '../edge-cli.js';

// `netmirage-edge ... | head`: a reader that goes away must not kill the process halfway
// through building (or undoing) the network; further output is dropped instead.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
  });
}

process.exitCode = await edgeMain(process.argv.slice(2));
