/**
 * Nodes of a DUNE TOML file, resolved. `[topology.defaults.nodes]` is resolved once, then
 * extended by each node: maps (sysctls, templates, ctx) by key with the node winning, lists
 * (binds, exec, pinned) appended after the defaults' entries.
 */
import type { Diagnostics, SourceLoc } from './errors.js';
import type { Bind, Command, Node, Pinned, Template } from './model.js';
import { joinCommand, splitCommand, CommandSyntaxError } from './command.js';
import type { TomlLocator, TomlPath } from './toml-locate.js';
import type { RawBind, RawEntry, RawMap, RawNode, RawNodeBody, RawPinned } from './toml-raw.js';
import {
  asBool, asString, badType, badValue, IFNAME_HINT, ifnameProblem, isTable, parseCidr, pathText, plainValue, setOwn,
  type Located, type TomlValue,
} from './toml-values.js';

/** A node's settings before defaults and node are combined. */
export interface NodeParts {
  /** As written: the compiler's kind table checks it. */
  kind?: string;
  kindLoc?: SourceLoc;
  sysctls: Map<string, string>;
  templates: Map<string, Template>;
  binds: Bind[];
  exec: Command[];
  pinned: Pinned[];
  ctx: Record<string, unknown>;
}

/** `net.ipv4.ip_forward`, `net.ipv4.conf.eth0/100.forwarding` (a `/` stands for a `.` in a name). */
const SYSCTL_KEY = /^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*(?:\.[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*)+$/;

const CORE_SLOT = /\{\{\s*(core_(\d+))\s*\}\}/g;

export class NodeResolver {
  constructor(
    private readonly d: Diagnostics,
    private readonly locator: TomlLocator,
  ) {}

  /** The parts of one body (the defaults, or one node without its defaults). */
  parts(body: RawNodeBody | undefined): NodeParts {
    const parts: NodeParts = { sysctls: new Map(), templates: new Map(), binds: [], exec: [], pinned: [], ctx: {} };
    if (!body) return parts;
    if (body.kind) {
      const k = asString(this.d, body.kind, 'write kind = "router"');
      if (k !== undefined) {
        parts.kind = k;
        parts.kindLoc = body.kind.loc;
      }
    }
    for (const e of body.sysctls?.entries ?? []) {
      if (!SYSCTL_KEY.test(e.key)) {
        this.d.error('bad-sysctl', `"${e.key}" in ${pathText(e.path.slice(0, -1))} is not a sysctl name`, e.keyLoc,
          'write it dotted, as `sysctl` prints it, e.g. "net.ipv4.ip_forward"');
        continue;
      }
      const v = e.value;
      if (typeof v === 'string') parts.sysctls.set(e.key, v);
      else if (typeof v === 'number' && Number.isFinite(v)) parts.sysctls.set(e.key, String(v));
      else badType(this.d, e, 'a string or a number', typeof v === 'boolean' ? `write "${v ? 1 : 0}"` : undefined);
    }
    for (const e of body.templates?.entries ?? []) {
      const dst = asString(this.d, e, 'write "template file" = "destination path in the node"');
      if (dst === undefined) continue;
      if (e.key === '' || dst === '') {
        badValue(this.d, e, `${pathText(e.path)}: a template needs a source file and a destination path`);
        continue;
      }
      parts.templates.set(e.key, { src: e.key, dst, loc: e.keyLoc });
    }
    parts.binds = this.binds(body.binds);
    if (body.exec) parts.exec = this.commandList(body.exec);
    parts.pinned = (body.pinned ?? []).map((p) => this.pinned(p)).filter((p): p is Pinned => p !== undefined);
    for (const e of body.ctx) setOwn(parts.ctx, e.key, plainValue(e.value));
    return parts;
  }

  /** A declared node: defaults extended by its own parts, plus node-only keys. */
  node(raw: RawNode, defaults: NodeParts): Node {
    const node = this.fromParts(raw.id, mergeParts(defaults, this.parts(raw)), raw.loc);
    node.addrs = this.addrs(raw.addrs);
    // A kind's own keys are free keys (ctx) to this reader: keep where they were written.
    if (node.kind !== undefined && node.kind !== 'router' && raw.ctx.length > 0) node.optionLocs = this.optionLocs(raw.ctx);
    if (raw.phynode) {
      const p = asString(this.d, raw.phynode);
      if (p !== undefined) node.phynode = p;
    }
    return node;
  }

  /** A node created because a link names it (the file has no [topology.nodes]). */
  implicitNode(id: string, defaults: NodeParts, loc: SourceLoc): Node {
    return this.fromParts(id, mergeParts(defaults, undefined), loc);
  }

  private optionLocs(entries: readonly RawEntry[]): Record<string, SourceLoc> {
    const out: Record<string, SourceLoc> = {};
    const walk = (v: TomlValue, path: TomlPath, dotted: string, loc: SourceLoc) => {
      setOwn(out, dotted, loc);
      const children: [string | number, TomlValue][] = Array.isArray(v) ? v.map((x, i) => [i, x as TomlValue]) : isTable(v) ? Object.entries(v) : [];
      for (const [k, x] of children) walk(x, [...path, k], `${dotted}.${k}`, this.locator.valueLoc([...path, k]));
    };
    for (const e of entries) walk(e.value, e.path, e.key, e.loc);
    return out;
  }

  private fromParts(id: string, p: NodeParts, loc: SourceLoc): Node {
    return {
      id,
      ...(p.kind !== undefined ? { kind: p.kind } : {}),
      ...(p.kindLoc !== undefined ? { kindLoc: p.kindLoc } : {}),
      sysctls: recordOf(p.sysctls),
      templates: [...p.templates.values()],
      binds: p.binds,
      exec: p.exec,
      pinned: p.pinned,
      addrs: {},
      ctx: p.ctx,
      // DUNE has no client/router distinction: every node runs applications.
      client: true,
      loc,
    };
  }

  binds(list: RawBind[] | undefined): Bind[] {
    const out: Bind[] = [];
    for (const b of list ?? []) {
      const src = b.fields.src && asString(this.d, b.fields.src);
      const dst = b.fields.dst && asString(this.d, b.fields.dst);
      const exec = b.fields.exec ? asBool(this.d, b.fields.exec) : false;
      if (src === undefined || dst === undefined || exec === undefined) continue;
      if (src === '' || dst === '') {
        this.d.error('bad-value', 'a bind needs a non-empty src and dst', b.loc);
        continue;
      }
      out.push({ src, dst, exec, loc: b.loc });
    }
    return out;
  }

  private pinned(p: RawPinned): Pinned | undefined {
    const cmd = p.fields.cmd && this.command(p.fields.cmd, true);
    const environ: Record<string, string> = {};
    for (const e of p.environ?.entries ?? []) {
      if (typeof e.value === 'string') setOwn(environ, e.key, e.value);
      else if (typeof e.value === 'number' && Number.isFinite(e.value)) setOwn(environ, e.key, String(e.value));
      else badType(this.d, e, 'a string');
      if (e.key === '' || e.key.includes('=') || e.key.includes('\0')) {
        badValue(this.d, e, `"${e.key}" in ${pathText(e.path.slice(0, -1))} is not an environment variable name`, 'use letters, digits and "_"');
      }
    }
    const down = p.fields.down && this.command(p.fields.down);
    const preDown = p.fields.pre_down ? this.commandList(p.fields.pre_down) : [];
    const postUp = p.fields.post_up ? this.commandList(p.fields.post_up) : [];
    if (cmd === undefined) return undefined;
    const pinned: Pinned = { cmd, environ, preDown, postUp, coreSlots: coreSlots(environ, cmd.argv), loc: p.loc };
    if (down !== undefined) pinned.down = down;
    return pinned;
  }

  private addrs(map: RawMap | undefined): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const e of map?.entries ?? []) {
      const problem = ifnameProblem(e.key);
      if (problem) {
        this.d.error('bad-ifname', `${problem} (${pathText(e.path)})`, e.keyLoc, IFNAME_HINT);
        continue;
      }
      const items: Located[] = typeof e.value === 'string' ? [e] : Array.isArray(e.value) ? this.items(e) : [];
      if (items.length === 0 && !Array.isArray(e.value)) {
        badType(this.d, e, 'an array of addresses such as ["10.0.0.1/24", "fc00::1/64"]');
        continue;
      }
      const cidrs: string[] = [];
      for (const item of items) {
        const text = asString(this.d, item);
        if (text === undefined) continue;
        const r = parseCidr(text.trim(), true);
        if ('problem' in r) this.d.error('bad-address', `${pathText(item.path)}: ${r.problem}`, item.loc, 'write an address with its prefix length, e.g. "10.0.0.1/24" or "fc00::1/64"');
        else cidrs.push(r.cidr);
      }
      setOwn(out, e.key, cidrs);
    }
    return out;
  }

  /** A list of commands (`exec`, `pre_down`, `post_up`). */
  private commandList(l: Located): Command[] {
    if (!Array.isArray(l.value)) {
      return badType(this.d, l, 'an array of commands', typeof l.value === 'string' ? `write [${JSON.stringify(l.value)}]` : undefined) ?? [];
    }
    return this.items(l).map((item) => this.command(item)).filter((c): c is Command => c !== undefined);
  }

  /**
   * One command. A string is a shell command line, run by `sh -c` as DUNE runs it (so `a &&
   * b`, redirections, `$VAR` and `&` work); the compiler quotes every template value put into
   * it. A pinned process's command is its process: a trailing `&` is dropped (it runs in the
   * background anyway), and a plain command line is started with `exec` so the pid is the
   * program's own. An argv array is used as is, with no shell.
   */
  private command(l: Located, pinned = false): Command | undefined {
    const v = l.value;
    if (typeof v === 'string') {
      let script = v.trim();
      if (script === '') return badValue(this.d, l, `${pathText(l.path)}: the command is empty`);
      if (pinned) {
        const bg = /(^|[^&|\\])&\s*$/.exec(script);
        if (bg !== null) {
          script = script.slice(0, bg.index + bg[1]!.length).trimEnd();
          this.d.note('background-dropped', `the trailing "&" of ${pathText(l.path)} is dropped: every process the lab starts runs in the background`, l.loc);
        }
        if (plainWords(script)) script = `exec ${script}`;
      }
      return { text: v, argv: ['sh', '-c', script], shell: true, loc: l.loc };
    }
    if (Array.isArray(v) && v.length > 0 && v.every((w) => typeof w === 'string')) {
      const argv = v as string[];
      if (argv[0] === '') return badValue(this.d, l, `${pathText(l.path)}: the program name is empty`);
      return { text: joinCommand(argv), argv: [...argv], loc: l.loc };
    }
    return badType(this.d, l, 'a command: a string, or a non-empty array of strings (argv)');
  }

  private items(l: Located): Located[] {
    if (!Array.isArray(l.value)) return [];
    return l.value.map((value, i) => {
      const path = [...l.path, i];
      return { value: value as TomlValue, path, loc: this.locator.valueLoc(path), keyLoc: this.locator.valueLoc(path) };
    });
  }
}

/** Words only (no operator, no expansion): `exec` can replace the shell with the program. */
function plainWords(script: string): boolean {
  try {
    return !splitCommand(script).background;
  } catch (e) {
    if (e instanceof CommandSyntaxError) return false;
    throw e;
  }
}

/** `core_0` and every `{{ core_N }}` in the environment values and the command words, sorted by N. */
export function coreSlots(environ: Record<string, string>, argv: readonly string[]): string[] {
  const ns = new Set<number>([0]);
  for (const text of [...Object.values(environ), ...argv]) {
    for (const m of text.matchAll(CORE_SLOT)) ns.add(Number(m[2]));
  }
  return [...ns].sort((a, b) => a - b).map((n) => `core_${n}`);
}

function mergeParts(base: NodeParts, own: NodeParts | undefined): NodeParts {
  // Each node gets its own copy: nothing downstream should see a change made through another node.
  const b = structuredClone(base);
  if (!own) return b;
  for (const [k, v] of own.sysctls) b.sysctls.set(k, v);
  for (const [k, v] of own.templates) b.templates.set(k, v);
  const kind = own.kind ?? b.kind;
  const kindLoc = own.kind !== undefined ? own.kindLoc : b.kindLoc;
  return {
    ...(kind !== undefined ? { kind } : {}),
    ...(kindLoc !== undefined ? { kindLoc } : {}),
    sysctls: b.sysctls,
    templates: b.templates,
    binds: [...b.binds, ...own.binds],
    exec: [...b.exec, ...own.exec],
    pinned: [...b.pinned, ...own.pinned],
    ctx: mergeCtx(b.ctx, own.ctx),
  };
}

/** Deep merge: tables merge by key, anything else from `over` replaces. */
function mergeCtx(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(base)) setOwn(out, k, base[k]);
  for (const k of Object.keys(over)) {
    const a = out[k];
    const b = over[k];
    setOwn(out, k, Object.hasOwn(out, k) && isTable(a) && isTable(b) ? mergeCtx(a, b) : b);
  }
  return out;
}

function recordOf(m: Map<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of m) setOwn(out, k, v);
  return out;
}
