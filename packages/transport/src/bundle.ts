/**
 * The agent as shipped to hosts: `dune-agent.mjs` (the agent bundled into one ES module by
 * scripts/bundle-agent.mjs at build time) and `dune_native.node` beside it. Its id is the
 * SHA-256 of both, which names its directory in a host's cache: a host that has it skips
 * the copy, and a changed agent lands in a new directory, never over a running one.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuneError } from '@dune/topology';

export const BUNDLE_FILES = ['dune-agent.mjs', 'dune_native.node'] as const;

export interface AgentBundle {
  dir: string;
  /** sha256 hex over both files: the cache directory's name and the daemon's version. */
  id: string;
  /** Per file, sha256 hex (what `sha256sum` prints on the host). */
  sha256: Record<(typeof BUNDLE_FILES)[number], string>;
}

/** Default remote cache root; DUNE_AGENT_CACHE overrides it (tests use a scratch dir). */
export const DEFAULT_AGENT_CACHE = '/var/cache/dune/agent';

export function agentCacheRoot(): string {
  return process.env['DUNE_AGENT_CACHE'] ?? DEFAULT_AGENT_CACHE;
}

function defaultDir(): string {
  // From src/ (tests) and from dist/ alike: the package's dist/agent.
  return process.env['DUNE_AGENT_BUNDLE'] ?? fileURLToPath(new URL('../dist/agent/', import.meta.url));
}

let cached: AgentBundle | undefined;

export function agentBundle(dir = defaultDir()): AgentBundle {
  if (cached && cached.dir === dir) return cached;
  const missing = BUNDLE_FILES.filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) {
    throw new DuneError('agent-bundle-missing', `the agent bundle is not built: ${missing.map((f) => join(dir, f)).join(', ')} missing`, {
      hint: 'run `npm run build` in the checkout (it bundles the agent for remote hosts)',
    });
  }
  const whole = createHash('sha256');
  const sha256 = {} as AgentBundle['sha256'];
  for (const f of BUNDLE_FILES) {
    const data = readFileSync(join(dir, f));
    sha256[f] = createHash('sha256').update(data).digest('hex');
    whole.update(`${f}\0${data.length}\0`).update(data);
  }
  cached = { dir, id: whole.digest('hex'), sha256 };
  return cached;
}
