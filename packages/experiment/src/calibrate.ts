/**
 * The fidelity self-check (`dune calibrate`): on this machine, a two-node lab (a ── b) and
 * real traffic measure how accurately each available backend delivers what is asked.
 *
 *   delay    latency on a's egress only; ping a → b; delivered = mean RTT − the RTT of the
 *            same link unimpaired (measured first, in the same lab)
 *   jitter   latency 20 ms + jitter on a's egress; delivered = ping's mdev (the standard
 *            deviation of the RTT, which only one direction varies)
 *   loss     loss on a's egress; 1000 pings, delivered = the share lost (a reply cannot be
 *            lost, so the round-trip loss is the one-way loss)
 *   rate     bw on a's egress; iperf3 a → b (3 s after 1 s omitted); delivered = the goodput
 *            × 1514/1448 (htb meters whole frames, iperf3 counts TCP payload)
 *
 * Backends: `netem` (the kernel's, where it has sch_netem) and `userspace` (the NFQUEUE
 * engine) for delay and jitter; rate (htb) and loss (nftables) are the same under both and
 * are measured once. A backend this kernel cannot build is reported, not measured.
 */
import { Lab, type LabNode } from '@dune/lab';
import { DuneError } from '@dune/topology';
import { parsePingSummary } from './metrics.js';

export const CALIBRATE_BACKENDS = ['netem', 'userspace'] as const;
export type CalibrateBackend = (typeof CALIBRATE_BACKENDS)[number];

export interface CalibrationRow {
  impairment: 'delay' | 'jitter' | 'loss' | 'rate';
  /** What delivered it: netem, the userspace engine, htb, nftables. */
  mechanism: string;
  backend: CalibrateBackend;
  requested: number;
  delivered: number;
  unit: 'ms' | '%' | 'bit/s';
  /** (delivered − requested) / requested × 100. */
  errorPct: number;
  samples: number;
  /** How it was measured. */
  method: string;
}

export interface Calibration {
  kernel: string;
  rows: CalibrationRow[];
  unavailable: { backend: CalibrateBackend; reason: string }[];
}

export interface CalibrateOptions {
  backends?: CalibrateBackend[];
  /** Lab name (default `dune-calibrate`). */
  lab?: string;
  onProgress?: (message: string) => void;
}

const MECHANISM: Record<CalibrateBackend, string> = { netem: 'netem', userspace: 'userspace engine (NFQUEUE)' };

async function ping(a: LabNode, to: string, count: number, intervalS: number): Promise<ReturnType<typeof parsePingSummary>> {
  const r = await a.run(['ping', '-q', '-c', String(count), '-i', String(intervalS), '-W', '2', to], { timeoutMs: 120_000 });
  return parsePingSummary(r.stdout);
}

function row(r: Omit<CalibrationRow, 'errorPct'>): CalibrationRow {
  return { ...r, errorPct: r.requested === 0 ? NaN : ((r.delivered - r.requested) / r.requested) * 100 };
}

/** Builds the lab once per backend, measures, removes it. Needs root. */
export async function calibrate(opts: CalibrateOptions = {}): Promise<Calibration> {
  const backends = opts.backends ?? [...CALIBRATE_BACKENDS];
  const say = opts.onProgress ?? (() => undefined);
  const rows: CalibrationRow[] = [];
  const unavailable: Calibration['unavailable'] = [];
  let sharedDone = false;
  for (const backend of backends) {
    const lab = new Lab({ name: opts.lab ?? 'dune-calibrate', impairmentBackend: backend });
    const a = lab.node('a');
    const b = lab.node('b');
    // A delay at up makes the backend build what delay needs (netem, or the engine).
    const link = lab.link('a:eth0', 'b:eth0', { latency: '1ms' });
    say(`${backend}: building a ── b`);
    try {
      await lab.up();
    } catch (e) {
      if (!(e instanceof DuneError)) throw e;
      unavailable.push({ backend, reason: e.message });
      await lab.down().catch(() => undefined);
      continue;
    }
    try {
      const out = a.iface('eth0');
      const to = b.address(4);
      await link.set({ latency: null });
      const base = await ping(a, to, 50, 0.02);
      const baseRtt = base.avg ?? 0;
      for (const ms of [10, 50]) {
        say(`${backend}: delay ${ms} ms`);
        await out.set({ latency: `${ms}ms` });
        const p = await ping(a, to, 40, 0.05);
        rows.push(row({ impairment: 'delay', mechanism: MECHANISM[backend], backend, requested: ms, delivered: (p.avg ?? NaN) - baseRtt, unit: 'ms', samples: p.received, method: `ping mean RTT − unimpaired ${baseRtt.toFixed(3)} ms` }));
      }
      for (const ms of [2, 5]) {
        say(`${backend}: jitter ${ms} ms`);
        await out.set({ latency: '20ms', jitter: `${ms}ms` });
        const p = await ping(a, to, 100, 0.02);
        rows.push(row({ impairment: 'jitter', mechanism: MECHANISM[backend], backend, requested: ms, delivered: p.mdev ?? NaN, unit: 'ms', samples: p.received, method: 'ping mdev (standard deviation of the RTT)' }));
      }
      await out.set({ latency: null, jitter: null });
      if (!sharedDone) {
        for (const pct of [1, 10]) {
          say(`loss ${pct} %`);
          await out.set({ loss: `${pct}%` });
          const p = await ping(a, to, 1000, 0.002);
          rows.push(row({ impairment: 'loss', mechanism: 'nftables', backend, requested: pct, delivered: p.loss, unit: '%', samples: p.transmitted, method: 'ping round trips lost (the reply direction is unimpaired)' }));
        }
        await out.set({ loss: null });
        for (const mbit of [10, 50]) {
          say(`rate ${mbit} Mbit/s`);
          await out.set({ bw: `${mbit}mbit` });
          const srv = await b.spawn(['iperf3', '-s', '-1']);
          await waitListening(b, 5201);
          const r = await a.run(['iperf3', '-c', to, '-t', '3', '-O', '1', '-J'], { timeoutMs: 60_000 });
          await srv.wait();
          const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
          if (j.error) throw new DuneError('calibrate-failed', `iperf3: ${j.error}`);
          const goodput = j.end?.sum_received?.bits_per_second ?? NaN;
          rows.push(row({ impairment: 'rate', mechanism: 'htb', backend, requested: mbit * 1e6, delivered: (goodput * 1514) / 1448, unit: 'bit/s', samples: 1, method: 'iperf3 TCP goodput × 1514/1448 (frames on the wire)' }));
        }
        sharedDone = true;
      }
    } finally {
      await lab.down();
    }
  }
  const { release } = await import('node:os');
  return { kernel: release(), rows, unavailable };
}

async function waitListening(n: LabNode, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await n.run(['ss', '-Hltn']);
    if (r.stdout.includes(`:${port} `)) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new DuneError('calibrate-failed', `iperf3 -s did not listen on port ${port} within 5 s`);
}
