// Bundles the agent (packages/agent/src/bin/dune-agent.ts and everything it imports) into
// ONE ES module, packages/transport/dist/agent/dune-agent.mjs, with the native addon copied
// beside it: what the transport copies to a remote host and runs with the host's `node`.
// Workspace packages are bundled from their TypeScript sources, so this does not depend on
// `tsc -b` having run. The compiler is marked free of side effects: the agent uses a few of
// its constants and the plan serialiser, not its template engine or graph libraries.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const out = join(root, 'packages/transport/dist/agent');
const addon = join(root, 'packages/agent/native/build/Release/dune_native.node');
if (!existsSync(addon)) {
  console.error(`bundle-agent: ${addon} is missing; run \`npm run build:native -w @dune/agent\` first`);
  process.exit(1);
}
mkdirSync(out, { recursive: true });

const workspace = {
  name: 'dune-workspace',
  setup(b) {
    b.onResolve({ filter: /^@dune\/[a-z-]+$/ }, (args) => {
      const pkg = args.path.slice('@dune/'.length);
      return { path: join(root, 'packages', pkg, 'src/index.ts'), sideEffects: pkg === 'compiler' ? false : undefined };
    });
  },
};

const r = await build({
  entryPoints: [join(root, 'packages/agent/src/bin/dune-agent.ts')],
  outfile: join(out, 'dune-agent.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['*.node'],
  plugins: [workspace],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __duneCreateRequire } from 'node:module'; const require = __duneCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});
copyFileSync(addon, join(out, 'dune_native.node'));
const sha = (f) => createHash('sha256').update(readFileSync(f)).digest('hex').slice(0, 12);
const size = (f) => `${(statSync(f).size / 1024).toFixed(0)} KiB`;
const inputs = Object.keys(r.metafile.inputs).length;
console.log(`bundle-agent: dune-agent.mjs ${size(join(out, 'dune-agent.mjs'))} (${inputs} modules, ${sha(join(out, 'dune-agent.mjs'))}), dune_native.node ${size(join(out, 'dune_native.node'))}`);
