package marketdata

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tradecache/tradecache/exchange"
)

// The state of the exchange streams is shared vocabulary (package
// exchange), so that readers of it need not import this package.
type StreamStatus = exchange.StreamStatus

// States of the exchange streams, as StreamStatus reports them.
const (
	StreamNotStreaming = exchange.StreamNotStreaming
	StreamConnecting   = exchange.StreamConnecting
	StreamConnected    = exchange.StreamConnected
	StreamDown         = exchange.StreamDown
)

// DefaultStaleAfter is StreamStatus's stale limit when it is given none.
const DefaultStaleAfter = exchange.DefaultStaleAfter

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
	if n.groups != nil && n.Mode() != ModeStandalone {
		return n.groupsStatus(staleAfter)
	}
	return n.sh.status(staleAfter, n.Streaming())
}

// status is the stream status of one set of streams; streaming says
// whether a term (or the standalone stream) holds them now.
func (h *streamHealth) status(staleAfter time.Duration, streaming bool) StreamStatus {
	st := StreamStatus{State: StreamNotStreaming, LastConnect: h.at(h.lastConnect.Load()), LastEvent: h.at(h.lastEvent.Load())}
	if !streaming {
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
