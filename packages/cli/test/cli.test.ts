import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/dune.js';
import { capture } from './helpers.js';

const root = new URL('../../../', import.meta.url).pathname;

async function run(...argv: string[]) {
  const o = capture();
  const code = await main(argv, o);
  return { code, out: o.stdout, err: o.stderr };
}

function tmpFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dune-cli-'));
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('dune validate', () => {
  it('accepts every shipped GraphML topology', async () => {
    for (const f of ['shadow-example.graphml', 'zoo/Abilene.graphml', 'zoo/Kdl.graphml']) {
      const r = await run('validate', join(root, 'topologies', f));
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/valid — \d+ nodes, \d+ links on 1 host/);
    }
  });

  it('lists every error with its location and exits 1', async () => {
    const f = tmpFile('bad.toml', '[topology.defaults.links]\nlatncy = "5ms"\nbw = "100 furlongs"\n\n[topology]\nlinks = [{endpoints = ["a:eth0", "b:eth0"], loss = 0.1}]\n');
    const r = await run('validate', f);
    expect(r.code).toBe(1);
    expect(r.err.replaceAll(f, 'bad.toml')).toMatchInlineSnapshot(`
      "bad.toml:2:1: error[unknown-key]: unknown key "latncy" in topology.defaults.links
        hint: did you mean \`latency\`? Use one of: latency, jitter, jitter_distribution, jitter_correlation, loss, loss_correlation, loss_model, duplicate, corrupt, reorder, reorder_gap, bw, queue, trace, metric, mtu, mac
      bad.toml:3:6: error[bad-unit]: topology.defaults.links.bw: "furlongs" in "100 furlongs" is not a unit of rate
        hint: write a rate such as "100mbit"; accepted units: bit, kbit, mbit, gbit, tbit, kibit, mibit, gibit, bps, kbps, Mbps, Gbps, Tbps, B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s
      bad.toml:6:52: error[bad-unit]: topology.links[0].loss: the percentage 0.1 has no unit; write it as "0.1%" (bare numbers are ambiguous)
        hint: write a percentage such as "1%"; accepted units: %
      3 errors; nothing was changed.
      "
    `);
  });

  it('says clearly when the file is missing', async () => {
    const r = await run('validate', '/nonexistent/topo.toml');
    expect(r.code).toBe(1);
    expect(r.err).toMatchInlineSnapshot(`
      "error[file-unreadable]: cannot read topology file /nonexistent/topo.toml: ENOENT
        hint: check the path; topology files end in .toml or .graphml
      "
    `);
  });
});

describe('dune plan', () => {
  it('summarises the default lab without a file', async () => {
    const r = await run('plan');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/6 nodes/);
  });

  it('prints byte-identical JSON on every run', async () => {
    const f = join(root, 'topologies', 'zoo', 'Abilene.graphml');
    const a = await run('plan', f, '--json');
    const b = await run('plan', f, '--json');
    expect(a.code).toBe(0);
    expect(a.out).toBe(b.out);
    const plan = JSON.parse(a.out);
    expect(plan.format).toBe('dune-plan/1');
    expect(plan.lab).toBe('Abilene');
  });

  it('refuses an unknown --host, naming the phynodes', async () => {
    const r = await run('plan', '--host', 'nope');
    expect(r.code).toBe(1);
    expect(r.err).toMatchInlineSnapshot(`
      "error[unknown-host]: no phynode named "nope" in <default>.toml
        hint: use one of: local
      1 error; nothing was changed.
      "
    `);
  });

  it('has help with examples', async () => {
    const r = await run('--help');
    expect(r.out).toContain('Examples:');
    expect(r.out).toContain('dune up');
  });
});
