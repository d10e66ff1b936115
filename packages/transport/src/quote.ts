/**
 * The one place a command line for a remote shell is made.
 *
 * SSH's `exec` request carries a single string, which the remote user's login shell parses:
 * there is no argv on the wire. So every remote command is built as argv and each word is
 * quoted here, POSIX-style: inside single quotes nothing is special, and a single quote
 * itself is written as '\'' (close, escaped quote, reopen). Words made only of characters
 * no POSIX shell treats specially are left bare, for readable logs.
 *
 * Assumes a POSIX login shell (sh, bash, dash, zsh, ksh) on the remote side; csh and fish
 * are not. NUL cannot be carried in a C string and is refused.
 */

// Not `=` (a bare first word `A=B` is an assignment, and zsh expands a leading `=cmd`),
// not `%` (job specs), not `~` (tilde expansion), nor anything else a shell reads.
const BARE = /^[A-Za-z0-9_@+:,./-]+$/;

export function shQuote(word: string): string {
  if (word.includes('\0')) throw new TypeError('a command word cannot contain a NUL byte');
  if (word !== '' && BARE.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** argv → one string a POSIX shell splits back into exactly these words. */
export function shJoin(argv: readonly string[]): string {
  if (argv.length === 0) throw new TypeError('an empty command');
  return argv.map(shQuote).join(' ');
}
