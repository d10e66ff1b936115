/** The CLI process: `dune` (./dune.ts) runs this, from the bundle or from the modules. */
import { main } from '../dune.js';
import { endsQuickly } from '../exit.js';

// `dune up | head -3`: the reader may go away mid-run. Without a handler the EPIPE kills the
// process in the middle of building the lab; the lab must still be built (or rolled back) in
// full, so further output is dropped instead.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
  });
}

process.exitCode = await main(process.argv.slice(2));
if (endsQuickly()) process.exit(process.exitCode);
