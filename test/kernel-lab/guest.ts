/**
 * What a UML guest run needs on this machine, shared by the kernel-lab tests: each says why
 * it cannot run (a skip reason) or undefined.
 */
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why a guest cannot boot and run the built CLI here, or undefined. */
export function guestMissing(): string | undefined {
  if (!onPath('linux.uml')) return 'linux.uml not found (apt-get install -y user-mode-linux)';
  if (!onPath('insmod')) return 'insmod not found (apt-get install -y kmod)';
  if (!existsSync('/usr/lib/uml/modules') || readdirSync('/usr/lib/uml/modules').length === 0) {
    return 'no UML kernel modules in /usr/lib/uml/modules (apt-get install -y user-mode-linux)';
  }
  if (!existsSync(join(ROOT, 'packages/cli/dist/bin/dune.js'))) return 'the CLI is not built (npm run build)';
  if (!existsSync(join(ROOT, 'packages/agent/native/build/Release/dune_native.node'))) return 'the agent addon is not built (npm run build)';
  return undefined;
}
