/**
 * Issue 13, DUNE files as DUNE runs them: `exec`, pinned `cmd` and `post_up` are shell
 * command lines (`a && b`, redirections, `&`), and the template values put into them are
 * quoted, so a hostile node id is data, never code.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dune, duneOk, downAndCheck, isRoot, removeTemp, requireBuilt, ROOT_REASON, status, tempDir, waitFor } from '../helpers.js';

const LAB = 'e2eshell';

describe.skipIf(!isRoot)(`e2e: shell command lines and a hostile node id${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let dir = '';
  // Would create the file `pwned` in the test's directory if any part of it ran as code.
  const hostile = (d: string) => `h'; touch ${d}/pwned; echo "$(touch ${d}/pwned)" \`touch ${d}/pwned\``;

  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', LAB]);
    dir = tempDir('shell');
  });
  afterAll(async () => {
    expect(await downAndCheck(LAB)).toEqual([]);
    removeTemp(dir);
  });

  it('runs exec, pinned cmd and post_up through sh -c, the hostile id quoted', async () => {
    const id = hostile(dir);
    const toml = `[topology]
routing_weight = "hops"
links = [{ endpoints = [${JSON.stringify(`${id}:eth0`)}, "b:eth0"] }]

[topology.defaults.nodes]
exec = [
  "echo {{node}} > ${dir}/{{ ctx.tag }}.id && ping -c1 -W2 b > ${dir}/{{ ctx.tag }}.ping 2>&1; echo done >> ${dir}/{{ ctx.tag }}.id",
  "sleep 300 &",
]
[[topology.defaults.nodes.pinned]]
cmd = "while :; do sleep 1; done > /dev/null 2>&1 &"
post_up = ["test -n \\"{{node}}\\" && echo \\"up {{node}}\\" > ${dir}/{{ ctx.tag }}.up"]

[topology.nodes.${JSON.stringify(id)}]
tag = "h"
[topology.nodes.b]
tag = "b"
`;
    const file = join(dir, 'shell.toml');
    writeFileSync(file, toml);
    await duneOk(['up', file, '--lab', LAB], { timeoutMs: 120_000 });
    expect(readFileSync(join(dir, 'h.id'), 'utf8')).toBe(`${id}\ndone\n`);
    expect(readFileSync(join(dir, 'b.id'), 'utf8')).toBe('b\ndone\n');
    expect(readFileSync(join(dir, 'h.ping'), 'utf8')).toMatch(/1 received/);
    await waitFor('post_up files', () => existsSync(join(dir, 'h.up')) && existsSync(join(dir, 'b.up')), 10_000);
    expect(readFileSync(join(dir, 'h.up'), 'utf8')).toBe(`up ${id}\n`);
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
    const st = await status(LAB);
    expect(st.processes.map((p) => [p.node, p.alive])).toEqual([
      [id, true],
      ['b', true],
    ]);
    // `sleep 300 &` of exec did not hold up: the shell returned, the sleep runs in the node.
    // (Both nodes run one: the loop's status is its last test's, so the script ends with its own.)
    const here = "for p in $(pgrep -f '^sleep 300$'); do [ \"$(readlink /proc/$p/ns/net)\" = \"$(readlink /proc/self/ns/net)\" ] && echo $p; done; exit 0";
    const r = await duneOk(['exec', '--lab', LAB, 'b', '--', 'sh', '-c', here]);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    await duneOk(['down', '--lab', LAB]);
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
  }, 180_000);
});
