/* global window, document */
// The live page: polls /series every second for the charts, /stats for the counters, and
// sends the form to PUT /pipes. Everything it needs comes from this server.
import { LineChart } from '/chart.js';

const FIELDS = [
  ['delay', 'delay', '50ms'],
  ['jitter', 'jitter', '5ms'],
  ['distribution', 'jitter distribution', 'normal'],
  ['loss', 'loss', '1%'],
  ['rate', 'rate', '10mbit'],
  ['queue', 'queue limit', '100p'],
  ['duplicate', 'duplicate', '0.5%'],
  ['reorder', 'reorder', '5%'],
  ['corrupt', 'corrupt', '0.1%'],
];
const COLORS = { up: '#1f77b4', down: '#d62728', upP99: '#9ecae1', downP99: '#f4a3a3' };

const charts = {
  latency: new LineChart(document.getElementById('latency'), {
    title: 'latency', unit: 'ms',
    series: [
      { name: 'up p50', color: COLORS.up }, { name: 'up p99', color: COLORS.upP99 },
      { name: 'down p50', color: COLORS.down }, { name: 'down p99', color: COLORS.downP99 },
    ],
  }),
  throughput: new LineChart(document.getElementById('throughput'), {
    title: 'throughput', unit: 'bit/s',
    series: [{ name: 'up', color: COLORS.up }, { name: 'down', color: COLORS.down }],
  }),
  queue: new LineChart(document.getElementById('queue'), {
    title: 'queue (max per second)', unit: 'B', integer: true,
    series: [{ name: 'up', color: COLORS.up }, { name: 'down', color: COLORS.down }],
  }),
  drops: new LineChart(document.getElementById('drops'), {
    title: 'drops', unit: '/s', integer: true,
    series: [
      { name: 'up loss', color: COLORS.up }, { name: 'up queue', color: COLORS.upP99 },
      { name: 'down loss', color: COLORS.down }, { name: 'down queue', color: COLORS.downP99 },
    ],
  }),
};
window.impairCharts = charts; // for tests and the curious

const rows = document.getElementById('rows');
for (const [key, label, example] of FIELDS) {
  const tr = document.createElement('tr');
  tr.innerHTML = `<th>${label}</th>` + ['up', 'down'].map((d) => `<td><input name="${d}.${key}" id="${d}-${key}" placeholder="${example}"></td>`).join('');
  rows.appendChild(tr);
}

const message = document.getElementById('message');
function say(text, kind) {
  message.textContent = text;
  message.className = kind;
}

async function loadParams() {
  const r = await fetch('/pipes?form=text');
  const p = await r.json();
  for (const d of ['up', 'down']) {
    for (const [key] of FIELDS) {
      const el = document.getElementById(`${d}-${key}`);
      if (document.activeElement !== el) el.value = p[d][key] ?? '';
    }
  }
  return p;
}

document.getElementById('params').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { up: {}, down: {} };
  for (const d of ['up', 'down']) {
    for (const [key] of FIELDS) {
      const v = document.getElementById(`${d}-${key}`).value.trim();
      if (v !== '') body[d][key] = v;
    }
  }
  const r = await fetch('/pipes', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = await r.json();
  if (r.ok) {
    say('applied', 'ok');
    await loadParams();
  } else {
    say((j.error.problems ?? [j.error]).map((p) => `${p.path ? `${p.path}: ` : ''}${p.message}${p.valid ? ` (${p.valid})` : ''}`).join('\n'), 'error');
  }
});

document.getElementById('reset').addEventListener('click', async () => {
  await fetch('/pipes', { method: 'DELETE' });
  say('reset', 'ok');
  await loadParams();
});

let since = 0;
async function poll() {
  try {
    const r = await fetch(`/series?since=${since}`);
    const { points, next } = await r.json();
    since = next;
    for (const p of points) {
      const u = p.pipes.up;
      const d = p.pipes.down;
      charts.latency.push(p.time, [u.latencyP50Us / 1000, u.latencyP99Us / 1000, d.latencyP50Us / 1000, d.latencyP99Us / 1000]);
      charts.throughput.push(p.time, [u.throughputBitsPerSec, d.throughputBitsPerSec]);
      charts.queue.push(p.time, [u.queueMaxBytes, d.queueMaxBytes]);
      charts.drops.push(p.time, [u.dropped.loss, u.dropped.queue, d.dropped.loss, d.dropped.queue]);
    }
    for (const c of Object.values(charts)) c.draw();
    const s = await (await fetch('/stats')).json();
    const line = (name, x) =>
      `${name.padEnd(5)} received ${x.received.packets}  delivered ${x.delivered.packets}  lost ${x.dropped.loss.packets}  ` +
      `queue drops ${x.dropped.queue.packets}  dup ${x.duplicated}  corrupt ${x.corrupted}  reordered ${x.reordered}  ` +
      `latency p50 ${(x.latency.p50Us / 1000).toFixed(2)} ms`;
    document.getElementById('counters').textContent = `${line('up', s.up)}\n${line('down', s.down)}`;
    document.getElementById('status').textContent = `${s.level === 'kernel' ? 'kernel (NFQUEUE)' : 'UDP proxy'} · seed ${s.seed} · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    document.getElementById('status').textContent = `cannot reach the server: ${e}`;
  }
}

await loadParams();
await poll();
setInterval(poll, 1000);
