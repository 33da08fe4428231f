// Package gateway relays bus events to browsers and programs over
// WebSocket, at GET /ws of a node. It replaces Jesse's relay, which took a
// static unsalted hash as token in the query string, compared it in
// variable time, checked no Origin, sent every event to every client, and
// let one slow browser stall all of them.
//
// # Protocol
//
// Authentication, one of:
//
//   - A program sends "Authorization: Bearer <token>" with the upgrade
//     request. A wrong token (or another scheme) is HTTP 401; no WebSocket.
//   - A browser, which cannot set headers, upgrades without it and sends
//     {"type":"auth","token":"…"} as its first message, within AuthTimeout
//     (5 s). A wrong token closes with 1008 "invalid token", any other first
//     message with 1008 "authentication required", silence with 1008
//     "authentication timeout". Until then the client receives nothing.
//
// Tokens are compared as SHA-256 digests with crypto/subtle, against every
// configured token (Config.Tokens, from --ws-token; GenerateToken makes one
// for --demo), by package internal/bearer, which the HTTP API's token
// uses too. A token in the query string is ignored.
//
// Origin: a request with an Origin header must be same-origin or match
// Config.Origins (coder/websocket OriginPatterns), else 403. Programs send
// no Origin and pass.
//
// After authentication a client manages its subscription set:
//
//	{"type":"subscribe","events":["live.kline","live.*"]}
//	{"type":"unsubscribe","events":["live.*"]}
//
// and each is answered with the whole set, sorted:
//
//	{"type":"subscribed","events":["live.kline"]}
//
// A pattern is an exact event name, or a prefix followed by '*' ("live.*",
// "*" for everything): 1–128 bytes of printable ASCII, '*' only last; at
// most MaxPatterns (64) in a message and in the set. Unsubscribe removes
// patterns as written ("live.*", not the names it matches). Events of the
// new set may arrive just before the "subscribed" reply; every event after
// it does arrive: the gateway subscribes to the bus only while some client
// has a non-empty set (and Config.SubscribeLinger after), and the reply
// that needs the subscription waits for Redis to confirm it (at most
// Config.SubscribeWait: with Redis unreachable it goes anyway; after an
// outage, until the bus has resubscribed). A node whose /ws has no
// listener thus receives and decodes no event, unless something else on
// it subscribes to the bus (notification forwarding does). A bad message (invalid JSON, unknown type, bad or too
// many patterns, binary, a second auth) is answered with
// {"type":"error","error":"…"} and the connection stays open. A message
// over MessageLimit (4 KiB) closes the connection (1009).
//
// Each event is sent as one text frame holding its envelope exactly as
// published (bus.Event.Raw), so clients decode what Jesse's clients decode.
//
// # Policies
//
// Every client has a bounded queue (ClientQueue, 256 messages waiting,
// plus the batch being written). The fan-out never blocks on a client; when
// a client's queue is full:
//
//   - a market data event (Config.Coalesce; by default names ending in
//     .kline, .ticker, .book_ticker, .tickers) replaces the queued event of
//     its stream in place, or, when none is queued, first compacts the queue
//     to one event per stream: a slow client gets the latest value of each
//     stream and is not disconnected (counted as dropped);
//   - any other event (logs, account, orders, replies) is never dropped: if
//     compaction frees no room, the client is closed with 1008 "slow
//     consumer". So is a client whose write takes longer than WriteTimeout
//     (5 s). Their connection ends with an RST, so the kernel does not keep
//     megabytes queued for a peer that does not read.
//
// The server pings every PingInterval (20 s); a client with no pong or
// message for IdleTimeout (60 s) is closed with 1008 "idle timeout".
//
// Connections still authenticating (upgraded without a Bearer header) are
// counted apart: beyond MaxPending (64) of them, an upgrade without a
// Bearer header is 503, while one with a valid Bearer token is admitted;
// so sockets that never authenticate cannot lock out clients that do.
// Authenticated connections are bounded by MaxClients (10000): beyond it
// any upgrade is 503, and a pending connection that authenticates then is
// closed with 1013 "too many clients". A connection no longer carries the
// HTTP server's read and write deadlines once upgraded. When Run's
// context ends (or Close), every client is closed with 1001 "server
// shutting down", new upgrades get 503, and Run returns once every
// connection's goroutines have. A close handshake that does not complete
// within WriteTimeout ends with an RST.
//
// # Cost
//
// An event is copied once and shared by every client it goes to; matching
// is a map lookup plus a short prefix list per client, read without locks.
// Writes to a busy client are paced to one batch per FlushInterval (20 ms)
// and sent with one system call (corkConn), the first event after a quiet
// interval at once; on loopback the send call is most of the cost of a
// frame. The writer frames messages itself, straight into that batch,
// rather than through coder's Write. An idle connection holds one
// goroutine (its reader, waiting for the socket to be readable on a 2 KiB
// stack: it takes the pongs that answer our pings off the socket itself,
// and hands reading on to a fresh goroutine after each message it
// handles, since handling one grows a stack for good), a 512-byte read
// buffer, a 256-byte write buffer for coder's control frames, and no
// writer: `tradecache bench fanout` (bench.Fanout, in internal/bench)
// measures these figures, the gateway's process apart from its clients'.
//
// # Goroutines and locks
//
// Run owns the subscription (the bus calls publish, the fan-out, from one
// goroutine) and the sweeper (pings, idle timeouts). Each connection has a
// reader goroutine (auth, then client messages, one goroutine after
// another; the last waits for the others before it ends), a writer while
// it has something to write (it exits after writerLinger with nothing), a
// pinger while a ping awaits its pong, and a closer while the close
// handshake runs.
//
// Gateway.mu guards the registry; the fan-out and the sweeper read an
// immutable snapshot of it instead. client.mu guards a client's queue and
// its closing state, held for a few instructions by the fan-out, the
// writer and closers, never across I/O. No goroutine holds both. corkConn.mu
// serialises the writer's frames, the pings and coder's control frames
// (taken inside coder's own frame lock), around the batched write.
// wsTransport.brMu keeps the waiting reader off the read buffer while the
// close handshake reads it. A client's subscription set is an immutable
// matcher behind an atomic pointer, replaced by its reader.
package gateway
