/**
 * NetMirage's setup files: GKeyFile INI. `[group]` headers, `key=value` lines, `#` comments,
 * blank lines. Values are taken as written (trimmed); GKeyFile's escapes (`\n`, `\s`, `\\`)
 * are decoded. Groups keep their file order, keys their last value.
 *
 * Which file: `setup.cfg` in the working directory when none is given (optional then); a
 * file given explicitly must exist.
 */
import { existsSync, readFileSync } from 'node:fs';
import { DuneError } from '@dune/topology';

export interface IniGroup {
  name: string;
  line: number;
  values: Map<string, { value: string; line: number }>;
}

export interface IniFile {
  file: string;
  groups: IniGroup[];
}

export const DEFAULT_SETUP_FILE = 'setup.cfg';

export function parseIni(text: string, file: string): IniFile {
  const groups: IniGroup[] = [];
  let current: IniGroup | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === '' || t.startsWith('#') || t.startsWith(';')) return;
    const head = /^\[([^\][]+)\]$/.exec(t);
    if (head) {
      const name = (head[1] as string).trim();
      current = groups.find((g) => g.name === name);
      if (current === undefined) {
        current = { name, line, values: new Map() };
        groups.push(current);
      }
      return;
    }
    const eq = t.indexOf('=');
    if (eq <= 0) {
      throw new DuneError('setup-syntax', `${file}:${line}: expected "[group]" or "key=value", found ${JSON.stringify(t)}`, {
        hint: 'setup files are INI: [emulator] then key=value lines',
      });
    }
    if (current === undefined) {
      throw new DuneError('setup-syntax', `${file}:${line}: "${t.slice(0, eq).trim()}" comes before any [group]`, { hint: 'put it under [emulator] (or [edge] for netmirage-edge)' });
    }
    current.values.set(t.slice(0, eq).trim(), { value: unescape(t.slice(eq + 1).trim()), line });
  });
  return { file, groups };
}

function unescape(v: string): string {
  return v.replace(/\\([nstr\\])/g, (_, c: string) => ({ n: '\n', s: ' ', t: '\t', r: '\r', '\\': '\\' })[c] ?? c);
}

/** Reads the setup file: the default may be absent, an explicit one may not. */
export function readSetupFile(explicit: string | undefined): IniFile | undefined {
  const file = explicit ?? DEFAULT_SETUP_FILE;
  if (!existsSync(file)) {
    if (explicit === undefined) return undefined;
    throw new DuneError('setup-missing', `the setup file ${file} does not exist`, { hint: 'check the path given to -s/--setup-file (relative paths are from the working directory)' });
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DuneError('setup-unreadable', `cannot read the setup file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { hint: 'check its permissions', cause: e });
  }
  return parseIni(text, file);
}

/** GKeyFile booleans. */
export function iniBool(v: string, where: string): boolean {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new DuneError('setup-value', `${where}: "${v}" is not a boolean`, { hint: 'write true or false' });
}
