// Package store is the in-process runtime state of a trading process: the
// Go form of Jesse's jesse/store, with its races and unbounded lists fixed.
//
// A Store (New) holds the application state (clock, session, time range,
// daily balances), orders per route, completed trades, the info and error
// logs, exchanges, candles, positions, tickers, aggregated trades,
// orderbook snapshots and free-form variables (SetVar, Var). Reset
// discards all of it. A route is an (exchange, symbol) pair; a candle
// series is a route and a timeframe. Nothing is a package global: every
// Store is independent.
//
// # Candles
//
// A candle is a [6]float64 in Jesse's column order
//
//	[timestamp, open, close, high, low, volume]
//
// (O, C, H, L: close comes before high and low). Each series is a
// fixed-capacity ring buffer (Config.CandleCapacity) kept sorted by
// timestamp with one candle per timestamp. AddCandle appends a newer
// candle (dropping the oldest when full), updates the newest (forming)
// candle in place when the timestamp equals it, replaces an older candle
// found by binary search in O(log n), and inserts a late candle whose
// timestamp is absent at its place: O(log n) to find, O(n) to shift, which
// is acceptable for the rare late candle. Candles with a zero, negative,
// fractional or unaligned timestamp or a non-finite value are rejected.
//
// EnableGeneration derives higher timeframes (3m … 1W) of a route from its
// 1m candles: first open, last close, highest high, lowest low, summed
// volume, timestamp ts - ts%tf (for 1W that is Thursday 00:00 UTC, as in
// Jesse; Config.MondayWeeks aligns weeks to Monday like Binance). Every 1m
// candle updates the forming
// candle of each generated timeframe in O(1); a late 1m candle
// re-aggregates its bucket from the stored 1m candles. A bucket aggregates
// the minutes that exist: no empty candle is invented for a missing
// minute.
//
// # Bounds
//
// Every list is bounded and drops its oldest entries when full: candles
// per series (10080), info and error logs (1000 each), completed trades
// (10000), daily balances (3650), tickers, trade buckets and orderbook
// snapshots per route (Jesse's 120, 120, 60). Orders per route are bounded
// at 1000 by dropping the oldest non-active order; active orders are never
// dropped. The number of routes, exchanges, positions and vars is that of
// the keys the caller writes: the store invents none.
//
// # Concurrency
//
// All methods are safe for concurrent use. Readers never share memory with
// writers: every read returns a copy (a [6]float64 row is copied by value;
// slices, maps and orderbook levels are copied), so a returned value never
// changes, and a row is never observed half-written. The one exception is
// Var, which returns the value SetVar was given: store values you do not
// mutate.
//
// Locks. Reset swaps the whole state in one atomic pointer store; every
// method loads the pointer once and works on that state. Within a state:
//
//   - each candle series has its own sync.RWMutex guarding its ring, its
//     "generated" mark and, for a 1m series, the generation state of the
//     route's higher timeframes (targets and forming-bucket prefixes);
//   - each route's orders, position, tickers, trade buckets (with the
//     pending window) and orderbooks have their own sync.RWMutex;
//   - the registries mapping routes and series to those values are
//     copy-on-write maps: a lookup is one atomic load and takes no lock; a
//     registry's Mutex only serialises the creation of a route, which
//     publishes a new map;
//   - the app state and daily balances share one RWMutex; both logs and
//     their sequence share one Mutex; completed trades, exchanges and vars
//     have one RWMutex each.
//
// Writers to different routes or series therefore share no lock and no
// written memory once their routes exist; readers of a series contend
// only with its writers, and readers of one series do not block each
// other.
//
// Lock order. A registry's Mutex is a leaf: nothing is acquired while it
// is held. Every method holds at most one of the other locks at a time,
// except:
//
//   - AddCandle on a 1m series with generation, and EnableGeneration, hold
//     the 1m series' lock and take the lock of each generated series of
//     the same route in turn (never two of them at once). The order is
//     always 1m series, then generated series; a generated series' lock is
//     never held while a 1m series' lock is requested. Holding the 1m lock
//     across the update makes "add 1m, update the forming candles" atomic
//     with respect to other 1m writers of the route, which is the race
//     Jesse's candle_service has; readers of a generated series see the
//     forming candle before or after a 1m update, never a mix.
//   - AddInfoLog and AddErrorLog read the session id under the app lock,
//     release it, then take the logs lock.
//
// No lock is held while calling code outside the package.
package store
