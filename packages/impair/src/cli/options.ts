/**
 * The command line of impaired-network-server and impaired-network-shell: packet_queue's
 * flags (-t -l -i -p -x -a, with its underscore long forms and dashed ones), a config
 * file, and initial parameters. Parsed and validated whole into RuntimeOptions.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { choicesHint } from '@dune/topology';
import { mergeParams, ParamsError } from '../params.js';
import type { RuntimeOptions } from '../runtime.js';

export class UsageError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export type Command = 'server' | 'shell';

export interface CliOptions {
  runtime: RuntimeOptions;
  restApiPort: number;
  restApiHost: string;
  /** Whose REST forms are the defaults (see ServerOptions.api); packet_queue's under its command names. */
  api: 'dune' | 'packet_queue';
  /** Unknown keys in a PUT are an error rather than ignored with a warning. */
  strict: boolean;
  help: boolean;
}

const OPTIONS = {
  transport: { type: 'string', short: 't' },
  level: { type: 'string', short: 'l' },
  interface: { type: 'string', short: 'i' },
  port: { type: 'string', short: 'p' },
  proxy_port: { type: 'string', short: 'x' },
  'proxy-port': { type: 'string' },
  rest_api_port: { type: 'string', short: 'a' },
  'rest-api-port': { type: 'string' },
  'rest-api-host': { type: 'string' },
  netns: { type: 'string' },
  config: { type: 'string' },
  seed: { type: 'string' },
  'queue-num': { type: 'string' },
  'fail-open': { type: 'boolean' },
  'fail-closed': { type: 'boolean' },
  'queue-balance': { type: 'string' },
  'queue-cpu-fanout': { type: 'boolean' },
  'queue-len': { type: 'string' },
  listen: { type: 'string', multiple: true },
  target: { type: 'string' },
  'idle-timeout': { type: 'string' },
  up: { type: 'string', multiple: true },
  down: { type: 'string', multiple: true },
  both: { type: 'string', multiple: true },
  api: { type: 'string' },
  strict: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Keys a --config file may hold; the same names as the long flags, camelCased. */
const CONFIG_KEYS = [
  'transport', 'level', 'interface', 'port', 'proxyPort', 'restApiPort', 'restApiHost', 'netns', 'seed', 'queueNum', 'queueBalance',
  'listen', 'target', 'idleTimeout', 'pipes',
] as const;

export function usage(cmd: Command): string {
  const name = `impaired-network-${cmd}`;
  return `Usage: ${name} -p PORT [options]

Impairs the traffic of one service port: delay, jitter, loss, duplication, corruption,
reordering and rate, configured separately for each direction (up: toward the service,
down: from it).${cmd === 'server' ? ' Serves a REST API and a live page.' : ' Opens a shell on the live parameters.'}

  -p, --port PORT            the service's port (required)
  -t, --transport tcp|udp    protocol to impair (default tcp)
  -l, --level kernel|user    kernel: iptables NFQUEUE (root; TCP and UDP);
                             user: a UDP proxy (no root; needs -x) (default kernel)
  -i, --interface IFACE      kernel level: interface to match; auto = the default route's,
                             any = every interface (default lo)
  -x, --proxy-port PORT      user level: the port clients use instead (0: any free port)
      --netns NAME           kernel level: work inside network namespace NAME
      --queue-num N          kernel level: NFQUEUE number of up; down is N+1 (default 1)
      --queue-balance N|auto kernel level: spread each direction over N queues (auto: one per
                             core), each pair served by an engine on its own thread; up is
                             N..N+B-1 from --queue-num, down the B after. By a hash of the
                             addresses: a host pair stays on one queue, in order; a rate or
                             queue limit applies per queue
      --queue-cpu-fanout     with --queue-balance: spread by the CPU that queued the packet
      --queue-len N          kernel level: packets each queue holds for the engine (default 65536)
      --fail-open            kernel level: when a queue is full (the engine fell behind), let
                             packets through unimpaired (NFQA_CFG_F_FAIL_OPEN)
      --fail-closed          kernel level: when a queue is full, the kernel drops the packets, as
                             a full netem queue does (the default)
      --listen ADDR          user level: address to listen on (repeatable; default 127.0.0.1 and ::1)
      --target ADDR          user level: the service's address (default 127.0.0.1 / ::1)
      --idle-timeout 60s     user level: close a client's session after this long idle
${cmd === 'server' ? `  -a, --rest-api-port PORT   REST API and page port (default 9000)
      --rest-api-host ADDR   address the API listens on (default 127.0.0.1)
      --api dune|packet_queue  the default bodies of GET /pipes and /events: ours (per
                             direction) or packet_queue's (default under its command names,
                             impaired_network_server)
      --strict               an unknown key in a PUT /pipes is an error (default: ignored,
                             with a Warning header, as packet_queue does)
` : ''}      --up K=V[,K=V...]      initial parameters of up, e.g. --up delay=50ms,loss=1%
      --down K=V[,K=V...]    initial parameters of down
      --both K=V[,K=V...]    initial parameters of both directions
      --config FILE          JSON with any of: ${CONFIG_KEYS.join(', ')}
                             ("pipes" takes a PUT /pipes body); flags override it
      --seed N               random seed, to replay a run
  -h, --help                 this text

As root the engine runs at nice -10 while a direction has a delay, jitter or rate (netem runs
in the kernel, ahead of every process; a userspace engine on a busy host must be scheduled
early too to keep its timing), and at 5 when it has nothing to time (a little behind the
applications, it then takes their packets in batches rather than one by one).

Parameters (per direction; a bare number is in packet_queue's unit):
  delay, jitter      "20ms", "1.5s"            distribution   uniform|normal|pareto|paretonormal
  loss, duplicate,   "1%", "0.5%"              jitterCorrelation, lossCorrelation  "25%"
  corrupt, reorder                             gap            reorder gap (whole number)
  rate               "10mbit", "1MB/s"         queue          "100p" (packets) or "64KiB"
  packet_queue's bandwidth (bytes/s), buffer (bytes), delay (s) and loss (0..1) also work.

Examples:
  ${name} -l user -t udp -p 5000 -x 6000 --up delay=100ms,loss=2%
  ${name} -t tcp -p 8080 --both delay=40ms,jitter=5ms,rate=20mbit,queue=200p
`;
}

function portOf(v: string | number | undefined, flag: string, allowZero: boolean): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v).trim();
  const n = Number(s);
  if (!/^\d+$/.test(s) || n > 65535 || (!allowZero && n === 0)) {
    throw new UsageError(`${flag} takes a port number ${allowZero ? '0' : '1'}..65535, not "${s}"`);
  }
  return n;
}

function choice<T extends string>(v: string | undefined, flag: string, choices: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`${flag} is one of ${choices.join(', ')}, not "${v}"`, choicesHint(v, choices));
  return v as T;
}

/** `delay=50ms,loss=1%` (several flags accumulate) → {delay: "50ms", loss: "1%"}. */
export function parseAssignments(values: readonly string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    for (const part of v.split(',')) {
      if (part.trim() === '') continue;
      const eq = part.indexOf('=');
      if (eq <= 0) throw new UsageError(`${flag} takes KEY=VALUE pairs, e.g. ${flag} delay=50ms,loss=1%; "${part}" is not one`);
      out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    }
  }
  return out;
}

function readConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read the config file ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`the config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`the config file ${path} must hold a JSON object`);
  for (const k of Object.keys(json)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(k)) {
      throw new UsageError(`${path}: unknown key "${k}"`, choicesHint(k, CONFIG_KEYS));
    }
  }
  return json as Record<string, unknown>;
}

function str(v: unknown): string | undefined {
  return v === undefined ? undefined : String(v);
}

export function parseCli(cmd: Command, argv: string[], defaultApi: 'dune' | 'packet_queue' = 'dune'): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true });
  } catch (e) {
    const msg = (e as Error).message;
    const m = /Unknown option '(-{1,2})([^']+)'/.exec(msg);
    const known = Object.keys(OPTIONS).filter((k) => cmd === 'server' || !k.startsWith('rest'));
    throw new UsageError(msg.replace(/\. To specify a positional argument.*$/s, ''), m ? choicesHint(`--${m[2]!}`, known.map((k) => `--${k}`)) : `see ${`impaired-network-${cmd}`} --help`);
  }
  const f = parsed.values;
  const api = choice(f.api, '--api', ['dune', 'packet_queue'] as const, defaultApi);
  if (f.help) return { runtime: { level: 'kernel', transport: 'tcp', port: 0 }, restApiPort: 9000, restApiHost: '127.0.0.1', api, strict: false, help: true };
  if (cmd === 'shell' && (f.rest_api_port !== undefined || f['rest-api-port'] !== undefined)) {
    throw new UsageError('-a/--rest-api-port belongs to impaired-network-server; the shell serves no API');
  }
  const cfg = f.config !== undefined ? readConfig(f.config) : {};

  const port = portOf(f.port ?? str(cfg.port), '-p/--port', false);
  if (port === undefined) throw new UsageError('the service\'s port is required: -p PORT', `e.g. impaired-network-${cmd} -l user -t udp -p 5000 -x 6000`);
  const level = choice(f.level ?? str(cfg.level), '-l/--level', ['kernel', 'user'] as const, 'kernel');
  const transport = choice(f.transport ?? str(cfg.transport), '-t/--transport', ['tcp', 'udp'] as const, 'tcp');
  const proxyPort = portOf(f.proxy_port ?? f['proxy-port'] ?? str(cfg.proxyPort), '-x/--proxy-port', true);
  const restApiPort = portOf(f.rest_api_port ?? f['rest-api-port'] ?? str(cfg.restApiPort), '-a/--rest-api-port', true) ?? 9000;
  const seedText = f.seed ?? str(cfg.seed);
  if (seedText !== undefined && !/^\d{1,10}$/.test(seedText)) throw new UsageError(`--seed takes a whole number 0..4294967295, not "${seedText}"`);
  const queueText = f['queue-num'] ?? str(cfg.queueNum);
  if (queueText !== undefined && (!/^\d+$/.test(queueText) || Number(queueText) > 65534)) throw new UsageError(`--queue-num takes 0..65534, not "${queueText}"`);
  if (level === 'user' && transport !== 'udp') throw new UsageError('user level (the proxy) impairs UDP only', 'add -t udp, or use -l kernel (root) for TCP');
  if (level === 'user' && proxyPort === undefined) throw new UsageError('user level needs the proxy\'s port: -x PROXY_PORT (0: any free port)');
  const netns = f.netns ?? str(cfg.netns);
  if (netns !== undefined && (netns === '' || netns.includes('/') || netns === '.' || netns === '..')) throw new UsageError(`--netns takes a namespace name (as in ip netns list), not "${netns}"`);
  let idleMs: number | undefined;
  const idle = f['idle-timeout'] ?? str(cfg.idleTimeout);
  if (idle !== undefined) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|min)?$/.exec(idle.trim());
    if (!m) throw new UsageError(`--idle-timeout takes a duration such as 60s or 500ms, not "${idle}"`);
    idleMs = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'min' ? 60_000 : 1000);
  }
  if (f['fail-open'] && f['fail-closed']) throw new UsageError('--fail-open and --fail-closed contradict each other: give one');
  const balanceText = f['queue-balance'] ?? str(cfg.queueBalance);
  let queueBalance: number | undefined;
  if (balanceText !== undefined) {
    queueBalance = balanceText === 'auto' ? availableParallelism() : Number(balanceText);
    if (!/^(\d+|auto)$/.test(balanceText) || queueBalance < 1 || queueBalance > 64) throw new UsageError(`--queue-balance takes 1..64 queues per direction, or auto (one per core), not "${balanceText}"`);
    if (level === 'user') throw new UsageError('--queue-balance spreads NFQUEUE queues: it is for -l kernel');
  }
  if (f['queue-cpu-fanout'] && (queueBalance ?? 1) < 2) throw new UsageError('--queue-cpu-fanout spreads a balanced range: give --queue-balance N (N ≥ 2) too');
  if (queueText !== undefined && Number(queueText) + 2 * (queueBalance ?? 1) - 1 > 65535) throw new UsageError(`--queue-num ${queueText} leaves no room for ${2 * (queueBalance ?? 1)} queues below 65536`);
  const queueLen = f['queue-len'];
  if (queueLen !== undefined && (!/^\d+$/.test(queueLen) || Number(queueLen) < 1 || Number(queueLen) > 1_000_000)) {
    throw new UsageError(`--queue-len takes 1..1000000 packets, not "${queueLen}"`);
  }
  const listen = f.listen ?? (Array.isArray(cfg.listen) ? cfg.listen.map(String) : undefined);

  // Initial parameters: the config's pipes body, then --both, then --up/--down.
  let params = { up: {}, down: {} };
  try {
    if (cfg.pipes !== undefined) params = mergeParams(params, cfg.pipes) as typeof params;
    params = mergeParams(params, {
      both: parseAssignments(f.both ?? [], '--both'),
      up: parseAssignments(f.up ?? [], '--up'),
      down: parseAssignments(f.down ?? [], '--down'),
    }) as typeof params;
  } catch (e) {
    if (e instanceof ParamsError) {
      throw new UsageError(`bad initial parameters: ${e.problems.map((p) => `${p.path}: ${p.message}${p.valid ? ` (valid: ${p.valid})` : ''}`).join('; ')}`);
    }
    throw e;
  }

  const target = f.target ?? str(cfg.target);
  const runtime: RuntimeOptions = {
    level, transport, port, proxyPort, netns, listen, idleMs, params,
    iface: f.interface ?? str(cfg.interface) ?? 'lo',
    seed: seedText === undefined ? undefined : Number(seedText),
    upQueue: queueText === undefined ? undefined : Number(queueText),
    failOpen: f['fail-open'] ?? false,
    queueBalance, cpuFanout: f['queue-cpu-fanout'] ?? false,
    maxQueueLen: queueLen === undefined ? undefined : Number(queueLen),
    ...(target !== undefined ? (target.includes(':') ? { target6: target } : { target4: target }) : {}),
  };
  return { runtime, restApiPort, restApiHost: f['rest-api-host'] ?? str(cfg.restApiHost) ?? '127.0.0.1', api, strict: f.strict ?? false, help: false };
}
