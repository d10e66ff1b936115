/**
 * The lab's userspace engine settings (`impairment_engine_threads`, `impairment_engine_fail`,
 * the plan's impairmentEngine): the engine's command line, and when a running engine's hello
 * says it runs otherwise (then `up` replaces it). Plain values, no kernel, no engine started.
 */
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { engineArgv, engineMismatch, ENGINE_SUBCOMMAND, labEngineSettings } from '../src/impair/userspace.js';

const SOCK = '/run/dune/l/impair.sock';

describe('engineArgv', () => {
  it('without settings: the command line of before, one thread, fail closed', () => {
    expect(engineArgv('l', SOCK)).toEqual(['impair-engine', '--lab', 'l', '--socket', SOCK]);
    expect(engineArgv('l', SOCK, {})).toEqual(['impair-engine', '--lab', 'l', '--socket', SOCK]);
    // The defaults spelled out change nothing.
    expect(engineArgv('l', SOCK, { threads: 1, failOpen: false })).toEqual(['impair-engine', '--lab', 'l', '--socket', SOCK]);
  });

  it('--threads N, --threads auto, --fail-open', () => {
    expect(engineArgv('l', SOCK, { threads: 4 })).toEqual(['impair-engine', '--lab', 'l', '--socket', SOCK, '--threads', '4']);
    expect(engineArgv('l', SOCK, { threads: 'auto' })).toEqual(['impair-engine', '--lab', 'l', '--socket', SOCK, '--threads', 'auto']);
    expect(engineArgv('l', SOCK, { failOpen: true })).toEqual(['impair-engine', '--lab', 'l', '--socket', SOCK, '--fail-open']);
    expect(engineArgv('l', SOCK, { threads: 2, failOpen: true })).toEqual(['impair-engine', '--lab', 'l', '--socket', SOCK, '--threads', '2', '--fail-open']);
  });

  it('keeps the lab right after the subcommand, where findEnginePids reads it', () => {
    const argv = engineArgv('my.lab', SOCK, { threads: 8, failOpen: true });
    const i = argv.indexOf(ENGINE_SUBCOMMAND);
    expect(argv.slice(i + 1, i + 3)).toEqual(['--lab', 'my.lab']);
  });
});

describe('labEngineSettings', () => {
  it("the plan's impairmentEngine, or none", () => {
    expect(labEngineSettings({})).toEqual({});
    expect(labEngineSettings({ impairmentEngine: { threads: 'auto', failOpen: true } })).toEqual({ threads: 'auto', failOpen: true });
  });
});

describe('engineMismatch: a running engine kept or replaced', () => {
  it('the same settings: kept', () => {
    expect(engineMismatch({ threads: 1, failOpen: false }, {})).toBeUndefined();
    expect(engineMismatch({ threads: 4, failOpen: true }, { threads: 4, failOpen: true })).toBeUndefined();
  });

  it('another thread count or fail mode: replaced, saying why', () => {
    expect(engineMismatch({ threads: 1, failOpen: false }, { threads: 4 })).toBe('it runs 1 thread, the lab asks for 4');
    expect(engineMismatch({ threads: 4, failOpen: false }, {})).toBe('it runs 4 threads, the lab asks for 1');
    expect(engineMismatch({ threads: 1, failOpen: false }, { failOpen: true })).toBe('it fails closed, the lab asks to fail open');
    expect(engineMismatch({ threads: 2, failOpen: true }, {})).toBe('it runs 2 threads, the lab asks for 1; it fails open, the lab asks to fail closed');
  });

  it('auto: one thread per core of this host', () => {
    expect(engineMismatch({ threads: 8, failOpen: false }, { threads: 'auto' }, 8)).toBeUndefined();
    expect(engineMismatch({ threads: 4, failOpen: false }, { threads: 'auto' }, 8)).toBe('it runs 4 threads, the lab asks for 8 (auto)');
    // Without the cores given: this machine's.
    expect(engineMismatch({ threads: availableParallelism() }, { threads: 'auto' })).toBeUndefined();
  });

  it('only what the hello says is compared (an engine from before these settings says neither)', () => {
    expect(engineMismatch({}, { threads: 4, failOpen: true })).toBeUndefined();
    expect(engineMismatch({ threads: 4 }, { threads: 4, failOpen: true })).toBeUndefined();
    expect(engineMismatch({ failOpen: false }, { threads: 4, failOpen: true })).toBe('it fails closed, the lab asks to fail open');
  });
});
