/**
 * User-facing failures. Every diagnostic has a stable code, says what is wrong, and where
 * possible where (file:line:col) and how to fix it. Only the CLI turns these into output.
 */

export interface SourceLoc {
  file: string;
  /** 1-based */
  line: number;
  /** 1-based, in characters */
  col: number;
}

export type Severity = 'error' | 'warning' | 'note';

export interface Diagnostic {
  severity: Severity;
  /** Stable, kebab-case: `unknown-key`, `bad-unit`, `duplicate-address`, ... */
  code: string;
  message: string;
  /** How to fix it; one sentence. */
  hint?: string;
  loc?: SourceLoc;
}

/** One failure the user can act on. */
export class DuneError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly loc: SourceLoc | undefined;

  constructor(code: string, message: string, opts: { hint?: string; loc?: SourceLoc; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DuneError';
    this.code = code;
    this.hint = opts.hint;
    this.loc = opts.loc;
  }

  toDiagnostic(): Diagnostic {
    const d: Diagnostic = { severity: 'error', code: this.code, message: this.message };
    if (this.hint !== undefined) d.hint = this.hint;
    if (this.loc !== undefined) d.loc = this.loc;
    return d;
  }
}

/** Every error found in one input, reported together. */
export class TopologyError extends Error {
  readonly diagnostics: Diagnostic[];

  constructor(diagnostics: Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    super(`${errors.length} error${errors.length === 1 ? '' : 's'} in the topology:\n${formatDiagnostics(errors)}`);
    this.name = 'TopologyError';
    this.diagnostics = diagnostics;
  }
}

export function formatLoc(loc: SourceLoc): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.loc ? `${formatLoc(d.loc)}: ` : '';
  const head = `${where}${d.severity}[${d.code}]: ${d.message}`;
  return d.hint ? `${head}\n  hint: ${d.hint}` : head;
}

export function formatDiagnostics(ds: readonly Diagnostic[]): string {
  return ds.map(formatDiagnostic).join('\n');
}

/** Sorts diagnostics by file, line, column, then code, so output is stable. */
export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return ds.sort((a, b) => {
    const fa = a.loc?.file ?? '';
    const fb = b.loc?.file ?? '';
    if (fa !== fb) return fa < fb ? -1 : 1;
    const la = a.loc?.line ?? 0;
    const lb = b.loc?.line ?? 0;
    if (la !== lb) return la - lb;
    const ca = a.loc?.col ?? 0;
    const cb = b.loc?.col ?? 0;
    if (ca !== cb) return ca - cb;
    return a.code < b.code ? -1 : a.code > b.code ? 1 : 0;
  });
}

/** Collects diagnostics while a stage keeps going, so one run reports every error. */
export class Diagnostics {
  readonly items: Diagnostic[] = [];

  error(code: string, message: string, loc?: SourceLoc, hint?: string): void {
    this.push('error', code, message, loc, hint);
  }

  warning(code: string, message: string, loc?: SourceLoc, hint?: string): void {
    this.push('warning', code, message, loc, hint);
  }

  note(code: string, message: string, loc?: SourceLoc, hint?: string): void {
    this.push('note', code, message, loc, hint);
  }

  add(d: Diagnostic): void {
    this.items.push(d);
  }

  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === 'error');
  }

  /** Throws a TopologyError carrying every diagnostic when any is an error. */
  throwIfErrors(): void {
    if (this.hasErrors) throw new TopologyError(sortDiagnostics([...this.items]));
  }

  private push(severity: Severity, code: string, message: string, loc?: SourceLoc, hint?: string): void {
    const d: Diagnostic = { severity, code, message };
    if (hint !== undefined) d.hint = hint;
    if (loc !== undefined) d.loc = loc;
    this.items.push(d);
  }
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const m = a.length;
  const n = b.length;
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= m; i++) {
    const cur = [i];
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[n] ?? 0;
}

/** The nearest candidate to `word`, if any is close enough to be a plausible typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const w = word.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(2, Math.floor(word.length / 3));
  return bestD <= limit ? best : undefined;
}

/** "Use one of: a, b, c (did you mean b?)" */
export function choicesHint(word: string, candidates: readonly string[]): string {
  const near = nearest(word, candidates);
  const list = `one of: ${candidates.join(', ')}`;
  return near ? `did you mean \`${near}\`? Use ${list}` : `use ${list}`;
}
