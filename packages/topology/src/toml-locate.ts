/**
 * Where each key of a TOML document is. smol-toml returns values without positions, so this
 * scans the source once more and records, for every key path, where its key and its value
 * start: table headers `[a.b]`, array-of-tables headers `[[a.b]]` (with the element index),
 * dotted keys, quoted keys, inline tables and arrays (elements by index, including arrays of
 * inline tables such as DUNE's `links = [ {endpoints = [...], "r1:eth1" = {...}} ]`).
 *
 * It runs only on text smol-toml has accepted, so it does not re-validate TOML; it must
 * still never throw or loop on anything, and it keeps going with what it can recognise.
 */
import type { SourceLoc } from './errors.js';

export type TomlPath = readonly (string | number)[];

interface Spot {
  keyAt: number;
  valueAt: number;
  /** Defined by its own key or header, not only as the prefix of a longer one. */
  explicit: boolean;
}

export class TomlLocator {
  private readonly spots = new Map<string, Spot>();
  private readonly lineStarts: number[];

  constructor(
    private readonly text: string,
    readonly file: string,
  ) {
    this.lineStarts = [0];
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  /** @internal used by the scanner */
  record(path: TomlPath, keyAt: number, valueAt: number, explicit: boolean): void {
    const k = pathKey(path);
    const old = this.spots.get(k);
    if (old && (old.explicit || !explicit)) return;
    this.spots.set(k, { keyAt, valueAt, explicit });
  }

  /** Where the key of `path` is written, or of its nearest located ancestor. */
  keyLoc(path: TomlPath): SourceLoc {
    return this.at(this.find(path)?.keyAt ?? 0);
  }

  /** Where the value of `path` starts, or its nearest located ancestor's. */
  valueLoc(path: TomlPath): SourceLoc {
    return this.at(this.find(path)?.valueAt ?? 0);
  }

  /** Source offset of the key of `path` (exact path only), for ordering; Infinity if unknown. */
  order(path: TomlPath): number {
    return this.spots.get(pathKey(path))?.keyAt ?? Infinity;
  }

  /** Whether `path` itself (not an ancestor) was seen. */
  has(path: TomlPath): boolean {
    return this.spots.has(pathKey(path));
  }

  /** Offset → 1-based line and column (column in Unicode code points). */
  at(offset: number): SourceLoc {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.lineStarts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    const start = this.lineStarts[lo] as number;
    return { file: this.file, line: lo + 1, col: codePoints(this.text.slice(start, offset)) + 1 };
  }

  private find(path: TomlPath): Spot | undefined {
    for (let n = path.length; n > 0; n--) {
      const s = this.spots.get(pathKey(path.slice(0, n)));
      if (s) return s;
    }
    return undefined;
  }
}

function pathKey(path: TomlPath): string {
  return JSON.stringify(path);
}

function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xdc00 || c > 0xdfff) n++;
  }
  return n;
}

/** Scans `text` (accepted TOML) and returns where each key path is. */
export function locateToml(text: string, file: string): TomlLocator {
  const loc = new TomlLocator(text, file);
  new Scanner(text, loc).document();
  return loc;
}

interface KeyPart {
  name: string;
  at: number;
}

const BARE_KEY = /[A-Za-z0-9_-]/;

class Scanner {
  private i = 0;
  /** Concrete path of an array of tables → index of its last element so far. */
  private readonly arrays = new Map<string, number>();

  constructor(
    private readonly s: string,
    private readonly loc: TomlLocator,
  ) {}

  document(): void {
    if (this.s.charCodeAt(0) === 0xfeff) this.i = 1;
    let table: (string | number)[] = [];
    while (this.i < this.s.length) {
      const before = this.i;
      this.skipBlank(true);
      if (this.i >= this.s.length) break;
      if (this.s[this.i] === '[') {
        table = this.header() ?? table;
      } else {
        this.keyValue(table);
      }
      this.skipLineRest();
      if (this.i === before) this.i++;
    }
  }

  /** `[a.b]` or `[[a.b]]`; returns the concrete path of the table it opens. */
  private header(): (string | number)[] | undefined {
    const open = this.i;
    const isArray = this.s[this.i + 1] === '[';
    this.i += isArray ? 2 : 1;
    this.skipBlank(false);
    const keys = this.keyPath();
    if (keys.length === 0) return undefined;
    const path: (string | number)[] = [];
    keys.forEach((k, j) => {
      path.push(k.name);
      const last = j === keys.length - 1;
      if (!last) {
        this.loc.record(path, k.at, k.at, false);
        const idx = this.arrays.get(pathKey(path));
        if (idx !== undefined) path.push(idx);
      } else if (isArray) {
        this.loc.record(path, k.at, open, false);
        const idx = (this.arrays.get(pathKey(path)) ?? -1) + 1;
        this.arrays.set(pathKey(path), idx);
        path.push(idx);
        this.loc.record(path, open, open, true);
      } else {
        this.loc.record(path, k.at, open, true);
      }
    });
    return path;
  }

  /** `a.b = value` relative to `base`. */
  private keyValue(base: readonly (string | number)[]): void {
    const keys = this.keyPath();
    if (keys.length === 0) return;
    const path: (string | number)[] = [...base];
    keys.forEach((k, j) => {
      path.push(k.name);
      if (j < keys.length - 1) this.loc.record(path, k.at, k.at, false);
    });
    this.skipBlank(false);
    if (this.s[this.i] !== '=') return;
    this.i++;
    this.skipBlank(false);
    const lastKey = keys[keys.length - 1] as KeyPart;
    this.loc.record(path, lastKey.at, this.i, true);
    this.value(path);
  }

  private value(path: (string | number)[]): void {
    const c = this.s[this.i];
    if (c === '{') {
      this.i++;
      while (this.i < this.s.length) {
        const before = this.i;
        this.skipBlank(true);
        if (this.s[this.i] === '}') {
          this.i++;
          return;
        }
        if (this.s[this.i] === ',') {
          this.i++;
          continue;
        }
        this.keyValue(path);
        if (this.i === before) this.i++;
      }
      return;
    }
    if (c === '[') {
      this.i++;
      let idx = 0;
      while (this.i < this.s.length) {
        const before = this.i;
        this.skipBlank(true);
        if (this.s[this.i] === ']') {
          this.i++;
          return;
        }
        if (this.s[this.i] === ',') {
          this.i++;
          continue;
        }
        const elem = [...path, idx++];
        this.loc.record(elem, this.i, this.i, true);
        this.value(elem);
        if (this.i === before) this.i++;
      }
      return;
    }
    if (c === '"' || c === "'") {
      this.string();
      return;
    }
    while (this.i < this.s.length && !',]}\n#'.includes(this.s[this.i] as string)) this.i++;
  }

  private keyPath(): KeyPart[] {
    const keys: KeyPart[] = [];
    while (this.i < this.s.length) {
      this.skipBlank(false);
      const at = this.i;
      const c = this.s[this.i];
      let name: string | undefined;
      if (c === '"' || c === "'") {
        name = this.string();
      } else {
        while (this.i < this.s.length && BARE_KEY.test(this.s[this.i] as string)) this.i++;
        if (this.i > at) name = this.s.slice(at, this.i);
      }
      if (name === undefined) break;
      keys.push({ name, at });
      this.skipBlank(false);
      if (this.s[this.i] !== '.') break;
      this.i++;
    }
    return keys;
  }

  /** Reads a string of any of the four kinds at `i`; returns its value. */
  private string(): string {
    const s = this.s;
    const q = s[this.i] as string;
    const triple = s.startsWith(q.repeat(3), this.i);
    this.i += triple ? 3 : 1;
    if (triple && s[this.i] === '\r' && s[this.i + 1] === '\n') this.i += 2;
    else if (triple && s[this.i] === '\n') this.i++;
    let out = '';
    while (this.i < s.length) {
      const c = s[this.i] as string;
      if (triple ? s.startsWith(q.repeat(3), this.i) : c === q) {
        this.i += triple ? 3 : 1;
        // `""""` ends a multi-line string with one quote in it, `"""""` with two.
        for (let extra = 0; triple && extra < 2 && s[this.i] === q; extra++) {
          out += q;
          this.i++;
        }
        return out;
      }
      if (!triple && c === '\n') return out;
      if (c === '\\' && q === '"') {
        out += this.escape(triple);
        continue;
      }
      out += c;
      this.i++;
    }
    return out;
  }

  private escape(multiline: boolean): string {
    const s = this.s;
    const e = s[this.i + 1] ?? '';
    const simple: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', e: '\x1b', '"': '"', '\\': '\\' };
    const known = simple[e];
    if (known !== undefined) {
      this.i += 2;
      return known;
    }
    const hexLen = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
    if (hexLen > 0) {
      const hex = s.slice(this.i + 2, this.i + 2 + hexLen);
      this.i += 2 + hexLen;
      const cp = /^[0-9a-fA-F]+$/.test(hex) ? parseInt(hex, 16) : NaN;
      return Number.isFinite(cp) && cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
    }
    if (multiline) {
      // line-ending backslash: skips the newline and all following blanks
      let j = this.i + 1;
      while (j < s.length && (s[j] === ' ' || s[j] === '\t')) j++;
      if (s[j] === '\n' || (s[j] === '\r' && s[j + 1] === '\n')) {
        while (j < s.length && ' \t\r\n'.includes(s[j] as string)) j++;
        this.i = j;
        return '';
      }
    }
    this.i += 1;
    return '\\';
  }

  private skipBlank(newlines: boolean): void {
    while (this.i < this.s.length) {
      const c = this.s[this.i] as string;
      if (c === ' ' || c === '\t' || (newlines && (c === '\n' || c === '\r'))) this.i++;
      else if (c === '#') {
        while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
      } else break;
    }
  }

  /** After a header or key/value: skip to the start of the next line. */
  private skipLineRest(): void {
    while (this.i < this.s.length && this.s[this.i] !== '\n') this.i++;
  }
}
