package exchange

import "time"

// States of the exchange streams, as a market data node reports them.
const (
	// StreamNotStreaming: the node does not hold the streams (a follower,
	// or not running).
	StreamNotStreaming = "not_streaming"
	// StreamConnecting: streaming, not connected yet, for less than the
	// stale limit.
	StreamConnecting = "connecting"
	// StreamConnected: connected, and an event arrived within the stale
	// limit.
	StreamConnected = "connected"
	// StreamDown: not connected within the stale limit of the start of
	// streaming, or no event for longer than the stale limit since.
	StreamDown = "down"
)

// DefaultStaleAfter is the stale limit of a StreamStatus when none is given:
// Binance pushes the 24-hour tickers of the whole market every second, so
// 30 s without any event is a dead or silent stream.
const DefaultStaleAfter = 30 * time.Second

// StreamStatus is the state of the node's exchange streams.
type StreamStatus struct {
	State     string // StreamConnected, StreamConnecting, StreamDown or StreamNotStreaming
	Connected bool   // State == StreamConnected
	// Since is when the node started streaming (elected, or standalone);
	// zero when it does not stream.
	Since time.Time
	// LastConnect is the last (re)connection of the streams, LastEvent the
	// newest event received from them (a kline, a ticker or a book
	// ticker, configured or not); zero: none since the node started. Both
	// may be older than Since (an earlier term's).
	LastConnect, LastEvent time.Time
	// BackfillError is a failure of the last backfill round (REST, or
	// the write of what it fetched) while rounds are failing, since
	// BackfillFailingSince; "" once a round has backfilled every series.
	BackfillError        string
	BackfillFailingSince time.Time
	// Reason says why the streams are unhealthy; "" when they are not:
	// down, or backfills failing for longer than the stale limit.
	Reason string
}
