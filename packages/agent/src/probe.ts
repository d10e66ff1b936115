/**
 * What this kernel and host can do, tried for real in a throwaway namespace
 * (`dune-probe-<pid>`, tagged with its creator on lo and deleted afterwards; one a SIGKILL
 * left behind is reclaimed by the next probe, `up` or `down`: transient.ts): a veth pair, each qdisc kind on it, a VXLAN
 * device, a bridge, an nftables table, and what the userspace engine needs: an NFQUEUE queue
 * bound and an nf_tables rule with the NFQUEUE target (the engine writes its rules over
 * netlink: no iptables binary). The netlink checks run in this process; nft runs concurrently
 * with them.
 */
import { closeSync } from 'node:fs';
import { release } from 'node:os';
import { probeQueueSupport } from '@dune/impair/probe';
import { native } from './native.js';
import { NlSocket } from './netlink/socket.js';
import { newBridge, newSimpleLink, newVeth, newVxlan } from './netlink/link.js';
import { handle, newQdisc, type TcOptions } from './netlink/tc.js';
import { TC_H_ROOT } from './netlink/constants.js';
import { createNamespaces, deleteNamespaces, nsPath } from './netns.js';
import { inNs, run } from './run.js';
import { reclaimTransients, transientNamespace } from './transient.js';
import type { CapResult, Caps } from './probe-types.js';

export type { Caps, CapResult, CapName } from './probe-types.js';
export { CAP_NAMES } from './probe-types.js';

const QDISC_TRIES: Record<'netem' | 'htb' | 'tbf' | 'pfifo' | 'bfifo', TcOptions> = {
  netem: { kind: 'netem', limitPackets: 1000, delayNs: 1_000_000 },
  htb: { kind: 'htb', defaultClass: 1 },
  tbf: { kind: 'tbf', rateBytesPerSec: 125_000, burstBytes: 10_000, limitBytes: 30_000 },
  pfifo: { kind: 'pfifo', limitPackets: 100 },
  bfifo: { kind: 'bfifo', limitBytes: 100_000 },
};

function attempt(fn: () => void): CapResult {
  try {
    fn();
    return { ok: true };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

async function tool(ns: string, argv: string[], what: string, input?: string): Promise<CapResult> {
  const r = await run(inNs(ns, argv), input);
  if (r.code === 0) return { ok: true };
  if (r.code === 127 || /No such file|not found/i.test(r.stderr) && r.stderr.includes(argv[0] ?? '')) {
    return { ok: false, error: `${argv[0]} is not installed (${r.stderr.trim()})` };
  }
  return { ok: false, error: `${what}: ${r.stderr.trim() || `exit ${r.code}`}` };
}

let cached: Promise<Caps> | undefined;

/** Probes once per process; `fresh` probes again. */
export function probeCapabilities(opts: { fresh?: boolean } = {}): Promise<Caps> {
  if (!cached || opts.fresh) cached = probe();
  return cached;
}

async function probe(): Promise<Caps> {
  const t0 = performance.now();
  const { ns, tag } = transientNamespace('probe');
  reclaimTransients(); // probes of killed processes
  deleteNamespaces([ns]); // a leftover of a crashed probe with our pid
  const r = createNamespaces([ns], 1, undefined, [tag]);
  const made = r.created[0];
  if (!made) throw new Error(`capability probe: cannot create namespace ${ns}: ${r.failed[0]?.message ?? 'unknown error'}`);
  try {
    // One nft process: tells both whether nft is installed and whether the kernel takes the loss rule.
    const nftP = tool(ns, ['nft', '-f', '-'], 'nft (numgen random ... drop)', 'add table inet dune_probe\nadd chain inet dune_probe c { type filter hook postrouting priority 0; }\nadd rule inet dune_probe c numgen random mod 100 < 1 drop\n');

    const s = made.nlFd >= 0 ? new NlSocket(made.nlFd, ns) : NlSocket.open(nsPath(ns), ns);
    const caps: Partial<Caps> = {};
    try {
      caps.veth = attempt(() =>
        s.call((w, seq) => newVeth(w, seq, { name: 'p0', index: 100, up: true }, { name: 'p1', index: 101 }), 'veth'),
      );
      const dev = caps.veth.ok ? 100 : 0;
      if (!dev) {
        // Without veth there is nothing to hang qdiscs on: a dummy will do.
        attempt(() => s.call((w, seq) => newSimpleLink(w, seq, 'dummy', { name: 'p0', index: 100, up: true }), 'dummy'));
      }
      // Each kind replaces the root qdisc under a handle of its own (reusing a handle for
      // another kind is refused: "must match existing qdisc").
      let major = 1;
      for (const [kind, o] of Object.entries(QDISC_TRIES) as [keyof typeof QDISC_TRIES, TcOptions][]) {
        const h = handle(major++);
        caps[kind] = attempt(() =>
          s.call((w, seq) => newQdisc(w, seq, { ifindex: 100, handle: h, parent: TC_H_ROOT, replace: true }, o), `qdisc ${kind}`),
        );
      }
      caps.vxlan = attempt(() =>
        s.call(
          (w, seq) => newVxlan(w, seq, { name: 'vx0', index: 102, vni: 42, local: '198.51.100.1', remote: '198.51.100.2', port: 4789 }),
          'vxlan',
        ),
      );
      caps.bridge = attempt(() => s.call((w, seq) => newBridge(w, seq, { name: 'br0', index: 103 }), 'bridge'));
      caps.nfqueue = attempt(() => {
        const r = probeQueueSupport(nsPath(ns), native());
        if (!r.ok) throw new Error(r.error);
      });
    } finally {
      s.close();
      if (made.nsFd >= 0) closeSync(made.nsFd);
    }
    const nft = await nftP;
    return { ...(caps as Caps), nft, kernel: release(), probeMs: Math.round(performance.now() - t0) };
  } finally {
    deleteNamespaces([ns]);
  }
}
