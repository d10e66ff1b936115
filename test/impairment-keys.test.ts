/**
 * "A key is added in one place": every key of the impairment key table
 * (packages/topology/src/impairment-keys.ts) is taken through everything that reads, shows or
 * carries impairments — TOML link attributes, GraphML edges, `dune set`, trace CSV columns,
 * `dune status` (and the plan summary), netem's encoding, the userspace tools' REST keys and
 * the engine stage the table names — or is explicitly marked as not applying there. A key
 * added to the table without its part somewhere fails here (or in the type checker first).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  describeImpairment, Diagnostics, FOLLOWER_FIELDS, IMPAIRMENT_KEYS, IMPAIRMENT_SPECS, IMPAIRMENT_TABLE, NOT_SHOWN, parseDuneToml, parseGraphml,
  parseDurationUs, parseImpairmentAssignments, parseStepsCsv, type Impairment, type ImpairmentTomlKey,
} from '@dune/topology';
import { compile, summarizePlan } from '@dune/compiler';
import { NETEM, netemOptions } from '@dune/agent';
import { mergeParams, PARAM_KEYS, STAGES, type StageDef } from '@dune/impair';

/** A value of each key, as TOML, `dune set`, a trace cell and the REST API all take it. */
const SAMPLES: Record<ImpairmentTomlKey, string | number> = {
  latency: '7ms',
  jitter: '2ms',
  jitter_distribution: 'pareto',
  jitter_correlation: '25%',
  loss: '3%',
  loss_correlation: '20%',
  duplicate: '4%',
  corrupt: '5%',
  reorder: '6%',
  reorder_gap: 3,
  bw: '12mbit',
  queue: '77p',
};

/** What a key needs beside it to mean anything (a jitter for its distribution, ...). */
const WITH: Partial<Record<ImpairmentTomlKey, Partial<Record<ImpairmentTomlKey, string | number>>>> = {
  jitter: { latency: '7ms' },
  jitter_distribution: { latency: '7ms', jitter: '2ms' },
  jitter_correlation: { latency: '7ms', jitter: '2ms' },
  loss_correlation: { loss: '3%' },
  reorder: { latency: '7ms' },
  reorder_gap: { latency: '7ms', reorder: '6%' },
};

const KEYS = Object.keys(IMPAIRMENT_TABLE) as ImpairmentTomlKey[];
const dir = mkdtempSync(join(tmpdir(), 'dune-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tomlValue = (v: string | number): string => (typeof v === 'number' ? String(v) : JSON.stringify(v));

function viaToml(attrs: Record<string, string | number>): Impairment {
  const kv = Object.entries(attrs).map(([k, v]) => `${k} = ${tomlValue(v)}`).join(', ');
  const topo = parseDuneToml(`[topology]\nlinks = [{ endpoints = ["a", "b"], ${kv} }]\n`, join(dir, 'k.toml'));
  return topo.links[0]!.a.impairment;
}

/** NetMirage's own numeric attributes of a TOML key's name: in ms, as NetMirage writes them. */
const NETMIRAGE_MS = new Set(['latency', 'jitter']);

function viaGraphml(attrs: Record<string, string | number>): Impairment {
  const keys = Object.keys(attrs).map((k, i) => `<key id="d${i}" for="edge" attr.name="${k}" attr.type="${NETMIRAGE_MS.has(k) ? 'double' : typeof attrs[k] === 'number' ? 'int' : 'string'}"/>`).join('');
  const data = Object.entries(attrs).map(([k, v], i) => `<data key="d${i}">${NETMIRAGE_MS.has(k) ? String(parseDurationUs(String(v)) / 1000) : String(v)}</data>`).join('');
  const topo = parseGraphml(
    `<graphml xmlns="http://graphml.graphdrawing.org/xmlns">${keys}<graph edgedefault="undirected"><node id="a"/><node id="b"/><edge source="a" target="b">${data}</edge></graph></graphml>`,
    join(dir, 'k.graphml'), { weight: 'hops' },
  );
  expect(topo.links[0]!.b.impairment).toEqual(topo.links[0]!.a.impairment);
  return topo.links[0]!.a.impairment;
}

function viaSet(attrs: Record<string, string | number>): Impairment {
  return parseImpairmentAssignments(Object.entries(attrs).map(([k, v]) => `${k}=${v}`)).set as Impairment;
}

function viaTraceCsv(attrs: Record<string, string | number>): Impairment {
  const d = new Diagnostics();
  const steps = parseStepsCsv(d, `time,${Object.keys(attrs).join(',')}\n0s,${Object.values(attrs).join(',')}\n`, 'k.csv');
  expect(d.items.filter((x) => x.severity === 'error')).toEqual([]);
  return steps![0]!.set as Impairment;
}

function viaRest(attrs: Record<string, string | number>): Impairment {
  const body = Object.fromEntries(Object.entries(attrs).map(([k, v]) => [IMPAIRMENT_SPECS[k as ImpairmentTomlKey].rest, v]));
  return mergeParams({ p: {} }, { p: body }).p!;
}

/** Only the fields the key owns. */
function own(k: ImpairmentTomlKey, imp: Impairment): Partial<Impairment> {
  return Object.fromEntries(IMPAIRMENT_SPECS[k].fields.filter((f) => imp[f] !== undefined).map((f) => [f, imp[f]]));
}

describe.each(KEYS)('the impairment key %s', (k) => {
  const base = { ...WITH[k] };
  const full = { ...base, [k]: SAMPLES[k] };
  const expected = viaToml(full);
  const without = viaToml(base);

  it('is read from TOML into the model fields the table names', () => {
    expect(Object.keys(own(k, expected)).length).toBeGreaterThan(0);
    expect(own(k, without)).toEqual({});
  });

  it('is read the same from a GraphML edge, `dune set`, a trace CSV column and the REST API (by its REST name)', () => {
    expect(viaGraphml(full)).toEqual(expected);
    expect(viaSet(full)).toEqual(expected);
    expect(viaTraceCsv(full)).toEqual(expected);
    expect(PARAM_KEYS[IMPAIRMENT_SPECS[k].rest]).toBeDefined();
    expect(viaRest(full)).toEqual(expected);
  });

  it('is shown in `dune status` and the plan summary, or marked as said by another key', () => {
    const spec = IMPAIRMENT_SPECS[k];
    if (spec.status === NOT_SHOWN) return expect(spec.status(expected)).toBeUndefined();
    const text = spec.status(expected)!;
    expect(text).toMatch(/\S+ \S/);
    expect(describeImpairment(expected)).toContain(text);
    const plan = compile(parseDuneToml(`[topology]\nlinks = [{ endpoints = ["a", "b"], ${Object.entries(full).map(([x, v]) => `${x} = ${tomlValue(v)}`).join(', ')} }]\n`, join(dir, 's.toml')));
    const [word, ...rest] = text.split(' ');
    expect(summarizePlan(plan)).toContain(`${word} ${rest.join(' ')} ×2`);
  });

  it('is encoded for netem (NETEM has its entry and it changes the qdisc\'s options)', () => {
    expect(NETEM[k]).toBeDefined();
    const ctx = { mtu: 1500 };
    expect(netemOptions(expected, ctx)).not.toEqual(netemOptions(without, ctx));
  });

  it('is carried by the userspace engine\'s stage the table names', () => {
    const stage = STAGES[IMPAIRMENT_SPECS[k].engine as keyof typeof STAGES] as StageDef<unknown, unknown> | undefined;
    expect(stage, `no engine stage "${IMPAIRMENT_SPECS[k].engine}"`).toBeDefined();
    expect(stage!.config(expected, 0)).toBeDefined();
    expect(JSON.stringify(stage!.config(expected, 0))).not.toBe(JSON.stringify(stage!.config(without, 0)));
  });
});

describe('the table and the model', () => {
  it('has a sample here for every key, and every model field is some key\'s or a trace follower\'s', () => {
    expect(Object.keys(SAMPLES)).toEqual(KEYS);
    const owned = new Set<string>([...KEYS.flatMap((k) => IMPAIRMENT_SPECS[k].fields), ...FOLLOWER_FIELDS]);
    expect(IMPAIRMENT_KEYS.filter((f) => !owned.has(f))).toEqual([]);
  });

  it('GraphML keeps NetMirage\'s numeric attributes in its units beside the TOML-named ones', () => {
    const topo = parseGraphml(
      '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><key id="l" for="edge" attr.name="latency" attr.type="double"/><key id="p" for="edge" attr.name="packetloss" attr.type="double"/>' +
        '<key id="b" for="edge" attr.name="bw" attr.type="string"/><graph edgedefault="undirected"><node id="a"/><node id="b"/>' +
        '<edge source="a" target="b"><data key="l">12.5</data><data key="p">0.02</data><data key="b">5mbit</data></edge></graph></graphml>',
      join(dir, 'nm.graphml'),
    );
    expect(topo.links[0]!.a.impairment).toEqual({ delayUs: 12_500, lossPct: 2, rateBitsPerSec: 5_000_000 });
  });

  it('a bad TOML-named GraphML value is an error at its <data>, with the TOML hint', () => {
    expect(() => viaGraphml({ duplicate: 'lots' })).toThrow(/duplicate/);
  });
});
