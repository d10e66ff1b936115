/**
 * The plan's source checksum (what says whether a lab changed) covers the contents of the
 * trace files a topology names: the same topology text with another trace is another lab.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTopology } from '@dune/topology';
import { compile } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dune-trace-sum-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOML = `
[topology]
links = [{ endpoints = ["a:eth0", "b:eth0"], "a:eth0" = { trace = "up.csv" }, "b:eth0" = { trace = "cell.down" } }]
`;

function sha(): string {
  const topo = readTopology(join(dir, 'lab.toml'));
  return compile(topo, { readFile: (p) => readFileSync(p), sourceSha256: 'f'.repeat(64) }).source.sha256;
}

describe('the topology checksum and trace files', () => {
  it('changes when a trace file changes, although the topology text does not', () => {
    writeFileSync(join(dir, 'lab.toml'), TOML);
    writeFileSync(join(dir, 'up.csv'), 'time,rate\n0s,10mbit\n4s,2mbit\n');
    writeFileSync(join(dir, 'cell.down'), '1\n2\n3\n');
    const first = sha();
    expect(first).not.toBe('f'.repeat(64));
    expect(sha()).toBe(first);
    writeFileSync(join(dir, 'cell.down'), '1\n2\n4\n');
    const mahimahiChanged = sha();
    expect(mahimahiChanged).not.toBe(first);
    writeFileSync(join(dir, 'up.csv'), 'time,rate\n0s,10mbit\n4s,3mbit\n');
    expect(sha()).not.toBe(mahimahiChanged);
  });

  it('is the source text\'s own checksum when there is no trace file', () => {
    writeFileSync(join(dir, 'plain.toml'), '[topology]\nlinks = [{ endpoints = ["a", "b"] }]\n');
    const plan = compile(readTopology(join(dir, 'plain.toml')), { readFile: (p) => readFileSync(p), sourceSha256: 'e'.repeat(64) });
    expect(plan.source.sha256).toBe('e'.repeat(64));
  });
});
