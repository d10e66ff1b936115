/** parse → resolve → compile, with the file reads the compiler needs injected here. */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { DuneError, parseTopology, sortDiagnostics, type Diagnostic, type ReadOptions, type Topology } from '@dune/topology';
import { compileWithDiagnostics, type Plan } from '@dune/compiler';
import { DEFAULT_TOPOLOGY, DEFAULT_TOPOLOGY_FILE } from './default-topology.js';

export interface LoadOptions extends ReadOptions {
  /** Use the embedded default topology when no file is given. */
  allowDefault?: boolean;
  /** `--overcommit`: pinned processes may share cores (carried to compileLoaded). */
  overcommit?: boolean;
}

export interface Loaded {
  file: string;
  text: string;
  topology: Topology;
  overcommit?: boolean;
}

export function loadTopology(file: string | undefined, opts: LoadOptions = {}): Loaded {
  let text: string;
  let name: string;
  if (file === undefined) {
    if (!opts.allowDefault) throw new DuneError('no-file', 'no topology file given', { hint: 'pass a .toml or .graphml file' });
    text = DEFAULT_TOPOLOGY;
    name = DEFAULT_TOPOLOGY_FILE;
  } else {
    name = file;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new DuneError('file-unreadable', `cannot read topology file ${file}: ${code}`, {
        hint: code === 'ENOENT' ? 'check the path; topology files end in .toml or .graphml' : 'check the file permissions',
      });
    }
  }
  return { file: name, text, topology: parseTopology(text, name, opts), ...(opts.overcommit === true ? { overcommit: true } : {}) };
}

export interface Compiled {
  plan: Plan;
  /** The reader's and the compiler's warnings and notes, sorted by location. */
  diagnostics: Diagnostic[];
}

export function compileLoaded(l: Loaded, lab?: string): Compiled {
  const sourceSha256 = createHash('sha256').update(l.text).digest('hex');
  const opts = { readFile: (p: string) => readFileSync(p), sourceSha256, ...(lab !== undefined ? { lab } : {}), ...(l.overcommit === true ? { overcommit: true } : {}) };
  const r = compileWithDiagnostics(l.topology, opts);
  return { plan: r.plan, diagnostics: sortDiagnostics([...l.topology.notes, ...r.diagnostics]) };
}
