// Makes the built command-line entry points of every package executable (tsc does not keep modes).
import { chmodSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const packagesDir = new URL('../packages/', import.meta.url).pathname;
for (const pkg of readdirSync(packagesDir)) {
  const binDir = join(packagesDir, pkg, 'dist', 'bin');
  if (!existsSync(binDir)) continue;
  for (const f of readdirSync(binDir)) if (f.endsWith('.js')) chmodSync(join(binDir, f), 0o755);
}
