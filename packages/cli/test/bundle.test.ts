/**
 * The built `dune` runs from its one-file bundle when it is fresh (src/bin/dune.ts): the
 * bundle must do what the modules do, and find what the modules find beside themselves.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../../../', import.meta.url).pathname;
const DUNE = join(root, 'packages/cli/dist/bin/dune.js');
const BUNDLE = join(root, 'packages/cli/dist/bin/dune.bundle.mjs');
const built = existsSync(DUNE) && existsSync(BUNDLE);
const hasStrace = spawnSync('strace', ['-V']).error === undefined;
/** `dune --version` under strace: its output, and every file it opened. */
function trace(): { stdout: string; stderr: string } {
  const log = join(mkdtempSync(join(tmpdir(), 'dune-bundle-')), 'strace.log');
  const r = spawnSync('strace', ['-f', '-e', 'trace=openat', '-o', log, process.execPath, DUNE, '--version'], { encoding: 'utf8' });
  return { stdout: r.stdout, stderr: readFileSync(log, 'utf8') };
}

function dune(args: string[], env: Record<string, string> = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [DUNE, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe.skipIf(!built)('the CLI bundle (needs `npm run build`)', () => {
  it('plans, validates and draws exactly as the modules do', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dune-bundle-'));
    const toml = join(dir, 'lab.toml');
    writeFileSync(join(dir, 'hello.tmpl'), 'node {{ node }} of {{ lab }}\n');
    writeFileSync(toml, [
      '[topology]', 'lab = "bundle"',
      'links = [ { endpoints = ["a:eth0", "b:eth0"], latency = "5ms" }, { endpoints = ["b:eth1", "c:eth0"], bw = "10mbit" } ]',
      '[topology.defaults.nodes.templates]', `"hello.tmpl" = "${dir}/{{node}}.conf"`,
      '[topology.nodes.a]', '[topology.nodes.b]', '[topology.nodes.c]', '',
    ].join('\n'));
    for (const args of [['plan', toml, '--json'], ['plan', toml], ['validate', toml], ['plan', join(root, 'topologies/zoo/Abilene.graphml')], ['validate', join(dir, 'missing.toml')], ['--help']]) {
      const fromBundle = dune(args);
      const fromModules = dune(args, { DUNE_CLI_BUNDLE: '0' });
      if (!args.includes(join(dir, 'missing.toml'))) expect(fromBundle.code, `${args.join(' ')}: ${fromBundle.err}`).toBe(0);
      expect(fromBundle, args.join(' ')).toEqual(fromModules);
    }
  });

  it.skipIf(!hasStrace)('is not used once a package is built after it (a tsc run alone): the modules run (strace shows which files open; scripts/setup installs it)', () => {
    const info = join(root, 'packages/compiler/dist/.tsbuildinfo');
    const was = statSync(info);
    const bundleWas = statSync(BUNDLE);
    const fresh = trace();
    expect(fresh.stdout.trim(), fresh.stderr.slice(-500)).toMatch(/^\d+\.\d+\.\d+$/);
    expect(fresh.stderr).toContain('dune.bundle.mjs');
    expect(fresh.stderr).not.toContain('packages/compiler/dist/index.js');
    try {
      // The bundle made an hour before the compiler's build.
      utimesSync(BUNDLE, bundleWas.atime, new Date(was.mtimeMs - 3_600_000));
      const stale = trace();
      expect(stale.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
      expect(stale.stderr).not.toContain('dune.bundle.mjs"');
      expect(stale.stderr).toContain('packages/compiler/dist/index.js');
    } finally {
      utimesSync(BUNDLE, bundleWas.atime, bundleWas.mtime);
    }
  });
});
