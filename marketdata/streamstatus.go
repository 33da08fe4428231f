package marketdata

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// States of the exchange streams, as StreamStatus reports them.
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

// DefaultStaleAfter is StreamStatus's stale limit when it is given none:
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

// streamHealth records what StreamStatus reports. Times are stamps:
// nanoseconds of the monotonic clock since base, plus one, so that 0 means
// never and a wall-clock step changes no age.
type streamHealth struct {
	base time.Time

	since         atomic.Int64 // start of streaming
	lastConnect   atomic.Int64
	lastEvent     atomic.Int64
	backfillSince atomic.Int64           // first failed round of the backfills failing now; 0: none failing
	backfillErr   atomic.Pointer[string] // a failure of the last failed round
}

func (h *streamHealth) stamp() int64 { return int64(time.Since(h.base)) + 1 }

// at is the time of stamp s (zero for 0).
func (h *streamHealth) at(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return h.base.Add(time.Duration(s - 1))
}

// begin marks the start of streaming.
func (h *streamHealth) begin() {
	h.backfillSince.Store(0)
	h.backfillErr.Store(nil)
	h.since.Store(h.stamp())
}

// backfilled records the outcome of a backfill round: err is one failure
// of it, nil when every series succeeded.
func (h *streamHealth) backfilled(err error) {
	if err == nil {
		h.backfillSince.Store(0)
		h.backfillErr.Store(nil)
		return
	}
	msg := err.Error()
	h.backfillErr.Store(&msg)
	h.backfillSince.CompareAndSwap(0, h.stamp())
}

// StreamStatus reports the state of the exchange streams. staleAfter
// (DefaultStaleAfter when ≤ 0) is the limit beyond which a streaming node
// is down: not connected that long after it started streaming, or no event
// for that long. Backfills failing for longer than staleAfter
// make the status unhealthy too (Reason), whatever the stream's state.
// Safe for concurrent use.
func (n *Node) StreamStatus(staleAfter time.Duration) StreamStatus {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	h := &n.sh
	st := StreamStatus{State: StreamNotStreaming, LastConnect: h.at(h.lastConnect.Load()), LastEvent: h.at(h.lastEvent.Load())}
	if !n.Streaming() {
		return st
	}
	since := h.since.Load()
	st.Since = h.at(since)
	now := time.Now()
	var reasons []string
	if h.lastConnect.Load() < since {
		st.State = StreamConnecting
		if d := now.Sub(st.Since); d > staleAfter {
			st.State = StreamDown
			reasons = append(reasons, fmt.Sprintf("exchange streams not connected %s after streaming started", age(d)))
		}
	} else {
		st.State = StreamConnected
		// A connection that has delivered nothing yet is measured from the
		// start of streaming.
		if d := now.Sub(h.at(max(h.lastEvent.Load(), since))); d > staleAfter {
			st.State = StreamDown
			reasons = append(reasons, fmt.Sprintf("no event from the exchange streams for %s", age(d)))
		}
	}
	st.Connected = st.State == StreamConnected
	if bs := h.backfillSince.Load(); bs != 0 {
		st.BackfillFailingSince = h.at(bs)
		if p := h.backfillErr.Load(); p != nil {
			st.BackfillError = *p
		}
		if d := now.Sub(st.BackfillFailingSince); d > staleAfter {
			reasons = append(reasons, fmt.Sprintf("backfill failing for %s: %s", age(d), st.BackfillError))
		}
	}
	st.Reason = strings.Join(reasons, "; ")
	return st
}

// age rounds d for a reason: to the second from 10 s, else to 10 ms.
func age(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}
