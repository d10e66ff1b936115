import { describe, expect, it } from 'vitest';
import { extractMetric, MetricError, parsePingSummary, studentTCdf, studentTQuantile, summarize, type RoleOutput } from '@dune/experiment';

const out = (stdout: string, o: Partial<RoleOutput> = {}): RoleOutput => ({ stdout, stderr: '', code: 0, signal: null, seconds: 1.5, ...o });

describe('statistics', () => {
  it("Student's t quantiles match the published table", () => {
    // t_{0.975, df}: 12.706 (1), 4.303 (2), 2.776 (4), 2.228 (10), 2.042 (30), → 1.960
    expect(studentTQuantile(0.975, 1)).toBeCloseTo(12.7062, 3);
    expect(studentTQuantile(0.975, 2)).toBeCloseTo(4.3027, 3);
    expect(studentTQuantile(0.975, 4)).toBeCloseTo(2.7764, 3);
    expect(studentTQuantile(0.975, 10)).toBeCloseTo(2.2281, 3);
    expect(studentTQuantile(0.975, 30)).toBeCloseTo(2.0423, 3);
    expect(studentTQuantile(0.975, 1e6)).toBeCloseTo(1.96, 2);
    expect(studentTQuantile(0.025, 2)).toBeCloseTo(-4.3027, 3);
    expect(studentTCdf(0, 5)).toBeCloseTo(0.5, 12);
  });

  it('mean, sd and the 95 % CI of the mean', () => {
    const s = summarize([10, 12, 14]);
    expect(s.n).toBe(3);
    expect(s.mean).toBe(12);
    expect(s.sd).toBeCloseTo(2, 12);
    expect(s.ci95).toBeCloseTo((4.3027 * 2) / Math.sqrt(3), 3);
    expect(summarize([5]).ci95).toBeNaN();
    expect(summarize([]).n).toBe(0);
  });
});

const IPERF_TCP = JSON.stringify({
  start: {},
  end: {
    streams: [{ sender: { mean_rtt: 20500 } }, { sender: { mean_rtt: 21500 } }],
    sum_sent: { bytes: 2500000, bits_per_second: 10_100_000, retransmits: 3 },
    sum_received: { bytes: 2400000, bits_per_second: 9_560_000 },
  },
});
const IPERF_UDP = JSON.stringify({ end: { sum: { bits_per_second: 1_000_000, jitter_ms: 0.25, lost_percent: 2, bytes: 125000 } } });
const PING = `PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.
64 bytes from 10.0.0.2: icmp_seq=1 ttl=63 time=20.4 ms

--- 10.0.0.2 ping statistics ---
5 packets transmitted, 4 received, 20% packet loss, time 803ms
rtt min/avg/max/mdev = 20.112/20.383/20.913/0.301 ms
`;

describe('metric parsers', () => {
  it('iperf3 -J: TCP and UDP', () => {
    const m = (field: string, s = IPERF_TCP) => extractMetric('iperf3', out(s), { field, take: 'first' });
    expect(m('bps')).toBe(9_560_000);
    expect(m('sent_bps')).toBe(10_100_000);
    expect(m('retransmits')).toBe(3);
    expect(m('mean_rtt_ms')).toBe(21);
    expect(m('bps', IPERF_UDP)).toBe(1_000_000);
    expect(m('jitter_ms', IPERF_UDP)).toBe(0.25);
    expect(m('lost_percent', IPERF_UDP)).toBe(2);
    expect(() => m('bps', '{"error": "unable to connect to server: Connection refused"}')).toThrow('iperf3: unable to connect to server: Connection refused');
    expect(() => m('bps', 'iperf3: error')).toThrow(MetricError);
  });

  it('ping summaries', () => {
    expect(parsePingSummary(PING)).toEqual({ transmitted: 5, received: 4, loss: 20, min: 20.112, avg: 20.383, max: 20.913, mdev: 0.301 });
    expect(parsePingSummary('3 packets transmitted, 0 received, 100% packet loss, time 2000ms')).toEqual({ transmitted: 3, received: 0, loss: 100 });
    expect(() => extractMetric('ping', out('3 packets transmitted, 0 received, 100% packet loss'), { field: 'avg', take: 'first' })).toThrow('ping: no avg (0 of 3 replies)');
  });

  it('regex, json, exit and time', () => {
    expect(extractMetric('regex', out('t=1 t=2 t=6'), { pattern: /t=(\d+)/g, take: 'mean' })).toBe(3);
    expect(extractMetric('regex', out('t=1 t=2 t=6'), { pattern: /t=(\d+)/g, take: 'last' })).toBe(6);
    expect(extractMetric('regex', out('', { stderr: 'took 7 ms' }), { pattern: /took (\d+)/, take: 'first' })).toBe(7);
    expect(extractMetric('regex', out('none'), { pattern: /t=(\d+)/, take: 'count' })).toBe(0);
    expect(() => extractMetric('regex', out('none'), { pattern: /t=(\d+)/, take: 'first' })).toThrow('no match');
    expect(extractMetric('json', out('{"a": {"b": [1, {"c": "4.5"}]}}'), { field: 'a.b.1.c', take: 'first' })).toBe(4.5);
    expect(extractMetric('json', out('{"a": [1, 2, 3]}'), { field: 'a', take: 'sum' })).toBe(6);
    expect(extractMetric('exit', out('', { code: 3 }), { take: 'first' })).toBe(3);
    expect(extractMetric('exit', out('', { code: null, signal: 'SIGKILL' }), { take: 'first' })).toBe(137);
    expect(extractMetric('time', out(''), { take: 'first' })).toBe(1.5);
  });
});
