/**
 * The live view's page: the lab's SVG (svg.ts), redrawn from /api/graph every second, and a
 * panel for what is clicked. Its script builds the panel with textContent only: the one
 * piece of markup it inserts is the server's SVG, whose every user string is escaped.
 */
import { xmlEscape } from '../graph/svg.js';
import { LEGEND } from '../graph/html.js';

const SCRIPT = String.raw`
const $ = (id) => document.getElementById(id);
let data = null;
let selected = null; // { type: 'link', index } | { type: 'node', id }
let polls = 0;

function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
function button(id, text, fn) { const b = el('button', text); b.id = id; b.onclick = fn; return b; }

async function call(path, body) {
  $('message').textContent = '…';
  try {
    const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const j = await r.json();
    $('message').textContent = r.ok ? 'done' : (j.error + (j.hint ? ' (' + j.hint + ')' : ''));
    $('message').className = r.ok ? 'ok' : 'error';
  } catch (e) {
    $('message').textContent = String(e);
    $('message').className = 'error';
  }
  await refresh();
}

function findLink() { return data && selected && selected.type === 'link' ? data.model.links.find((l) => l.index === selected.index) : undefined; }
function findNode() { return data && selected && selected.type === 'node' ? data.model.nodes.find((n) => n.id === selected.id) : undefined; }

function renderInfo() {
  const info = $('info');
  info.replaceChildren();
  const l = findLink();
  const n = findNode();
  if (l) {
    info.append(el('h2', 'link ' + l.index + ': ' + l.a.node + ':' + l.a.dev + ' — ' + l.b.node + ':' + l.b.dev));
    const st = el('p', l.cut ? 'CUT (down)' : 'up', l.cut ? 'state cut' : 'state up'); st.id = 'link-state'; info.append(st);
    const t = el('table');
    const head = el('tr'); for (const h of ['end', 'state', 'tx pkts', 'rx pkts', 'drops', 'impairment (leaving)']) head.append(el('th', h)); t.append(head);
    for (const [side, e] of [['a', l.a], ['b', l.b]]) {
      const row = el('tr');
      for (const v of [e.node + ':' + e.dev, e.down ? 'down' : 'up', e.txPackets ?? '-', e.rxPackets ?? '-', e.txDropped ?? '-', data.labels[l.index + ':' + side] || '-']) row.append(el('td', String(v)));
      row.dataset.end = side;
      t.append(row);
    }
    info.append(t);
  } else if (n) {
    info.append(el('h2', 'node ' + n.id));
    info.append(el('p', n.kind + ' on phynode ' + n.phynode + (n.v4 ? ', ' + n.v4 : '') + (n.v6 ? ', ' + n.v6 : '')));
    const st = el('p', n.stopped ? 'stopped' : n.missing ? 'missing' : 'running', n.stopped ? 'state cut' : 'state up'); st.id = 'node-state'; info.append(st);
  } else {
    info.append(el('p', 'Click a link or a node.'));
  }
}

function renderActions() {
  const act = $('actions');
  act.replaceChildren();
  const l = findLink();
  const n = findNode();
  if (l) {
    act.append(button('link-down', 'Take down', () => call('/api/link', { index: l.index, action: 'down' })));
    act.append(button('link-up', 'Bring up', () => call('/api/link', { index: l.index, action: 'up' })));
    const f = el('form'); f.id = 'impair-form';
    const sel = el('select'); sel.id = 'impair-end';
    for (const [v, t] of [['both', 'both directions'], ['a', 'leaving ' + l.a.node + ':' + l.a.dev], ['b', 'leaving ' + l.b.node + ':' + l.b.dev]]) { const o = el('option', t); o.value = v; sel.append(o); }
    const input = el('input'); input.id = 'impair-settings'; input.placeholder = 'loss=5% latency=20ms bw=10mbit (key=none removes)'; input.size = 36;
    const go = el('button', 'Apply'); go.id = 'impair-apply'; go.type = 'submit';
    f.append(sel, input, go);
    f.onsubmit = async (ev) => {
      ev.preventDefault();
      const settings = input.value.trim().split(/\s+/).filter(Boolean);
      const ends = sel.value === 'both' ? [l.a, l.b] : [sel.value === 'a' ? l.a : l.b];
      for (const e of ends) await call('/api/impair', { node: e.node, dev: e.dev, settings });
    };
    act.append(f);
  } else if (n) {
    act.append(button('node-stop', 'Stop', () => call('/api/node', { node: n.id, action: 'stop' })));
    act.append(button('node-start', 'Start', () => call('/api/node', { node: n.id, action: 'start' })));
    act.append(button('node-restart', 'Restart', () => call('/api/node', { node: n.id, action: 'restart' })));
  }
}

function mark() {
  for (const e of document.querySelectorAll('#graph .selected')) e.classList.remove('selected');
  if (!selected) return;
  for (const e of document.querySelectorAll(selected.type === 'link' ? '#graph g.link' : '#graph g.node')) {
    if (selected.type === 'link' ? e.dataset.link === String(selected.index) : e.dataset.node === selected.id) e.classList.add('selected');
  }
}

async function refresh() {
  try {
    const r = await fetch('/api/graph');
    const j = await r.json();
    if (!r.ok) throw new Error(j.error);
    data = j;
    $('graph').innerHTML = j.svg;
    polls++;
    document.body.dataset.polls = String(polls);
    $('status').textContent = 'lab ' + j.model.lab + ': ' + j.model.nodes.length + ' nodes, ' + j.model.links.length + ' links · updated ' + new Date().toLocaleTimeString();
    mark();
    renderInfo();
  } catch (e) {
    $('status').textContent = 'cannot read the lab: ' + e.message;
  }
}

$('graph').addEventListener('click', (ev) => {
  const link = ev.target.closest('g.link');
  const node = ev.target.closest('g.node');
  if (node) selected = { type: 'node', id: node.dataset.node };
  else if (link) selected = { type: 'link', index: Number(link.dataset.link) };
  else return;
  mark();
  renderInfo();
  renderActions();
});

refresh();
setInterval(refresh, 1000);
`;

export function uiPage(lab: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${xmlEscape(`dune ui: lab ${lab}`)}</title>
<style>
body { font-family: Helvetica, Arial, sans-serif; margin: 0; display: flex; height: 100vh; }
#left { flex: 1; overflow: auto; padding: 8px; }
#right { width: 420px; border-left: 1px solid #ccc; padding: 8px 12px; overflow: auto; }
#graph g.link, #graph g.node { cursor: pointer; }
#graph g.selected line:not(.hit) { stroke: #f90; stroke-width: 5; }
#graph g.selected circle, #graph g.selected rect, #graph g.selected polygon { stroke: #f90; stroke-width: 4; }
.legend, #status { color: #555; font-size: 12px; }
table { border-collapse: collapse; font-size: 12px; } td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
.state.cut { color: #d22; font-weight: bold; } .state.up { color: #282; }
#actions button { margin: 4px 4px 4px 0; } #actions form { margin-top: 8px; }
#message.error { color: #d22; } #message.ok { color: #282; }
</style></head>
<body>
<div id="left"><div id="status">loading…</div><div id="graph"></div><p class="legend">${xmlEscape(LEGEND)}</p></div>
<div id="right"><div id="info"></div><div id="actions"></div><p id="message"></p></div>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
