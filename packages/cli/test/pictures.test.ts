/** `dune graph` from a file, and the argument checks of the fault commands (no lab needed). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/dune.js';
import { capture } from './helpers.js';

async function run(...argv: string[]) {
  const o = capture();
  const code = await main(argv, o);
  return { code, out: o.stdout, err: o.stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'dune-cli-graph-'));
const file = join(dir, 'tri.toml');
writeFileSync(file, `[topology]
links = [{ endpoints = ["a", "sw"], latency = "5ms" }, { endpoints = ["b", "sw"] }]
[topology.nodes.sw]
kind = "switch"
[topology.nodes.a]
[topology.nodes.b]
`);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dune graph FILE', () => {
  it('mermaid on stdout', async () => {
    const r = await run('graph', file, '--format', 'mermaid');
    expect(r.code).toBe(0);
    expect(r.out).toMatchInlineSnapshot(`
      "flowchart LR
        subgraph h0["phynode local"]
          n0["sw"]
          n1(("a<br/>10.0.0.2"))
          n2(("b<br/>10.0.0.3"))
        end
        n1 ---|"5ms"| n0
        n2 --- n0
      "
    `);
  });

  it('dot by default; svg into a file with -o', async () => {
    expect((await run('graph', file)).out).toMatch(/^graph "tri" \{/);
    const out = join(dir, 'tri.svg');
    const r = await run('graph', file, '--format', 'svg', '-o', out);
    expect(r.code).toBe(0);
    expect(r.err).toBe(`${out}: 3 nodes, 2 links (svg)\n`);
    expect(readFileSync(out, 'utf8')).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  });

  it('an unknown format: the valid ones and the nearest', async () => {
    const r = await run('graph', file, '--format', 'mermaidjs');
    expect(r.code).toBe(1);
    expect(r.err).toMatchInlineSnapshot(`
      "error[bad-format]: "mermaidjs" is not a picture format
        hint: did you mean \`mermaid\`? Use one of: dot, mermaid, svg, html
      "
    `);
  });
});

describe('fault commands refuse what they cannot do, before reaching a lab', () => {
  it('dune link cut / dune node halt / a target without an interface', async () => {
    expect((await run('link', 'cut', 'a:eth0')).err).toMatchInlineSnapshot(`
      "error[bad-action]: "cut" is not a link action
        hint: use one of: down, up
      "
    `);
    expect((await run('node', 'halt', 'a')).err).toMatchInlineSnapshot(`
      "error[bad-action]: "halt" is not a node action
        hint: use one of: stop, start, restart
      "
    `);
    expect((await run('link', 'down', 'a')).err).toMatchInlineSnapshot(`
      "error[bad-target]: "a" is not NODE:IFACE
        hint: for example \`dune link down r1:eth0\`
      "
    `);
  });
});
