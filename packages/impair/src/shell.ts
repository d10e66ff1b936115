/**
 * impaired-network-shell's REPL: the live parameters as `p` and the meters as `m`.
 *
 *   p.up.delay = '300ms'      one direction (validated; a bad value throws, nothing applied)
 *   p.both.loss = '1%'        both directions
 *   p.delay = 0.3             packet_queue's form: both directions, its units
 *   p.up.set({rate: '10mbit', queue: '100p'})   several at once
 *   p.reset()                 back to the startup parameters
 *   m                         counters of both directions;  m.up, m.down;  m.reset()
 *
 * Tab completion comes from the REPL itself: every key is an own, enumerable property.
 */
import repl from 'node:repl';
import type { Readable, Writable } from 'node:stream';
import { inspect } from 'node:util';
import { formatParams } from './params.js';
import { DIRECTIONS, type ImpairRuntime } from './runtime.js';
import { pipeStats, statsView } from './server/views.js';

/** The friendly keys offered on p.up / p.down / p.both (all of PARAM_KEYS are accepted by set). */
export const SHELL_KEYS = [
  'delay', 'jitter', 'distribution', 'jitterCorrelation', 'loss', 'lossCorrelation', 'gemodel', 'duplicate', 'corrupt',
  'reorder', 'gap', 'rate', 'queue',
] as const;

const LEGACY_KEYS = ['delay', 'loss', 'bandwidth', 'buffer'] as const;

export const SHELL_HELP = `impaired-network-shell

  p                         the parameters of both directions (up: toward the service)
  p.up.delay = '300ms'      set one parameter of one direction; p.down.* likewise
  p.both.loss = '1%'        set it on both directions
  p.up.set({rate: '10mbit', queue: '100p'})   several at once, all or nothing
  p.delay = 0.3             packet_queue's keys (delay s, loss 0..1, bandwidth bytes/s, buffer bytes)
  p.reset()                 back to the startup parameters
  m                         counters: received, delivered, dropped by cause, latency
  m.up, m.down              one direction;  m.reset() zeroes the counters
  help                      this text;  .exit or Ctrl-D quits (and removes the iptables rules)

Keys: ${SHELL_KEYS.join(', ')}
Values: "20ms", "1%", "10mbit", "1MB/s", "100p", "64KiB"; null or "none" turns a setting off.
Tab completes names: p.up.<TAB>.`;

function textObject(text: () => string): object {
  return { [inspect.custom]: () => text() };
}

function direction(rt: ImpairRuntime, target: 'up' | 'down' | 'both'): object {
  const o: Record<string, unknown> = {};
  for (const key of SHELL_KEYS) {
    Object.defineProperty(o, key, {
      enumerable: true,
      get: () => (target === 'both' ? { up: formatParams(rt.parameters.up)[key], down: formatParams(rt.parameters.down)[key] } : formatParams(rt.parameters[target])[key]),
      set: (v: unknown) => {
        rt.set({ [target]: { [key]: v } }, 'shell');
      },
    });
  }
  Object.defineProperty(o, 'set', {
    enumerable: true,
    value: (patch: Record<string, unknown>) => {
      rt.set({ [target]: patch }, 'shell');
      return target === 'both' ? formatBoth(rt) : formatParams(rt.parameters[target]);
    },
  });
  Object.defineProperty(o, inspect.custom, {
    value: () => inspect(target === 'both' ? formatBoth(rt) : formatParams(rt.parameters[target]), { colors: false, depth: 3 }),
  });
  return o;
}

function formatBoth(rt: ImpairRuntime) {
  return { up: formatParams(rt.parameters.up), down: formatParams(rt.parameters.down) };
}

export function shellContext(rt: ImpairRuntime): { p: object; m: object; help: object } {
  const p: Record<string, unknown> = {};
  for (const d of [...DIRECTIONS, 'both'] as const) Object.defineProperty(p, d, { enumerable: true, value: direction(rt, d) });
  for (const key of LEGACY_KEYS) {
    Object.defineProperty(p, key, {
      enumerable: true,
      get: () => ({ up: formatParams(rt.parameters.up)[key === 'bandwidth' ? 'rate' : key === 'buffer' ? 'queue' : key], down: formatParams(rt.parameters.down)[key === 'bandwidth' ? 'rate' : key === 'buffer' ? 'queue' : key] }),
      set: (v: unknown) => {
        rt.set({ [key]: v }, 'shell');
      },
    });
  }
  Object.defineProperty(p, 'reset', { enumerable: true, value: () => (rt.reset('shell'), formatBoth(rt)) });
  Object.defineProperty(p, inspect.custom, { value: () => inspect(formatBoth(rt), { depth: 3 }) });

  const m: Record<string, unknown> = {};
  for (const d of DIRECTIONS) Object.defineProperty(m, d, { enumerable: true, get: () => pipeStats(rt.pipes[d]) });
  Object.defineProperty(m, 'reset', { enumerable: true, value: () => (rt.resetCounters(), 'counters reset') });
  Object.defineProperty(m, inspect.custom, { value: () => inspect(statsView(rt), { depth: 4 }) });

  return { p, m, help: textObject(() => SHELL_HELP) };
}

export interface ShellIo {
  input: Readable;
  output: Writable;
  terminal?: boolean;
  prompt?: string;
}

export function startShell(rt: ImpairRuntime, io: ShellIo): repl.REPLServer {
  const server = repl.start({
    prompt: io.prompt ?? 'impair> ',
    input: io.input,
    output: io.output,
    terminal: io.terminal ?? false,
    useGlobal: false,
    ignoreUndefined: true,
  });
  const ctx = shellContext(rt);
  for (const [k, v] of Object.entries(ctx)) {
    Object.defineProperty(server.context, k, { configurable: false, enumerable: true, value: v });
  }
  server.defineCommand('impair', { help: 'Show the impairment shell\'s help', action() {
    this.output.write(`${SHELL_HELP}\n`);
    this.displayPrompt();
  } });
  return server;
}
