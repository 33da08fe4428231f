// Package sim is a simulated Binance USDⓈ-M futures exchange that speaks
// Binance's real wire format. It is the test fixture of the project and
// its offline demo: point a client's REST base at the server's URL and its
// stream base at ws://host/market (or /public) and it cannot tell the
// difference for what is simulated.
//
// # What it simulates
//
// REST, with Binance's field names, decimals as strings, {"code","msg"}
// errors and weights:
//
//	GET /fapi/v1/ping, /fapi/v1/time         weight 1
//	GET /fapi/v1/exchangeInfo                weight 1
//	GET /fapi/v1/klines                      weight 1/2/5/10 by limit (5 without)
//	GET /fapi/v1/ticker/24hr[?symbol=]       weight 1 with symbol, 40 without
//
// Weight is counted per client IP in the current UTC minute of the real wall
// clock (reset on the clock minute, failed requests included). Every answer
// carries X-MBX-USED-WEIGHT-1M; beyond Config.WeightLimit the answer is 429
// with Retry-After (seconds to the next minute) and code -1003.
// SetRESTRefusal (or POST /sim/ratelimit?status=429|418&retryAfter=…&duration=…;
// status=0 ends it) makes every weighted request answer 429 or 418 with
// that Retry-After whatever the weight. RESTStats (GET /sim/rest) counts
// the weighted requests, their weight (in all and per UTC minute), the
// refused ones and the requests per path: what clients cost the exchange.
//
// WebSocket market streams on the 2026 routed paths, in combined mode
// (/market/stream?streams=a/b, /public/stream) and raw mode
// (/market/ws/a/b, /public/ws/a/b), with live SUBSCRIBE, UNSUBSCRIBE,
// LIST_SUBSCRIPTIONS, SET_PROPERTY and GET_PROPERTY ("combined"); ids may be
// integers or strings and are echoed byte for byte. Streams:
//
//	<symbol>@kline_<interval>   /market  every Config.KlineUpdateEvery, plus one
//	                                     x:true update per bar when it closes
//	<symbol>@ticker             /market  24hrTicker, every Config.TickerEvery
//	!ticker@arr                 /market  array of 24hrTicker, every Config.TickerArrEvery
//	<symbol>@bookTicker         /public  every Config.BookTickerEvery
//	!bookTicker                 /public  one bookTicker per symbol, same period
//
// Ticker and bookTicker payloads carry the post-2026 "ps" and "st" fields;
// the kline does not. As on Binance: every SUBSCRIBE is acknowledged, but a
// stream on the wrong route, with an upper-case symbol, of an unknown
// symbol or of a type the sim does not produce delivers nothing; the
// legacy /ws and /stream paths deliver public-route data only; more than
// Config.MaxStreams (1024) subscriptions is answered with error code 4
// "Too many subscriptions" then close 1008; more than Config.MaxIncoming
// (10) incoming messages per second (control messages and pings) closes
// with 1008 "Too many requests"; the server pings every Config.PingInterval
// (3 min) and answers pings. Each connection has a bounded write queue: a
// client that does not keep up is closed (1008) and nobody else waits.
//
// Faults for tests (SetFault, or POST /sim/fault?mode=…&duration=…): drop,
// stall, malformed, oversized, unknown and chaos; see FaultMode. They apply
// to /private connections too. GET /sim/stats returns Stats.
//
// # Chaos and the ground truth
//
// FaultChaos is every fault at once, per connection, on a schedule drawn
// from a seed and the connection's number (connections are numbered in the
// order they are accepted), so a seed replays the same faults on the same
// connections: drops of every kind (close 1001, close 1008, TCP reset, FIN
// without a close frame), a silent stall of one connection at a time
// (nothing sent, no ping answered; what is published meanwhile is lost),
// floods of small frames (50,000 within a second), 2 MiB and 16 MiB
// messages, garbage frames, a closed bar's final replayed with other prices
// (a conflict), and in-progress updates of closed bars re-sent after their
// final. Each knob is a mean time between two events on one connection
// (exponential), in real time; see Chaos for the knobs and their defaults.
// Config.Chaos puts it in force from New; POST /sim/fault?mode=chaos
// starts it with the knobs in the query over Config.Chaos's (seed=N,
// drop=4s, stall=15s, stallFor=40s, flood=10s, floodFrames=50000,
// floodWithin=1s, big=8s, bigSizes=2097152/16777216, garbage=500ms,
// replay=2s, resend=1s; "off" for never), with duration= as for any fault;
// tradecache sim --chaos seed=N,… takes the same knobs. GET /sim/chaos
// reports whether it is in force, its knobs and what it did (ChaosStats).
// REST is never disturbed.
//
// The ground truth, whatever the fault: TrueKlines, or GET
// /sim/truth/klines?symbol=&interval=&startTime=&endTime= (no weight),
// returns every final kline with an open time in the range that has
// closed by the sim clock, as JSON objects with Binance's single-letter
// kline fields (x always true): what REST answers and what the stream's
// final update of the bar said.
//
// # Accounts
//
// Config.Accounts (tradecache sim --api-key K --api-secret S --balance
// USDT=10000) are one-way (positionSide BOTH), cross-margin, single-asset
// accounts, reached by API key:
//
//	GET    /fapi/v3/account       signed, weight 5  totals (USDT), assets[], non-zero positions[]
//	GET    /fapi/v3/positionRisk  signed, weight 5  non-zero positions; with symbol= that one, flat or not
//	POST   /fapi/v1/order         signed, weight 0  MARKET only; filled at once
//	POST   /fapi/v1/listenKey     API key, weight 1 the account's live key, extended, or a new one
//	PUT    /fapi/v1/listenKey     API key, weight 1 keepalive (listenKey= optional); -1125 if none
//	DELETE /fapi/v1/listenKey     API key, weight 1 invalidates the key
//
// Signed requests are checked as Binance checks them: X-MBX-APIKEY
// (missing or unknown: 401 -2015), timestamp and signature (-1102 when
// missing), recvWindow (default 5000; above 60000: -1131), the signature,
// a hex HMAC-SHA256 keyed by the secret of the query string followed by a
// form body, each without signature= (-1022), then the timestamp (-1021
// when more than 1 s ahead or older than recvWindow). Parameters may be in
// the query (as the official connectors send them, even for POST) or a
// form body (as go-binance does). Timestamps are checked against the REAL
// wall clock, not the sim clock: /fapi/v1/time answers the sim clock, so a
// client that offsets its timestamps by it fails with -1021 when Speed is
// not 1 or Start is not now. Account-side times (updateTime, E, T,
// listenKey lifetimes) are real time too.
//
// A MARKET order fills its whole quantity at once at the symbol's current
// price (the market model's last trade price at the sim clock, also the
// mark price for unrealized PnL and margins). The position's amount is
// signed; an increase adds to its cost (the entry price is the average,
// cost/|amount|), a decrease realizes (exit − entry)·closed on the part
// closed, and an order larger than the position closes it and opens the
// rest on the other side. Every fill pays a 0.04 % taker commission of
// its notional in the margin asset (the quote asset); the wallet balance
// moves by realized PnL − commission. Leverage is 20 (initial margin
// |notional|/20), maintenance margin 0.4 % of the notional, the break-even
// price the entry moved by one commission, the liquidation price the
// cross-margin one with the other positions at their marks. All of it is
// exact integer arithmetic: money to 8 decimals, rounded half away from
// zero where a division is inexact (commission, a partial close's share
// of the cost, margins, displayed prices). Orders are refused as Binance
// refuses them: -1121 symbol, -1117 side, -1116 type, -1111 precision,
// -4003 quantity, -4005 above the MARKET_LOT_SIZE maximum, -4164 below
// MIN_NOTIONAL (unless reduceOnly), -2019 margin (an order that opens
// exposure must leave available balance ≥ 0), -2022 a reduceOnly order
// that would open, flip or exceed the position, -4061 positionSide
// LONG/SHORT (hedge mode), -4015 newClientOrderId, -1106 price with
// MARKET. LIMIT and the conditional types are answered -1020 "This
// operation is not supported." The answer is always the RESULT form
// (status FILLED), whatever newOrderRespType.
//
// User data stream on /private:
//
//	/private/ws?listenKey=<k>&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE
//
// (raw payloads; events= filters, absent means all),
// /private/stream?listenKey=<k>… (combined envelope
// {"stream":"<k>","data":…}; listenKey and events may repeat, paired in
// order), and SUBSCRIBE with the listenKey as the stream name on any
// /private connection (as Binance's Node connector does), or
// /private/ws/<k>. Streams named in the URL are subscribed before the
// handshake answer, so an order placed once the connection is open is
// delivered on it. An unknown or expired listenKey in the query is refused
// before the upgrade with HTTP 400 {"code":-1125}; as a SUBSCRIBE it is
// acknowledged and delivers nothing, like any undeliverable stream. Each
// fill pushes ORDER_TRADE_UPDATE NEW (without N and n, as Binance omits
// them without commission), ORDER_TRADE_UPDATE TRADE/FILLED, then
// ACCOUNT_UPDATE (m ORDER) with the margin asset in B and only the
// position that changed in P, flat ones included: a delta, never a
// snapshot. A listenKey lives Config.ListenKeyTTL (60 min) of real time
// from its last POST or PUT; when it expires every connection on it
// receives {"e":"listenKeyExpired","E":"<ms>","listenKey":…} once (E a
// string, as Binance sometimes sends it), stays open and gets no more user
// data. DELETE stops the data without that event.
//
// Controls for tests: ExpireListenKey, or POST
// /sim/listenkey/expire?listenKey=…, expires a key now; PlaceOrder goes
// through the REST order path in process; Account returns a snapshot in
// the exchange package's vocabulary.
//
// # Determinism
//
// The market is a pure function of Config.Seed and the symbol: the kline of
// (symbol, interval, openTime) is the same whether fetched by REST or
// streamed, before or after it closed, in this process or another with the
// same seed, whatever Speed and Start are. The still-open bar evolves with
// the sim clock and its state at close is exactly the closed bar, so a
// client that backfills after a gap sees consistent data. Longer intervals
// aggregate 1m bars exactly (open of the first, close of the last, max, min,
// sums). The sim clock is Config.Start plus Speed times the real time since
// New; Start and History only decide which bars exist so far.
//
// # What it does not simulate
//
// No order book depth, trades, aggTrade, mark price, mini tickers or
// funding; no COIN-M rows (st is always 1); no 418 bans of their own (only
// through SetRESTRefusal). On the account
// side: no LIMIT or conditional orders, open orders, cancels, order
// queries, trade history or income; no hedge mode, isolated margin,
// leverage or margin-type changes, multi-assets mode or leverage brackets;
// no funding fees, liquidations or ADL (the liquidation price is reported,
// never acted on); no deposits or transfers; no order-count limits or
// X-MBX-ORDER-COUNT headers; no ACCOUNT_CONFIG_UPDATE, TRADE_LITE or other
// user events; no WebSocket API (session logon, userDataStream.*) and no
// Ed25519/RSA keys, only HMAC.
package sim
