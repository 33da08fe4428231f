// Package ratelimit keeps an exchange's REST request weight within a
// budget that every node of a deployment shares, so that no caller — a
// flood of read-throughs, a backfill, several nodes behind one IP — walks
// the IP into the exchange's limit (Binance: 2400 weight per minute and
// IP, 429 beyond it, 418 bans for repeating).
//
// # The budget
//
// A Budget counts weight in a fixed one-minute window aligned to the UTC
// minute, the window Binance's own counter (X-MBX-USED-WEIGHT-1M) uses. A
// REST client asks it before every request (Acquire, with the request's
// weight) and tells it what each answer said: the used-weight header
// (Observe; the budget keeps the larger of its count and the exchange's)
// and a 429 or 418 with its Retry-After (Cooldown).
//
// With Redis the window lives in one hash per egress identity,
// rest_weight:{egress} {window, used} (TTL 2 min), updated by Lua scripts
// that read Redis's clock (TIME), so every node counts in the same window
// whatever its own clock says:
//
//   - acquire: start the caller's own cooldown in rest_cooldown:{egress}
//     if it knows one Redis lacks or holds shorter (met while Redis was
//     unreachable, or its cooldown write failed), as the cooldown script
//     does; refuse if rest_cooldown:{egress} exists; start a new window
//     when the minute changed; count the caller's last known figure for the
//     window (its local view: what it spent while Redis was unreachable and
//     the headers it saw); refuse if the weight would pass the caller's
//     ceiling, else add it. One round trip per request.
//   - observe: raise used to the header's figure if the answer belongs to
//     the current window (an answer from the previous minute is ignored:
//     Binance's counter has reset too).
//   - cooldown: SET rest_cooldown:{egress} <status> PX <Retry-After> unless
//     a cooldown already in force lasts as long; every node then refuses
//     until it expires, so none walks into a 418.
//
// The egress identity names what the exchange counts by: the IP requests
// leave from. Nodes that share it (behind one NAT, on one host) must share
// the egress; nodes with their own IPs may each take their own.
//
// # Priorities
//
// A request is User (the default: read-throughs a user triggered) or
// System (backfill, account seeds, listenKey upkeep, the exchangeInfo
// load that validates symbols), named on the context with WithPriority.
// System requests may use the whole window (Config.Limit, 2000 by
// default, leaving Binance's other 400 to tools the budget does not see);
// User requests only Config.UserShare of it (50 %), so the other half is
// always there for the system.
//
// Refusals are immediate: a refused call fails with a *Refusal (reason
// "budget" or "cooldown", RetryAt the next window or the cooldown's end)
// and nothing is sent; no caller is held waiting.
//
// # Without Redis
//
// While Redis is unreachable (Config.Redis returns nil, or a script
// fails) each node decides alone with the same rules, in memory: its own
// count in the local clock's minute, raised by every header the exchange
// sends (which counts every node of the IP), and the cooldowns it met.
// The local view is kept while Redis answers too, so a node falls back
// with what it knew and pushes what it spent alone back into Redis on its
// next call. So are the cooldowns it knows of: one it met while Redis was
// unreachable is still refused once Redis answers, and its next call
// starts it in Redis for every node (Binance lengthens the 418 bans of
// whoever keeps sending).
//
// # Reporting
//
// Collector exports the limit and the ceilings, the weight used and
// remaining in the current window as this node knows it, the weight
// granted, refused calls by reason and priority, cooldowns started, the
// cooldown left, whether decisions are shared (Redis) or per-node
// (memory), and Redis failures. A cooldown is logged once, at WARN, by the
// node that started it; refused calls are counted, not logged.
package ratelimit
