import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@dune/topology': pkg('topology'),
      '@dune/compiler': pkg('compiler'),
      '@dune/agent': pkg('agent'),
      '@dune/transport': pkg('transport'),
      // Before '@dune/impair', which would otherwise take it as a path under its index.
      '@dune/impair/probe': fileURLToPath(new URL('./packages/impair/src/lab/probe.ts', import.meta.url)),
      '@dune/impair': pkg('impair'),
      '@dune/lab': pkg('lab'),
      '@dune/experiment': pkg('experiment'),
      '@dune/cli': pkg('cli'),
      '@dune/netmirage': pkg('netmirage'),
      '@dune/tor': pkg('tor'),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Kernel tests create namespaces with fixed lab names; running files in parallel on a
    // 2-core machine buys little and makes leftovers hard to attribute.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/global-leftovers.ts'],
  },
});
