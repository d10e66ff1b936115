/**
 * `capture`: a two-port brick that keeps the link it sits on under capture for the lab's
 * life, like Packetgraph's print brick with PCAP: a bridge between its two links and
 * tcpdump, a process of the lab, on one of its ports (both directions cross it), writing a
 * ring of pcap files (`-C size_mb -W files`). `down` stops it (SIGTERM: the files are whole);
 * the files stay.
 *
 *   [topology.nodes.tap1]
 *   kind = "capture"
 *   dir = "/var/tmp/captures"   # where (default /var/tmp/dune-captures/<lab>), made if missing
 *   size_mb = 10                # size of one file (default 10)
 *   files = 4                   # files in the ring (default 4): <node>.pcap0 … <node>.pcap3
 *   filter = "icmp or arp"      # a pcap-filter expression (default: everything)
 *   snaplen = 262144            # bytes kept of each frame (default 262144)
 *
 * Read with `tcpdump -r DIR/NODE.pcap0` or Wireshark.
 */
import { CAPTURE_TAG } from '../../plan.js';
import type { ProcessOp } from '../../plan.js';
import { bridgePhases } from './bridge.js';
import { intKey, onlyKeys, strKey } from './keys.js';
import { nodeKind } from './types.js';

export const CAPTURE_KEYS = ['dir', 'size_mb', 'files', 'filter', 'snaplen'] as const;

export interface CaptureOptions {
  dir: string | undefined;
  sizeMb: number;
  files: number;
  filter: string | undefined;
  snaplen: number;
}

/** Where a lab's captures go when the brick names no `dir` (outside the lab's state: down keeps them). */
export function defaultCaptureDir(lab: string): string {
  return `/var/tmp/dune-captures/${lab}`;
}

/** The file name of a brick's ring (tcpdump appends the ring's number). */
export function captureFile(node: string): string {
  return `${node.replace(/[^A-Za-z0-9._-]/g, '_')}.pcap`;
}

/**
 * tcpdump's argv, wrapped in `sh` only to make the directory first: every value is a
 * positional parameter ("$1"...), never part of the script. `--immediate-mode` and `-U`: each
 * frame is in the file at once (libpcap would otherwise hand frames over a block at a time,
 * up to a second late).
 */
export function captureArgv(dev: string, dir: string, file: string, o: CaptureOptions): string[] {
  // The last ring of this brick goes first: tcpdump would overwrite it file by file, mixing two runs.
  const script = 'mkdir -p -- "$1" && rm -f -- "$1/$6"[0-9]* && exec tcpdump -i "$2" -n -U --immediate-mode -Z root -s "$3" -C "$4" -W "$5" -w "$1/$6"' + (o.filter !== undefined ? ' -- "$7"' : '');
  return ['sh', '-c', script, CAPTURE_TAG, dir, dev, String(o.snaplen), String(o.sizeMb), String(o.files), file, ...(o.filter !== undefined ? [o.filter] : [])];
}



/**
 * Run after tcpdump starts, before `up` goes on: waits (up to 15 s) for its first file, which
 * tcpdump opens once it is capturing, so what the lab sends right after `up` is captured.
 */
export function captureWaitArgv(dir: string, file: string): string[] {
  return ['sh', '-c', 'i=0; while [ $i -lt 300 ]; do for f in "$1/$2"[0-9]*; do [ -e "$f" ] && exit 0; done; sleep 0.05; i=$((i+1)); done; exit 1', `${CAPTURE_TAG}-wait`, dir, file];
}

const bridge = bridgePhases<CaptureOptions | undefined>();

export const capture = nodeKind<CaptureOptions | undefined>({
  description: 'keeps the link it sits on under capture for the lab\'s life, into a ring of pcap files',
  layer: 2,
  keys: CAPTURE_KEYS,
  ports: { exactly: 2 },
  options(c) {
    const ok = onlyKeys(c, CAPTURE_KEYS);
    const dir = strKey(c, 'dir', '/var/tmp/captures');
    if (dir !== undefined && !dir.startsWith('/')) {
      c.diags.error('bad-value', `dir = "${dir}" of node "${c.node.id}" is not an absolute path (the capture runs in the lab's node, not where dune was started)`, c.loc('dir'), `write dir = "/var/tmp/${dir}"`);
      return undefined;
    }
    const sizeMb = intKey(c, 'size_mb', 1, 100_000, 10);
    const files = intKey(c, 'files', 1, 1000, 4);
    const filter = strKey(c, 'filter', 'icmp or arp');
    const snaplen = intKey(c, 'snaplen', 64, 262144, 262144);
    if (!ok || sizeMb === undefined || files === undefined || snaplen === undefined) return undefined;
    return { dir, sizeMb, files, filter, snaplen };
  },
  phases: {
    ...bridge,
    filters(n, out) {
      const o = n.options;
      const port = n.ports[0];
      if (o === undefined || port === undefined) return;
      out.push({
        op: 'process',
        ns: n.ns,
        node: n.node.id,
        name: `${n.key}.capture`,
        argv: captureArgv(port.name, o.dir ?? defaultCaptureDir(n.lab), captureFile(n.node.id), o),
        env: {},
        cpus: [],
        postUp: [captureWaitArgv(o.dir ?? defaultCaptureDir(n.lab), captureFile(n.node.id))],
        preDown: [],
      } satisfies ProcessOp);
    },
  },
});
