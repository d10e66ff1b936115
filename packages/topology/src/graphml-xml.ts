/**
 * XML text → a tree of elements, each with the line:col of its start tag.
 *
 *   text ─ XMLValidator (fast-xml-parser) ─▶ syntax error with line:col, stop
 *        └ XmlReader ─▶ XmlElement tree (positions, attributes, decoded text)
 *
 * fast-xml-parser reports positions only for syntax errors, so the elements are read by a
 * scanner that knows where each start tag is. The scanner runs on text the validator has
 * accepted and only needs the shape of well-formed XML: start and end tags, comments,
 * CDATA, processing instructions, DOCTYPE. It is also several times faster than the
 * library's tree builder, which alone took about 150 ms for Kdl.graphml (320 KB) in a
 * fresh process.
 *
 * Entities: the five predefined ones, character references, and `<!ENTITY name "value">`
 * declared in the DOCTYPE's internal subset. External entities are never fetched; an
 * undeclared entity is an error with its position.
 */
import { XMLValidator } from 'fast-xml-parser';
import type { Diagnostics, SourceLoc } from './errors.js';

export interface XmlElement {
  /** Tag name as written (namespace prefix included). */
  name: string;
  /** Attribute values with entities decoded. */
  attrs: ReadonlyMap<string, string>;
  children: XmlElement[];
  /** Character data directly inside the element, entities and CDATA decoded. */
  text: string;
  /** Where the start tag's `<` is. */
  loc: SourceLoc;
}

const SYNTAX_HINT = 'a GraphML file must be well-formed XML; fix the markup at that position';

/** Offsets → 1-based line and column (in characters: a surrogate pair counts once). */
export class LineIndex {
  private readonly starts: number[] = [0];
  private readonly astral: boolean;

  constructor(private readonly text: string, private readonly file: string) {
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) this.starts.push(i + 1);
    this.astral = /[\uD800-\uDBFF]/.test(text);
  }

  loc(offset: number): SourceLoc {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    const start = this.starts[lo] ?? 0;
    let col = offset - start + 1;
    if (this.astral) col -= (this.text.slice(start, offset).match(/[\uD800-\uDBFF]/g) ?? []).length;
    return { file: this.file, line: lo + 1, col };
  }
}

/**
 * Parses XML text into its root element. On a syntax error, records one `xml-syntax` error
 * and returns undefined: nothing after a syntax error can be trusted.
 */
export function parseXml(text: string, file: string, diags: Diagnostics): XmlElement | undefined {
  const valid = XMLValidator.validate(text);
  const lines = new LineIndex(text, file);
  if (valid !== true) {
    const { msg, line, col } = valid.err;
    // The validator has no position for what is still open at the end of the text (a
    // truncated file: "Unclosed tag", "Invalid '[...]' found") and says 1:1. The scanner
    // knows where the text ends and which elements are open there.
    if ((line || 1) === 1 && (col || 1) === 1) {
      const found = new XmlReader(text, lines, diags).syntaxError();
      if (found !== undefined) {
        diags.error('xml-syntax', `XML syntax: ${found.message}`, lines.loc(found.offset), found.hint);
        return undefined;
      }
    }
    diags.error('xml-syntax', `XML syntax: ${msg}`, { file, line: line || 1, col: col || 1 }, SYNTAX_HINT);
    return undefined;
  }
  return new XmlReader(text, lines, diags).read();
}

const TRUNCATED_HINT = 'the file is truncated or an element is never closed: get the whole file again, or close the element';

const PREDEFINED: ReadonlyMap<string, string> = new Map([
  ['lt', '<'],
  ['gt', '>'],
  ['amp', '&'],
  ['quot', '"'],
  ['apos', "'"],
]);

/** Expanded entity text allowed in one document: a "billion laughs" stops here. */
const MAX_EXPANSION = 1_000_000;

const NAME = /[^\s/>]+/y;
const ATTRIBUTE = /\s+([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/y;
const TAG_END = /\s*(\/?)>/y;
const REFERENCE = /&(?:#x([0-9a-fA-F]+)|#([0-9]+)|([A-Za-z_:][\w.:-]*));/y;
const ENTITY_DECL = /<!ENTITY\s+([A-Za-z_:][\w.:-]*)\s+(?:"([^"]*)"|'([^']*)')\s*>/g;

class XmlSyntax extends Error {
  constructor(message: string, readonly offset: number, readonly hint = SYNTAX_HINT) {
    super(message);
  }
}

class XmlReader {
  private readonly entities = new Map(PREDEFINED);
  private expanded = 0;

  constructor(
    private readonly text: string,
    private readonly lines: LineIndex,
    private readonly diags: Diagnostics,
  ) {}

  read(): XmlElement | undefined {
    try {
      return this.elements();
    } catch (e) {
      if (!(e instanceof XmlSyntax)) throw e;
      this.diags.error('xml-syntax', `XML syntax: ${e.message}`, this.lines.loc(e.offset), e.hint);
      return undefined;
    }
  }

  /** The first structural error the scanner finds, if any (used when the validator has no position). */
  syntaxError(): XmlSyntax | undefined {
    try {
      this.elements();
      return undefined;
    } catch (e) {
      if (!(e instanceof XmlSyntax)) throw e;
      return e;
    }
  }

  private elements(): XmlElement {
    const { text } = this;
    const stack: XmlElement[] = [];
    let root: XmlElement | undefined;
    let pos = 0;
    while (pos < text.length) {
      const lt = text.indexOf('<', pos);
      const top = stack[stack.length - 1];
      if (top !== undefined && lt !== pos) top.text += this.decode(text.slice(pos, lt === -1 ? text.length : lt), pos, normaliseNewlines);
      if (lt === -1) break;
      if (text.startsWith('<!--', lt)) pos = this.after('-->', lt + 4, lt, 'a comment');
      else if (text.startsWith('<![CDATA[', lt)) {
        pos = this.after(']]>', lt + 9, lt, 'a CDATA section');
        if (top !== undefined) top.text += normaliseNewlines(text.slice(lt + 9, pos - 3));
      } else if (text.startsWith('<?', lt)) pos = this.after('?>', lt + 2, lt, 'a processing instruction');
      else if (text.startsWith('<!', lt)) pos = this.doctype(lt);
      else if (text.startsWith('</', lt)) {
        pos = this.after('>', lt + 2, lt, 'an end tag');
        stack.pop();
      } else {
        const { element, selfClosing, end } = this.startTag(lt);
        pos = end;
        if (top !== undefined) top.children.push(element);
        else if (root === undefined) root = element;
        else {
          throw new XmlSyntax(
            `a second root element <${element.name}> after <${root.name}> (line ${root.loc.line})`,
            lt,
            'an XML document has exactly one root element; put everything inside <graphml>',
          );
        }
        if (!selfClosing) stack.push(element);
      }
    }
    if (root === undefined) throw new XmlSyntax('the document has no element', 0);
    const open = stack[stack.length - 1];
    if (open !== undefined) {
      const others = stack.slice(0, -1).reverse().map((e) => `<${e.name}> (${e.loc.line}:${e.loc.col})`);
      throw new XmlSyntax(
        `the file ends inside <${open.name}>, opened at ${open.loc.line}:${open.loc.col}` +
          (others.length > 0 ? `; also still open: ${others.join(', ')}` : ''),
        text.length,
        TRUNCATED_HINT,
      );
    }
    return root;
  }

  private startTag(lt: number): { element: XmlElement; selfClosing: boolean; end: number } {
    const { text } = this;
    NAME.lastIndex = lt + 1;
    const name = NAME.exec(text)?.[0];
    if (name === undefined) throw new XmlSyntax('a tag without a name', lt);
    const attrs = new Map<string, string>();
    let pos = NAME.lastIndex;
    for (;;) {
      ATTRIBUTE.lastIndex = pos;
      const m = ATTRIBUTE.exec(text);
      if (m === null) break;
      const raw = m[2] ?? m[3] ?? '';
      attrs.set(m[1]!, this.decode(raw, ATTRIBUTE.lastIndex - raw.length - 1, normaliseAttribute));
      pos = ATTRIBUTE.lastIndex;
    }
    TAG_END.lastIndex = pos;
    const end = TAG_END.exec(text);
    if (end === null) {
      if (text.slice(pos).trim() === '' || !/[<>]/.test(text.slice(pos))) {
        throw new XmlSyntax(`the file ends inside the start tag <${name}> begun at ${this.lines.loc(lt).line}:${this.lines.loc(lt).col}`, text.length, TRUNCATED_HINT);
      }
      throw new XmlSyntax(`the start tag <${name}> is not closed`, lt);
    }
    return {
      element: { name, attrs, children: [], text: '', loc: this.lines.loc(lt) },
      selfClosing: end[1] === '/',
      end: TAG_END.lastIndex,
    };
  }

  /** Skips `<!DOCTYPE ... [internal subset]>`, reading the general entities it declares. */
  private doctype(lt: number): number {
    const { text } = this;
    const close = text.indexOf('>', lt);
    const open = text.indexOf('[', lt);
    if (open === -1 || (close !== -1 && close < open)) return this.after('>', lt + 2, lt, 'a DOCTYPE');
    // The subset ends at the first `]` outside a quoted string.
    let i = open + 1;
    let quote: string | undefined;
    for (; i < text.length; i++) {
      const c = text[i];
      if (quote !== undefined) {
        if (c === quote) quote = undefined;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === ']') break;
    }
    if (i >= text.length) throw new XmlSyntax('the DOCTYPE is not closed', lt);
    const subset = text.slice(open + 1, i);
    for (const m of subset.matchAll(ENTITY_DECL)) {
      const name = m[1]!;
      // The first declaration of an entity is binding (XML 1.0 §4.2).
      const valueAt = open + 1 + (m.index ?? 0) + m[0].search(/["']/) + 1;
      if (!this.entities.has(name)) this.entities.set(name, this.decode(m[2] ?? m[3] ?? '', valueAt, normaliseNewlines));
    }
    return this.after('>', i + 1, lt, 'a DOCTYPE');
  }

  /** The offset just past the next `token` from `from`; an error at `start` if there is none. */
  private after(token: string, from: number, start: number, what: string): number {
    const at = this.text.indexOf(token, from);
    if (at === -1) {
      const begun = this.lines.loc(start);
      throw new XmlSyntax(`the file ends inside ${what} begun at ${begun.line}:${begun.col} (no "${token}")`, this.text.length, TRUNCATED_HINT);
    }
    return at + token.length;
  }

  /**
   * Replaces entity and character references in `s`, which starts at `offset` in the text.
   * `literal` normalises the characters written as such (not those from references).
   */
  private decode(s: string, offset: number, literal: (s: string) => string): string {
    if (!s.includes('&')) return literal(s);
    let out = '';
    let pos = 0;
    for (let amp = s.indexOf('&'); amp !== -1; amp = s.indexOf('&', pos)) {
      out += literal(s.slice(pos, amp));
      REFERENCE.lastIndex = amp;
      const m = REFERENCE.exec(s);
      if (m === null) {
        throw new XmlSyntax('a bare "&"', offset + amp, 'write & as &amp; (and < as &lt;)');
      }
      const [ref, hex, dec, name] = m;
      if (name !== undefined) {
        const value = this.entities.get(name);
        if (value === undefined) {
          throw new XmlSyntax(`the entity ${ref} is not declared`, offset + amp, 'XML predefines only &lt; &gt; &amp; &quot; &apos;: write the character itself, or declare the entity in the DOCTYPE');
        }
        this.expanded += value.length;
        if (this.expanded > MAX_EXPANSION) {
          throw new XmlSyntax(`entities expand to more than ${MAX_EXPANSION} characters`, offset + amp, 'do not nest entity declarations');
        }
        out += value;
      } else {
        const code = hex !== undefined ? parseInt(hex, 16) : Number(dec);
        if (!(code > 0 && code <= 0x10ffff)) throw new XmlSyntax(`the character reference ${ref} names no character`, offset + amp);
        out += String.fromCodePoint(code);
      }
      pos = REFERENCE.lastIndex;
    }
    return out + literal(s.slice(pos));
  }
}

/** XML reads CRLF and lone CR as LF (XML 1.0 §2.11). */
function normaliseNewlines(s: string): string {
  return s.includes('\r') ? s.replace(/\r\n?/g, '\n') : s;
}

/** Attribute-value normalisation (XML 1.0 §3.3.3): literal tabs and line breaks read as spaces. */
function normaliseAttribute(s: string): string {
  return /[\t\n\r]/.test(s) ? s.replace(/\r\n|[\t\n\r]/g, ' ') : s;
}
