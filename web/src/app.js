// tradecache dashboard: polls the node's HTTP API and follows its /ws events.
import { createChart, CandlestickSeries, ColorType } from 'lightweight-charts';

const $ = (id) => document.getElementById(id);
const MAX_LOGS = 200;
const dash = (window.__dash = {
  candles: 0, lastTime: 0, lastClose: 0, updates: 0, firstCandleMs: null,
  ws: 'off', health: null, wsEvents: 0, klineEvents: 0, polledBars: 0, logs: 0, nodes: 0, staleNodes: 0, heartbeats: 0,
});

// ---- tokens: #token=…&apitoken=… in the URL, else the fields, kept in localStorage ----
// token is /ws's (--ws-token); apiToken the API's (--api-token), sent as a
// Bearer header when set: the account and audit panels need it, and every
// panel with --api-auth all.
function readSecrets() {
  const out = {};
  for (const [name, key] of [['token', 'tradecache.token'], ['apitoken', 'tradecache.apitoken']]) {
    const m = location.hash.match(new RegExp('(?:^#|&)' + name + '=([^&]+)'));
    if (m) {
      out[name] = decodeURIComponent(m[1]);
      try { localStorage.setItem(key, out[name]); } catch {}
    } else {
      try { out[name] = localStorage.getItem(key) || ''; } catch { out[name] = ''; }
    }
  }
  if (location.hash) history.replaceState(null, '', location.pathname + location.search); // keep them out of the address bar
  return out;
}
const secrets = readSecrets();
let token = secrets.token;
let apiToken = secrets.apitoken;
$('token').value = token;
$('token').addEventListener('change', () => {
  token = $('token').value.trim();
  try { localStorage.setItem('tradecache.token', token); } catch {}
  reconnectNow();
});
$('apitoken').value = apiToken;
$('apitoken').addEventListener('change', () => {
  apiToken = $('apitoken').value.trim();
  try { localStorage.setItem('tradecache.apitoken', apiToken); } catch {}
});
const authHeaders = () => (apiToken ? { Authorization: 'Bearer ' + apiToken } : {});

async function getJSON(path, timeoutMs = 3000) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await fetch(path, { cache: 'no-store', signal: ctl.signal, headers: authHeaders() });
    const body = await res.json().catch(() => null);
    return { ok: res.ok, status: res.status, body };
  } finally {
    clearTimeout(timer);
  }
}

const fmt = (v, d = 2) => (v === undefined || v === null || v === '' || isNaN(+v) ? '–' : (+v).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: Math.min(d, 2) }));
function fmtUptime(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
}

// ---- status panel, every second ----
function setBanner(kind, text) {
  const b = $('banner');
  b.className = 'banner ' + (kind || 'hidden');
  b.textContent = text || '';
}
async function pollHealth() {
  try {
    const { ok, body: h } = await getJSON('healthz', 2000);
    if (!ok || !h) throw new Error('bad answer');
    dash.health = h;
    $('st-status').textContent = h.status;
    $('st-status').className = h.status === 'ok' ? 'ok' : 'bad';
    $('st-node').textContent = h.node_id;
    $('st-tier').textContent = h.cache_tier;
    $('st-redis').textContent = h.redis;
    const lat = typeof h.redis_latency_ms === 'number';
    document.querySelectorAll('.st-lat').forEach((e) => e.classList.toggle('hidden', !lat));
    $('st-latency').textContent = lat ? fmt(h.redis_latency_ms, 2) + ' ms' : '–';
    $('st-mode').textContent = (h.leader ? 'leader' : 'not leader') + (h.mode ? ' / ' + h.mode : '');
    $('st-uptime').textContent = fmtUptime(h.uptime_s);
    $('st-version').textContent = h.version || '–';
    if (h.status !== 'ok') setBanner('degraded', `degraded: cache on ${h.cache_tier} tier (Redis unreachable)`);
    else setBanner(null);
  } catch {
    dash.health = null;
    $('st-status').textContent = 'unreachable';
    $('st-status').className = 'err';
    setBanner('disconnected', 'disconnected: the node does not answer');
  }
}

// ---- chart ----
const chart = createChart($('chart'), {
  autoSize: true,
  layout: { background: { type: ColorType.Solid, color: '#161a21' }, textColor: '#d8dde6', attributionLogo: true },
  grid: { vertLines: { color: '#1f242d' }, horzLines: { color: '#1f242d' } },
  timeScale: { timeVisible: true, secondsVisible: false },
});
const series = chart.addSeries(CandlestickSeries, {
  upColor: '#26a69a', downColor: '#ef5350', borderVisible: false, wickUpColor: '#26a69a', wickDownColor: '#ef5350',
});
let sym = $('symbol').value, iv = $('interval').value, loadSeq = 0, lastLiveKline = 0;

function showLast() {
  $('last').textContent = dash.lastTime ? `${fmt(dash.lastClose)} · ${new Date(dash.lastTime * 1000).toISOString().slice(11, 16)} UTC · ${dash.candles} bars` : '';
}
function applyBar(bar) {
  if (!bar || bar.time < dash.lastTime) return; // series.update needs time ≥ the last
  series.update(bar);
  if (bar.time > dash.lastTime) dash.candles++;
  dash.lastTime = bar.time;
  if (bar.close !== dash.lastClose) dash.updates++;
  dash.lastClose = bar.close;
  showLast();
}
const rowBar = (r) => ({ time: r[0] / 1000, open: +r[1], high: +r[2], low: +r[3], close: +r[4] });

async function loadKlines() {
  const seq = ++loadSeq;
  try {
    const { ok, body } = await getJSON(`api/v1/klines?symbol=${encodeURIComponent(sym)}&interval=${encodeURIComponent(iv)}&limit=300`);
    if (seq !== loadSeq || !ok || !Array.isArray(body)) return;
    const bars = body.map(rowBar);
    series.setData(bars);
    dash.candles = bars.length;
    const last = bars[bars.length - 1];
    dash.lastTime = last ? last.time : 0;
    dash.lastClose = last ? last.close : 0;
    if (bars.length && dash.firstCandleMs === null) dash.firstCandleMs = performance.now();
    showLast();
  } catch {}
}
// Fallback when /ws is off or quiet: fetch the last bars every few seconds.
async function pollKlines() {
  if (Date.now() - lastLiveKline < 5000) return;
  if (!dash.lastTime) return loadKlines();
  try {
    const { ok, body } = await getJSON(`api/v1/klines?symbol=${encodeURIComponent(sym)}&interval=${encodeURIComponent(iv)}&limit=2`);
    if (ok && Array.isArray(body)) { dash.polledBars += body.length; body.map(rowBar).forEach(applyBar); }
  } catch {}
}
function onKline(k) {
  if (!k || k.s !== sym || k.i !== iv) return;
  lastLiveKline = Date.now();
  dash.klineEvents++;
  applyBar({ time: k.t / 1000, open: +k.o, high: +k.h, low: +k.l, close: +k.c });
}

// ---- market: book ticker and 24h ticker ----
function showBook(b) {
  if (!b || b.symbol !== sym) return;
  $('mk-bid').textContent = `${fmt(b.bidPrice)} × ${fmt(b.bidQty, 4)}`;
  $('mk-ask').textContent = `${fmt(b.askPrice)} × ${fmt(b.askQty, 4)}`;
}
function showTicker(t) {
  if (!t || t.symbol !== sym) return;
  $('mk-last').textContent = fmt(t.lastPrice);
  const pct = +t.priceChangePercent;
  $('mk-chg').textContent = `${fmt(t.priceChange)} (${fmt(pct)}%)`;
  $('mk-chg').className = pct >= 0 ? 'ok' : 'err';
  $('mk-hl').textContent = `${fmt(t.highPrice)} / ${fmt(t.lowPrice)}`;
  $('mk-vol').textContent = fmt(t.volume, 3);
}
async function pollMarket() {
  const q = encodeURIComponent(sym);
  const [b, t] = await Promise.allSettled([getJSON(`api/v1/bookTicker?symbol=${q}`), getJSON(`api/v1/ticker/24hr?symbol=${q}`)]);
  if (b.status === 'fulfilled' && b.value.ok) showBook(b.value.body);
  if (t.status === 'fulfilled' && t.value.ok) showTicker(t.value.body);
}

// ---- account: positions and USDT balance (404 when no account) ----
function showPositions(ps) {
  const rows = (Array.isArray(ps) ? ps : []).filter((p) => +p.positionAmt !== 0);
  $('ac-positions').replaceChildren(...rows.map((p) => {
    const tr = document.createElement('tr');
    for (const v of [p.symbol, fmt(p.positionAmt, 4), fmt(p.entryPrice), fmt(p.unRealizedProfit)]) {
      const td = document.createElement('td'); td.textContent = v; tr.append(td);
    }
    return tr;
  }));
  if (!rows.length) $('ac-note').textContent = 'no open position';
}
async function pollAccount() {
  try {
    const [p, b] = await Promise.all([getJSON('api/v1/positions'), getJSON('api/v1/balance?asset=USDT')]);
    if (p.ok) showPositions(p.body);
    if (b.ok && b.body) $('ac-balance').textContent = `${fmt(b.body.walletBalance)} (available ${fmt(b.body.availableBalance)})`;
    if (!p.ok) $('ac-note').textContent = (p.body && p.body.msg) || `positions: HTTP ${p.status}`;
  } catch {}
}

// ---- cache figures from /metrics ----
function sumMetric(text, name) {
  let sum = 0, seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const c = line.charAt(name.length);
    if (c !== ' ' && c !== '{') continue;
    const v = parseFloat(line.slice(line.lastIndexOf(' ') + 1));
    if (!isNaN(v)) { sum += v; seen = true; }
  }
  return seen ? sum : null;
}
async function pollMetrics() {
  try {
    const res = await fetch('metrics', { cache: 'no-store', headers: authHeaders() });
    if (!res.ok) return;
    const text = await res.text();
    const hits = sumMetric(text, 'tradecache_cache_hits_total');
    const misses = sumMetric(text, 'tradecache_cache_misses_total');
    $('ca-hits').textContent = fmt(hits, 0);
    $('ca-misses').textContent = fmt(misses, 0);
    $('ca-ratio').textContent = hits + misses > 0 ? fmt((100 * hits) / (hits + misses), 1) + ' %' : '–';
    $('ca-switches').textContent = fmt(sumMetric(text, 'tradecache_cache_tier_switches_total') ?? 0, 0);
  } catch {}
}

// ---- keys by family from /api/v1/keys/audit (the node caches it 30 s) ----
function fmtBytes(n) {
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + ' MiB';
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + ' KiB';
  return n + ' B';
}
async function pollAudit() {
  try {
    const r = await getJSON('api/v1/keys/audit', 10000);
    const body = $('ca-families').querySelector('tbody');
    if (!r.ok || !r.body) {
      $('ca-keys').textContent = r.status === 404 ? 'no Redis' : '–';
      $('ca-nottl').textContent = '–';
      body.replaceChildren();
      return;
    }
    $('ca-keys').textContent = fmt(r.body.keys, 0) + ' (' + fmtBytes(r.body.bytes || 0) + ')';
    $('ca-nottl').textContent = fmt(r.body.no_ttl_count, 0);
    $('ca-nottl').className = r.body.no_ttl_count > 0 ? 'bad' : '';
    const rows = (r.body.families || []).slice(0, 8).map((f) => {
      const tr = document.createElement('tr');
      for (const v of [f.name, fmt(f.keys, 0), fmtBytes(f.bytes || 0)]) {
        const td = document.createElement('td');
        td.textContent = v;
        tr.appendChild(td);
      }
      return tr;
    });
    body.replaceChildren(...rows);
    window.__dash.auditKeys = r.body.keys;
  } catch {}
}

// ---- logs ----
function addLog(d, isError) {
  if (!d) return;
  const li = document.createElement('li');
  if (isError) li.className = 'error';
  const ts = typeof d.timestamp === 'number' ? new Date(d.timestamp) : new Date(d.timestamp || Date.now());
  const attrs = d.attrs && typeof d.attrs === 'object' ? ' ' + Object.entries(d.attrs).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' ') : '';
  li.textContent = `${isNaN(ts) ? '' : ts.toISOString().slice(11, 23)} ${(d.level || '').toUpperCase()} [${d.node_id || ''}] ${d.message || ''}${attrs}`;
  const ol = $('logs');
  ol.prepend(li);
  dash.logs++;
  while (ol.children.length > MAX_LOGS) ol.lastChild.remove();
}

// ---- nodes: live.heartbeat (a node's /healthz body) from every node, every 5 s ----
const STALE_MS = 15000, DROP_MS = 60000, MAX_NODES = 100;
const nodes = new Map(); // node_id → { h, at }, least recently heard first
function onHeartbeat(h) {
  if (!h || typeof h.node_id !== 'string' || !h.node_id) return;
  dash.heartbeats++;
  nodes.delete(h.node_id);
  nodes.set(h.node_id, { h, at: Date.now() });
  while (nodes.size > MAX_NODES) nodes.delete(nodes.keys().next().value);
  renderNodes();
}
// The stream groups a node holds: "g0 g3 (2/21)"; at most 6 named.
function groupsCell(g) {
  if (!g || !Array.isArray(g.held)) return '–';
  const held = g.held.filter((x) => typeof x === 'string');
  const names = held.slice(0, 6).join(' ') + (held.length > 6 ? ' …' : '');
  return (names || 'none') + ` (${held.length}/${Number(g.total) || 0})`;
}
function groupsTitle(g) {
  if (!g || !Array.isArray(g.held)) return '';
  return '\nstream groups held: ' + (g.held.filter((x) => typeof x === 'string').join(', ') || 'none');
}
function renderNodes() {
  const now = Date.now(), self = dash.health && dash.health.node_id;
  for (const [id, n] of nodes) if (now - n.at > DROP_MS) nodes.delete(id);
  let stale = 0;
  const rows = [...nodes.values()].sort((a, b) => (a.h.node_id < b.h.node_id ? -1 : 1)).map(({ h, at }) => {
    const old = now - at > STALE_MS;
    if (old) stale++;
    const tr = document.createElement('tr');
    if (old) tr.className = 'stale';
    const cells = [
      [h.node_id + (h.node_id === self ? ' (this)' : '')],
      [old ? 'stale' : h.status, old ? 'err' : h.status === 'ok' ? 'ok' : 'bad'],
      [h.cache_tier],
      [(h.mode || '–') + (h.leader && h.mode !== 'leader' ? ' ★' : '')],
      [groupsCell(h.stream_groups)],
      [typeof h.redis_latency_ms === 'number' ? fmt(h.redis_latency_ms, 2) + ' ms' : '–'],
      [Math.round((now - at) / 1000) + ' s ago'],
    ];
    for (const [v, cls] of cells) {
      const td = document.createElement('td');
      td.textContent = v ?? '–';
      if (cls) td.className = cls;
      tr.append(td);
    }
    tr.title = h.node_id + (h.leader ? ' (leader)' : '') + groupsTitle(h.stream_groups);
    return tr;
  });
  $('nodes').replaceChildren(...rows);
  dash.nodes = nodes.size;
  dash.staleNodes = stale;
  $('nodes-count').textContent = nodes.size ? `(${nodes.size}${stale ? `, ${stale} stale` : ''})` : '(heartbeats via /ws)';
}

// ---- /ws with reconnection and backoff ----
let ws = null, backoff = 500, retryTimer = null;
function setWS(state, on) {
  dash.ws = state;
  $('ws-state').textContent = 'ws: ' + state;
  $('ws-state').className = 'pill' + (on ? ' on' : '');
}
async function decode(env) {
  if (!env.is_compressed) return env.data;
  const bin = Uint8Array.from(atob(env.data), (c) => c.charCodeAt(0));
  const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream('gzip'));
  return JSON.parse(await new Response(stream).text());
}
async function onMessage(ev) {
  let env;
  try { env = JSON.parse(ev.data); } catch { return; }
  if (env.type) { // protocol replies
    if (env.type === 'subscribed') { setWS('live', true); backoff = 500; }
    return;
  }
  dash.wsEvents++;
  let data;
  try { data = await decode(env); } catch { return; }
  // "<mode>.<name>": nodes name their mode with --event-prefix (live by
  // default); the page follows the name whatever the mode.
  const name = typeof env.event === 'string' ? env.event.slice(env.event.indexOf('.') + 1) : '';
  switch (name) {
    case 'kline': onKline(data); break;
    case 'book_ticker': showBook(data); break;
    case 'ticker': showTicker(data); break;
    case 'info_log': addLog(data, false); break;
    case 'error_log': addLog(data, true); break;
    case 'heartbeat': onHeartbeat(data); break;
    case 'positions': pollAccount(); break;
    case 'balance': pollAccount(); break;
  }
}
function connect() {
  clearTimeout(retryTimer);
  if (!token) { setWS('no token (add #token=… or fill the field)'); return; }
  const url = new URL('ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  setWS('connecting');
  const sock = (ws = new WebSocket(url));
  sock.onopen = () => {
    sock.send(JSON.stringify({ type: 'auth', token }));
    sock.send(JSON.stringify({ type: 'subscribe', events: ['*'] }));
  };
  sock.onmessage = onMessage;
  sock.onclose = (e) => {
    if (ws !== sock) return;
    ws = null;
    setWS(e.code === 1008 ? `refused (${e.reason || 'token'}), retrying` : 'disconnected, retrying');
    const delay = e.code === 1008 ? Math.max(backoff, 10000) : backoff;
    backoff = Math.min(backoff * 2, 15000);
    retryTimer = setTimeout(connect, delay * (0.8 + Math.random() * 0.4));
  };
}
function reconnectNow() {
  backoff = 500;
  if (ws) { const s = ws; ws = null; s.close(); }
  connect();
}

// ---- selection ----
function onSelect() {
  sym = $('symbol').value;
  iv = $('interval').value;
  dash.candles = 0; dash.lastTime = 0; dash.lastClose = 0;
  series.setData([]);
  lastLiveKline = 0;
  loadKlines();
  pollMarket();
}
$('symbol').addEventListener('change', onSelect);
$('interval').addEventListener('change', onSelect);

function every(ms, fn) { fn(); setInterval(fn, ms); }
every(1000, pollHealth);
loadKlines();
setInterval(pollKlines, 3000);
every(2000, pollMarket);
every(5000, pollAccount);
every(5000, pollMetrics);
every(30000, pollAudit);
setInterval(renderNodes, 1000);
connect();
