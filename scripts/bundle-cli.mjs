// Bundles the CLI as built by tsc (packages/cli/dist/bin/run.js and the workspace packages'
// dist modules it imports) into one ES module, packages/cli/dist/bin/dune.bundle.mjs, which
// `dune` runs when it is fresh (packages/cli/src/bin/dune.ts): one file to load instead of
// ~400 (`dune --version` 0.6 → 0.3 s here).
//
// The bundle is used in place, inside the checkout: each module's `import.meta.url` is
// pinned to that module's own dist file, so what modules find beside themselves (the native
// addon, the agent bundle, the engine's web page and worker, teardown's helper) is found
// exactly as without the bundle. ssh2 stays a package of its own (optional native crypto).
import { build } from 'esbuild';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const outfile = join(root, 'packages/cli/dist/bin/dune.bundle.mjs');

const pinImportMetaUrl = {
  name: 'pin-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /[\\/]packages[\\/][a-z-]+[\\/]dist[\\/].*\.js$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
      loader: 'js',
    }));
  },
};

const r = await build({
  entryPoints: [join(root, 'packages/cli/dist/bin/run.js')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['*.node', 'ssh2', 'cpu-features'],
  plugins: [pinImportMetaUrl],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __duneCreateRequire } from 'node:module'; const require = __duneCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});
const kib = (statSync(outfile).size / 1024).toFixed(0);
console.log(`bundle-cli: dune.bundle.mjs ${kib} KiB (${Object.keys(r.metafile.inputs).length} modules)`);
