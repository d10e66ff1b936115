/**
 * Command lines from topology files, split into argv words the way a POSIX shell splits
 * them, but never run through a shell: a node id or a file name in a command can hold any
 * character and must not be able to start another program.
 *
 * What is honoured, as `sh` would: blanks separate words; 'single quotes' keep everything;
 * "double quotes" keep everything but `\"`, `\\`, `\$`, `` \` `` and backslash-newline;
 * an unquoted backslash escapes the next character; backslash-newline joins lines; a word
 * that starts with an unquoted `#` starts a comment.
 *
 * What is refused (`shell-syntax`), because only a shell could do it and silently passing
 * it on as a literal word would run something else than the user meant: unquoted `|`, `;`,
 * `&` (except a trailing one), `<`, `>`, `(`, `)`, a newline between two commands, command
 * substitution (`$(…)`, backticks) and parameter expansion (`$NAME`, `${…}`, `$1`) outside
 * single quotes. A user who wants a shell writes the argv out: `["sh", "-c", "…"]`.
 *
 * What is kept as written: globs (`*`, `?`, `[`) and `~`. A word starting with `~/` is
 * expanded by the agent to the target user's $HOME when it starts the process (quoted or
 * not), because only the target host knows that directory. Template placeholders
 * (`{{node}}`, `{{ core_1 }}`) stay in the words unrendered; the compiler renders them.
 *
 * A trailing `&` is dropped: every process the emulator starts already runs in the
 * background (DUNE files often end pinned commands with it), and `background` says so.
 */
import { DuneError } from './errors.js';

export interface SplitCommand {
  argv: string[];
  /** The command ended with a lone `&`, which was dropped. */
  background: boolean;
}

const SHELL_HINT = 'no shell runs this command; if you really want one, write the command as an array: ["sh", "-c", "..."]';

/** A command line that only a shell could run, or that is not complete. */
export class CommandSyntaxError extends DuneError {
  /** Index in the command text where the problem is. */
  readonly index: number;
  constructor(message: string, index: number, hint = SHELL_HINT) {
    super('shell-syntax', message, { hint });
    this.name = 'CommandSyntaxError';
    this.index = index;
  }
}

const BLANK = new Set([' ', '\t', '\r', '\n']);
const OPERATOR = new Set(['|', ';', '&', '<', '>', '(', ')']);
const EXPANSION_START = /[A-Za-z_{(0-9@*#?$!-]/;

/** Splits a command line into argv words; throws CommandSyntaxError. */
export function splitCommand(text: string): SplitCommand {
  const argv: string[] = [];
  let word = '';
  let inWord = false;
  /** An unquoted newline after at least one word: a second word means a second command. */
  let newlineAt = -1;
  let i = 0;
  const n = text.length;

  const endWord = (): void => {
    if (inWord) argv.push(word);
    word = '';
    inWord = false;
  };
  const startWord = (): void => {
    if (!inWord && newlineAt >= 0) {
      throw new CommandSyntaxError(`a newline separates two commands in ${quoteForMessage(text)}`, newlineAt,
        `write one command per list entry; ${SHELL_HINT}`);
    }
    inWord = true;
  };

  while (i < n) {
    const c = text[i] as string;
    if (BLANK.has(c)) {
      endWord();
      if (c === '\n' && argv.length > 0) newlineAt = i;
      i++;
      continue;
    }
    if (c === '#' && !inWord) {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= n) throw new CommandSyntaxError(`${quoteForMessage(text)} ends with a lone backslash`, i, 'remove it, or write it as "\\\\"');
      if (text[i + 1] === '\n') {
        i += 2;
        continue;
      }
      startWord();
      const cp = String.fromCodePoint(text.codePointAt(i + 1) as number);
      word += cp;
      i += 1 + cp.length;
      continue;
    }
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new CommandSyntaxError(`unterminated single quote in ${quoteForMessage(text)}`, i, "close the quote with '");
      startWord();
      word += text.slice(i + 1, end);
      i = end + 1;
      continue;
    }
    if (c === '"') {
      startWord();
      i = readDoubleQuoted(text, i, (s) => (word += s));
      continue;
    }
    if (c === '`') throw substitution(text, i);
    if (c === '$' && i + 1 < n && EXPANSION_START.test(text[i + 1] as string)) throw expansion(text, i);
    if (OPERATOR.has(c)) {
      if (c === '&' && text[i + 1] !== '&' && text[i + 1] !== '>' && restIsBlank(text, i + 1)) {
        endWord();
        if (argv.length === 0) throw new CommandSyntaxError(`${quoteForMessage(text)} has no command before "&"`, i, 'write the program and its arguments');
        return { argv, background: true };
      }
      const op = operatorAt(text, i);
      throw new CommandSyntaxError(`unquoted shell operator "${op}" in ${quoteForMessage(text)}`, i);
    }
    startWord();
    const cp = String.fromCodePoint(text.codePointAt(i) as number);
    word += cp;
    i += cp.length;
  }
  endWord();
  if (argv.length === 0) throw new CommandSyntaxError('the command is empty', 0, 'write the program and its arguments, or remove the entry');
  return { argv, background: false };
}

function readDoubleQuoted(text: string, open: number, emit: (s: string) => void): number {
  let i = open + 1;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '"') return i + 1;
    if (c === '\\' && i + 1 < text.length) {
      const next = text[i + 1] as string;
      if (next === '\n') {
        i += 2;
        continue;
      }
      if (next === '"' || next === '\\' || next === '$' || next === '`') {
        emit(next);
        i += 2;
        continue;
      }
      emit(c);
      i++;
      continue;
    }
    if (c === '`') throw substitution(text, i);
    if (c === '$' && i + 1 < text.length && EXPANSION_START.test(text[i + 1] as string)) throw expansion(text, i);
    emit(c);
    i++;
  }
  throw new CommandSyntaxError(`unterminated double quote in ${quoteForMessage(text)}`, open, 'close the quote with "');
}

function restIsBlank(text: string, from: number): boolean {
  for (let i = from; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '#') return true;
    if (!BLANK.has(c)) return false;
  }
  return true;
}

function operatorAt(text: string, i: number): string {
  let j = i;
  while (j < text.length && j - i < 2 && OPERATOR.has(text[j] as string)) j++;
  return text.slice(i, j);
}

function substitution(text: string, i: number): CommandSyntaxError {
  return new CommandSyntaxError(`command substitution (\`…\` or $(…)) in ${quoteForMessage(text)}`, i);
}

function expansion(text: string, i: number): CommandSyntaxError {
  if (text[i + 1] === '(') return substitution(text, i);
  const m = /^\$(\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*|.)/.exec(text.slice(i));
  return new CommandSyntaxError(
    `shell expansion "${m?.[0] ?? '$'}" in ${quoteForMessage(text)}: no shell would expand it`,
    i,
    `write the value itself, put the word in single quotes to keep the "$", or use a shell: ["sh", "-c", "..."]`,
  );
}

function quoteForMessage(text: string): string {
  const oneLine = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  return JSON.stringify(oneLine);
}

/** Quotes one word so that splitCommand gives it back unchanged: for messages and plans. */
export function quoteWord(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./{}~-]+$/.test(word) && !word.startsWith('#')) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** argv → one line that splitCommand splits back into the same argv. */
export function joinCommand(argv: readonly string[]): string {
  return argv.map(quoteWord).join(' ');
}
