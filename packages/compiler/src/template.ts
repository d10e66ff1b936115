/**
 * Stage 5: templates, binds and commands, rendered per node (DUNE 3.2, Jinja syntax).
 *
 * nunjucks renders from strings only: sources come through the injected `readFile`, paths
 * resolved against the topology's directory, and `{% include %}` goes through the same
 * reader. Autoescape is off (these are config files, not HTML); an undefined variable is an
 * error, never an empty string. Unlike DUNE, `environ` values are rendered too.
 *
 * The same mistake in a template shared by 700 nodes is reported once, naming a few nodes.
 */
import { isAbsolute, join } from 'node:path';
import nunjucks from 'nunjucks';
import type { Command, Diagnostics, Link, Node, SourceLoc, Topology } from '@dune/topology';
import type { Addressing } from './addressing.js';
import type { Interfaces } from './interfaces.js';
import { coreRefs, type Placement } from './placement.js';
import type { ExecOp, FileOp, ProcessOp } from './plan.js';
import { formatDurationUs, formatRate } from '@dune/topology';
import { OUTPUT_FILTERS, wrapOutputs } from './shell-quote.js';

export const FILE_MODE = 0o644;
export const EXEC_MODE = 0o755;

export interface IfaceContext {
  name: string;
  /** Egress delay of this interface with its unit, as DUNE's `latency` string (`5ms`). */
  latency: string | null;
  metric: number | null;
  /** Egress rate limit with its unit (`100gbit`). */
  bandwidth: string | null;
  /** DUNE's interface index: 2 + the interface's position in its node (lo is 1). */
  ifindex: number;
  mtu: number;
  mac: string | null;
  /** 0: the link's a end, 1: its b end. */
  idx: 0 | 1;
  /** `node:iface` at the other end. */
  peer: string;
  addrs: string[];
  ctx_addrs: { prefix: string; plen: number }[];
  ctx_mac: string | null;
}

export interface NodeContext {
  lab: string;
  node: string;
  ifaces: Record<string, IfaceContext>;
  ctx: Record<string, unknown>;
  /** The node's own addresses (not in DUNE): loopbacks and the user's `lo` addresses. */
  loopback: { v4: string; v6: string; addrs: string[] };
  /** Every core of the node's processes, in allocation order (not in DUNE). */
  cores: number[];
  [coreN: `core_${number}`]: number;
}

export interface RenderInputs {
  topo: Topology;
  lab: string;
  keys: string[];
  ns: string[];
  ifs: Interfaces;
  addr: Addressing;
  placement: Placement;
  /** Per link: the MTU its devices get. */
  mtu: number[];
}

export interface Rendered {
  /** Per node. */
  files: FileOp[][];
  execs: ExecOp[][];
  processes: ProcessOp[][];
  /** Per phynode: its own binds (FileOp.node is ""). */
  hostFiles: FileOp[][];
}

let compatInstalled = false;

/** A nunjucks environment that can only read through `read`. */
function environment(read: (name: string) => string): nunjucks.Environment {
  if (!compatInstalled) {
    // Jinja's `dict.items()`, `True`/`None`, slices: DUNE templates are minijinja.
    nunjucks.installJinjaCompat();
    compatInstalled = true;
  }
  const loader: nunjucks.ILoader = { getSource: (name: string) => ({ src: read(name), path: name, noCache: false }) };
  const env = new nunjucks.Environment([loader], { autoescape: false, throwOnUndefined: true });
  // Every output goes through one of these (shell-quote.ts): none/absent as minijinja renders them.
  for (const [name, f] of Object.entries(OUTPUT_FILTERS)) env.addFilter(name, f);
  // minijinja's `items`: a map's [key, value] pairs, in key order as minijinja keeps them.
  env.addFilter('items', (v: unknown) => (v !== null && typeof v === 'object' ? Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : []));
  return env;
}

interface Where {
  /** `template ospf.cfg`, `exec command`, ... */
  what: string;
  loc: SourceLoc | undefined;
}

/** Collects equal problems across nodes into one diagnostic each. */
class Problems {
  private readonly byKey = new Map<string, { code: string; message: string; loc: SourceLoc | undefined; hint: string | undefined; nodes: string[] }>();

  add(code: string, node: string, message: string, loc: SourceLoc | undefined, hint?: string): void {
    const key = `${code}\0${message}\0${loc ? `${loc.file}:${loc.line}:${loc.col}` : ''}`;
    const p = this.byKey.get(key);
    if (p) p.nodes.push(node);
    else this.byKey.set(key, { code, message, loc, hint, nodes: [node] });
  }

  flush(diags: Diagnostics): void {
    for (const p of this.byKey.values()) {
      const shown = p.nodes.slice(0, 5).map((n) => JSON.stringify(n)).join(', ');
      const more = p.nodes.length > 5 ? ` and ${p.nodes.length - 5} more` : '';
      const who = p.nodes[0] === '' ? '' : `node${p.nodes.length === 1 ? '' : 's'} ${shown}${more}: `;
      diags.error(p.code, `${who}${p.message}`, p.loc, p.hint);
    }
  }
}

/**
 * Template and bind sources, read once each through the injected reader. Missing files are
 * reported by `checkSources` before anything is placed or rendered, so one run names them
 * together with every other error.
 */
export class Sources {
  private readonly cache = new Map<string, Buffer | Error>();
  private readonly problems = new Problems();
  private warnedNoReader = false;

  constructor(
    private readonly baseDir: string,
    private readonly readFile: ((path: string) => Buffer) | undefined,
  ) {}

  resolve(p: string): string {
    return isAbsolute(p) ? p : join(this.baseDir, p);
  }

  /** The file's bytes; throws an Error naming the resolved path and the reason. */
  read(path: string): Buffer {
    const full = this.resolve(path);
    let got = this.cache.get(full);
    if (got === undefined) {
      if (this.readFile === undefined) {
        got = new Error('the compiler was given no readFile');
      } else {
        try {
          got = this.readFile(full);
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          got = new Error(err.code ?? err.message);
        }
      }
      this.cache.set(full, got);
    }
    if (got instanceof Error) throw new Error(`${full}: ${got.message}`);
    return got;
  }

  /** The file's bytes, or undefined with the problem recorded (one diagnostic per file and place). */
  tryRead(path: string, what: 'template' | 'bind', node: string, loc: SourceLoc | undefined, diags: Diagnostics): Buffer | undefined {
    try {
      return this.read(path);
    } catch (e) {
      if (this.readFile === undefined) {
        if (!this.warnedNoReader) {
          diags.error('no-file-reader', `${what} "${path}" must be read, but compile() was given no readFile`, loc, 'pass opts.readFile (e.g. fs.readFileSync)');
          this.warnedNoReader = true;
        }
        return undefined;
      }
      this.problems.add(`missing-${what}`, node, `${what} "${path}" cannot be read (${(e as Error).message})`, loc, "check the path; relative paths are taken from the topology file's directory");
      return undefined;
    }
  }

  flush(diags: Diagnostics): void {
    this.problems.flush(diags);
  }
}

/** Reads every template and bind source once, reporting the missing ones. */
export function checkSources(topo: Topology, sources: Sources, diags: Diagnostics): void {
  for (const node of topo.nodes) {
    for (const t of node.templates) sources.tryRead(t.src, 'template', node.id, t.loc ?? node.loc, diags);
    for (const b of node.binds) sources.tryRead(b.src, 'bind', node.id, b.loc ?? node.loc, diags);
  }
  for (const ph of topo.phynodes) for (const b of ph.binds) sources.tryRead(b.src, 'bind', '', b.loc ?? ph.loc, diags);
  sources.flush(diags);
}

export function renderNodes(input: RenderInputs, sources: Sources, diags: Diagnostics): Rendered {
  const { topo, placement } = input;
  const problems = new Problems();
  const tryRead = (path: string, what: 'template' | 'bind', node: string, loc: SourceLoc | undefined) => sources.tryRead(path, what, node, loc, diags);
  const read = (path: string) => sources.read(path);

  const env = environment((name) => read(name).toString('utf8'));
  const compiled = new Map<string, nunjucks.Template>();
  const render = (text: string, ctx: object, node: Node, where: Where, shell = false): string | undefined => {
    if (!text.includes('{')) return text;
    try {
      const key = `${shell ? 's' : 't'}${text}`;
      let t = compiled.get(key);
      if (t === undefined) {
        t = new nunjucks.Template(wrapOutputs(text, shell), env, where.what, true);
        compiled.set(key, t);
      }
      return t.render(ctx);
    } catch (e) {
      problems.add('template-error', node.id, `${where.what}: ${explain((e as Error).message, text)}`, where.loc, 'fix the template; variables: node, ifaces, ctx, lab, loopback, cores, core_N');
      return undefined;
    }
  };
  const renderCommand = (cmd: Command, ctx: object, node: Node, what: string): string[] | undefined => {
    const out: string[] = [];
    const words = templateWords(cmd.argv);
    for (const [i, word] of words.entries()) {
      // The script of `sh -c SCRIPT`: values rendered into it are quoted for the shell.
      const r = render(word, ctx, node, { what: `${what} \`${cmd.text}\``, loc: cmd.loc }, cmd.shell === true && i === 2);
      if (r === undefined) return undefined;
      out.push(r);
    }
    if (out.length === 0) {
      problems.add('empty-command', node.id, `${what} is empty`, cmd.loc ?? node.loc, 'write the program to run');
      return undefined;
    }
    return out;
  };

  const files: FileOp[][] = [];
  const execs: ExecOp[][] = [];
  const processes: ProcessOp[][] = [];
  topo.nodes.forEach((node, v) => {
    const nodeFiles: FileOp[] = [];
    const nodeExecs: ExecOp[] = [];
    const nodeProcs: ProcessOp[] = [];
    files.push(nodeFiles);
    execs.push(nodeExecs);
    processes.push(nodeProcs);
    if (node.templates.length === 0 && node.binds.length === 0 && node.exec.length === 0 && node.pinned.length === 0) return;
    const phynode = placement.phynodes[placement.hostOf[v] as number];
    const hasCores = phynode?.cores !== undefined;
    const base = nodeContext(input, v);
    const ns = input.ns[v] as string;

    // Before rendering: core_N the node cannot have.
    const usable = (text: string, ctx: object, where: Where): boolean => {
      const refs = coreRefs(text);
      if (refs.length === 0) return true;
      if (!hasCores) {
        problems.add(
          'no-cores',
          node.id,
          `${where.what} uses ${refs.map((r) => `{{${r}}}`).join(', ')}, but phynode ${phynode?.name} declares no cores`,
          where.loc,
          `add cores = [[1,2,3]] under [infrastructure.nodes.${phynode?.name}]`,
        );
        return false;
      }
      const missing = refs.filter((r) => !(r in ctx));
      if (missing.length > 0) {
        problems.add(
          'undefined-core',
          node.id,
          `${where.what} uses ${missing.map((r) => `{{${r}}}`).join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not reserved (node-level texts see the cores of the node's first pinned process)`,
          where.loc,
          'reserve the core by using it in a pinned process, e.g. environ = {CORE = "{{core_1}}"}',
        );
        return false;
      }
      return true;
    };
    const text = (t: string, ctx: object, where: Where) => (usable(t, ctx, where) ? render(t, ctx, node, where) : undefined);
    const command = (cmd: Command, ctx: object, what: string) =>
      templateWords(cmd.argv).every((w) => usable(w, ctx, { what: `${what} \`${cmd.text}\``, loc: cmd.loc })) ? renderCommand(cmd, ctx, node, what) : undefined;

    for (const t of node.templates) {
      const where = { what: `template ${t.src}`, loc: t.loc ?? node.loc };
      const dst = text(t.dst, base, { what: `destination of template ${t.src}`, loc: where.loc });
      const src = tryRead(t.src, 'template', node.id, where.loc);
      if (dst === undefined || src === undefined) continue;
      const body = text(src.toString('utf8'), base, where);
      if (body === undefined || !absolute(dst, node, where, problems)) continue;
      nodeFiles.push({ op: 'file', node: node.id, path: dst, contentBase64: Buffer.from(body, 'utf8').toString('base64'), mode: FILE_MODE });
    }
    for (const b of node.binds) {
      const where = { what: `bind ${b.src}`, loc: b.loc ?? node.loc };
      const dst = text(b.dst, base, { what: `destination of bind ${b.src}`, loc: where.loc });
      const src = tryRead(b.src, 'bind', node.id, where.loc);
      if (dst === undefined || src === undefined || !absolute(dst, node, where, problems)) continue;
      nodeFiles.push({ op: 'file', node: node.id, path: dst, contentBase64: src.toString('base64'), mode: b.exec ? EXEC_MODE : FILE_MODE });
    }
    for (const c of node.exec) {
      const argv = command(c, base, 'exec command');
      if (argv) nodeExecs.push({ op: 'exec', ns, node: node.id, argv });
    }
    node.pinned.forEach((p, k) => {
      const cpus = placement.cpus[v]?.[k] ?? [];
      const ctx: NodeContext = { ...base };
      // Each process sees its own cores: slot i → cpus[i].
      placement.slots[v]?.[k]?.forEach((slot, i) => {
        const c = cpus[i];
        if (c !== undefined) ctx[slot as `core_${number}`] = c;
      });
      const what = `pinned process ${k}`;
      const argv = command(p.cmd, ctx, what);
      const env: Record<string, string> = {};
      let ok = argv !== undefined;
      for (const [key, value] of Object.entries(p.environ)) {
        const r = text(value, ctx, { what: `${what}: environ ${key}`, loc: p.loc ?? node.loc });
        if (r === undefined) ok = false;
        else env[key] = r;
      }
      const postUp = p.postUp.map((c) => command(c, ctx, `${what}: post_up`));
      const preDown = p.preDown.map((c) => command(c, ctx, `${what}: pre_down`));
      const down = p.down ? command(p.down, ctx, `${what}: down`) : undefined;
      if (!ok || argv === undefined || postUp.some((x) => x === undefined) || preDown.some((x) => x === undefined) || (p.down && down === undefined)) return;
      const op: ProcessOp = {
        op: 'process',
        ns,
        node: node.id,
        name: `${input.keys[v]}.${k}`,
        argv,
        env,
        cpus,
        postUp: postUp as string[][],
        preDown: preDown as string[][],
      };
      if (down) op.down = down;
      nodeProcs.push(op);
    });
  });

  const hostFiles = placement.phynodes.map((ph) =>
    ph.binds.flatMap((b): FileOp[] => {
      const src = tryRead(b.src, 'bind', '', b.loc ?? ph.loc);
      if (src === undefined) return [];
      if (!b.dst.startsWith('/')) {
        problems.add('relative-destination', '', `phynode ${ph.name}: bind ${b.src} goes to "${b.dst}", which is not an absolute path`, b.loc ?? ph.loc, 'write the destination as an absolute path');
        return [];
      }
      return [{ op: 'file', node: '', path: b.dst, contentBase64: src.toString('base64'), mode: b.exec ? EXEC_MODE : FILE_MODE }];
    }),
  );

  checkFileConflicts(topo, placement, files, hostFiles, diags);
  problems.flush(diags);
  sources.flush(diags);
  return { files, execs, processes, hostFiles };
}

/**
 * The reader splits commands into words before anything is rendered, so `{{ ctx.table }}`
 * arrives as three words. Words are joined back (with one space) until every `{{`, `{%`
 * and `{#` they open is closed: each such group is one template, rendered into one word.
 * Quoting outside templates stays as the reader decided.
 */
export function templateWords(argv: readonly string[]): string[] {
  const out: string[] = [];
  let open = 0;
  let group: string[] = [];
  for (const word of argv) {
    group.push(word);
    for (const m of word.matchAll(/\{\{|\{%|\{#|\}\}|%\}|#\}/g)) open += m[0].startsWith('{') ? 1 : -1;
    if (open <= 0) {
      out.push(group.join(' '));
      group = [];
      open = 0;
    }
  }
  // An unclosed template: rendered as is, nunjucks will say what is wrong.
  if (group.length > 0) out.push(group.join(' '));
  return out;
}

function absolute(path: string, node: Node, where: Where, problems: Problems): boolean {
  if (path.startsWith('/')) return true;
  problems.add('relative-destination', node.id, `${where.what} goes to "${path}", which is not an absolute path`, where.loc, 'write the destination as an absolute path, e.g. "/tmp/{{node}}/bird.conf"');
  return false;
}

/** Two different contents for one path on one phynode is an error; the same content once is kept once. */
function checkFileConflicts(topo: Topology, placement: Placement, files: FileOp[][], hostFiles: FileOp[][], diags: Diagnostics): void {
  const seen = placement.phynodes.map(() => new Map<string, FileOp>());
  const visit = (h: number, list: FileOp[]) => {
    const m = seen[h] as Map<string, FileOp>;
    for (let i = 0; i < list.length; i++) {
      const f = list[i] as FileOp;
      const first = m.get(f.path);
      if (first === undefined) {
        m.set(f.path, f);
        continue;
      }
      if ((first.blob ?? first.contentBase64) !== (f.blob ?? f.contentBase64) || first.mode !== f.mode) {
        const who = (x: FileOp) => (x.node === '' ? `phynode ${placement.phynodes[h]?.name}` : `node "${x.node}"`);
        diags.error('file-conflict', `${who(first)} and ${who(f)} both write ${f.path} on phynode ${placement.phynodes[h]?.name}, with different contents`, topo.nodes.find((n) => n.id === f.node)?.loc, 'put {{node}} in the destination path so each node gets its own file');
      }
      list.splice(i--, 1);
    }
  };
  hostFiles.forEach((list, h) => visit(h, list));
  files.forEach((list, v) => visit(placement.hostOf[v] as number, list));
}

/** nunjucks' "(name) [Line 2, Column 5]\n  Error: msg" → "line 2, column 5 (`source line`): msg". */
export function explain(message: string, source: string): string {
  const m = /^\([^)]*\)(?: \[Line (\d+), Column (\d+)\])?\s*\n?\s*(?:Error: )?([\s\S]*)$/.exec(message);
  if (!m) return message;
  const msg = (m[3] ?? message).trim();
  if (m[1] === undefined) return msg;
  const lineNo = Number(m[1]);
  const line = (source.split('\n')[lineNo - 1] ?? '').trim();
  const shown = line.length > 80 ? `${line.slice(0, 77)}...` : line;
  return `line ${lineNo}, column ${m[2]} (\`${shown}\`): ${msg}`;
}

/** The context every text of node `v` is rendered with (DUNE 3.2, plus `lab`, `loopback`, `cores`). */
export function nodeContext(input: RenderInputs, v: number): NodeContext {
  const { topo, ifs, addr, placement } = input;
  const node = topo.nodes[v] as Node;
  const ifaces: Record<string, IfaceContext> = {};
  for (const [position, iface] of (ifs.byNode[v] ?? []).entries()) {
    const link = topo.links[iface.link] as Link;
    const li = iface.link;
    const own = iface.end === 'a' ? link.a : link.b;
    const peer = iface.end === 'a' ? link.b : link.a;
    const peerName = (iface.end === 'a' ? ifs.bName[li] : ifs.aName[li]) as string;
    const v4 = (iface.end === 'a' ? addr.v4a[li] : addr.v4b[li]) as string;
    const v6 = (iface.end === 'a' ? addr.v6a[li] : addr.v6b[li]) as string;
    const addrs = [...(v4 === '' ? [] : [`${v4}/${addr.v4Len[li]}`, `${v6}/${addr.v6Len[li]}`]), ...(addr.user[v]?.get(iface.name) ?? [])];
    ifaces[iface.name] = {
      name: iface.name,
      latency: own.impairment.delayUs === undefined ? null : formatDurationUs(own.impairment.delayUs),
      metric: own.metric ?? null,
      bandwidth: own.impairment.rateBitsPerSec === undefined ? null : formatRate(own.impairment.rateBitsPerSec),
      ifindex: 2 + position,
      mtu: input.mtu[li] as number,
      mac: own.mac ?? null,
      idx: iface.end === 'a' ? 0 : 1,
      peer: `${peer.node}:${peerName}`,
      addrs,
      ctx_addrs: addrs.map((a) => {
        const [prefix, plen] = a.split('/');
        return { prefix: prefix as string, plen: Number(plen) };
      }),
      ctx_mac: own.mac ?? null,
    };
  }
  const ctx: NodeContext = {
    lab: input.lab,
    node: node.id,
    ifaces,
    ctx: node.ctx,
    loopback: { v4: addr.nodeV4[v] as string, v6: addr.nodeV6[v] as string, addrs: addr.user[v]?.get('lo') ?? [] },
    cores: (placement.cpus[v] ?? []).flat(),
  };
  // Node-level texts see the first pinned process's cores.
  const first = placement.cpus[v]?.[0] ?? [];
  placement.slots[v]?.[0]?.forEach((slot, i) => {
    const c = first[i];
    if (c !== undefined) ctx[slot as `core_${number}`] = c;
  });
  return ctx;
}
