import { build } from 'esbuild';
const stub = (names) => ({ name: 'stub', setup(b) { b.onResolve({ filter: new RegExp(`^(${names.join('|')})$`) }, (a) => ({ path: a.path, namespace: 'stub' })); b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'export default {}; export const stringify = 0;', loader: 'js' })); } });
await build({ entryPoints: ['packages/cli/dist/bin/run.js'], bundle: true, platform: 'node', format: 'esm', target: 'node20', external: ['*.node','ssh2','cpu-features'], outfile: 'packages/cli/dist/bin/zz.mjs', plugins: [stub(process.argv.slice(2))],
  banner: { js: "import { createRequire as __duneCreateRequire } from 'node:module'; const require = __duneCreateRequire(import.meta.url);" } });
