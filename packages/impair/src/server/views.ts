/**
 * What the API, the shell and the page show: counters as JSON, and /metrics as Prometheus
 * text (exposition format 0.0.4).
 */
import type { Engine, Pipe } from '../engine/engine.js';
import { PROM_BOUNDS_SECONDS, type Histogram } from '../engine/histogram.js';
import { DROP_CAUSES } from '../engine/stage.js';
import type { ImpairRuntime } from '../runtime.js';

export function pipeStats(p: Pipe) {
  const c = p.counters;
  return {
    received: { ...c.received },
    delivered: { ...c.delivered },
    dropped: Object.fromEntries(DROP_CAUSES.map((k) => [k, { ...c.dropped[k] }])),
    duplicated: c.duplicated,
    corrupted: c.corrupted,
    reordered: c.reordered,
    queue: p.queueDepth(),
    held: { ...p.held },
    latency: c.latency.summary(),
  };
}

export function statsView(rt: ImpairRuntime) {
  return {
    seed: rt.engine.seed,
    level: rt.opts.level,
    up: pipeStats(rt.pipes.up),
    down: pipeStats(rt.pipes.down),
    scheduler: { latenessUs: rt.clock.lateness.summary(), spinBelowUs: rt.clock.spinBelowUs },
    frontend: {
      errors: Object.fromEntries(rt.engine.frontendErrors),
      ...(rt.proxy ? { proxySessions: rt.proxy.sessionCount, proxyPorts: Object.fromEntries(rt.proxy.ports) } : {}),
      ...(rt.nfqueue ? { nfqueue: { ...rt.nfqueue.stats }, iface: rt.iface, rules: rt.ruleTag } : {}),
    },
  };
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

class Prom {
  private readonly lines: string[] = [];
  private readonly declared = new Set<string>();

  metric(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void {
    if (this.declared.has(name)) return;
    this.declared.add(name);
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: Record<string, string>, value: number): void {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',');
    this.lines.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }

  /** A histogram recorded in µs, exposed in seconds. */
  histogram(name: string, labels: Record<string, string>, h: Histogram): void {
    const cum = h.cumulativeProm();
    PROM_BOUNDS_SECONDS.forEach((le, i) => this.sample(`${name}_bucket`, { ...labels, le: String(le) }, cum[i]!));
    this.sample(`${name}_bucket`, { ...labels, le: '+Inf' }, h.count);
    this.sample(`${name}_sum`, labels, h.sum / 1e6);
    this.sample(`${name}_count`, labels, h.count);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** Every pipe of `engine`, plus the scheduler's lateness when given. */
export function prometheus(engine: Engine, lateness?: Histogram, extra?: (p: Prom) => void): string {
  const p = new Prom();
  for (const name of engine.pipeNames) {
    const pipe = engine.pipe(name);
    const c = pipe.counters;
    const l = { pipe: name };
    p.metric('impair_received_packets_total', 'counter', 'Packets that entered the pipe.');
    p.sample('impair_received_packets_total', l, c.received.packets);
    p.metric('impair_received_bytes_total', 'counter', 'Bytes (IP packet lengths) that entered the pipe.');
    p.sample('impair_received_bytes_total', l, c.received.bytes);
    p.metric('impair_delivered_packets_total', 'counter', 'Packets the pipe delivered (duplicates included).');
    p.sample('impair_delivered_packets_total', l, c.delivered.packets);
    p.metric('impair_delivered_bytes_total', 'counter', 'Bytes the pipe delivered.');
    p.sample('impair_delivered_bytes_total', l, c.delivered.bytes);
    p.metric('impair_dropped_packets_total', 'counter', 'Packets dropped, by cause: loss (configured), queue (limit), overflow (engine memory cap).');
    for (const cause of DROP_CAUSES) p.sample('impair_dropped_packets_total', { ...l, cause }, c.dropped[cause].packets);
    p.metric('impair_dropped_bytes_total', 'counter', 'Bytes dropped, by cause.');
    for (const cause of DROP_CAUSES) p.sample('impair_dropped_bytes_total', { ...l, cause }, c.dropped[cause].bytes);
    p.metric('impair_duplicated_packets_total', 'counter', 'Copies the pipe made.');
    p.sample('impair_duplicated_packets_total', l, c.duplicated);
    p.metric('impair_corrupted_packets_total', 'counter', 'Packets with a flipped bit.');
    p.sample('impair_corrupted_packets_total', l, c.corrupted);
    p.metric('impair_reordered_packets_total', 'counter', 'Packets sent without the delay.');
    p.sample('impair_reordered_packets_total', l, c.reordered);
    const q = pipe.queueDepth();
    p.metric('impair_queue_packets', 'gauge', 'Packets waiting in the rate queue.');
    p.sample('impair_queue_packets', l, q.packets);
    p.metric('impair_queue_bytes', 'gauge', 'Bytes waiting in the rate queue.');
    p.sample('impair_queue_bytes', l, q.bytes);
    p.metric('impair_held_packets', 'gauge', 'Packets the pipe holds (queued or delayed).');
    p.sample('impair_held_packets', l, pipe.held.packets);
    p.metric('impair_latency_seconds', 'histogram', 'Time delivered packets spent in the pipe.');
    p.histogram('impair_latency_seconds', l, c.latency);
  }
  if (lateness) {
    p.metric('impair_scheduler_lateness_seconds', 'histogram', 'How late the scheduler woke after a packet was due.');
    p.histogram('impair_scheduler_lateness_seconds', {}, lateness);
  }
  p.metric('impair_frontend_errors_total', 'counter', 'Front-end problems by kind (send errors, kernel queue overruns, ...).');
  for (const [kind, n] of engine.frontendErrors) p.sample('impair_frontend_errors_total', { kind }, n);
  extra?.(p);
  return p.text();
}
