// Package storefeed keeps a store.Store live from a tradecache node: the
// strategy side's view of the market and the account, in process.
//
// A Feeder (New, then Run in a goroutine the caller owns) connects to the
// node's GET /ws with its token, subscribes to the node's events
// (<mode>.kline, ticker, orders, positions, balance, account_snapshot,
// info_log, error_log, heartbeat, cache_tier), and, once the node
// acknowledges the
// subscription, warms the Store over HTTP (Client):
//
//   - klines of every configured symbol and interval, up to the Store's
//     capacity for the timeframe and the node's 1500 per request; higher
//     timeframes named in Config.Generate are derived from 1m by the Store
//     itself (store.Store.EnableGeneration);
//   - the 24hr ticker of every symbol;
//   - the account's positions and the configured assets' balances, when
//     the node has an account.
//
// The node serves no open orders over HTTP: orders reach the Store only
// from live.orders events, so an order update lost while the feeder was
// away is not recovered (positions and balances, which it changes, are).
//
// Events then keep the Store current: every kline update (the forming
// candle in place, closed ones appended), tickers (which also set the
// current price of open positions), order updates, the positions and
// balances an account update changed, the whole account each time the
// node seeds it from the exchange (account_snapshot: a position it does
// not list is closed), and log records (into the info and error logs).
//
// # Without gaps
//
// Pub/sub has no replay, so the feeder reads over HTTP what it may have
// missed whenever that may have happened, and counts it (Stats.Resyncs):
//
//   - after every (re)connection: a node restart, a /ws drop;
//   - when a kline arrives more than one interval after the newest the
//     Store holds (Stats.Gaps);
//   - when a frame was dropped because the queue was full;
//   - at the first heartbeat of each connection: it proves the node's
//     event path works, and a node that had just started acknowledged the
//     subscription before its own subscription to Redis was up, losing
//     what it published meanwhile;
//   - when a node's heartbeat comes late (Config.HeartbeatGap), or says
//     its cache is back on Redis, or that it restarted, and when a node
//     publishes that its cache went back to Redis: events published while
//     Redis was away reached nobody;
//   - when the connection is silent for Config.StaleAfter yet answers a
//     ping (the node's Redis is down, so its events go nowhere): it reads
//     over HTTP every StaleAfter until events flow again. No pong ends the
//     connection.
//
// A resync of a series reads from the newest candle the Store held when
// the loss was noticed: 64 rows first, four times more until the node's
// rows reach back to it. A node that does not serve them yet (backfilling
// after its Redis came back empty) is asked again with backoff, up to
// MaxGapRetries times; a gap older than the node serves is left and
// counted (Stats.GapsUnfilled). Positions the Store holds open and the
// node no longer lists are closed (their quantity set to zero).
//
// Events received while a resync reads are applied after it, in order.
// A kline older than what the Store holds (a forming kline behind the
// newest candle, or behind a closed or busier state of its own candle) is
// skipped, and so is a position or balance whose update time is older than
// the one applied: stale events never overwrite newer state.
//
// Connections back off from Config.BackoffMin doubling to BackoffMax,
// jittered (half to all of the step). Run returns only when its context
// ends, or with ErrUnauthorized when the node refuses a token.
//
// # Bounds and goroutines
//
// Frames go from a reader goroutine (one per connection, ended and waited
// for before Run reconnects or returns) to a bounded queue (Config.Queue
// frames, Config.QueueBytes bytes, Config.MaxFrame per frame); when it is
// full the frame is dropped, counted (Stats.EventsDropped) and answered by
// a resync. Run's own goroutine applies frames and does the HTTP reads, so
// the Store is written from one goroutine; the Store is safe for any
// number of concurrent readers. The feeder's memory is bounded by the
// queue, the configured series and the account's symbols and assets. New
// starts nothing and does no I/O.
package storefeed
