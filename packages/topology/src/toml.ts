/**
 * The DUNE TOML reader (format of reference/dune.md 3.2, with DUNE's bugs fixed and our
 * extensions). The pipeline, one function per arrow:
 *
 *   text ──smol-toml──▶ TOML table ──locateToml──▶ + key locations
 *        ──readRawDune (toml-raw.ts)──▶ RawDuneFile: keys checked, leaves as written, located
 *        ──resolveDuneToml (toml-resolve.ts, toml-node.ts, toml-link.ts)──▶ Topology
 *
 * Every stage reports into one Diagnostics and keeps going; the reader throws a single
 * TopologyError listing every error at the end. Warnings and notes end up in
 * `Topology.notes`.
 */
import { parse, TomlError } from 'smol-toml';
import { Diagnostics, formatDiagnostic, sortDiagnostics, type Diagnostic } from './errors.js';
import type { Topology } from './model.js';
import { locateToml, type TomlLocator } from './toml-locate.js';
import { readRawDune } from './toml-raw.js';
import { resolveDuneToml } from './toml-resolve.js';
import type { TomlTable } from './toml-values.js';

export interface DuneTomlOptions {
  /** Lab name override (default: `[topology] lab`, then the file's base name). */
  lab?: string;
}

/** DUNE TOML text → resolved Topology. Throws TopologyError with every problem found. */
export function parseDuneToml(text: string, file: string, opts: DuneTomlOptions = {}): Topology {
  const d = new Diagnostics();
  const doc = parseTomlText(text, file, d);
  if (doc === undefined) {
    d.throwIfErrors();
    throw new Error('unreachable: a TOML parse failure always records an error');
  }
  return resolveDocument(doc, locateToml(text, file), opts, d);
}

/**
 * An already parsed TOML table → Topology, located by `locator`. For documents that hold a
 * topology among other tables (an experiment file's inline `[topology]`: pass the table with
 * only `topology`/`infrastructure` and the locator of the whole text) or a table changed
 * after parsing (errors then point at the nearest key that was written).
 */
export function parseDuneTomlTable(doc: TomlTable, locator: TomlLocator, opts: DuneTomlOptions = {}): Topology {
  return resolveDocument(doc, locator, opts, new Diagnostics());
}

function resolveDocument(doc: TomlTable, locator: TomlLocator, opts: DuneTomlOptions, d: Diagnostics): Topology {
  const raw = readRawDune(doc, locator, d);
  const topology = resolveDuneToml(raw, opts.lab === undefined ? {} : { lab: opts.lab }, d);
  const diagnostics = dedupe(d.items);
  // A failed read reports errors and warnings (a warning can explain an error); notes only
  // describe a topology that was read.
  const report = new Diagnostics();
  for (const item of diagnostics) if (item.severity !== 'note') report.add(item);
  report.throwIfErrors();
  topology.notes = sortDiagnostics(diagnostics.filter((x) => x.severity !== 'error'));
  return topology;
}

/** smol-toml's table, or undefined with a `toml-syntax` error located where the parser stopped. */
export function parseTomlText(text: string, file: string, d: Diagnostics): TomlTable | undefined {
  try {
    return parse(text) as TomlTable;
  } catch (e) {
    if (e instanceof TomlError) {
      const message = e.message.replace(/^Invalid TOML document: /, '').split('\n\n')[0] ?? e.message;
      d.error('toml-syntax', `invalid TOML: ${message}`, { file, line: e.line, col: codePointColumn(text, e.line, e.column) },
        'see https://toml.io for the syntax; strings need quotes, and a key may be defined only once');
      return undefined;
    }
    // smol-toml signals a few limits (nesting depth) with other errors; they are still the input's fault.
    d.error('toml-syntax', `invalid TOML: ${e instanceof Error ? e.message : String(e)}`, { file, line: 1, col: 1 });
    return undefined;
  }
}

/** smol-toml counts columns in UTF-16 units; ours are code points. */
function codePointColumn(text: string, line: number, utf16Col: number): number {
  const lines = text.split(/\r?\n/);
  const prefix = (lines[line - 1] ?? '').slice(0, utf16Col - 1);
  return [...prefix].length + 1;
}

/** The same problem found through several paths (a default applied to many links) is reported once. */
function dedupe(items: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return items.filter((x) => {
    const key = formatDiagnostic(x);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// The command splitter is part of this reader's contract (how `exec`/`cmd` strings become argv);
// re-exported here so that it is reachable through the package index.
export { splitCommand, joinCommand, quoteWord, CommandSyntaxError, type SplitCommand } from './command.js';
