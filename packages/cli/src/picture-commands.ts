/**
 * Pictures of a lab: `dune graph` (dot, svg, mermaid, html, from a file or a running lab)
 * and `dune ui` (a live view on a local port). Parsing and printing only; the pictures and
 * the server are @dune/lab's (graph/, ui/).
 */
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { DuneError } from '@dune/topology';
import * as lab from '@dune/lab';
import type { Output } from './output.js';
import { addReaderOptions, readerOptions, type ReaderFlags } from './reader-options.js';
import * as remote from './remote-commands.js';

interface GraphFlags extends ReaderFlags, remote.SshFlags {
  format: string;
  output?: string;
}

export function registerPictureCommands(program: Command, o: Output): void {
  remote.addSshOptions(addReaderOptions(program
    .command('graph')
    .description('draw a topology (from its file) or a running lab (--lab: live state, cut links, stopped nodes)')
    .argument('[file]', 'topology file (default with no --lab: the embedded default lab)')
    .option('--format <format>', `dot, svg, mermaid or html`, 'dot')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .addHelpText('after', '\nExamples:\n  dune graph topo.toml | dot -Tpng > topo.png\n  dune graph --lab demo --format svg -o demo.svg\n  dune graph topo.toml --format mermaid')))
    .action(async (file: string | undefined, flags: GraphFlags) => {
      const format = lab.graphFormat(flags.format);
      let model: lab.GraphModel;
      if (file === undefined && flags.lab !== undefined) {
        const loc = await lab.locateLab({ lab: flags.lab }, 'graph');
        const opts = remote.sshOptions(flags, o);
        const [plan, status] = await Promise.all([lab.labPlan(loc, opts), lab.labStatus(loc, opts)]);
        model = lab.graphModel(plan, status);
      } else {
        const loaded = lab.loadTopology(file, { ...readerOptions(flags), allowDefault: true });
        model = lab.graphModel(lab.compileLoaded(loaded, flags.lab).plan);
      }
      const text = lab.renderGraph(model, format);
      if (flags.output !== undefined) {
        writeFileSync(flags.output, text);
        o.err(`${flags.output}: ${model.nodes.length} nodes, ${model.links.length} links (${format})`);
      } else o.write(text);
    });

  remote.addSshOptions(program
    .command('ui')
    .description('a live view of a running lab in the browser: the graph, counters and impairments every second; click to cut, repair, stop, start, impair')
    .option('--lab <name>', 'lab name (default: the only lab)')
    .option('-f, --file <file>', 'the topology file the lab was built from (finds a lab on other hosts)')
    .option('--port <port>', 'local port (127.0.0.1 only)', '8080')
    .addHelpText('after', '\nExample:\n  dune ui --lab demo --port 8080     then open http://127.0.0.1:8080/'))
    .action(async (flags: remote.SshFlags & { lab?: string; file?: string; port: string }) => {
      const port = Number(flags.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new DuneError('bad-port', `"${flags.port}" is not a port`, { hint: 'give a number from 1 to 65535 (0: any free port)' });
      const loc = await lab.locateLab({ ...(flags.lab !== undefined ? { lab: flags.lab } : {}), ...(flags.file !== undefined ? { file: flags.file } : {}) }, 'ui');
      const server = await lab.startUi(loc, { port, orchestrate: remote.sshOptions(flags, o) });
      o.out(`lab ${loc.lab}: live view on ${server.url} (Ctrl-C to stop)`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void server.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
