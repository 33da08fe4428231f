// End-to-end test of the dashboard in Debian's Chromium (playwright-core).
// Env: E2E_URL (node base URL), E2E_TOKEN (/ws token), optional E2E_API_TOKEN
// (the node's --api-token, given to the page as #apitoken=), E2E_NODE_ID,
// E2E_REDIS_PID/E2E_REDIS_PORT (kill that Redis, then restart one on the port),
// E2E_CHROMIUM (default /usr/bin/chromium), E2E_ARTIFACTS (default ../artifacts
// from web/, i.e. <repo>/artifacts). Exits non-zero on failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync, openSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const base = (process.env.E2E_URL || '').replace(/\/$/, '');
const token = process.env.E2E_TOKEN || '';
const apiToken = process.env.E2E_API_TOKEN || '';
const nodeId = process.env.E2E_NODE_ID || '';
const redisPid = +process.env.E2E_REDIS_PID || 0; // set: kill this Redis and expect the degraded banner
const redisPort = +process.env.E2E_REDIS_PORT || 0; // set with E2E_REDIS_PID: restart Redis on this port and expect recovery
const redisDir = process.env.E2E_REDIS_DIR || tmpdir();
const redisPidFile = process.env.E2E_REDIS_PIDFILE || ''; // the restarted Redis's pid, for run.sh's cleanup
const nodePid = +process.env.E2E_NODE_PID || 0; // set: stop the node at the end and expect the disconnected banner
const shot = process.env.E2E_SHOT_PREFIX || 'dashboard';
const artifacts = process.env.E2E_ARTIFACTS || path.resolve(here, '../../artifacts');
if (!base || !token) {
  console.error('dashboard e2e: set E2E_URL and E2E_TOKEN');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const userDataDir = mkdtempSync(path.join(tmpdir(), 'tradecache-e2e-'));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = ctx.pages()[0] || (await ctx.newPage());
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
page.on('console', (m) => { if (m.type() === 'error') console.log('browser console error:', m.text()); });
const offsite = [];
page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith(base.replace(/^http/, 'ws'))) offsite.push(r.url()); });

let failed = false;
const step = async (name, fn) => {
  const t0 = Date.now();
  try {
    const v = await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    return v;
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
    await page.screenshot({ path: path.join(artifacts, `${shot}-failure.png`), fullPage: true }).catch(() => {});
    throw e;
  }
};
const dash = () => page.evaluate(() => ({ ...window.__dash, health: undefined }));

const figures = {};
let redisChild = null; // the Redis this script restarts, stopped at the end
try {
  await step('page loads', async () => {
    const api = apiToken ? `&apitoken=${encodeURIComponent(apiToken)}` : '';
    const res = await page.goto(`${base}/#token=${encodeURIComponent(token)}${api}`, { waitUntil: 'load' });
    if (!res.ok()) throw new Error(`GET / = ${res.status()}`);
    if (!(await page.locator('#chart').count())) throw new Error('no #chart: is the dashboard built?');
  });
  await step('status panel shows the node id and tier', async () => {
    await page.waitForFunction((id) => {
      const n = document.getElementById('st-node').textContent;
      const tier = document.getElementById('st-tier').textContent;
      return (id ? n === id : n && n !== '…') && /^(redis|memory)$/.test(tier);
    }, nodeId, { timeout: 15000 });
    figures.node = await page.textContent('#st-node');
    figures.tier = await page.textContent('#st-tier');
  });
  await step('chart has candles', async () => {
    await page.waitForFunction(() => window.__dash.candles > 0 && window.__dash.firstCandleMs !== null, null, { timeout: 20000 });
    const d = await dash();
    figures.time_to_first_candle_ms = Math.round(d.firstCandleMs);
    figures.candles = d.candles;
    await page.screenshot({ path: path.join(artifacts, `${shot}-first-candle.png`), fullPage: true });
  });
  await step('/ws is live', async () => {
    await page.waitForFunction(() => window.__dash.ws === 'live' && window.__dash.wsEvents > 0, null, { timeout: 15000 });
  });
  await step('Nodes panel shows the node itself (heartbeat)', async () => {
    const t0 = Date.now();
    await page.waitForFunction(() => window.__dash.nodes >= 1, null, { timeout: 7000, polling: 100 });
    figures.first_heartbeat_ms = Date.now() - t0;
    const id = await page.textContent('#st-node');
    const rows = await page.textContent('#nodes');
    if (!rows.includes(id)) throw new Error(`no row for ${id} in the Nodes panel: ${rows}`);
    figures.nodes = (await dash()).nodes;
  });
  await step('a live update changes the last candle', async () => {
    const d0 = await dash();
    const t0 = Date.now();
    await page.waitForFunction(([time, close, updates]) => {
      const d = window.__dash;
      return d.updates > updates && (d.lastClose !== close || d.lastTime > time);
    }, [d0.lastTime, d0.lastClose, d0.updates], { timeout: 70000, polling: 100 });
    const d1 = await dash();
    figures.first_live_change_ms = Date.now() - t0;
    figures.last = { time: d1.lastTime, close: d1.lastClose, was: d0.lastClose };
  });
  await step('updates keep coming', async () => {
    // The simulator's price moves at most once a second and may stay put
    // for a second or two: wait for two more changes rather than counting
    // them in a fixed 3 s (which failed when the walk paused).
    const u0 = (await dash()).updates;
    const t0 = Date.now();
    await page.waitForFunction((u0) => window.__dash.updates >= u0 + 2, u0, { timeout: 15000, polling: 100 })
      .catch(async () => { throw new Error(`only ${(await dash()).updates - u0} updates in 15 s`); });
    figures.updates_per_s = ((await dash()).updates - u0) / ((Date.now() - t0) / 1000);
  });
  await step('market, cache and attribution are shown', async () => {
    await page.waitForFunction(() => document.getElementById('mk-bid').textContent !== '–' && document.getElementById('ca-hits').textContent !== '–', null, { timeout: 10000 });
    const href = await page.getAttribute('footer a[href="https://www.tradingview.com/"]', 'href');
    if (!href) throw new Error('no TradingView link');
    const footer = await page.textContent('footer');
    if (!footer.includes('TradingView Lightweight Charts™')) throw new Error('no NOTICE text');
  });
  await step('no page errors, no off-site requests', async () => {
    if (errors.length) throw new Error(errors.join('; '));
    if (offsite.length) throw new Error('off-site: ' + offsite.join(', '));
  });
  figures.log_rows = await page.locator('#logs li').count();
  {
    const d = await dash();
    figures.ws_events = d.wsEvents;
    figures.kline_events = d.klineEvents;
  }
  await page.screenshot({ path: path.join(artifacts, `${shot}-live.png`), fullPage: true });
  // Without /ws (a wrong token) the page still follows the chart by polling.
  await step('fallback: a refused /ws token, the chart still advances by polling', async () => {
    const p2 = await ctx.newPage();
    p2.on('pageerror', (e) => errors.push(String(e)));
    try {
      await p2.goto(`${base}/#token=wrong-token-for-the-e2e-test`, { waitUntil: 'load' });
      await p2.waitForFunction(() => window.__dash.candles > 0, null, { timeout: 20000 });
      await p2.waitForFunction(() => /refused/.test(window.__dash.ws), null, { timeout: 15000 });
      const d0 = await p2.evaluate(() => ({ ...window.__dash, health: undefined }));
      await p2.waitForFunction(([close, time]) => window.__dash.polledBars > 0 && (window.__dash.lastClose !== close || window.__dash.lastTime > time),
        [d0.lastClose, d0.lastTime], { timeout: 20000, polling: 200 });
      const d1 = await p2.evaluate(() => ({ ...window.__dash, health: undefined }));
      if (d1.wsEvents !== 0) throw new Error(`${d1.wsEvents} /ws events with a wrong token`);
      await p2.screenshot({ path: path.join(artifacts, `${shot}-fallback.png`), fullPage: true });
    } finally {
      await p2.close();
    }
  });
  await step('no page errors in the fallback page', async () => {
    if (errors.length) throw new Error(errors.join('; '));
  });
  if (redisPid) {
    await step('Redis killed: the degraded banner shows, the chart goes on', async () => {
      await page.waitForFunction(() => document.getElementById('st-tier').textContent === 'redis' && document.getElementById('banner').classList.contains('hidden'), null, { timeout: 20000 });
      process.kill(redisPid, 'SIGKILL');
      const t0 = Date.now();
      await page.waitForFunction(() => document.getElementById('banner').classList.contains('degraded'), null, { timeout: 30000, polling: 100 });
      figures.degraded_banner_after_ms = Date.now() - t0;
      figures.degraded_banner = await page.textContent('#banner');
      const u0 = (await dash()).updates;
      await page.waitForFunction((u) => window.__dash.updates > u, u0, { timeout: 20000 }).then(
        () => { figures.chart_updates_while_degraded = true; },
        () => { figures.chart_updates_while_degraded = false; });
      await page.waitForFunction(() => window.__dash.logs > 0, null, { timeout: 5000 }).catch(() => {});
      figures.log_rows_after_degraded = await page.locator('#logs li').count();
      await page.screenshot({ path: path.join(artifacts, `${shot}-degraded.png`), fullPage: true });
    });
    if (redisPort) {
      await step('Redis restarted on the same port: the status returns to ok', async () => {
        redisChild = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(redisPort), '--save', '', '--appendonly', 'no', '--dir', redisDir],
          { stdio: ['ignore', openSync(path.join(redisDir, 'redis-restarted.log'), 'a'), 'inherit'] });
        redisChild.on('error', (e) => console.log('redis-server restart:', e.message));
        if (redisPidFile) writeFileSync(redisPidFile, String(redisChild.pid));
        const t0 = Date.now();
        await page.waitForFunction(() => document.getElementById('banner').classList.contains('hidden')
          && document.getElementById('st-tier').textContent === 'redis' && document.getElementById('st-status').textContent === 'ok',
        null, { timeout: 10000, polling: 100 });
        figures.recovered_after_ms = Date.now() - t0;
        figures.redis_latency_after_recovery = await page.textContent('#st-latency');
        // Not asserted (the Go side's concern): do the heartbeats over the Redis bus resume?
        // (ms from the restart to the first heartbeat received after recovery; null: none within 12 s)
        const hb = (await dash()).heartbeats;
        figures.heartbeat_after_restart_ms = await page.waitForFunction((n) => window.__dash.heartbeats > n, hb,
          { timeout: 12000, polling: 100 }).then(() => Date.now() - t0, () => null);
        await page.screenshot({ path: path.join(artifacts, `${shot}-recovered.png`), fullPage: true });
      });
    }
  }
  if (nodePid) {
    await step('node stopped: the disconnected banner shows', async () => {
      process.kill(nodePid, 'SIGTERM');
      const t0 = Date.now();
      await page.waitForFunction(() => document.getElementById('banner').classList.contains('disconnected'), null, { timeout: 15000, polling: 100 });
      figures.disconnected_banner_after_ms = Date.now() - t0;
      await page.waitForFunction(() => !/^live/.test(window.__dash.ws), null, { timeout: 10000 });
      await page.screenshot({ path: path.join(artifacts, `${shot}-disconnected.png`), fullPage: true });
    });
  }
} catch {
  failed = true;
} finally {
  await ctx.close().catch(() => {});
  if (redisChild && redisChild.exitCode === null) redisChild.kill('SIGTERM');
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log('figures ' + JSON.stringify(figures));
console.log(failed ? 'dashboard e2e: FAILED' : 'dashboard e2e: passed');
process.exit(failed ? 1 : 0);
