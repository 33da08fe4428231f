// Package binance is tradecache's own thin client for Binance USDⓈ-M
// futures: public market data (three REST endpoints and the market
// WebSocket streams) and the account side (listenKey, balances,
// positions, orders and the user data stream), decoded into the shared
// exchange.* types.
//
// # Why a thin client
//
// The Go SDKs were evaluated before writing this one. adshao/ccxt
// go-binance never reconnects market streams, keeps its endpoints in
// mutable package globals (hostile to hermetic and parallel tests), has an
// open data race that fails -race, lags the wire (no st/ps/ap) and decodes
// every combined frame twice. Binance's official Go connector knows the
// 2026 routed URLs but does not reconnect on read errors, decodes through
// map[string]interface{} and defaults to a 1 s REST timeout, too short for
// the 1.15 MB exchangeInfo. What tradecache needs most (reconnect,
// resubscribe, rotation, staleness detection, control-message pacing,
// per-path routing, backfill hooks) would have to be wrapped around either
// of them anyway, while the surface actually used is small.
//
// # REST
//
// REST implements exchange.MarketREST plus Ticker24hAll and ServerTime.
// It asks for gzip, always sends limit on klines (omitting it costs 5),
// keeps decimals as strings, and marks a kline Closed only if it closed
// before the request was made (the last bar of a most-recent request is
// open). Weight: every response's X-MBX-USED-WEIGHT-1M raises the local
// per-UTC-minute count, read with Weight. A 429 or 418 starts a
// client-wide cooldown (Retry-After, else the next minute for 429 and
// 2 min for 418); requests during it fail at once with an *APIError that
// matches ErrRateLimited, carries RetryAt and has NotSent set. Callers are
// never blocked for the cooldown. Binance error bodies
// {"code":-1121,"msg":"Invalid symbol."} become *APIError.
//
// With RESTConfig.Budget (a consumer-side interface; package ratelimit's
// Budget shares one through Redis) every request first asks the budget for
// its weight — klines 1/2/5/10 by limit, exchangeInfo 1, ticker/24hr 1 with
// a symbol and 40 without, time 1, listenKey 1, account and positionRisk 5
// each, orders 0 — and each answer's header and 429/418 are reported to
// it; the budget then owns the cooldown. A refusal is an *APIError like a
// cooldown's (ErrRateLimited, NotSent, RetryAt) wrapping the budget's
// error. Priorities travel on the context, which the client passes on.
//
// # Account REST
//
// REST implements exchange.AccountREST (CreateListenKey,
// KeepAliveListenKey, CloseListenKey, Account) plus Balances, Positions,
// PlaceOrder and SyncTime, with RESTConfig.APIKey and APISecret.
// listenKey calls (POST/PUT/DELETE /fapi/v1/listenKey, weight 1) send the
// X-MBX-APIKEY header and no signature. Signed calls put every parameter,
// recvWindow (RESTConfig.RecvWindow, default 5 s) and timestamp in the
// query string, also for POST (the body is empty), and append
// &signature=<hex HMAC-SHA256 of exactly that query string>. The
// timestamp is the local clock plus the offset measured by SyncTime
// (GET /fapi/v1/time, assuming the server read its clock half-way
// through the round trip); until SyncTime is called the offset is 0.
// Account reads GET /fapi/v3/account (assets → balances) and GET
// /fapi/v3/positionRisk (non-zero positions; v3 has no marginType, so
// "isolated" is derived from a non-zero isolatedWallet/isolatedMargin)
// concurrently, weight 5 each. Calls without credentials fail with
// ErrNoCredentials before anything is sent.
//
// Errors are *APIError and match (errors.Is): ErrBadSignature (-1022),
// ErrClockSkew (-1021: call SyncTime, then retry), ErrUnauthorized
// (-2015, -2014, -2008, bare 401) and exchange.ErrListenKeyNotFound
// (-1125: create a new key and reconnect). Nothing is retried.
//
// Credentials never leave the process except as the header and the
// signature, and are never printed: RESTConfig and *REST format (every
// fmt verb) and log (slog.LogValuer) the secret as [REDACTED] and the key
// as a SHA-256 fingerprint; transport errors have the URL's query
// (signature, listenKey) removed.
//
// # User data stream
//
// UserStream keeps one connection to
// <base>/private/ws?listenKey=<key>&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE
// (raw payloads; combined envelopes are accepted too). The consumer owns
// the key: ListenKey is called before every connection, OnExpired(key)
// tells it to drop a key that Binance declared expired (listenKeyExpired
// on the connection) or refused at the handshake (HTTP 400/401/404/410 or
// -1125), and the stream then reconnects with whatever ListenKey returns
// next. A listenKeyExpired that fails to decode still ends the connection
// (staying on a dead key would be silent). Reconnect forces a new
// connection, e.g. after a keepalive answered -1125. Stale detection,
// MaxFrame and the capped jittered backoff are those of the market
// streams, with two differences, since an account follows no fill while
// its stream is down or silent, and ACCOUNT_UPDATE carries no sequence
// number to show what was lost. The backoff stops at 5 s (not 30 s).
// And the client pings every 5 s: a ping whose pong has not come within
// PongTimeout (5 s) resets the connection (PongTimeouts), since a server
// that stopped answering may have dropped what it published meanwhile,
// and the reconnection's OnConnect re-seeds — unless the delay is the
// client's own (a frame read since the ping, a reader busy in OnEvent, a
// pong read just after the deadline). A server that answers no ping while
// it stalls is found within 10 s of the stall's start if the stall lasts
// at least 5 s; one that answers the queued ping when it resumes, only if
// the stall outlasts PongTimeout after a ping. Shorter stalls pass unseen,
// as they would by silence alone (StaleAfter, 30 s), and the consumer's
// periodic seed repairs them. Unknown event types (ACCOUNT_CONFIG_UPDATE,
// TRADE_LITE…) and control replies are counted (Unknown) and dropped,
// malformed frames are counted (Malformed); neither ends the connection.
//
// OnConnect is called after every (re)connection, before any event of it
// is delivered, so the consumer re-seeds from REST (Account): events may
// have been missed, and ACCOUNT_UPDATE is a delta. Rotation (Rotate,
// 23 h 50 m) is make-before-break and calls neither OnConnect nor
// OnDisconnect: a replacement is connected (with a fresh ListenKey call)
// but not read while the old connection delivers for RotateOverlap; then
// the old one is closed and the replacement delivers from its start,
// dropping events the old one already delivered (matched by payload
// hash; Duplicates). If the old connection was already dead when the
// replacement came up, or had a ping unanswered when it was closed, it is
// reported as a loss (OnDisconnect, OnConnect).
//
// # Streams: connection policy
//
// Stream names are routed per name: bookTicker and depth streams to
// /public, everything else to /market; each path gets its own connections,
// and a path with more than MaxStreamsPerConn (1024, Binance's limit)
// streams gets several. Each connection opens in combined mode with an
// empty list (<base><path>/stream?streams=) and then sends SUBSCRIBE with
// integer ids in batches of at most 200 names, paced at ControlRate (5/s;
// Binance disconnects above 10 messages/s, pings and pongs included). Acks
// are matched by id; an {"error":..} reply is logged and counted
// (ControlErrors) but not fatal; a missing ack is (AckTimeout). OnConnect
// is called once all acks are in.
//
// Keep-alive: server pings are answered with pongs; the client pings every
// PingInterval (20 s); any frame (data, ack, ping, pong) counts as life,
// and a connection silent for StaleAfter (30 s) is reset (StaleResets).
// Malformed frames and frames of unknown types or streams are counted and
// dropped; the connection is kept. A message above MaxFrame (4 MiB) is
// counted (Oversized) and resets the connection, since reading it further
// would be unbounded.
//
// Reconnect: after a lost connection or a failed dial, wait a capped
// exponential backoff with jitter (uniform in [d/2, d], d from BackoffMin
// 250 ms doubling to BackoffMax 30 s), reset once a connection has stayed
// up for HealthyAfter (1 min); then dial, resubscribe everything and call
// OnConnect, so the consumer backfills the gap from REST.
//
// Rotation is make-before-break: at Rotate (23 h 50 m, before Binance's
// 24 h cut) a replacement is dialled and subscribed while the old
// connection keeps delivering; both deliver for RotateOverlap (2 s), then
// the old one is closed. Because there is no gap, OnConnect is not called
// for a rotation. While the two overlap, and for RotateOverlap after, the
// slot drops per stream what the other connection already delivered and
// updates older than the newest delivered (all decoded streams carry
// snapshots, superseded by the next one); closed klines are only dropped
// as exact duplicates, so no bar's final update is lost (Duplicates). If
// the replacement cannot be established the old connection is kept and
// the rotation retried after a backoff; if the old connection died before
// the replacement was subscribed, that is reported as a loss
// (OnDisconnect, then OnConnect) so the consumer backfills.
//
// # Threading contract
//
// Run owns every goroutine: one supervisor per connection slot, and per
// WebSocket connection a reader with a pinger and a watchdog; all have
// exited when Run returns. OnEvent is called on a connection's reader
// goroutine, serialised per slot (so events of one stream arrive in
// order), but different slots call it concurrently: it must be safe for
// concurrent use and must not block; while it runs that connection reads
// nothing and answers no pings, and after StaleAfter it is reset. Events
// may arrive before the OnConnect of their connection. OnConnect and
// OnDisconnect are called from the slot's supervisor goroutine, never
// concurrently with each other for one slot; every OnConnect is followed
// by exactly one OnDisconnect (with ctx's error at shutdown). Stats may
// be called at any time from any goroutine.
//
// UserStream.Run likewise owns its goroutines: Run's own goroutine is the
// supervisor, and each connection has a reader, a pinger and a watchdog;
// all have exited when Run returns. OnEvent is called on the reader
// goroutine, never concurrently (one connection delivers at a time, also
// during a rotation), in the order received; the same rules apply (safe,
// quick, non-blocking). OnConnect, OnDisconnect and OnExpired are called
// on Run's goroutine, never concurrently with each other. OnConnect and
// OnDisconnect never run concurrently with OnEvent (OnConnect returns
// before its connection's first event; OnDisconnect follows the last);
// OnExpired may, when a rotation's handshake is refused while the old
// connection still delivers. ListenKey is called on Run's goroutine too. Stats and Reconnect may be called from any
// goroutine. REST is safe for concurrent use, SyncTime included.
//
// # Decoding
//
// DecodeFrame, DecodeUserEvent and the raw decoders (DecodeKline,
// DecodeTicker, DecodeTickerArray, DecodeBookTicker, DecodeKlinesREST)
// and the account REST decoders accept unknown
// fields, match keys case-sensitively ("E" and "e" are different fields),
// accept integers sent as strings and decimals sent as numbers (kept as
// their literal text), and require every field that maps to an exchange.*
// field. Errors wrap ErrUnknownEvent (well-formed but not decoded: other
// event types, control replies) or ErrMalformed. !ticker@arr rows of other
// markets (st != 1, e.g. COIN-M BTCUSD_PERP) are skipped.
// DecodeUserEvent requires every ACCOUNT_UPDATE/ORDER_TRADE_UPDATE field
// that maps to exchange.* except where Binance omits it: a.B and a.P
// (deltas; P is absent on a cross FUNDING_FEE) and o.N/o.n (no
// commission). listenKeyExpired's E may be a number or a string and its
// listenKey may be absent.
//
// DecodeKlineFrame is DecodeFrame for klines into a reused KlineFrame: the
// same verdicts and errors, and for a frame without escapes one validating
// pass and no allocation. Streams reads klines through it.
package binance
