// The live view's page: polls the JSON API (see src/ui/live_view.h) once a
// second and renders it. No framework: a few DOM helpers.
'use strict';

const SERIES = ['waiting', 'ready', 'running', 'blocked', 'parked', 'finished', 'failed'];
const COLORS = {waiting: '#bdbdbd', ready: '#8a9bb5', running: '#2f80ed', blocked: '#9b51e0',
                parked: '#f2994a', finished: '#27ae60', failed: '#eb5757'};
const PAGE = 50;
const HISTORY = 300;  // chart samples kept (5 minutes at one a second)

const ui = {offset: 0, filter: '', samples: [], last: null, selected: null, done: false};

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  return e;
}
function fill(tbody, rows) { tbody.replaceChildren(...rows); }
function num(n) { return n == null ? '–' : Number(n).toLocaleString('en-US'); }
function bytes(n) {
  if (n == null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; ++i; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
function secs(s) { return s == null ? '–' : s < 60 ? s.toFixed(1) + ' s' : Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s'; }
function stateCell(s) { return el('td', {class: 'st st-' + s}, s); }

async function get(path) {
  const r = await fetch(path, {cache: 'no-store'});
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}

function renderJob(job) {
  document.title = (job.title || 'Kappa job') + ' — ' + job.state;
  $('title').textContent = job.title || 'Kappa job';
  const badge = $('state');
  badge.textContent = job.state; badge.className = 'badge ' + job.state;
  const t = job.tasks;
  $('count-total').textContent = num(t.total);
  for (const s of SERIES) $('count-' + s).textContent = num(t[s]);
  $('workers').textContent = num(job.workers.busy) + ' / ' + num(job.workers.idle);
  $('elapsed').textContent = secs(job.elapsed);
  if (job.checkpoints) {
    $('checkpoints').textContent = num(job.checkpoints.taken) + ' (' + bytes(job.checkpoints.bytes) + ')';
    const prev = ui.last && ui.last.checkpoints;
    if (prev && job.elapsed > ui.last.elapsed)
      $('checkpoint-rate').textContent =
          ((job.checkpoints.taken - prev.taken) / (job.elapsed - ui.last.elapsed)).toFixed(1);
    else if (job.elapsed > 0)
      $('checkpoint-rate').textContent = (job.checkpoints.taken / job.elapsed).toFixed(1);
  }
  if (job.cost) $('cost').textContent = '$' + Number(job.cost.usd).toPrecision(3);
  const done = (t.finished || 0) + (t.failed || 0);
  $('summary').textContent = num(done) + ' of ' + num(t.total) + ' tasks done · ' + num(job.calls) +
      ' calls · ' + num(job.parks) + ' parks · ' + num(job.worker_deaths) + ' worker deaths';
  const err = $('error');
  err.hidden = !job.error; err.textContent = job.error || '';
  const calls = job.calls_by_kind || {};
  fill($('calls').tBodies[0], Object.keys(calls).length
      ? Object.entries(calls).map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, num(v))))
      : [el('tr', {}, el('td', {}, 'calls'), el('td', {}, num(job.calls)))]);
  fill($('recent').tBodies[0], (job.recent || []).slice().reverse().map((e) =>
      el('tr', {}, el('td', {}, e.at.toFixed(2)), el('td', {}, e.name + ' #' + e.task), el('td', {}, e.what))));
  ui.samples.push({at: job.elapsed, t});
  if (ui.samples.length > HISTORY) ui.samples.shift();
  drawChart();
  ui.last = job;
}

// A stacked area chart of the task counts over time, in SVG.
function drawChart() {
  const svg = $('chart'), W = 600, H = 160;
  const ns = 'http://www.w3.org/2000/svg';
  svg.replaceChildren();
  if (ui.samples.length === 0) return;
  // One sample draws as a flat band across the chart.
  const samples = ui.samples.length === 1 ? [ui.samples[0], ui.samples[0]] : ui.samples;
  const n = samples.length;
  const max = Math.max(1, ...samples.map((s) => SERIES.reduce((a, k) => a + (s.t[k] || 0), 0)));
  const x = (i) => (i / (n - 1)) * W;
  let base = new Array(n).fill(0);
  for (const k of SERIES) {
    const top = samples.map((s, i) => base[i] + (s.t[k] || 0));
    const pts = top.map((v, i) => x(i) + ',' + (H - (v / max) * (H - 4)));
    const back = base.map((v, i) => x(i) + ',' + (H - (v / max) * (H - 4))).reverse();
    const poly = document.createElementNS(ns, 'polygon');
    poly.setAttribute('points', pts.concat(back).join(' '));
    poly.setAttribute('fill', COLORS[k]); poly.setAttribute('class', 'area-' + k);
    svg.append(poly);
    base = top;
  }
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', 4); label.setAttribute('y', 14); label.setAttribute('font-size', 12);
  label.textContent = num(max) + ' tasks';
  svg.append(label);
  $('legend').replaceChildren(...SERIES.map((k) => el('span', {}, el('i', {style: 'background:' + COLORS[k]}), k)));
}

function taskRow(t) {
  return el('tr', {'data-id': t.id, onclick: () => showTask(t.id)},
      el('td', {}, t.id), el('td', {}, t.parent || ''), el('td', {class: 'name'}, t.name),
      stateCell(t.state), el('td', {}, t.invocations), el('td', {class: 'why'}, t.why));
}

async function renderTasks() {
  const q = '/api/tasks?offset=' + ui.offset + '&limit=' + PAGE + (ui.filter ? '&state=' + ui.filter : '');
  const page = await get(q);
  if (ui.offset > 0 && ui.offset >= page.total) { ui.offset = Math.max(0, page.total - PAGE); return renderTasks(); }
  fill($('tasks').tBodies[0], page.tasks.map(taskRow));
  const last = Math.min(page.total, ui.offset + page.tasks.length);
  $('page-info').textContent = page.total ? (num(ui.offset + 1) + '–' + num(last) + ' of ' + num(page.total)) : 'no tasks';
  $('prev').disabled = ui.offset === 0;
  $('next').disabled = last >= page.total;
}

async function renderAttention() {
  const [parked, retrying, failed] = await Promise.all(['parked', 'retrying', 'failed'].map(
      (s) => get('/api/tasks?state=' + s + '&limit=20')));
  const rows = [];
  for (const p of [retrying, parked, failed])
    for (const t of p.tasks)
      rows.push(el('tr', {}, el('td', {}, t.id), el('td', {class: 'name'}, t.name),
          t.failures ? el('td', {class: 'st st-failed'}, 'retrying (' + t.failures + ')') : stateCell(t.state),
          el('td', {class: 'why'}, t.why)));
  fill($('attention').tBodies[0], rows);
  $('attention-count').textContent = '(' + num(parked.total) + ' parked, ' + num(retrying.total) +
      ' retrying, ' + num(failed.total) + ' failed)';
}

async function renderQueues() {
  const {queues} = await get('/api/queues');
  const line = (ids, total) => ids.map((i) => '#' + i).join(' ') + (total > ids.length ? ' … (' + num(total) + ')' : '');
  fill($('queues').tBodies[0], queues.length ? queues.map((q) => el('tr', {},
      el('td', {}, q.id), el('td', {class: 'depth'}, num(q.depth)), el('td', {}, q.max_size ? num(q.max_size) : 'rendezvous'),
      el('td', {}, line(q.enqueuers, q.enqueuers_total)), el('td', {}, line(q.dequeuers, q.dequeuers_total))))
      : [el('tr', {}, el('td', {colspan: 5, class: 'muted'}, 'no queues'))]);
}

async function showTask(id) {
  ui.selected = id;
  const t = await get('/api/tasks/' + id);
  $('detail').hidden = false;
  $('detail-title').textContent = '#' + t.id + ' ' + t.name + ' (' + t.state + ')';
  $('detail-why').textContent = (t.parent ? 'spawned by #' + t.parent + '. ' : '') + (t.why || '') +
      (t.history_dropped ? ' (' + t.history_dropped + ' older invocations not shown)' : '');
  fill($('history').tBodies[0], t.history.map((h, i) => el('tr', {},
      el('td', {}, t.history_dropped + i + 1), el('td', {}, h.worker), el('td', {}, h.kind),
      el('td', {}, h.start.toFixed(3)), el('td', {}, h.end == null ? '' : h.end.toFixed(3)),
      el('td', {}, h.outcome), el('td', {}, h.checkpoints), el('td', {}, bytes(h.checkpoint_bytes)))));
}

async function tick() {
  try {
    const job = await get('/api/job');
    renderJob(job);
    await Promise.all([renderTasks(), renderAttention(), renderQueues()]);
    if (ui.selected) await showTask(ui.selected);
    ui.done = job.state !== 'running';
  } catch (e) {
    $('summary').textContent = 'the coordinator does not answer (' + e.message + '): the job may have ended';
  }
  // A finished job changes no more: poll slowly.
  setTimeout(tick, ui.done ? 5000 : 1000);
}

$('filter').addEventListener('change', (e) => { ui.filter = e.target.value; ui.offset = 0; renderTasks(); });
$('prev').addEventListener('click', () => { ui.offset = Math.max(0, ui.offset - PAGE); renderTasks(); });
$('next').addEventListener('click', () => { ui.offset += PAGE; renderTasks(); });
tick();
