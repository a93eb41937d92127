// Browser test of the Koinon dashboard, driven by test_dashboard.sh.
//
// Opens the dashboard in headless Chromium (playwright-core) next to a running
// four-validator network and checks, each with a bounded wait:
//   1. all four validators show as online, with no "node unreachable" banner;
//   2. the displayed committed height advances, and the currencies table lists
//      EXPECT_CURRENCIES currencies, each with EXPECT_HOLDERS holders (when set);
//   3. after SIGKILL of one validator (KILL_PID) its row says "offline" within
//      OFFLINE_BOUND_MS, and the health verdict is no longer "Healthy";
//   4. a screenshot is written (SCREENSHOT);
//   5. with /v1/status answers replaced by a fixture full of markup, nothing is
//      interpreted as HTML and every field renders; with /v1/status failing the
//      "Node unreachable" banner shows.
//
// When DASHBOARD_URL is empty this script serves node/dashboard/index.html itself
// and proxies /v1/* to API (the node sends no CORS headers); otherwise it opens
// DASHBOARD_URL, e.g. http://127.0.0.1:PORT/dashboard served by koinond.
//
// `node dashboard_e2e.mjs --serve` only runs the static server + proxy (development).
//
// Environment: API, PAGE, DASHBOARD_URL, PLAYWRIGHT_DIR, CHROMIUM, USER_DATA_DIR,
// KILL_PID, KILL_NAME, EXPECT_VALIDATORS, EXPECT_CURRENCIES, EXPECT_HOLDERS, OFFLINE_BOUND_MS,
// SCREENSHOT, SERVE_PORT.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
const API = (env.API || 'http://127.0.0.1:8700').replace(/\/+$/, '');
const PAGE = env.PAGE || new URL('../../node/dashboard/index.html', import.meta.url).pathname;
const EXPECT = Number(env.EXPECT_VALIDATORS || 4);
const OFFLINE_BOUND_MS = Number(env.OFFLINE_BOUND_MS || 10000);
const t0 = Date.now();
const log = (...a) => console.log(`[e2e +${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const fail = (msg) => { const e = new Error(msg); e.isCheck = true; throw e; };

// ------------------------------------------------------------ static server + proxy
function serve(port) {
  const api = new URL(API);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'GET' && (url.pathname === '/dashboard' || url.pathname === '/')) {
      fs.readFile(PAGE, (err, body) => {
        if (err) { res.writeHead(500); res.end(String(err)); return; }
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(body);
      });
      return;
    }
    if (!url.pathname.startsWith('/v1/')) { res.writeHead(404); res.end('not found'); return; }
    const up = http.request({ host: api.hostname, port: api.port, method: req.method, path: req.url,
      headers: { ...req.headers, host: api.host }, timeout: 5000 }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('timeout', () => up.destroy(new Error('upstream timeout')));
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'bad_gateway', message: e.message } }));
    });
    req.pipe(up);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

// ------------------------------------------------------------ helpers
async function until(what, ms, fn, every = 200) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > deadline) fail(`timed out after ${ms / 1000}s waiting for: ${what}` +
      (last instanceof Error ? ` (${last.message})` : ''));
    await new Promise((r) => setTimeout(r, every));
  }
}

const rowsState = (page) => page.$$eval('#validators-body tr[data-validator]', (trs) => trs.map((tr) => ({
  name: tr.getAttribute('data-validator'), online: tr.getAttribute('data-online'),
  status: tr.querySelector('td.status')?.textContent.trim() })));

const shownHeight = (page) => page.$eval('#height', (e) => Number(e.getAttribute('data-height') || NaN));

// ------------------------------------------------------------ main
async function main() {
  if (process.argv.includes('--serve')) {
    const s = await serve(Number(env.SERVE_PORT || 0));
    console.log(`dashboard: http://127.0.0.1:${s.address().port}/dashboard  (proxying /v1/ to ${API})`);
    return;
  }
  const pw = await import(pathToFileURL(path.join(env.PLAYWRIGHT_DIR, 'node_modules/playwright-core/index.mjs')).href);
  let server = null, url = env.DASHBOARD_URL;
  if (!url) {
    server = await serve(0);
    url = `http://127.0.0.1:${server.address().port}/dashboard`;
    log(`serving the page myself at ${url}, proxying /v1/ to ${API}`);
  }
  const ctx = await pw.chromium.launchPersistentContext(env.USER_DATA_DIR, {
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    timeout: 30000,
  });
  const pageErrors = [], external = [];
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(10000);
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push('console: ' + m.text()); });
    page.on('request', (r) => { if (!r.url().startsWith('http://127.0.0.1:')) external.push(r.url()); });

    const resp = await page.goto(url, { waitUntil: 'load', timeout: 15000 });
    if (!resp || !resp.ok()) fail(`GET ${url} answered ${resp && resp.status()}`);
    const ctype = resp.headers()['content-type'] || '';
    if (!ctype.startsWith('text/html')) fail(`dashboard Content-Type is "${ctype}", expected text/html`);

    // 1. four validators online
    const rows = await until(`${EXPECT} validators shown online`, 30000, async () => {
      const r = await rowsState(page);
      return r.length === EXPECT && r.every((x) => x.online === 'true' && /online/.test(x.status)) && r;
    });
    log(`validators online: ${rows.map((r) => r.name).join(', ')}`);
    if (await page.isVisible('#banner')) fail('"node unreachable" banner visible while the node answers');
    for (const id of ['chain-id', 'node-name', 'node-version', 'node-uptime'])
      if ((await page.textContent('#' + id)).trim() === '—') fail(`header field #${id} is empty`);

    // 2. height advances
    const h1 = await until('a height to be displayed', 10000, async () => { const h = await shownHeight(page); return h > 0 && h; });
    const h2 = await until(`the displayed height to pass ${h1}`, 15000, async () => { const h = await shownHeight(page); return h > h1 && h; });
    log(`displayed height advanced ${h1} -> ${h2}`);
    const verdict = (await page.textContent('#verdict')).trim();
    if (!/^Healthy/.test(verdict)) fail(`verdict with four validators is "${verdict}", expected Healthy`);
    await until('the block-interval chart to draw bars', 20000, async () => (await page.$$('#interval-chart rect.bar')).length >= 2);
    await until('the currencies table to fill', 10000, async () => (await page.$$('#currencies-body tr[data-currency]')).length >= 1);
    if (env.EXPECT_CURRENCIES) {
      // The table polls every 5 s; the test waited for the money to be issued.
      const want = Number(env.EXPECT_CURRENCIES), holders = env.EXPECT_HOLDERS;
      const shown = await until(`${want} currencies with ${holders} holders each`, 15000, async () => {
        const cells = await page.$$eval('#currencies-body tr[data-currency]', (trs) => trs.map((tr) =>
          [...tr.querySelectorAll('td.num')].map((td) => td.textContent.trim())));
        return cells.length === want && cells.every((c) => c[c.length - 1] === holders) && cells;
      });
      log(`currencies shown: ${JSON.stringify(shown)}`);
    }

    // 3. SIGKILL one validator; its row turns offline within the bound
    if (env.KILL_PID) {
      const name = env.KILL_NAME;
      process.kill(Number(env.KILL_PID), 'SIGKILL');
      const k0 = Date.now();
      log(`SIGKILL validator ${name} (pid ${env.KILL_PID})`);
      await until(`${name} shown offline within ${OFFLINE_BOUND_MS / 1000}s`, OFFLINE_BOUND_MS, async () => {
        const r = (await rowsState(page)).find((x) => x.name === name);
        return r && r.online === 'false' && /offline/.test(r.status);
      }, 100);
      const took = Date.now() - k0;
      log(`${name} shown offline after ${(took / 1000).toFixed(1)}s (bound ${OFFLINE_BOUND_MS / 1000}s)`);
      const others = (await rowsState(page)).filter((x) => x.name !== name);
      if (!others.every((x) => x.online === 'true')) fail(`other validators not all online: ${JSON.stringify(others)}`);
      const v2 = (await page.textContent('#verdict')).trim();
      if (/^Healthy/.test(v2)) fail(`verdict still "${v2}" with ${name} offline`);
      const reasons = await page.textContent('#reasons');
      if (!reasons.includes(name)) fail(`health reasons do not name ${name}: ${reasons}`);
      log(`verdict: ${v2}`);
      // the three others keep committing, and the page shows it
      const h3 = await shownHeight(page);
      await until(`the height to advance past ${h3} with three validators`, 20000, async () => (await shownHeight(page)) > h3);
      console.log(`TIMING offline_detect_ms=${took}`);
    }

    // 4. screenshot
    if (env.SCREENSHOT) {
      await page.waitForTimeout(1500);
      await page.screenshot({ path: env.SCREENSHOT, fullPage: true });
      log(`screenshot ${env.SCREENSHOT}`);
    }

    // 5a. hostile strings and the full field set, from a fixture
    const evil = '<img src=x onerror="window.__xss=1">';
    const fixture = {
      chain_id: 'chain' + evil, node: 'seville', version: '9.9' + evil, height: 1000, uptime_s: 3725,
      round: 2, step: 'precommit', mempool: { size: 12, max: 50000 },
      consensus: { height: 1001, round: 2, step: 'precommit', prevotes: ['seville', 'athens' + evil], precommits: ['seville'] },
      validators: [
        { name: 'seville', city: 'Seville', power: 10, online: true, height: 1000, missed_recent: 0, proposed: 250, last_seen_ms_ago: 0 },
        { name: 'athens' + evil, city: 'Athens' + evil, power: 10, online: true, height: 1000, missed_recent: 1, proposed: 251, last_seen_ms_ago: 120 },
        { name: 'lisbon', city: 'Lisbon', power: 10, online: false, height: 990, missed_recent: 10, proposed: 249, last_seen_ms_ago: 9000 },
        { name: 'turin', city: 'Turin' },
      ],
      recent_blocks: Array.from({ length: 60 }, (_, i) => ({ height: 941 + i, time_ms: 1.795e12 + i * 1000 + (i >= 50 ? 4000 : 0), txs: i % 7, proposer: 'seville' })),
      evidence: [{ validator: 'lisbon' + evil, height: 999, round: 1, kind: 'double_prevote' + evil }],
      peers: [{ name: 'athens', up: true, rtt_ms: 0.4 }, { name: 'lisbon' + evil, up: false }],
    };
    const currencies = { currencies: [{ code: 'SVQ' + evil, name: 'Seville Giralda', city: 'Seville', scale: 2, max_supply: 100000000000,
      flags: ['freezable', 'clawback' + evil], issuer_threshold: 1, supply: 123456789, holders: 42 }] };
    const fx = await ctx.newPage();
    fx.on('pageerror', (e) => pageErrors.push('fixture page: ' + String(e)));
    let statusMode = 'fixture';
    await fx.route('**/v1/status', (r) => statusMode === 'fail' ? r.abort('connectionrefused')
      : r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(fixture) }));
    await fx.route('**/v1/currencies', (r) => r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(currencies) }));
    await fx.goto(url, { waitUntil: 'load', timeout: 15000 });
    await until('the fixture to render', 10000, async () => (await fx.$$('#validators-body tr[data-validator]')).length === 4
      && (await fx.$$('#evidence-body tbody tr')).length === 1 && (await fx.$$('#currencies-body tr[data-currency]')).length === 1);
    const fxState = await fx.evaluate(() => ({
      xss: window.__xss, imgs: document.querySelectorAll('main img, header img').length,
      chain: document.getElementById('chain-id').textContent, body: document.body.innerText,
      prevoteChips: document.querySelectorAll('#votes .chip.yes').length,
      bars: document.querySelectorAll('#interval-chart rect.bar:not(.waiting)').length,
      slow: document.querySelectorAll('#interval-chart rect.bar.slow').length,
      supply: document.querySelector('#currencies-body td.num')?.textContent,
    }));
    if (fxState.xss !== undefined || fxState.imgs) fail('markup from the API was interpreted as HTML');
    if (!fxState.chain.includes('<img')) fail(`chain id not shown literally: ${fxState.chain}`);
    for (const want of ['double_prevote', '1,234,567.89', '✕ offline', '● up', '✕ down', '0.4 ms', '1 h 02 m', 'Turin'])
      if (!fxState.body.includes(want)) fail(`fixture page lacks "${want}"`);
    if (fxState.prevoteChips !== 3) fail(`expected 3 vote chips marked yes (2 prevotes + 1 precommit), got ${fxState.prevoteChips}`);
    if (fxState.bars !== 59 || fxState.slow !== 1) fail(`interval chart: ${fxState.bars} bars, ${fxState.slow} slow (expected 59, 1)`);
    const turin = (await rowsState(fx)).find((x) => x.name === 'turin');
    if (!turin || turin.online !== 'unknown') fail('a validator with no fields should render as unknown');
    log('fixture: markup shown as text, all fields rendered');

    // 5b. empty evidence, then /v1/status failing: banner
    fixture.evidence = [];
    await until('"no evidence" empty state', 5000, async () => (await fx.textContent('#evidence-body')).includes('no evidence'));
    statusMode = 'fail';
    await until('"Node unreachable" banner', 5000, async () => await fx.isVisible('#banner')
      && /Node unreachable/.test(await fx.textContent('#banner')));
    log('unreachable banner shown when /v1/status fails');
    await fx.close();

    if (external.length) fail(`the page requested non-local URLs: ${external.slice(0, 5).join(', ')}`);
    const real = pageErrors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED|ERR_FAILED/.test(e));
    if (real.length) fail(`page errors: ${real.join(' | ')}`);
    log('PASS');
  } finally {
    await ctx.close().catch(() => {});
    if (server) server.close();
  }
}

const hard = setTimeout(() => { console.error('[e2e] FAIL: overall time limit (240s)'); process.exit(1); }, 240000);
hard.unref();
main().then(() => { if (!process.argv.includes('--serve')) process.exit(0); }, (e) => {
  console.error(`[e2e] FAIL: ${e.isCheck ? e.message : (e && e.stack) || e}`);
  process.exit(1);
});
