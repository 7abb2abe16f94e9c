#!/usr/bin/env node
/* dashboard.test.js — the dashboard in Debian's chromium, driven by puppeteer-core.
 *
 *   node tests/browser/dashboard.test.js URL TOKEN FINISHED_JOB RUNNING_JOB DATASET SWEEP [PNG]
 *
 * against a live daemon with that token (tests/test_dashboard.c starts one and makes the
 * jobs). Checks, in one page load (no reload after the sign-in):
 *   - the token prompt: an <input type="password">, and nothing of the API before it;
 *     "Forget token" and a wrong token bring it back (checked last);
 *   - the job list shows both jobs, each id a link to its view;
 *   - the finished job's loss chart is drawn: coloured pixels on its canvas;
 *   - the predict box answers; the running job's epoch advances while the page stays
 *     (no reload), and its cancel button cancels it;
 *   - the datasets list shows the dataset; a CSV uploaded from the file picker appears;
 *     the new-job form is built from /v1/models and starts a job with what was typed;
 *     the compare view draws the two jobs;
 *   - the sweeps list (navigation) links SWEEP, a finished 2x2 grid; its view lists the
 *     trials sorted by the metric (as GET /v1/sweeps/{id} gives them), draws the overlaid
 *     curves and val_loss against lr and against optimizer (coloured pixels), and a trial
 *     links to its job; a sweep started from the page refreshes live, cancels, deletes;
 *   - no request leaves the page's origin (interception aborts and records it), and the
 *     page raises no error (pageerror, console errors, failed requests, HTTP >= 400).
 * PNG, when given, gets a screenshot of the running job's view, and PNG-sweep.png (".png"
 * replaced) one of the sweep's view. Exits 0 when all hold;
 * otherwise prints what failed and exits 1. A missing chromium or puppeteer-core fails
 * too (exit 1 with the reason): nothing is skipped. */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const [url, token, finished, running, dataset, sweep, png] = process.argv.slice(2);
if (!url || !token || !finished || !running || !dataset || !sweep) {
  console.error('usage: dashboard.test.js URL TOKEN FINISHED_JOB RUNNING_JOB DATASET SWEEP [PNG]');
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 30000;  // the longest wait for one step (a running job's next epoch)

function fail(msg) {
  console.error('dashboard.test: FAIL: ' + msg);
  process.exitCode = 1;
  throw new Error(msg);
}

function check(cond, msg) {
  if (!cond) fail(msg);
  console.log('dashboard.test: ok - ' + msg);
}

async function main() {
  let puppeteer;
  try {
    puppeteer = require('puppeteer-core');
  } catch (e) {
    fail('puppeteer-core is not installed (make test installs it into tests/browser): ' + e.message);
  }
  if (!fs.existsSync(CHROMIUM)) fail(CHROMIUM + ' does not exist (scripts/deps.sh --test installs chromium)');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'traind-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-dev-shm-usage'],  // userDataDir adds --user-data-dir=<profile>
  });
  const problems = [];
  let page = null;
  try {
    page = await browser.newPage();
    await page.setViewport({width: 1280, height: 1000});
    const origin = new URL(url).origin;
    const requests = [];
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      const u = req.url();
      requests.push(req.method() + ' ' + u);
      if (!u.startsWith(origin + '/') && u !== origin) {
        problems.push('request to another origin: ' + u);
        req.abort();
      } else {
        req.continue();
      }
    });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push('console error: ' + m.text());
    });
    page.on('requestfailed', (req) => {
      const why = req.failure() ? req.failure().errorText : '';
      // a view's event stream is aborted by the page when it leaves the view
      if (why === 'net::ERR_ABORTED' && /\/events$/.test(new URL(req.url()).pathname)) return;
      // chromium reports a 204 answered to fetch() (a DELETE) as aborted after the response
      if (why === 'net::ERR_ABORTED' && req.response() && req.response().status() === 204) return;
      problems.push('request failed: ' + req.url() + ' ' + why);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push('HTTP ' + r.status() + ' for ' + r.url());
    });

    // The token prompt, before any API call.
    await page.goto(url, {waitUntil: 'domcontentloaded'});
    await page.waitForSelector('#login:not([hidden])', {timeout: STEP_MS});
    const type = await page.$eval('#token', (e) => e.type);
    check(type === 'password', 'the token prompt is an <input type="password">');
    check(!requests.some((r) => r.includes('/v1/')), 'no API call before the token is given');
    check(await page.$('#jobs') === null, 'nothing shown without the token');
    await page.type('#token', token);
    await page.click('#login button[type=submit]');
    await page.evaluate(() => { window.__sameDocument = true; });

    // The job list.
    await page.waitForSelector('#jobs tbody tr[data-id="' + finished + '"]', {timeout: STEP_MS});
    await page.waitForSelector('#jobs tbody tr[data-id="' + running + '"]', {timeout: STEP_MS});
    const link = await page.$eval('#jobs tr[data-id="' + finished + '"] a', (a) =>
      ({text: a.textContent, href: a.getAttribute('href')}));
    check(link.text === finished && link.href === '#/jobs/' + finished,
          'the job list shows the finished job\'s full id as a link to its view');
    check(await page.evaluate(() => sessionStorage.getItem('traind.token')) === token,
          'the token is kept in sessionStorage');

    // The finished job's chart: coloured pixels (the series; axes and grid are grey) on
    // its canvas.
    await page.click('#jobs tr[data-id="' + finished + '"] a');
    await page.waitForSelector('[data-chart="losses"] canvas', {timeout: STEP_MS});
    const drawn = await page.waitForFunction(() => {
      const c = document.querySelector('[data-chart="losses"] canvas');
      if (!c || !c.width || !c.height) return 0;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4)
        if (d[i + 3] > 128 &&
            Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 80) n++;
      return n > 100 ? n : 0;
    }, {timeout: STEP_MS});
    check(await drawn.jsonValue() > 100, 'the finished job\'s loss curve is drawn on its canvas');
    const state = await page.$eval('#job-state', (e) => e.textContent);
    check(state === 'succeeded', 'the finished job\'s view shows its state (' + state + ')');
    await page.waitForSelector('.downloads button', {timeout: STEP_MS});
    const downloads = await page.$eval('.downloads', (e) => e.textContent);
    check(!downloads.includes('[object') && /JSON/.test(downloads),
          'the model download links are buttons, not "[object ...]" (' + downloads + ')');
    const D = 20;  // the features of test_dashboard.c's dataset
    await page.type('form.predict textarea', JSON.stringify([new Array(D).fill(0.5)]));
    await page.click('form.predict button[type=submit]');
    await page.waitForFunction(() => /"labels"/.test(document.querySelector('pre.result').textContent),
                               {timeout: STEP_MS});
    check(true, 'the predict box answers with the model\'s labels');

    // The running job advances without a reload.
    await page.evaluate((id) => { location.hash = '#/jobs/' + id; }, running);
    await page.waitForFunction(() => Number(document.querySelector('#epoch')?.textContent) > 0,
                               {timeout: STEP_MS});
    const e1 = Number(await page.$eval('#epoch', (e) => e.textContent));
    await page.waitForFunction((e) => Number(document.querySelector('#epoch').textContent) > e,
                               {timeout: STEP_MS}, e1);
    const e2 = Number(await page.$eval('#epoch', (e) => e.textContent));
    check(e2 > e1 && await page.evaluate(() => window.__sameDocument === true),
          'the running job\'s epoch advances live (' + e1 + ' -> ' + e2 + ') without a reload');
    await page.waitForSelector('[data-chart="losses"] canvas', {timeout: STEP_MS});
    if (png) {
      await new Promise((r) => setTimeout(r, 8000));  // more epochs on the curves
      await page.screenshot({path: png});
      console.log('dashboard.test: screenshot ' + png);
    }
    await page.click('#cancel');
    await page.waitForFunction(() => document.querySelector('#job-state').textContent === 'cancelled',
                               {timeout: STEP_MS});
    check(true, 'the cancel button cancels the running job (its view shows it from /events)');

    // Datasets, the new-job form from the catalogue, compare.
    await page.evaluate(() => { location.hash = '#/datasets'; });
    await page.waitForSelector('#datasets tr[data-id="' + dataset + '"]', {timeout: STEP_MS});
    check(true, 'the datasets list shows the dataset');
    const csv = path.join(profile, 'upload.csv');
    fs.writeFileSync(csv, 'a,b,label\n0,1,0\n1,0,1\n1,1,1\n0,0,0\n');
    const picker = await page.$('#upload-file');
    await picker.uploadFile(csv);
    await page.click('#upload-header');
    await page.click('form.upload button[type=submit]');
    await page.waitForFunction(() => [...document.querySelectorAll('#datasets td')]
      .some((td) => td.textContent === 'upload.csv'), {timeout: STEP_MS});
    const shape = await page.evaluate(() => [...document.querySelectorAll('#datasets tr')]
      .find((tr) => tr.textContent.includes('upload.csv')).children[2].textContent);
    check(shape === '4 × 2', 'a CSV uploaded from the file picker is listed (' + shape + ')');

    await page.evaluate(() => { location.hash = '#/new'; });
    await page.waitForSelector('#hp-lr', {timeout: STEP_MS});
    const lr = await page.$eval('#hp-lr', (e) => e.placeholder);
    check(lr === '0.1', 'the new-job form is built from /v1/models (softmax lr default ' + lr + ')');
    await page.select('#new-model', 'mlp');
    await page.waitForFunction(() => document.querySelector('#hp-hidden')?.placeholder === '[100]',
                               {timeout: STEP_MS});
    check(true, 'choosing mlp rebuilds the form with its hyperparameters (hidden [100])');
    await page.select('#new-model', 'softmax');
    await page.waitForSelector('#hp-epochs', {timeout: STEP_MS});
    await page.select('#new-dataset', dataset);
    await page.type('#hp-epochs', '3');
    await page.select('#hp-optimizer', 'adam');
    await page.click('#new-job button[type=submit]');
    await page.waitForFunction(() => /^#\/jobs\/job_/.test(location.hash), {timeout: STEP_MS});
    const made = await page.evaluate(() => location.hash.slice('#/jobs/'.length));
    await page.waitForFunction(() => document.querySelector('#job-state')?.textContent === 'succeeded',
                               {timeout: STEP_MS});
    const hp = await page.evaluate(async (id, t) => (await (await fetch('/v1/jobs/' + id,
      {headers: {Authorization: 'Bearer ' + t}})).json()).hyperparameters, made, token);
    check(hp.epochs === 3 && hp.optimizer === 'adam' && hp.lr === 0.1,
          'the form starts a job with the values typed in and the defaults for the rest');
    await page.evaluate((a, b) => { location.hash = '#/compare/' + a + ',' + b; }, finished, running);
    await page.waitForSelector('#compare-chart canvas', {timeout: STEP_MS});
    const series = await page.$$eval('#compare-chart .u-legend .u-series', (s) => s.length);
    check(series === 3, 'the compare view overlays both jobs (' + (series - 1) + ' series)');

    // Sweeps: the list in the navigation, the finished 2x2 grid's view.
    await page.click('#nav a[data-view="sweeps"]');
    await page.waitForSelector('#sweeps tr[data-id="' + sweep + '"]', {timeout: STEP_MS});
    const slink = await page.$eval('#sweeps tr[data-id="' + sweep + '"] a', (a) => a.getAttribute('href'));
    check(slink === '#/sweeps/' + sweep, 'the navigation\'s sweeps list links the sweep to its view');
    await page.click('#sweeps tr[data-id="' + sweep + '"] a');
    await page.waitForFunction(() => document.querySelector('#sweep-state')?.textContent === 'succeeded' &&
                               document.querySelectorAll('#trials tbody tr').length === 4 &&
                               document.querySelector('#sweep-curves canvas') &&
                               document.querySelectorAll('#sweep-hp canvas').length === 2,
                               {timeout: STEP_MS});
    const api = await page.evaluate(async (id, t) => (await fetch('/v1/sweeps/' + id,
      {headers: {Authorization: 'Bearer ' + t}})).json(), sweep, token);
    const rows = await page.$$eval('#trials tbody tr', (trs) => trs.map((tr) =>
      ({job: tr.dataset.job, metric: Number(tr.dataset.metric), cells: tr.children.length,
        best: tr.classList.contains('best')})));
    const want = api.trials.filter((t) => typeof t.metric === 'number').map((t) => t.metric)
      .sort((a, b) => a - b);
    check(api.metric === 'val_loss' && api.mode === 'min' && want.length === 4 &&
          rows.map((r) => r.metric).join() === want.join(),
          'the trials are listed by ' + api.metric + ', lowest first (' +
          rows.map((r) => r.metric.toFixed(4)).join(' ≤ ') + ')');
    check(rows[0].job === api.best.job && rows.filter((r) => r.best).length === 1 && rows[0].best &&
          new Set(rows.map((r) => r.job)).size === 4 && rows.every((r) => r.cells === 8),
          'the first row is the sweep\'s best job (marked), each row a trial with its lr and optimizer');
    const text = await page.$eval('#view', (v) => v.textContent);
    check(!/\bnull\b|undefined|NaN|\[object/.test(text), 'the view shows no null, undefined, NaN or [object]');
    const sweepSeries = await page.$$eval('#sweep-curves .u-legend .u-series', (s) => s.length);
    check(sweepSeries === 5, 'the curves of the 4 trials are overlaid (' + (sweepSeries - 1) + ' series)');
    const coloured = (sel) => page.evaluate((s) => {
      const c = document.querySelector(s);
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4)
        if (d[i + 3] > 128 &&
            Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 80) n++;
      return n;
    }, sel);
    const nCurves = await coloured('#sweep-curves canvas');
    check(nCurves > 200, 'the overlaid curves are drawn (' + nCurves + ' coloured pixels)');
    for (const hp of ['lr', 'optimizer']) {
      const n = await coloured('#sweep-hp [data-hp="' + hp + '"] canvas');
      check(n > 40, 'val_loss against ' + hp + ' is drawn (' + n + ' coloured pixels)');
    }
    if (png) {
      const spng = png.replace(/(\.png)?$/, '-sweep.png');
      await page.screenshot({path: spng, fullPage: true});
      console.log('dashboard.test: screenshot ' + spng);
    }
    await page.click('#trials tbody tr:first-child a');
    await page.waitForFunction((id) => document.querySelector('#job-state')?.textContent === 'succeeded' &&
                               document.querySelector('#job-sweep')?.textContent === id,
                               {timeout: STEP_MS}, sweep);
    check(await page.evaluate(() => location.hash) === '#/jobs/' + api.best.job,
          'a trial links to its job\'s view, which links back to the sweep');

    // A running sweep's view refreshes by itself; cancel, then delete.
    const live = await page.evaluate(async (ds, t) => (await (await fetch('/v1/sweeps', {method: 'POST',
      headers: {Authorization: 'Bearer ' + t, 'Content-Type': 'application/json'},
      body: JSON.stringify({model: 'mlp', dataset: ds, hyperparameters: {epochs: 10000000, hidden: [256, 256]},
                            search: {lr: [0.0003, 0.001]}})})).json()).id, dataset, token);
    await page.evaluate((id) => { location.hash = '#/sweeps/' + id; }, live);
    const epochOf = () => Math.max(0, ...[...document.querySelectorAll('#trials tbody tr td:nth-child(5)')]
      .map((td) => parseInt(td.textContent, 10) || 0));
    await page.waitForFunction(`(${epochOf})() > 0`, {timeout: STEP_MS});
    const le1 = await page.evaluate(`(${epochOf})()`);
    await page.waitForFunction(`(${epochOf})() > ${le1}`, {timeout: STEP_MS});
    const le2 = await page.evaluate(`(${epochOf})()`);
    check(await page.$eval('#sweep-delete', (b) => b.disabled) &&
          await page.evaluate(() => document.querySelector('#sweep-state').textContent === 'running'),
          'the running sweep\'s trials advance in its view (epoch ' + le1 + ' -> ' + le2 + '), delete disabled');
    await page.click('#sweep-cancel');
    await page.waitForFunction(() => document.querySelector('#sweep-state').textContent === 'cancelled' &&
                               !document.querySelector('#sweep-delete').disabled, {timeout: STEP_MS});
    check(true, 'the cancel button cancels the sweep (its view shows it)');
    page.once('dialog', (d) => d.accept());
    await page.click('#sweep-delete');
    await page.waitForFunction(() => location.hash === '#/sweeps' &&
                               document.querySelector('#sweeps tbody tr'), {timeout: STEP_MS});
    check(await page.$('#sweeps tr[data-id="' + live + '"]') === null &&
          await page.$('#sweeps tr[data-id="' + sweep + '"]') !== null,
          'the delete button deletes the cancelled sweep (gone from the list)');

    // A failed call is told in the flash (its 404 is expected, so not one of the problems).
    const before = problems.length;
    await page.evaluate(() => { location.hash = '#/sweeps/swp_000000000000000000000000'; });
    await page.waitForFunction(() => !document.querySelector('#flash').hidden, {timeout: STEP_MS});
    const told = await page.$eval('#flash', (f) => f.textContent);
    const extra = problems.splice(before);
    // (chromium also logs the 404 as a console error)
    check(extra.some((p) => /^HTTP 404 .*\/v1\/sweeps\/swp_0+$/.test(p)) &&
          extra.every((p) => /404/.test(p)) && /not found/.test(told),
          'a sweep that does not exist: the 404\'s message is shown (' + told + ')');

    check(problems.length === 0, 'no request to another origin and no page error' +
          (problems.length ? ': ' + problems.join('; ') : ''));

    // Last (its 401 is an error on purpose): a wrong token brings the prompt back.
    await page.click('#signout');
    await page.waitForSelector('#login:not([hidden])', {timeout: STEP_MS});
    check(await page.evaluate(() => sessionStorage.getItem('traind.token')) === null,
          '"Forget token" forgets it and asks again');
    await page.type('#token', token + '-wrong');
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#login-error:not([hidden])', {timeout: STEP_MS});
    check(await page.$('#login:not([hidden])') !== null && await page.$('#jobs') === null,
          'a wrong token brings the prompt back with a message, and shows nothing');
  } catch (e) {
    if (problems.length) console.error('dashboard.test: the page also had: ' + problems.join('; '));
    if (png && page) await page.screenshot({path: png + '.fail.png'}).catch(() => {});
    throw e;
  } finally {
    await browser.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
}

main().then(() => {
  if (!process.exitCode) console.log('dashboard.test: all checks passed');
}, (e) => {
  if (!process.exitCode) console.error('dashboard.test: FAIL: ' + (e && e.stack || e));
  process.exitCode = 1;
});
