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
// stall, malformed, oversized and unknown; see FaultMode. GET /sim/stats
// returns Stats.
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
// funding; no COIN-M rows (st is always 1); no 418 bans. No account side
// yet: the user data stream, listenKeys and signed (HMAC) endpoints come
// later. Their places are kept: /private/stream and /private/ws accept
// connections and SUBSCRIBE (delivering nothing), and REST routes are
// registered in one place (routes) where signed /fapi endpoints can join.
package sim
