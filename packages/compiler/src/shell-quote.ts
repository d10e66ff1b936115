/**
 * Template outputs, rendered as DUNE's minijinja renders them and, in commands that run
 * through `sh -c`, quoted for the shell.
 *
 * Every `{{ expr }}` of a text is rewritten to `{{ (expr) | <filter> }}` before nunjucks
 * compiles it. The filter renders `none` for a null value and nothing for an absent one
 * (minijinja's defaults), and in a shell command quotes the value for the place it lands in:
 *
 *   bare          echo {{node}}          →  echo 'a b; $(x)'        (one word, never code)
 *   "double"      echo "at {{node}}"     →  echo "at a b; \$(x)"     (\ " $ ` escaped)
 *   'single'      echo 'at {{node}}'     →  echo 'at a b; '\''...    (' closed and reopened)
 *
 * The shell's quoting state is followed through the literal text between tags (quotes and
 * backslashes); `{% ... %}` and `{# ... #}` tags are kept as they are.
 */

export type OutputFilter = 'dune_out' | 'dune_sh' | 'dune_shdq' | 'dune_shsq';

/** minijinja's rendering of a value: null → `none`, absent → empty. */
export function renderValue(v: unknown): string {
  if (v === undefined) return '';
  if (v === null) return 'none';
  if (Array.isArray(v)) return `[${v.map(listItem).join(', ')}]`;
  return String(v);
}

function listItem(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : renderValue(v);
}

/** One shell word whatever the value holds: bare when it is plainly safe, else in single quotes. */
export function shQuoteWord(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export const OUTPUT_FILTERS: Record<OutputFilter, (v: unknown) => string> = {
  dune_out: renderValue,
  // An empty value stays empty (as DUNE renders it), not an empty word.
  dune_sh: (v) => {
    const s = renderValue(v);
    return s === '' ? '' : shQuoteWord(s);
  },
  dune_shdq: (v) => renderValue(v).replace(/[\\"$`]/g, (c) => `\\${c}`),
  dune_shsq: (v) => renderValue(v).replace(/'/g, `'\\''`),
};

/** Rewrites every output tag of `text` to go through the right filter (see above). */
export function wrapOutputs(text: string, shell: boolean): string {
  let out = '';
  let quote: '' | "'" | '"' = '';
  let i = 0;
  while (i < text.length) {
    const open = text.startsWith('{{', i) || text.startsWith('{%', i) || text.startsWith('{#', i);
    if (open) {
      const kind = text[i + 1] as '{' | '%' | '#';
      const closer = kind === '{' ? '}}' : kind === '%' ? '%}' : '#}';
      const end = text.indexOf(closer, i + 2);
      // Unclosed: left for nunjucks to report.
      if (end < 0) return out + text.slice(i);
      if (kind !== '{') {
        out += text.slice(i, end + 2);
        i = end + 2;
        continue;
      }
      let inner = text.slice(i + 2, end);
      const lead = inner.startsWith('-') ? '-' : '';
      const trail = inner.endsWith('-') && inner.length > 1 ? '-' : '';
      inner = inner.slice(lead.length, inner.length - trail.length).trim();
      const filter: OutputFilter = !shell ? 'dune_out' : quote === '"' ? 'dune_shdq' : quote === "'" ? 'dune_shsq' : 'dune_sh';
      out += inner === '' ? text.slice(i, end + 2) : `{{${lead} (${inner}) | ${filter} ${trail}}}`;
      i = end + 2;
      continue;
    }
    const c = text[i] as string;
    if (shell) {
      if (c === '\\' && quote !== "'") {
        out += text.slice(i, i + 2);
        i += 2;
        continue;
      }
      if (c === "'" && quote !== '"') quote = quote === "'" ? '' : "'";
      else if (c === '"' && quote !== "'") quote = quote === '"' ? '' : '"';
    }
    out += c;
    i++;
  }
  return out;
}
