// After tsc: make every package's dist/bin entry points executable (tsc does not keep
// modes) and link the bins the workspace packages declare into node_modules/.bin. npm
// links a bin only when its target exists at install time, and on a fresh clone dist/
// does not exist yet, so without this `npx dune` would find nothing (or worse, look for a
// package of that name on the registry).
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('../', import.meta.url).pathname;
const packagesDir = join(root, 'packages');
const binLinks = join(root, 'node_modules', '.bin');
mkdirSync(binLinks, { recursive: true });

for (const pkg of readdirSync(packagesDir)) {
  const dir = join(packagesDir, pkg);
  const binDir = join(dir, 'dist', 'bin');
  if (existsSync(binDir)) {
    for (const f of readdirSync(binDir)) if (f.endsWith('.js')) chmodSync(join(binDir, f), 0o755);
  }
  const manifest = join(dir, 'package.json');
  if (!existsSync(manifest)) continue;
  const bins = JSON.parse(readFileSync(manifest, 'utf8')).bin ?? {};
  for (const [name, target] of Object.entries(bins)) {
    const abs = join(dir, target);
    if (!existsSync(abs)) continue;
    const link = join(binLinks, name);
    try {
      if (lstatSync(link)) unlinkSync(link);
    } catch {
      // no link yet
    }
    symlinkSync(relative(binLinks, abs), link);
  }
}
