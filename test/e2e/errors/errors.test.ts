/**
 * Issue 3, failing well: a user without root gets one clear message; an `up` that fails
 * halfway rolls back to nothing; a lab name that is really a path is refused; an `up` whose
 * reader goes away (`dune up | head`) still builds the whole lab.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUNE_JS, dune, downAndCheck, isRoot, leftovers, removeTemp, REPO, requireBuilt, ROOT_REASON, STATE_ROOT, tempDir } from '../helpers.js';

const FAIL = 'e2efail';
const PIPE = 'e2epipe';
const NOBODY = 65534;

const FAILING = `# written by test/e2e/errors/errors.test.ts
[topology]
routing_weight = "hops"
links = [ { endpoints = ["a:eth0", "b:eth0"], bw = "10mbit", "a:eth0" = { loss = "1%" } } ]

[topology.nodes.a]
exec = ["true"]

[topology.nodes.b]
exec = ["false"]
`;

describe.skipIf(!isRoot)(`e2e: errors and interruptions${isRoot ? '' : ` (${ROOT_REASON})`}`, () => {
  let tmp = '';
  beforeAll(async () => {
    requireBuilt();
    await dune(['down', '--lab', FAIL]);
    await dune(['down', '--lab', PIPE]);
    tmp = tempDir('errors');
    writeFileSync(join(tmp, 'fail.toml'), FAILING);
  });
  afterAll(async () => {
    const left = [...(await downAndCheck(FAIL)), ...(await downAndCheck(PIPE))];
    removeTemp(tmp);
    expect(left).toEqual([]);
  });

  it('without root, up, down and status print one error[not-root] with a hint and exit 1, no stack trace', async () => {
    // nobody must be able to read the checkout and the topology to get as far as the check.
    const topo = join(REPO, 'test/e2e/reach/line5.toml');
    for (const [what, args] of [
      ['up', ['up', topo]],
      ['down', ['down', '--lab', FAIL]],
      ['status', ['status']],
    ] as const) {
      const r = await dune(args, { uid: NOBODY, gid: NOBODY });
      expect(r.code, `dune ${args.join(' ')}`).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `error[not-root]: dune ${what} needs root: labs are network namespaces, interfaces and state in /run/dune, all root's\n` +
          `  hint: run it as root, e.g. \`sudo $(command -v dune) ${what} ...\`\n`,
      );
    }
  });

  it('an up whose exec fails exits 1 naming the node and the command, and leaves nothing', async () => {
    const r = await dune(['up', join(tmp, 'fail.toml'), '--lab', FAIL]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^warning: up failed; rolling back$/m);
    expect(r.stderr).toMatch(/^error\[exec-failed\]: exec in node b failed \(exit 1\): false$/m);
    expect(r.stderr).toMatch(/^ {2}hint: fix the command in the topology, or run it by hand with `dune exec`$/m);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    // The namespaces, the veth, the htb and nftables state were built before exec ran.
    expect(r.stdout).toMatch(/^• network \(\d+\)$/m);
    expect(leftovers(FAIL)).toEqual([]);
    expect(existsSync(join(STATE_ROOT, FAIL))).toBe(false);
  });

  it('a lab name that is a path (.., empty) is refused before anything is removed', async () => {
    // Were `..` taken as a lab, down would remove /run/dune/.. recursively. A sibling
    // directory stands in for what must survive.
    const canary = join(STATE_ROOT, '..', 'dune-e2e-canary');
    mkdirSync(canary, { recursive: true });
    writeFileSync(join(canary, 'keep'), 'keep\n');
    try {
      for (const lab of ['..', '../dune-e2e-canary', '']) {
        const r = await dune(['down', '--lab', lab]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`^error\\[bad-lab-name\\]: "${lab.replace(/\./g, '\\.')}" is not a lab name`, 'm'));
      }
      expect(readFileSync(join(canary, 'keep'), 'utf8')).toBe('keep\n');
      expect(existsSync(STATE_ROOT)).toBe(true);
    } finally {
      rmSync(canary, { recursive: true, force: true });
    }
  });

  it('dune up | head -1: the reader leaving does not stop the build halfway', async () => {
    // The first line is printed before any kernel work; the rest go to a closed pipe.
    const child = spawn(process.execPath, [DUNE_JS, 'up', join(REPO, 'test/e2e/reach/line5.toml'), '--lab', PIPE], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = new Promise<number | null>((r) => child.once('close', (c) => r(c)));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const timeout = new Promise<string>((r) => setTimeout(() => r('still running after 60 s'), 60_000));
    expect(await Promise.race([code, timeout])).toBe(0);
    expect(err).not.toMatch(/EPIPE|internal error/);
    const state = JSON.parse(readFileSync(join(STATE_ROOT, PIPE, 'state.json'), 'utf8')) as { phase: string };
    expect(state.phase).toBe('up');
  });
});
