/** The capability probe on the host kernel (root only). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CAP_NAMES, probeCapabilities } from '../src/index.js';
import { isRoot, nsList, ROOT_REASON } from './helpers.js';

describe.skipIf(!isRoot)(`probeCapabilities (${ROOT_REASON})`, () => {
  it('tries each feature for real, fast, and leaves nothing behind', async () => {
    const t0 = performance.now();
    const caps = await probeCapabilities({ fresh: true });
    const ms = performance.now() - t0;
    console.log(`probe: ${ms.toFixed(0)} ms`, JSON.stringify(caps));
    for (const name of CAP_NAMES) {
      expect(typeof caps[name].ok).toBe('boolean');
      if (!caps[name].ok) expect(caps[name].error).toMatch(/\S/);
    }
    // What every machine of this project has (see shared/reference/kernel-notes.md).
    expect(caps.veth).toEqual({ ok: true });
    expect(caps.htb).toEqual({ ok: true });
    expect(caps.tbf).toEqual({ ok: true });
    expect(caps.pfifo).toEqual({ ok: true });
    expect(caps.vxlan).toEqual({ ok: true });
    expect(caps.bridge).toEqual({ ok: true });
    expect(caps.nft).toEqual({ ok: true });
    expect(caps.nfqueue).toEqual({ ok: true });
    // netem is absent here; when it is, the error says what the kernel said.
    if (!caps.netem.ok) expect(caps.netem.error).toMatch(/qdisc kind is unknown/);
    expect(ms).toBeLessThan(300);
    expect(nsList('dune-probe-')).toEqual([]);
  });

  it('finds the userspace engine\'s NFQUEUE support without the iptables binary (the engine writes nf_tables rules itself)', async () => {
    // A PATH holding only what the probe runs (nsenter, nft): no iptables to be found.
    const dir = mkdtempSync(join(tmpdir(), 'dune-probe-path-'));
    const path = process.env.PATH;
    try {
      for (const tool of ['nsenter', 'nft']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(dir, tool));
      process.env.PATH = dir;
      expect(() => execFileSync('iptables', ['-V'], { stdio: 'ignore' })).toThrow();
      const caps = await probeCapabilities({ fresh: true });
      expect(caps.nfqueue).toEqual({ ok: true });
      expect(caps.nft).toEqual({ ok: true });
    } finally {
      process.env.PATH = path;
      rmSync(dir, { recursive: true, force: true });
    }
    expect(nsList('dune-probe-')).toEqual([]);
  });

  it('is probed once per process unless asked again', async () => {
    const a = await probeCapabilities();
    expect(await probeCapabilities()).toBe(a);
  });
});
