/* app.js — traind's dashboard: jobs (list, view, compare), sweeps (list, view), datasets,
 * a new-job form made from GET /v1/models. Plain script, no build step; charts by the
 * vendored uPlot.
 *
 * Auth: index.html says (data-auth) whether the daemon has a token; the token typed in
 * is kept in sessionStorage and sent as "Authorization: Bearer" on every /v1 call. Event
 * streams go through fetch() streaming, since EventSource cannot send that header.
 * Views are hash routes (#/jobs, #/jobs/<id>, #/compare/<id>,<id>, #/sweeps,
 * #/sweeps/<id>, #/datasets, #/new);
 * each view owns the timers and streams it starts (view.stop() ends them). */
'use strict';

const TOKEN_KEY = 'traind.token';
const MAX_POINTS = 2000;          // asked of /losses; a chart keeps at most 2x this
const REDRAW_MS = 250;            // live charts redraw at most this often
const LIST_POLL_MS = 2000;
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'deleted']);
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b',
                '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

const $ = (sel) => document.querySelector(sel);

/* ---- DOM -------------------------------------------------------------------------- */

// h('a', {href: '#', class: 'x', onclick: f}, 'text', child...): no innerHTML anywhere.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function flash(msg, kind) {
  const f = $('#flash');
  f.textContent = msg;
  f.className = kind || 'error';
  f.hidden = !msg;
}

// A failed call's message (a 401 has shown the token prompt instead).
function report(e) {
  if (e.status !== 401) flash((e.field ? e.field + ': ' : '') + e.message);
}

function fmtNum(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toPrecision(4);
}

function age(iso) {
  if (!iso) return '–';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.floor(s) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  if (s < 86400) return Math.floor(s / 3600) + ' h';
  return Math.floor(s / 86400) + ' d';
}

function progressBar(fraction) {
  const bar = h('span', {class: 'bar'});
  bar.style.width = (100 * Math.min(1, Math.max(0, fraction || 0))).toFixed(1) + '%';
  return h('span', {class: 'progress', title: (100 * (fraction || 0)).toFixed(1) + '%'}, bar);
}

/* ---- the API ---------------------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e ? e.message : 'HTTP ' + status);
    this.status = status;
    this.code = e && e.code;
    this.field = e && e.field;
  }
}

function authHeaders(extra) {
  const t = sessionStorage.getItem(TOKEN_KEY);
  const hd = Object.assign({}, extra || {});
  if (t) hd.Authorization = 'Bearer ' + t;
  return hd;
}

// fetch against this origin with the token; rejects with ApiError on a non-2xx answer
// (a 401 forgets the token and shows the prompt).
async function api(path, opts) {
  opts = Object.assign({}, opts || {});
  opts.headers = authHeaders(opts.headers);
  const r = await fetch(path, opts);
  if (r.ok) return r;
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (r.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('The token was refused; enter it again.');
  }
  throw new ApiError(r.status, body);
}

async function apiJSON(path, opts) {
  const r = await api(path, opts);
  return r.status === 204 ? null : r.json();
}

function postJSON(path, obj) {
  return apiJSON(path, {method: 'POST', headers: {'Content-Type': 'application/json'},
                        body: JSON.stringify(obj)});
}

// Reads a Server-Sent Events response through fetch streaming, calling onEvent(type,
// data, id) per event, until the stream ends or signal aborts.
async function readEvents(path, lastId, onEvent, signal) {
  const hd = {Accept: 'text/event-stream'};
  if (lastId !== null && lastId !== undefined) hd['Last-Event-ID'] = String(lastId);
  const r = await api(path, {headers: hd, signal});
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buf += dec.decode(value, {stream: true});
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = 'message', data = '', id = null;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;           // keepalive comment
        const c = line.indexOf(':');
        const k = c < 0 ? line : line.slice(0, c);
        const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (k === 'event') type = v;
        else if (k === 'data') data += (data ? '\n' : '') + v;
        else if (k === 'id') id = v;
      }
      if (data) onEvent(type, JSON.parse(data), id);
    }
  }
}

/* ---- charts ----------------------------------------------------------------------- */

// Which chart a history column goes to: losses, rates (in [0, 1]) or the rest.
function chartOf(name) {
  if (name === 'epoch' || name === 'elapsed_s') return null;
  if (/accuracy|rate/.test(name)) return 'rates';
  if (/loss|penalty|nll/.test(name)) return 'losses';
  return 'other';
}

const CHART_TITLES = {losses: 'Loss', rates: 'Accuracy and rates', other: 'Other'};

// A history as columns {epoch: [...], loss: [...], ...}, kept for live updates.
class History {
  constructor(cols) {
    this.cols = {};
    this.names = [];
    for (const [k, v] of Object.entries(cols || {})) if (Array.isArray(v)) this.add(k, v);
    if (!this.cols.epoch) this.add('epoch', []);
    // A server without max_points sends every epoch: keep about MAX_POINTS of them.
    if (this.length > 2 * MAX_POINTS) this.thin(Math.ceil(this.length / MAX_POINTS));
  }
  add(name, values) {
    this.cols[name] = values;
    this.names.push(name);
  }
  get length() { return this.cols.epoch.length; }
  lastEpoch() { const e = this.cols.epoch; return e.length ? e[e.length - 1] : 0; }
  // One progress event's row.
  push(row) {
    for (const k of Object.keys(row))
      if (k !== 'epochs' && !this.cols[k]) this.add(k, new Array(this.length).fill(null));
    const n = this.length;
    for (const k of this.names) this.cols[k][n] = k in row ? row[k] : null;
    if (this.length > 2 * MAX_POINTS) this.thin();
  }
  // Keeps every stride-th point (default 2) and the latest.
  thin(stride) {
    stride = stride || 2;
    for (const k of this.names) {
      const a = this.cols[k];
      this.cols[k] = a.filter((_, i) => i % stride === 0 || i === a.length - 1);
    }
  }
}

// A uPlot chart of some columns against epoch.
function makeChart(parent, title, series, data) {
  const width = Math.max(320, parent.clientWidth || 640);
  const opts = {
    title, width, height: 260,
    scales: {x: {time: false}},
    axes: [{label: 'epoch'}, {}],
    series: [{label: 'epoch'}].concat(series.map((s, i) => ({
      label: s, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
    }))),
    legend: {live: true},
  };
  return new uPlot(opts, data, parent);
}

// The charts of one job's history; redraw() re-feeds them (throttled by the caller).
class JobCharts {
  constructor(parent) {
    this.parent = parent;
    this.charts = {};      // group -> {plot, names}
  }
  draw(hist) {
    const groups = {};
    for (const n of hist.names) {
      const g = chartOf(n);
      if (g && hist.cols[n].some((v) => v !== null)) (groups[g] = groups[g] || []).push(n);
    }
    for (const g of ['losses', 'rates', 'other']) {
      const names = groups[g];
      if (!names) continue;
      const data = [hist.cols.epoch].concat(names.map((n) => hist.cols[n]));
      const c = this.charts[g];
      if (c && c.names.join() === names.join()) {
        c.plot.setData(data);
        continue;
      }
      if (c) c.plot.destroy();
      let box = this.parent.querySelector('[data-chart="' + g + '"]');
      if (!box) {
        box = h('div', {class: 'chart', dataset: {chart: g}});
        this.parent.append(box);
      }
      this.charts[g] = {plot: makeChart(box, CHART_TITLES[g], names, data), names};
    }
  }
  destroy() {
    for (const c of Object.values(this.charts)) c.plot.destroy();
    this.charts = {};
  }
}

/* ---- views ------------------------------------------------------------------------ */

let current = null;   // the view on screen: {stop()}

function setView(title, ...nodes) {
  const v = $('#view');
  v.replaceChildren(h('h1', null, title), ...nodes);
  return v;
}

function viewJobs() {
  const state = new URLSearchParams(location.hash.split('?')[1] || '').get('state') || '';
  const filter = h('select', {id: 'state-filter', onchange: (e) => {
    location.hash = '#/jobs' + (e.target.value ? '?state=' + e.target.value : '');
  }}, ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled'].map((s) =>
    h('option', {value: s, selected: s === state}, s || 'all states')));
  const selected = new Set();
  const compare = h('button', {type: 'button', disabled: true, onclick: () => {
    location.hash = '#/compare/' + [...selected].join(',');
  }}, 'Compare selected');
  const tbody = h('tbody');
  const table = h('table', {id: 'jobs', class: 'list'},
    h('thead', null, h('tr', null, ['', 'id', 'state', 'model', 'dataset', 'progress',
                                    'loss', 'age'].map((c) => h('th', null, c)))), tbody);
  const empty = h('p', {class: 'muted', hidden: true}, 'No jobs yet. ',
                  h('a', {href: '#/new'}, 'Start one.'));
  setView('Jobs', h('div', {class: 'toolbar'}, h('label', null, 'State ', filter), compare),
          table, empty);
  let timer = null, stopped = false;
  async function refresh() {
    try {
      const q = '/v1/jobs?limit=200' + (state ? '&state=' + state : '');
      const {jobs} = await apiJSON(q);
      if (stopped) return;
      tbody.replaceChildren(...jobs.map((j) => h('tr', {dataset: {id: j.id, state: j.state}},
        h('td', null, h('input', {type: 'checkbox', checked: selected.has(j.id),
                                  'aria-label': 'select ' + j.id, onchange: (e) => {
          if (e.target.checked) selected.add(j.id); else selected.delete(j.id);
          compare.disabled = selected.size < 1;
        }})),
        h('td', {class: 'id'}, h('a', {href: '#/jobs/' + j.id}, j.id)),
        h('td', null, h('span', {class: 'state ' + j.state}, j.state)),
        h('td', null, j.model),
        h('td', {class: 'id'}, j.dataset),
        h('td', null, progressBar(j.progress && j.progress.fraction), ' ',
          h('span', {class: 'muted'}, (j.progress ? j.progress.epoch : 0) + '/' +
            (j.progress ? j.progress.epochs : '?'))),
        h('td', {class: 'num'}, fmtNum(j.metrics && j.metrics.loss)),
        h('td', null, age(j.created_at)))));
      empty.hidden = jobs.length > 0;
    } catch (e) {
      if (!stopped) report(e);
    }
    if (!stopped) timer = setTimeout(refresh, LIST_POLL_MS);
  }
  refresh();
  return {stop() { stopped = true; clearTimeout(timer); }};
}

function kvTable(obj, cls) {
  const rows = [];
  const walk = (o, prefix) => {
    for (const [k, v] of Object.entries(o || {})) {
      if (v && typeof v === 'object' && !Array.isArray(v)) walk(v, prefix + k + '.');
      else rows.push(h('tr', null, h('th', null, prefix + k),
                       h('td', {class: 'num'}, Array.isArray(v) ? JSON.stringify(v) : fmtNum(v))));
    }
  };
  walk(obj, '');
  return h('table', {class: 'kv ' + (cls || '')}, h('tbody', null, rows));
}

// Saves a response as a file (a link cannot carry the Authorization header).
async function download(path, filename) {
  try {
    const blob = await (await api(path)).blob();
    const url = URL.createObjectURL(blob);
    const a = h('a', {href: url, download: filename});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    report(e);
  }
}

// The model formats besides JSON that this server documents for GET /v1/jobs/{id}/model
// (the "format" parameter in its /v1/openapi.json: npz, c, ...), as [format, extension].
let formatsPromise = null;
function modelFormats() {
  const ext = {c: 'h'};
  formatsPromise = formatsPromise || apiJSON('/v1/openapi.json').then((doc) => {
    const op = (doc.paths['/v1/jobs/{id}/model'] || {}).get || {};
    const p = (op.parameters || []).find((x) => x.name === 'format' && x.in === 'query');
    const list = (p && p.schema && p.schema.enum) || [];
    return list.filter((f) => f !== 'json').map((f) => [f, ext[f] || f]);
  }).catch(() => []);
  return formatsPromise;
}

function viewJob(id) {
  const epochEl = h('span', {id: 'epoch'}, '0');
  const epochsEl = h('span', null, '?');
  const stateEl = h('span', {class: 'state', id: 'job-state'}, '…');
  const bar = h('span', {class: 'progress-slot'});
  const charts = h('div', {class: 'charts', id: 'charts'});
  const details = h('div', {class: 'details'});
  const actions = h('div', {class: 'toolbar'});
  const predictIn = h('textarea', {rows: 4, placeholder: '[[0.1, 0.2, ...], ...]  (rows of X)'});
  const predictOut = h('pre', {class: 'result'});
  const predict = h('form', {class: 'predict', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const X = JSON.parse(predictIn.value);
      predictOut.textContent = JSON.stringify(
        await postJSON('/v1/jobs/' + id + '/predict', {X}), null, 1);
    } catch (err) {
      predictOut.textContent = err.message;
    }
  }}, h('h2', null, 'Predict'), predictIn, h('button', {type: 'submit'}, 'Predict'), predictOut);
  setView('Job ' + id,
    h('p', {class: 'summary'}, stateEl, ' epoch ', epochEl, ' / ', epochsEl, ' ', bar),
    actions, charts, details, predict);
  const jc = new JobCharts(charts);
  let hist = null, job = null, stopped = false, dirty = false, redrawTimer = null;
  let lastRow = null;                      // the latest progress event: the live metrics
  const metricsBox = h('div', {class: 'metrics-box'});
  const ctl = new AbortController();

  function redraw() {
    redrawTimer = null;
    if (stopped || !dirty || !hist) return;
    dirty = false;
    jc.draw(hist);
    if (lastRow) metricsBox.replaceChildren(kvTable(lastRow, 'metrics'));
  }
  function later() {
    dirty = true;
    if (!redrawTimer) redrawTimer = setTimeout(redraw, REDRAW_MS);
  }
  function showProgress(epoch, epochs) {
    epochEl.textContent = String(epoch);
    if (epochs) epochsEl.textContent = String(epochs);
    bar.replaceChildren(progressBar(epochs ? epoch / epochs : 0));
  }
  function showState(s) {
    stateEl.textContent = s;
    stateEl.className = 'state ' + s;
  }
  async function renderJob() {
    job = await apiJSON('/v1/jobs/' + id);
    if (stopped) return;
    showState(job.state);
    showProgress(job.progress.epoch, job.progress.epochs);
    metricsBox.replaceChildren(kvTable(job.metrics, 'metrics'));
    const terminal = TERMINAL.has(job.state);
    const fmts = await modelFormats();
    actions.replaceChildren(
      h('button', {type: 'button', id: 'cancel', disabled: terminal, onclick: async () => {
        try { await apiJSON('/v1/jobs/' + id + '/cancel', {method: 'POST'}); } catch (e) { report(e); }
      }}, 'Cancel'),
      h('button', {type: 'button', class: 'danger', onclick: async () => {
        if (!confirm('Delete job ' + id + ' and its history and model?')) return;
        try { await apiJSON('/v1/jobs/' + id, {method: 'DELETE'}); location.hash = '#/jobs'; } catch (e) { report(e); }
      }}, 'Delete'),
      h('span', {class: 'downloads'}, 'Model: ',
        h('button', {type: 'button', class: 'link', onclick: () =>
          download('/v1/jobs/' + id + '/model', id + '.json')}, 'JSON'),
        fmts.map(([f, ext]) => [' ', h('button', {type: 'button', class: 'link', onclick: () =>
          download('/v1/jobs/' + id + '/model?format=' + f, id + '.' + ext)}, f)]),
        ' · ', h('button', {type: 'button', class: 'link', onclick: () =>
          download('/v1/jobs/' + id + '/losses?format=csv', id + '-losses.csv')}, 'losses CSV')));
    details.replaceChildren(
      job.error ? h('div', {class: 'error'}, h('strong', null, job.error.code), ': ', job.error.message) : null,
      Array.isArray(job.warnings) && job.warnings.length ?
        h('ul', {class: 'warnings'}, job.warnings.map((w) => h('li', null,
          typeof w === 'string' ? w : (w.message || JSON.stringify(w))))) : null,
      h('div', {class: 'cols'},
        h('div', null, h('h2', null, 'Metrics'), metricsBox),
        h('div', null, h('h2', null, 'Hyperparameters'), kvTable(job.hyperparameters),
          h('p', {class: 'muted'}, job.sweep ? ['trial of sweep ',
            h('a', {href: '#/sweeps/' + job.sweep, id: 'job-sweep'}, job.sweep), ', '] : null,
            'model ', job.model, ', dataset ', job.dataset,
            job.validation ? ', validation ' + job.validation : '', ', created ', job.created_at))));
  }
  async function follow() {
    // the history (downsampled when the server can), then the live events after it
    hist = new History(await apiJSON('/v1/jobs/' + id + '/losses?max_points=' + MAX_POINTS));
    if (stopped) return;
    dirty = true;
    redraw();
    let terminal = TERMINAL.has(job.state);
    while (!stopped && !terminal) {
      try {
        await readEvents('/v1/jobs/' + id + '/events', hist.lastEpoch(), (type, d) => {
          if (type === 'progress') {
            hist.push(d);
            lastRow = Object.fromEntries(Object.entries(d).filter(([k]) =>
              k !== 'epoch' && k !== 'epochs' && k !== 'elapsed_s'));
            showProgress(d.epoch, d.epochs);
            later();
          } else if (type === 'state') {
            showState(d.state);
            terminal = TERMINAL.has(d.state);
            if (terminal && d.state !== 'deleted') renderJob().catch((e) => report(e));
          }
        }, ctl.signal);
      } catch (e) {
        if (stopped || e.name === 'AbortError') return;
        if (e.status) { report(e); return; }
      }
      // the stream ended before the job did (a restart, a dropped connection): again soon
      if (!terminal) await new Promise((r) => setTimeout(r, 1000));
    }
  }
  renderJob().then(follow).catch((e) => { if (!stopped) report(e); });
  return {stop() { stopped = true; ctl.abort(); clearTimeout(redrawTimer); jc.destroy(); }};
}

function viewCompare(ids) {
  const metric = h('select', {id: 'metric'});
  const box = h('div', {class: 'chart', id: 'compare-chart'});
  setView('Compare ' + ids.length + ' jobs', h('div', {class: 'toolbar'},
    h('label', null, 'Metric ', metric)), box,
    h('ul', null, ids.map((id) => h('li', null, h('a', {href: '#/jobs/' + id}, id)))));
  let plot = null, hists = [], stopped = false;
  function draw() {
    if (plot) plot.destroy();
    const m = metric.value;
    const tables = hists.map((hh) => [hh.cols.epoch, hh.cols[m] || hh.cols.epoch.map(() => null)]);
    if (!tables.length) return;
    const data = tables.length > 1 ? uPlot.join(tables) : tables[0];
    plot = makeChart(box, m, ids, data);
  }
  metric.addEventListener('change', draw);
  Promise.all(ids.map((id) => apiJSON('/v1/jobs/' + id + '/losses?max_points=' + MAX_POINTS)))
    .then((all) => {
      if (stopped) return;
      hists = all.map((c) => new History(c));
      const names = [...new Set(hists.flatMap((hh) => hh.names.filter(chartOf)))];
      metric.replaceChildren(...names.map((n) => h('option', {value: n, selected: n === 'loss'}, n)));
      draw();
    }).catch((e) => { if (!stopped) report(e); });
  return {stop() { stopped = true; if (plot) plot.destroy(); }};
}

/* ---- sweeps ----------------------------------------------------------------------- */

const MAX_OVERLAY = 30;           // the sweep view overlays the curves of the best this many

// "3 succeeded, 1 running" from a sweep's counts.
function countsText(counts) {
  const parts = Object.entries(counts || {}).filter(([, n]) => n > 0).map(([k, n]) =>
    n + ' ' + k.replace(/_/g, ' '));
  return parts.length ? parts.join(', ') : '–';
}

// A searched hyperparameter's value: numbers as fmtNum, enums bare, lists as JSON.
function fmtValue(v) {
  return typeof v === 'number' ? fmtNum(v) : typeof v === 'string' ? v : JSON.stringify(v);
}

// Trials best first by the sweep's metric (mode min or max); those without one last.
function rankTrials(trials, mode) {
  const sign = mode === 'max' ? -1 : 1;
  return trials.slice().sort((a, b) => {
    const am = typeof a.metric === 'number', bm = typeof b.metric === 'number';
    if (am !== bm) return am ? -1 : 1;
    if (am && a.metric !== b.metric) return sign * (a.metric - b.metric);
    return a.index - b.index;
  });
}

function viewSweeps() {
  const tbody = h('tbody');
  const empty = h('p', {class: 'muted', hidden: true},
                  'No sweeps yet: POST /v1/sweeps starts one (README "Sweeps").');
  setView('Sweeps', h('table', {id: 'sweeps', class: 'list'}, h('thead', null, h('tr', null,
    ['id', 'state', 'model', 'dataset', 'method', 'trials', 'metric', 'best', 'age'].map((c) =>
      h('th', null, c)))), tbody), empty);
  let timer = null, stopped = false;
  async function refresh() {
    try {
      const {sweeps} = await apiJSON('/v1/sweeps?limit=200');
      if (stopped) return;
      tbody.replaceChildren(...sweeps.map((s) => h('tr', {dataset: {id: s.id, state: s.state}},
        h('td', {class: 'id'}, h('a', {href: '#/sweeps/' + s.id}, s.id)),
        h('td', null, h('span', {class: 'state ' + s.state}, s.state)),
        h('td', null, s.model),
        h('td', {class: 'id'}, s.dataset),
        h('td', null, s.method + (s.schedule ? ', halving' : '')),
        h('td', null, s.n_trials, ' ', h('span', {class: 'muted'}, '(' + countsText(s.counts) + ')')),
        h('td', null, s.metric + ' ', h('span', {class: 'muted'}, s.mode)),
        h('td', {class: 'num'}, s.best ? fmtNum(s.best.metric) : '–'),
        h('td', null, age(s.created_at)))));
      empty.hidden = sweeps.length > 0;
    } catch (e) {
      if (!stopped) report(e);
    }
    if (!stopped) timer = setTimeout(refresh, LIST_POLL_MS);
  }
  refresh();
  return {stop() { stopped = true; clearTimeout(timer); }};
}

// One chart of the metric against a searched hyperparameter: a point per trial with a
// metric, the best one in its own colour. Numbers go on a linear axis (a log one when
// they span 20x or more and are all positive); anything else (enums, lists) on an axis
// of its distinct values, in the order the trials give them.
function hpChart(parent, name, metric, points, bestJob) {
  const numeric = points.every((p) => typeof p.v === 'number');
  let xs, fmt = null, distr = 1;
  if (numeric) {
    xs = points.map((p) => p.v);
    const lo = Math.min(...xs), hi = Math.max(...xs);
    if (lo > 0 && hi / lo >= 20) distr = 3;
  } else {
    const cats = [...new Set(points.map((p) => JSON.stringify(p.v)))];
    xs = points.map((p) => cats.indexOf(JSON.stringify(p.v)));
    fmt = (u, splits) => splits.map((x) => Number.isInteger(x) && cats[x] !== undefined ?
                                     fmtValue(JSON.parse(cats[x])) : '');
  }
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  const data = [order.map((i) => xs[i]),
                order.map((i) => points[i].job === bestJob ? null : points[i].m),
                order.map((i) => points[i].job === bestJob ? points[i].m : null)];
  const dot = (color) => ({stroke: color, width: 0, paths: () => null,
                           points: {show: true, size: 9, stroke: color, fill: color}});
  const opts = {
    title: metric + ' against ' + name,
    width: Math.max(280, parent.clientWidth || 400), height: 220,
    scales: {x: distr === 3 ? {time: false, distr: 3, log: 10} : {time: false,
      range: numeric ? null : (u, lo, hi) => [lo - 0.5, hi + 0.5]}},
    axes: [{label: name, values: fmt, splits: numeric ? null :
      (u, i, lo, hi) => Array.from({length: Math.floor(hi) - Math.ceil(lo) + 1}, (_, k) => Math.ceil(lo) + k)},
           {label: metric}],
    series: [{label: name}, Object.assign({label: 'trials'}, dot(COLORS[0])),
             Object.assign({label: 'best'}, dot(COLORS[1]))],
    cursor: {drag: {x: false, y: false}},
  };
  return new uPlot(opts, data, parent);
}

function viewSweep(id) {
  const stateEl = h('span', {class: 'state', id: 'sweep-state'}, '…');
  const summary = h('span');
  const actions = h('div', {class: 'toolbar'});
  const bestEl = h('div', {class: 'best'});
  const thead = h('thead'), tbody = h('tbody');
  const curves = h('div', {class: 'chart', id: 'sweep-curves'});
  const curvesNote = h('p', {class: 'muted'});
  const hpBox = h('div', {class: 'hp-charts', id: 'sweep-hp'});
  setView('Sweep ' + id, h('p', {class: 'summary'}, stateEl, ' ', summary), actions, bestEl,
    h('table', {id: 'trials', class: 'list'}, thead, tbody),
    h('h2', null, 'Curves'), curvesNote, curves, h('h2', null, 'Metric against hyperparameters'), hpBox);
  let sweep = null, stopped = false, timer = null, overlay = null, hpPlots = [], lastKey = '';
  const hists = new Map();        // job -> {epoch, cols: [epochs, metric]} as last fetched

  function buttons() {
    const terminal = TERMINAL.has(sweep.state);
    actions.replaceChildren(
      h('button', {type: 'button', id: 'sweep-cancel', disabled: terminal || sweep.cancel_requested,
                   onclick: async (e) => {     // the next refresh shows what follows
        e.target.disabled = true;
        try { await apiJSON('/v1/sweeps/' + id + '/cancel', {method: 'POST'}); } catch (err) { report(err); }
      }}, 'Cancel'),
      h('button', {type: 'button', id: 'sweep-delete', class: 'danger', disabled: !terminal,
                   title: terminal ? null : 'a sweep is deleted once it has finished', onclick: async () => {
        if (!confirm('Delete sweep ' + id + ' and the jobs of its trials?')) return;
        try { await apiJSON('/v1/sweeps/' + id, {method: 'DELETE'}); location.hash = '#/sweeps'; } catch (e) { report(e); }
      }}, 'Delete'));
  }
  function table(ranked, names) {
    thead.replaceChildren(h('tr', null, ['#', 'trial', 'job', 'state', 'epoch'].concat(names,
      [sweep.metric + ' (' + sweep.mode + ')']).map((c) => h('th', null, c))));
    const best = sweep.best && sweep.best.job;
    tbody.replaceChildren(...ranked.map((t, i) => h('tr', {class: t.job && t.job === best ? 'best' : null,
        dataset: {index: t.index,
        job: t.job || '', metric: typeof t.metric === 'number' ? t.metric : ''}},
      h('td', {class: 'num'}, i + 1),
      h('td', {class: 'num'}, t.index),
      h('td', {class: 'id'}, t.job ? h('a', {href: '#/jobs/' + t.job}, t.job) : '–'),
      h('td', null, h('span', {class: 'state ' + t.state}, t.state),
        t.stopped_early ? h('span', {class: 'muted'}, ' stopped early') : null),
      h('td', {class: 'num'}, t.epoch + '/' + sweep.epochs),
      names.map((n) => h('td', {class: 'num'}, fmtValue((t.hyperparameters || {})[n]))),
      h('td', {class: 'num metric'}, fmtNum(t.metric)))));
  }
  // The histories of the overlaid trials that moved since their last fetch.
  async function fetchCurves(shown) {
    await Promise.all(shown.map(async (t) => {
      const old = hists.get(t.job);
      if (old && old.epoch === t.epoch) return;
      try {
        const c = await apiJSON('/v1/jobs/' + t.job + '/losses?max_points=' + MAX_POINTS);
        const hh = new History(c);
        hists.set(t.job, {epoch: t.epoch, cols: [hh.cols.epoch, hh.cols[sweep.metric] ||
                                                 hh.cols.epoch.map(() => null)]});
      } catch (e) {
        if (e.status !== 404) throw e;   // a trial's job deleted on its own: no curve
        hists.set(t.job, {epoch: t.epoch, cols: null});
      }
    }));
  }
  function drawCurves(shown) {
    if (overlay) overlay.destroy();
    overlay = null;
    const have = shown.filter((t) => hists.get(t.job) && hists.get(t.job).cols);
    if (!have.length) return;
    const tables = have.map((t) => hists.get(t.job).cols);
    const data = tables.length > 1 ? uPlot.join(tables) : tables[0];
    overlay = makeChart(curves, sweep.metric + ' by epoch', have.map((t) => '#' + t.index), data);
  }
  function drawHp(ranked, names) {
    for (const p of hpPlots) p.destroy();
    hpPlots = [];
    const best = sweep.best && sweep.best.job;
    const withMetric = ranked.filter((t) => typeof t.metric === 'number');
    const boxes = names.map((n) => {
      const box = h('div', {class: 'chart', dataset: {hp: n}});
      const pts = withMetric.filter((t) => t.hyperparameters && n in t.hyperparameters)
        .map((t) => ({v: t.hyperparameters[n], m: t.metric, job: t.job}));
      return {box, n, pts};
    });
    hpBox.replaceChildren(...boxes.map((b) => b.box));
    for (const b of boxes)
      if (b.pts.length) hpPlots.push(hpChart(b.box, b.n, sweep.metric, b.pts, best));
  }
  // Everything from sweep, once the curves of the trials that moved are fetched (so the
  // buttons never act while a fetch is under way).
  async function render() {
    const names = Object.keys(sweep.search || {});
    const ranked = rankTrials(sweep.trials || [], sweep.mode);
    const started = ranked.filter((t) => t.job), shown = started.slice(0, MAX_OVERLAY);
    await fetchCurves(shown);
    if (stopped) return;
    stateEl.textContent = sweep.state;
    stateEl.className = 'state ' + sweep.state;
    summary.replaceChildren(sweep.model + ' on ' + sweep.dataset + ', ' + sweep.method + ', ' +
      sweep.n_trials + ' trials (' + countsText(sweep.counts) + '), ' + sweep.epochs + ' epochs' +
      (sweep.rung ? ', rung ' + sweep.rung.index + ' at ' + sweep.rung.epochs + ' epochs' : '') +
      (sweep.cancel_requested && !TERMINAL.has(sweep.state) ? ', cancelling' : ''));
    buttons();
    bestEl.replaceChildren(h('div', null, sweep.error ? h('div', {class: 'error'}, h('strong', null,
      sweep.error.code), ': ', sweep.error.message) : null,
      sweep.best ? h('p', {id: 'sweep-best'}, 'Best: ', h('a', {href: '#/jobs/' + sweep.best.job},
        sweep.best.job), ' ', sweep.metric + ' ' + fmtNum(sweep.best.metric), ' with ',
        h('code', null, JSON.stringify(sweep.best.hyperparameters))) : null));
    table(ranked, names);
    curvesNote.textContent = 'The ' + sweep.metric + ' of ' + (shown.length < started.length ?
      'the best ' + shown.length + ' of ' + started.length + ' started trials' :
      'every started trial') + ', by epoch.';
    drawCurves(shown);
    drawHp(ranked, names);
  }
  async function refresh() {
    try {
      sweep = await apiJSON('/v1/sweeps/' + id);
      if (stopped) return;
      const key = JSON.stringify([sweep.state, sweep.cancel_requested, sweep.trials, sweep.best]);
      if (key !== lastKey) {     // else nothing moved: nothing to redraw
        lastKey = key;
        await render();
      }
    } catch (e) {
      if (!stopped) report(e);
    }
    if (!stopped && !(sweep && TERMINAL.has(sweep.state))) timer = setTimeout(refresh, LIST_POLL_MS);
  }
  refresh();
  return {stop() {
    stopped = true;
    clearTimeout(timer);
    if (overlay) overlay.destroy();
    for (const p of hpPlots) p.destroy();
  }};
}

const UPLOAD_TYPES = {csv: 'text/csv', json: 'application/json', npy: 'application/x-npy',
                      npz: 'application/zip'};

function viewDatasets() {
  const tbody = h('tbody');
  const file = h('input', {type: 'file', id: 'upload-file', accept: '.csv,.json,.npy,.npz', required: true});
  const name = h('input', {type: 'text', placeholder: 'name (optional)'});
  const label = h('select', null, ['last', 'first', 'none'].map((v) => h('option', {value: v}, v)));
  const header = h('input', {type: 'checkbox', id: 'upload-header'});
  const form = h('form', {class: 'upload', onsubmit: async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) return;
    const ext = (f.name.split('.').pop() || '').toLowerCase();
    const type = UPLOAD_TYPES[ext];
    if (!type) { flash('Upload a .csv, .json, .npy or .npz file'); return; }
    const q = new URLSearchParams();
    q.set('name', name.value || f.name);
    if (ext === 'csv') { q.set('label_column', label.value); q.set('header', header.checked); }
    try {
      const ds = await apiJSON('/v1/datasets?' + q, {method: 'POST', headers: {'Content-Type': type}, body: f});
      flash('Stored ' + ds.id + ' (' + ds.n_samples + ' × ' + ds.n_features + ')', 'ok');
      form.reset();
      refresh();
    } catch (err) {
      flash((err.field ? err.field + ': ' : '') + err.message);
    }
  }}, h('h2', null, 'Upload'), file, name,
     h('label', null, 'CSV label column ', label), h('label', null, header, ' CSV header line'),
     h('button', {type: 'submit'}, 'Upload'));
  setView('Datasets', h('table', {id: 'datasets', class: 'list'}, h('thead', null, h('tr', null,
    ['id', 'name', 'shape', 'classes', 'target', 'groups', 'pairs', 'age', ''].map((c) =>
      h('th', null, c)))), tbody), form);
  let stopped = false;
  async function refresh() {
    try {
      const {datasets} = await apiJSON('/v1/datasets?limit=1000');
      if (stopped) return;
      tbody.replaceChildren(...datasets.map((d) => h('tr', {dataset: {id: d.id}},
        h('td', {class: 'id'}, d.id), h('td', null, d.name || '–'),
        h('td', {class: 'num'}, d.n_samples + ' × ' + d.n_features),
        h('td', {class: 'num'}, fmtNum(d.n_classes)), h('td', null, d.target),
        h('td', {class: 'num'}, d.groups || 1), h('td', {class: 'num'}, d.n_pairs || 0),
        h('td', null, age(d.created_at)),
        h('td', null, h('button', {type: 'button', class: 'danger', onclick: async () => {
          if (!confirm('Delete dataset ' + d.id + '?')) return;
          try { await apiJSON('/v1/datasets/' + d.id, {method: 'DELETE'}); refresh(); } catch (e) { report(e); }
        }}, 'Delete')))));
    } catch (e) {
      if (!stopped) report(e);
    }
  }
  refresh();
  return {stop() { stopped = true; }};
}

// One input for a catalogue entry; read() gives the value to send, or undefined (the
// default).
function hpInput(p) {
  const id = 'hp-' + p.name.replace(/\./g, '-');
  const def = p.default === null || p.default === undefined ? '' : JSON.stringify(p.default);
  let el, read;
  if (p.type === 'boolean' || p.type === 'enum') {
    const opts = p.type === 'boolean' ? ['true', 'false'] : p.choices;
    el = h('select', {id}, h('option', {value: ''}, 'default (' + (p.type === 'enum' ? p.default : def) + ')'),
           opts.map((c) => h('option', {value: c}, c)));
    read = () => el.value === '' ? undefined : p.type === 'boolean' ? el.value === 'true' : el.value;
  } else if (p.type === 'number' || p.type === 'integer') {
    el = h('input', {id, type: 'number', step: p.type === 'integer' ? '1' : 'any', placeholder: def,
                     min: p.min != null && !p.min_exclusive ? p.min : null,
                     max: p.max != null && !p.max_exclusive ? p.max : null});
    read = () => el.value === '' ? undefined : Number(el.value);
  } else {  // lists, pairs, tensors, weights: JSON (a list of numbers may go without brackets)
    el = h('input', {id, type: 'text', placeholder: def || 'JSON'});
    read = () => {
      const t = el.value.trim();
      if (!t) return undefined;
      return /^[-0-9.eE+, ]+$/.test(t) && p.type.endsWith('list') ? JSON.parse('[' + t + ']') : JSON.parse(t);
    };
  }
  const bounds = [];
  if (p.min != null) bounds.push((p.min_exclusive ? '> ' : '≥ ') + p.min);
  if (p.max != null) bounds.push((p.max_exclusive ? '< ' : '≤ ') + p.max);
  const row = h('div', {class: 'field', dataset: {name: p.name}},
    h('label', {for: id}, p.name), el,
    h('small', null, p.description, bounds.length ? ' (' + bounds.join(', ') + ')' : ''));
  return {name: p.name, row, read};
}

function viewNew() {
  const model = h('select', {id: 'new-model'});
  const dataset = h('select', {id: 'new-dataset', required: true});
  const validation = h('select', {id: 'new-validation'});
  const fields = h('div', {class: 'fields'});
  let inputs = [], catalog = null;
  const form = h('form', {id: 'new-job', onsubmit: async (e) => {
    e.preventDefault();
    for (const r of fields.querySelectorAll('.invalid')) r.classList.remove('invalid');
    const hp = {};
    try {
      for (const i of inputs) {
        const v = i.read();
        if (v === undefined) continue;
        const [a, b] = i.name.split('.');
        if (b) (hp[a] = hp[a] || {})[b] = v; else hp[a] = v;
      }
    } catch (err) {
      flash('Not JSON: ' + err.message);
      return;
    }
    const body = {model: model.value, dataset: dataset.value, hyperparameters: hp};
    if (validation.value) body.validation = validation.value;
    try {
      const job = await postJSON('/v1/jobs', body);
      flash('');
      location.hash = '#/jobs/' + job.id;
    } catch (err) {
      const f = (err.field || '').replace(/^hyperparameters\./, '').split('[')[0];
      const row = fields.querySelector('[data-name="' + CSS.escape(f) + '"]');
      if (row) row.classList.add('invalid');
      flash((err.field ? err.field + ': ' : '') + err.message);
    }
  }},
    h('div', {class: 'field'}, h('label', {for: 'new-model'}, 'model'), model),
    h('div', {class: 'field'}, h('label', {for: 'new-dataset'}, 'dataset'), dataset),
    h('div', {class: 'field'}, h('label', {for: 'new-validation'}, 'validation'), validation),
    h('h2', null, 'Hyperparameters'), h('p', {class: 'muted'}, 'Empty fields keep the default.'),
    fields, h('button', {type: 'submit'}, 'Start job'));
  setView('New job', form);
  function build() {
    const m = catalog.models.find((x) => x.name === model.value);
    inputs = m.hyperparameters.map(hpInput);
    fields.replaceChildren(...inputs.map((i) => i.row));
  }
  model.addEventListener('change', build);
  let stopped = false;
  Promise.all([apiJSON('/v1/models'), apiJSON('/v1/datasets?limit=1000')]).then(([c, d]) => {
    if (stopped) return;
    catalog = c;
    model.replaceChildren(...c.models.map((m) => h('option', {value: m.name}, m.name)));
    const opt = (x) => h('option', {value: x.id}, (x.name ? x.name + ' — ' : '') + x.id +
                         ' (' + x.n_samples + ' × ' + x.n_features + ')');
    dataset.replaceChildren(...d.datasets.map(opt));
    validation.replaceChildren(h('option', {value: ''}, 'none'), ...d.datasets.map(opt));
    build();
  }).catch((e) => { if (!stopped) report(e); });
  return {stop() { stopped = true; }};
}

/* ---- routing and sign-in ---------------------------------------------------------- */

function route() {
  if (current) current.stop();
  current = null;
  flash('');
  const hash = location.hash.replace(/^#/, '').split('?')[0] || '/jobs';
  const parts = hash.split('/').filter(Boolean);
  for (const a of document.querySelectorAll('#nav a'))
    a.classList.toggle('active', a.dataset.view === parts[0]);
  if (parts[0] === 'jobs' && parts[1]) current = viewJob(decodeURIComponent(parts[1]));
  else if (parts[0] === 'compare' && parts[1]) current = viewCompare(parts[1].split(',').filter(Boolean));
  else if (parts[0] === 'sweeps' && parts[1]) current = viewSweep(decodeURIComponent(parts[1]));
  else if (parts[0] === 'sweeps') current = viewSweeps();
  else if (parts[0] === 'datasets') current = viewDatasets();
  else if (parts[0] === 'new') current = viewNew();
  else current = viewJobs();
}

function needsToken() {
  return document.documentElement.dataset.auth === 'bearer' && !sessionStorage.getItem(TOKEN_KEY);
}

function showLogin(msg) {
  if (current) current.stop();
  current = null;
  $('#view').replaceChildren();
  $('#nav').hidden = true;
  $('#login').hidden = false;
  const e = $('#login-error');
  e.textContent = msg || '';
  e.hidden = !msg;
  $('#token').focus();
}

function start() {
  $('#login').hidden = true;
  $('#nav').hidden = false;
  $('#signout').hidden = document.documentElement.dataset.auth !== 'bearer';
  route();
}

document.addEventListener('DOMContentLoaded', () => {
  $('#login').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('#token').value);
    $('#token').value = '';
    start();
  });
  $('#signout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
  });
  window.addEventListener('hashchange', () => { if (!needsToken()) route(); });
  if (needsToken()) showLogin(); else start();
});
