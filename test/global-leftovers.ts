/**
 * Suite-wide check: whatever the kernel tests created must be gone when the suite ends.
 * Runs once after all test files. Only looks at objects carrying our marks (namespaces with
 * the `dune.` or `dune-probe-` prefix, interfaces with a `dune:` alias, labs' impairment engines by their
 * command line), so it never blames foreign objects.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

function ourNamespaces(): string[] {
  try {
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    return out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith('dune.') || n.startsWith('dune-probe-') || n.startsWith('dunetest'));
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

/** Labs' userspace impairment engines (`dune-agent ... impair-engine --lab L`), by command line. */
function ourEngines(): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('impair-engine');
      if (i >= 0 && argv.includes('--lab')) out.push(`impair engine of lab ${argv[argv.indexOf('--lab') + 1]} (pid ${d})`);
    } catch {
      // gone
    }
  }
  return out;
}

export default function setup(): () => void {
  const before = new Set([...ourNamespaces(), ...ourHostInterfaces(), ...ourEngines()]);
  return () => {
    const left = [...ourNamespaces(), ...ourHostInterfaces(), ...ourEngines()].filter((x) => !before.has(x));
    if (left.length > 0) {
      const shown = left.slice(0, 20).join(', ');
      throw new Error(`${left.length} kernel objects left behind by the test suite: ${shown}${left.length > 20 ? ', ...' : ''}`);
    }
  };
}
