/**
 * `dune tor wait`: until every client can use the network, read from the logs the tor
 * processes write under DIR (the host reads them without entering any node).
 *
 * A client is ready when its log says `Bootstrapped 100% (done)` AND `The current consensus
 * contains exit nodes`: 100 % alone can come from a consensus that lists only authorities
 * (reference tor-testing.md §6). The onion service is ready when its `hostname` file exists
 * and its info log shows a descriptor stored by a directory. Both also need their latest
 * directory information to be enough to build circuits (tor logs when it gains and loses it).
 */
import { existsSync, readFileSync } from 'node:fs';
import { DuneError } from '@dune/topology';
import { readNetwork } from './init.js';
import type { TorNetwork, TorNodeFiles } from './layout.js';

export interface NodeProgress {
  node: string;
  role: TorNodeFiles['role'];
  /** Last `Bootstrapped N%`; -1 before tor wrote its log. */
  percent: number;
  /** `handshake_dir`, `done`, … */
  tag?: string;
  summary?: string;
  ready: boolean;
  /** What is still missing, in words. */
  waitingFor?: string;
}

export interface TorWaitOptions {
  timeoutMs?: number;
  /** Called whenever a client's (or the onion service's) state changes. */
  onProgress?: (p: NodeProgress) => void;
  pollMs?: number;
}

export interface TorWaitResult {
  elapsedMs: number;
  clients: NodeProgress[];
  /** `<56 chars>.onion`, when the network has an onion service. */
  onion?: string;
}

const BOOTSTRAPPED = /Bootstrapped (\d+)% \(([^)]*)\): (.*)$/gm;
const HAS_EXITS = 'The current consensus contains exit nodes';
const HS_UPLOAD = /Uploaded hidden service descriptor \(status 200/;
/** Tor says when it gains and loses enough directory information to build circuits: the last one counts. */
const DIR_INFO_OK = 'We now have enough directory information to build circuits';
const DIR_INFO_LOST = 'Our directory information is no longer up-to-date enough';
/** tor's fatal messages (`[err]`), e.g. a torrc it refuses, after which it exits. */
/** What tor logs first when it opens its log file (each start). */
const START_MARK = 'opening new log file';
const FATAL = /\[err\] (.*)$/m;

function readText(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Progress of one node from its logs. */
export function nodeProgress(n: TorNodeFiles, onionHostnameFile?: string): NodeProgress & { fatal?: string } {
  const log = sinceLastStart(readText(n.log));
  const p: NodeProgress & { fatal?: string } = { node: n.name, role: n.role, percent: -1, ready: false };
  if (log === undefined) {
    p.waitingFor = `its log ${n.log} (is the lab up?)`;
    return p;
  }
  let last: RegExpExecArray | undefined;
  for (const m of log.matchAll(BOOTSTRAPPED)) last = m;
  if (last) {
    p.percent = Number(last[1]);
    p.tag = last[2] as string;
    p.summary = (last[3] as string).trim();
  }
  const fatal = FATAL.exec(log);
  if (fatal) p.fatal = (fatal[1] as string).trim();
  if (p.percent < 100) {
    p.waitingFor = 'bootstrap';
  } else if (n.role === 'client' && !log.includes(HAS_EXITS)) {
    p.waitingFor = 'a consensus with exits';
  } else if (log.lastIndexOf(DIR_INFO_LOST) > log.lastIndexOf(DIR_INFO_OK)) {
    p.waitingFor = 'more relay descriptors';
  } else if (n.role === 'onion') {
    if (onionHostnameFile === undefined || !existsSync(onionHostnameFile)) p.waitingFor = 'its hostname file';
    else if (!HS_UPLOAD.test(sinceLastStart(readText(n.infoLog)) ?? '')) p.waitingFor = 'its descriptor upload';
  }
  p.ready = p.waitingFor === undefined;
  return p;
}

export function describeProgress(p: NodeProgress): string {
  if (p.percent < 0) return `${p.node}: no log yet`;
  const base = `${p.node}: ${p.percent}% (${p.tag ?? '?'}): ${p.summary ?? ''}`;
  return p.ready ? `${base} — ready` : p.waitingFor && p.waitingFor !== 'bootstrap' ? `${base} — waiting for ${p.waitingFor}` : base;
}

/** A log is appended to across runs (`dune down` then `up` again): only the last run counts. */
function sinceLastStart(log: string | undefined): string | undefined {
  if (log === undefined) return undefined;
  const at = log.lastIndexOf(START_MARK);
  return at < 0 ? log : log.slice(log.lastIndexOf('\n', at) + 1);
}

function tail(file: string | undefined, lines: number): string {
  const text = readText(file);
  if (text === undefined) return `  (no file ${file ?? ''})`;
  return text.trimEnd().split('\n').slice(-lines).map((l) => `  ${l}`).join('\n');
}

function stuckError(net: TorNetwork, stuck: (NodeProgress & { fatal?: string })[], why: string): DuneError {
  const byName = new Map(net.nodes.map((n) => [n.name, n]));
  const logs = stuck.map((p) => `${p.node} (${byName.get(p.node)?.log ?? '?'}):\n${tail(byName.get(p.node)?.log, 12)}`).join('\n');
  const names = stuck.map((p) => `${p.node}${p.fatal ? ` (exited: ${p.fatal})` : p.waitingFor ? ` (at ${Math.max(p.percent, 0)}%, waiting for ${p.waitingFor})` : ''}`).join(', ');
  return new DuneError('tor-stuck', `${why}: ${names}`, {
    hint: `the end of their logs:\n${logs}\nthe authorities' logs are in ${net.dir}/nodes/auth*/notice.log; a network bootstraps in about 30-60 s`,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until every client is ready (and the onion service, if any); returns its address. */
export async function torWait(dir: string, opts: TorWaitOptions = {}): Promise<TorWaitResult> {
  const net = readNetwork(dir);
  const timeoutMs = opts.timeoutMs ?? 180_000;
  const pollMs = opts.pollMs ?? 500;
  const watched = net.nodes.filter((n) => n.role === 'client' || n.role === 'onion');
  const t0 = Date.now();
  const seen = new Map<string, string>();
  for (;;) {
    const all = watched.map((n) => nodeProgress(n, net.onion?.hostnameFile));
    for (const p of all) {
      const d = describeProgress(p);
      if (seen.get(p.node) !== d) {
        seen.set(p.node, d);
        opts.onProgress?.(p);
      }
    }
    const dead = all.filter((p) => p.fatal !== undefined);
    if (dead.length > 0) throw stuckError(net, dead, 'tor exited with an error');
    if (all.every((p) => p.ready)) {
      const r: TorWaitResult = { elapsedMs: Date.now() - t0, clients: all.filter((p) => p.role === 'client') };
      const host = readText(net.onion?.hostnameFile)?.trim();
      if (host) r.onion = host;
      return r;
    }
    if (Date.now() - t0 > timeoutMs) {
      throw stuckError(net, all.filter((p) => !p.ready), `not ready after ${Math.round(timeoutMs / 1000)} s`);
    }
    await sleep(pollMs);
  }
}
