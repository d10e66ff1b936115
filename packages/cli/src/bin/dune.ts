#!/usr/bin/env node
/**
 * `dune`: runs the CLI from its one-file bundle (dune.bundle.mjs, made by
 * scripts/bundle-cli.mjs after tsc) when that is at least as new as every package's build,
 * else from the packages' modules (./run.js). Loading ~400 ES modules one by one cost ~0.3 s
 * of every command (`dune --version` 0.6 s, 0.3 s from the bundle); a bundle older than a
 * package's build (tsc run alone after a change) would run old code, so it is then ignored.
 */
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function bundleIsFresh(bundle: string, packages: string): boolean {
  try {
    const made = statSync(bundle).mtimeMs;
    for (const p of readdirSync(packages)) {
      let built: number;
      try {
        built = statSync(`${packages}/${p}/dist/.tsbuildinfo`).mtimeMs;
      } catch {
        continue;
      }
      if (built > made) return false;
    }
    return process.env['DUNE_CLI_BUNDLE'] !== '0';
  } catch {
    return false;
  }
}

const bundle = fileURLToPath(new URL('./dune.bundle.mjs', import.meta.url));
const packages = fileURLToPath(new URL('../../../', import.meta.url));
if (bundleIsFresh(bundle, packages)) await import(bundle);
else await import('./run.js');
