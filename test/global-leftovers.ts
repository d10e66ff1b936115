/**
 * Suite-wide check: whatever the kernel tests created must be gone when the suite ends.
 * Runs once after all test files. Only looks at objects carrying our marks (namespaces with
 * the `dune.` prefix, interfaces with a `dune:` alias), so it never blames foreign objects.
 */
import { execFileSync } from 'node:child_process';

function ourNamespaces(): string[] {
  try {
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith('dune.') || n.startsWith('dunetest'));
  } catch {
    return [];
  }
}

function ourHostInterfaces(): string[] {
  try {
    const out = execFileSync('ip', ['-d', '-o', 'link', 'show'], { encoding: 'utf8' });
    return out.split('\n').filter((l) => / alias dune:/.test(l)).map((l) => l.split(': ')[1] ?? l);
  } catch {
    return [];
  }
}

export default function setup(): () => void {
  const before = new Set([...ourNamespaces(), ...ourHostInterfaces()]);
  return () => {
    const left = [...ourNamespaces(), ...ourHostInterfaces()].filter((x) => !before.has(x));
    if (left.length > 0) {
      const shown = left.slice(0, 20).join(', ');
      throw new Error(`${left.length} kernel objects left behind by the test suite: ${shown}${left.length > 20 ? ', ...' : ''}`);
    }
  };
}
