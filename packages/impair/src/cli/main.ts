/**
 * The three commands. Only this layer prints; it sets exit codes and always removes what it
 * created (iptables rules) on exit, SIGINT and SIGTERM.
 */
import { parseArgs } from 'node:util';
import { removeRules, removeRulesSync } from '../kernel/iptables.js';
import { singleThreadedScavenges } from '../kernel/engine-process.js';
import { ImpairRuntime } from '../runtime.js';
import { startServer } from '../server/server.js';
import { startShell } from '../shell.js';
import { parseCli, usage, UsageError, type Command } from './options.js';

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream;
}

const defaultIo = (): Io => ({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });

function fail(name: string, io: Io, e: unknown): number {
  if (e instanceof UsageError) {
    io.stderr.write(`${name}: error: ${e.message}\n${e.hint ? `  hint: ${e.hint}\n` : ''}`);
    return 2;
  }
  io.stderr.write(`${name}: error: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env.DEBUG && e instanceof Error) io.stderr.write(`${e.stack}\n`);
  return 1;
}

/** Resolves when SIGINT or SIGTERM arrives (or `stop` is called). */
function untilSignal(): { done: Promise<string>; stop: (why: string) => void; dispose: () => void } {
  let stop!: (why: string) => void;
  const done = new Promise<string>((r) => (stop = r));
  const onInt = () => stop('SIGINT');
  const onTerm = () => stop('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return { done, stop, dispose: () => (process.off('SIGINT', onInt), process.off('SIGTERM', onTerm)) };
}

/** Last resort: if the process exits with our rules still in place (a throw), delete them. */
function guardRules(rt: ImpairRuntime): () => void {
  const onExit = () => {
    if (rt.ruleTag !== undefined && !rt.isStopped) removeRulesSync({ netns: rt.opts.netns, tag: rt.ruleTag });
  };
  process.on('exit', onExit);
  return () => process.off('exit', onExit);
}

function describeRuntime(rt: ImpairRuntime): string {
  const o = rt.opts;
  if (o.level === 'user') {
    return `impairing UDP port ${o.port} through a proxy on port ${[...new Set(rt.proxy!.ports.values())].join(', ')}`;
  }
  return `impairing ${o.transport.toUpperCase()} port ${o.port} on ${rt.iface}${o.netns ? ` in namespace ${o.netns}` : ''} (NFQUEUE${o.queueBalance && o.queueBalance > 1 ? `, ${o.queueBalance} queues per direction, one engine thread each` : ''}; ${o.failOpen ? 'fail open' : 'fail closed'}; rules tagged "${rt.ruleTag}")`;
}

/**
 * Who the command was started as: ours (`impaired-network-server`), or packet_queue's
 * (`impaired_network_server`), whose REST bodies and startup line its users' scripts expect.
 */
export type Flavor = 'dune' | 'packet_queue';

const commandName = (base: string, flavor: Flavor) => (flavor === 'packet_queue' ? base.replaceAll('-', '_') : base);

export async function serverMain(argv: string[], io: Io = defaultIo(), flavor: Flavor = 'dune'): Promise<number> {
  return commandMain('server', argv, io, flavor);
}

export async function shellMain(argv: string[], io: Io = defaultIo(), flavor: Flavor = 'dune'): Promise<number> {
  return commandMain('shell', argv, io, flavor);
}

async function commandMain(cmd: Command, argv: string[], io: Io, flavor: Flavor): Promise<number> {
  const name = commandName(`impaired-network-${cmd}`, flavor);
  let opts;
  try {
    opts = parseCli(cmd, argv, flavor);
  } catch (e) {
    return fail(name, io, e);
  }
  if (opts.help) {
    io.stdout.write(usage(cmd));
    return 0;
  }
  const signals = untilSignal();
  let rt: ImpairRuntime | undefined;
  let unguard = () => {};
  try {
    // Every packet held waits for a collection: one that does not wait for V8's helpers too.
    singleThreadedScavenges();
    rt = await ImpairRuntime.start(opts.runtime);
    unguard = guardRules(rt);
    if (cmd === 'server') {
      const srv = await startServer({
        runtime: rt, port: opts.restApiPort, host: opts.restApiHost, api: opts.api, strict: opts.strict, log: (l) => io.stderr.write(`${l}\n`),
      });
      io.stdout.write(`${name}: ${describeRuntime(rt)}; seed ${rt.engine.seed}\n`);
      // packet_queue's own line, which scripts written for it wait for.
      if (opts.api === 'packet_queue') io.stdout.write(`Packet Queue is running. Configure at http://localhost:${srv.port}\n`);
      io.stdout.write(`Configure at ${srv.url} (REST: /pipes /events /series /stats /metrics)\n`);
      const why = await signals.done;
      io.stdout.write(`${name}: ${why}: removing what was set up\n`);
      await srv.close();
    } else {
      io.stdout.write(`${name}: ${describeRuntime(rt)}; seed ${rt.engine.seed}. Type help.\n`);
      const shell = startShell(rt, { input: (io.stdin ?? process.stdin) as NodeJS.ReadStream, output: io.stdout as NodeJS.WriteStream, terminal: (io.stdin as NodeJS.ReadStream | undefined)?.isTTY ?? false });
      shell.on('exit', () => signals.stop('exit'));
      await signals.done;
      shell.close();
    }
    return 0;
  } catch (e) {
    return fail(name, io, e);
  } finally {
    signals.dispose();
    await rt?.stop();
    unguard();
  }
}

export async function clearMain(argv: string[], io: Io = defaultIo(), as = 'impaired-network-clear-iptables'): Promise<number> {
  const name = as;
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { netns: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (e) {
    return fail(name, io, new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ''), `see ${name} --help`));
  }
  if (values.help) {
    io.stdout.write(`Usage: ${name} [--netns NAME]\n\nDeletes every iptables/ip6tables rule impaired-network-* added (comment starting\n"impaired-network"), e.g. after a crash. Touches nothing else.\n`);
    return 0;
  }
  if (process.getuid?.() !== 0) return fail(name, io, new Error('changing iptables needs root'));
  try {
    const removed = await removeRules({ netns: values.netns });
    for (const r of removed) io.stdout.write(`removed: ${r.tool} -A ${r.chain} ${r.args.join(' ')}\n`);
    io.stdout.write(`${name}: ${removed.length} rule${removed.length === 1 ? '' : 's'} removed\n`);
    return 0;
  } catch (e) {
    return fail(name, io, e);
  }
}
