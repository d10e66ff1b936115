import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { shJoin, shQuote } from '../src/quote.js';

const NASTY = [
  '', ' ', 'plain', 'two words', "it's", "''", '"', '\\', '\\\'', '$HOME', '${x:-y}', '$(id)', '`id`', ';', '&&', '|', '>', '<', '*', '?', '[a]',
  '~', '~/x', '#c', '!', '!!', 'a\nb', '\t', 'A=B', '=ls', '%1', '-n', '--', '-e', 'ümlaut ñ 😀', "'$(rm -rf /)'", 'x\'y"z`w', '\r\n',
];

describe('shQuote', () => {
  it('leaves safe words bare and quotes the rest', () => {
    expect(shQuote('ip')).toBe('ip');
    expect(shQuote('/usr/bin/node')).toBe('/usr/bin/node');
    expect(shQuote('dune.lab.r1')).toBe('dune.lab.r1');
    expect(shQuote('')).toBe("''");
    expect(shQuote("it's")).toBe("'it'\\''s'");
    expect(shQuote('A=B')).toBe("'A=B'");
    expect(shQuote('$(id)')).toBe("'$(id)'");
  });

  it('refuses NUL and an empty command', () => {
    expect(() => shQuote('a\0b')).toThrow(/NUL/);
    expect(() => shJoin([])).toThrow(/empty/);
  });

  for (const shell of ['/bin/sh', '/bin/dash', '/bin/bash', '/usr/bin/zsh', '/bin/ksh']) {
    it.skipIf(!existsSync(shell))(`round-trips every word through ${shell}`, () => {
      // The shell parses the joined string; printf prints each resulting word NUL-terminated.
      const r = spawnSync(shell, ['-c', `printf '%s\\0' ${shJoin(NASTY)}`], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\0').slice(0, -1)).toEqual(NASTY);
    });
  }

  it('keeps the first word a command, never an assignment', () => {
    const r = spawnSync('/bin/sh', ['-c', shJoin(['A=B', 'true'])], { encoding: 'utf8' });
    expect(r.status).toBe(127);
  });
});
