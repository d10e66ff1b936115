import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { DuneError } from './errors.js';
import type { RoutingMode, Topology } from './model.js';
import { parseDuneToml, type DuneTomlOptions } from './toml.js';
import { parseGraphml, type GraphmlOptions } from './graphml.js';

export type ReadOptions = DuneTomlOptions & GraphmlOptions & {
  /** Overrides the file's `[topology] routing` (GraphML files have none: `static` by default). */
  routing?: RoutingMode;
};

/** Parses topology text, choosing the reader by extension, then by content. */
export function parseTopology(text: string, file: string, opts: ReadOptions = {}): Topology {
  const t = parseByFormat(text, file, opts);
  if (opts.routing !== undefined) t.lab.routing = opts.routing;
  return t;
}

function parseByFormat(text: string, file: string, opts: ReadOptions): Topology {
  const ext = extname(file).toLowerCase();
  if (ext === '.toml') return parseDuneToml(text, file, opts);
  if (ext === '.graphml' || ext === '.xml') return parseGraphml(text, file, opts);
  const head = text.trimStart();
  if (head.startsWith('<')) return parseGraphml(text, file, opts);
  return parseDuneToml(text, file, opts);
}

/** Reads and parses a topology file. */
export function readTopology(file: string, opts: ReadOptions = {}): Topology {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new DuneError('file-unreadable', `cannot read topology file ${file}: ${err.code ?? err.message}`, {
      hint: err.code === 'ENOENT' ? 'check the path; topology files end in .toml or .graphml' : 'check the file permissions',
      cause: e,
    });
  }
  return parseTopology(text, file, opts);
}
