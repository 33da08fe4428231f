// Package notify sends notifications of error logs and chosen events to a
// generic webhook, Telegram, Slack and Discord: Jesse's send_notification
// and webhook (J5), made so that a failing sink never blocks the bus, the
// node or the other sinks.
//
// # Sinks
//
//   - Webhook POSTs the Notification as JSON ({"event","title","text",
//     "data","time"}) with the configured headers.
//   - Telegram POSTs {BaseURL}/bot{Token}/sendMessage with chat_id and
//     text (plain, link previews off); it reads the Bot API's
//     {"ok":false,"description"} and 429's parameters.retry_after.
//   - Slack POSTs {"text"} to an incoming webhook.
//   - Discord POSTs {"content"} (mentions disabled) to a channel webhook;
//     it reads 429's JSON retry_after (seconds) and Retry-After.
//
// Chat sinks show the title, then the text, cut to the service's limit
// (Telegram 4096, Discord 2000, Slack 40000 UTF-16 units) with "…".
// Every sink honours a Retry-After header. WithSink adds sinks of one's own.
//
// # Configuration and secrets
//
// FromEnv reads TRADECACHE_NOTIFY_* (see the Env constants). Tokens,
// webhook URLs and webhook header values are secrets: Config and the sink
// types print and log themselves redacted (String, GoString, LogValue;
// Config.Redacted), FieldError and SendError never quote them (transport
// errors are stripped of the URL net/http puts in them), and the
// Notifier's log lines are scrubbed of every configured secret as well.
//
// # Policies and bounds
//
//   - Notify never blocks. Each sink has its own queue of Config.QueueSize
//     (256); when it is full the oldest notification is dropped and
//     counted, and the next one delivered says how many were dropped: a
//     sink that comes back gets the latest state, not a stale backlog.
//   - Retries: network errors, 408, 429 and 5xx are retried up to
//     Config.MaxAttempts (5) attempts, waiting a jittered exponential
//     backoff (1 s doubling to 30 s, jittered into [d/2, d]) or the
//     service's retry_after, whichever is longer (retry_after capped at
//     5 min). Other 4xx fail at once. Each attempt has Config.Timeout (10 s).
//     Give-ups are counted and logged at Warn (never Error, so a node that
//     turns error logs into events cannot feed failures back in).
//   - Rate limit: a token bucket per sink (DefaultRate: Telegram 1/s,
//     Discord 5 per 2 s, others 1/s with a burst of 5), applied to every
//     attempt.
//   - De-duplication: a notification with the same Event, Title and Text
//     as one sent less than Config.DedupeWindow (1 min) ago is counted, not
//     sent. When the window closes with repeats, one message with the text
//     and "(repeated N times in the last 1m)" is sent and a new window
//     opens; a message that repeats forever is sent once per window. At
//     most 1024 distinct notifications are remembered; beyond that, new
//     ones are not de-duplicated.
//   - Notify bounds Title and Text (MaxTitle, MaxText) before anything.
//
// # Goroutines
//
// New starts none. Run starts one goroutine per sink, each draining its
// own queue through its own rate limit and retries, and one that reports
// repeats when their window closes; it returns when ctx ends, after all
// have stopped. Notifications still queued then are left (Stats shows
// them as Queued). Stats and Collector (tradecache_notify_*) report
// received, deduplicated, and per sink sent, failed, retries, dropped and
// queued.
//
// # Events
//
// HandleEvent, or Forward over a bus.Subscriber, turns bus events into
// notifications: "*.error_log" (unless Config.IgnoreErrors) and the
// Config.Events patterns. Render uses the payload's "message" as text.
package notify
