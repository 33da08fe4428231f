package storefeed

import (
	"sync/atomic"
	"time"
)

// Stats are a feeder's counters since New.
type Stats struct {
	Connected       bool   // a /ws connection is up
	Connects        uint64 // /ws connections made
	Reconnects      uint64 // of which after the first
	DialErrors      uint64 // connection attempts that failed
	StaleReconnects uint64 // connections ended after StaleAfter of silence and no pong
	Silences        uint64 // silent connections that answered a ping: resynced over HTTP
	Resyncs         uint64 // rounds of HTTP reads: after each connection, and whenever events may have been lost
	ResyncErrors    uint64 // HTTP reads that failed (retried)
	KlinesResynced  uint64 // klines applied from HTTP
	Gaps            uint64 // klines that arrived more than one interval after the newest held
	GapsUnfilled    uint64 // gaps the node could not fill: older than it serves, or not served after MaxGapRetries
	EventsApplied   uint64 // events that changed the Store
	EventsStale     uint64 // events older than what the Store holds, skipped
	EventsIgnored   uint64 // events not for the Store: another mode, an unconfigured series, a hedge-mode position
	EventsMalformed uint64 // frames or payloads that did not decode
	EventsDropped   uint64 // frames dropped because the queue was full (each causes a resync)
	Heartbeats      uint64 // node heartbeats seen
	Queued          int    // frames waiting to be applied
	// LastEvent is when the newest event was applied, LastResync when the
	// newest resync round started; zero: never.
	LastEvent, LastResync time.Time
}

// counters are the atomics behind Stats.
type counters struct {
	connected                                                   atomic.Bool
	connects, reconnects, dialErrors, staleReconnects, silences atomic.Uint64
	resyncs, resyncErrors, klinesResynced, gaps, gapsUnfilled   atomic.Uint64
	applied, stale, ignored, malformed, dropped, heartbeats     atomic.Uint64
	queued, lastEvent, lastResync                               atomic.Int64
}

// Stats returns the feeder's counters.
func (f *Feeder) Stats() Stats {
	c := &f.stats
	t := func(n int64) time.Time {
		if n == 0 {
			return time.Time{}
		}
		return time.Unix(0, n)
	}
	return Stats{
		Connected:       c.connected.Load(),
		Connects:        c.connects.Load(),
		Reconnects:      c.reconnects.Load(),
		DialErrors:      c.dialErrors.Load(),
		StaleReconnects: c.staleReconnects.Load(),
		Silences:        c.silences.Load(),
		Resyncs:         c.resyncs.Load(),
		ResyncErrors:    c.resyncErrors.Load(),
		KlinesResynced:  c.klinesResynced.Load(),
		Gaps:            c.gaps.Load(),
		GapsUnfilled:    c.gapsUnfilled.Load(),
		EventsApplied:   c.applied.Load(),
		EventsStale:     c.stale.Load(),
		EventsIgnored:   c.ignored.Load(),
		EventsMalformed: c.malformed.Load(),
		EventsDropped:   c.dropped.Load(),
		Heartbeats:      c.heartbeats.Load(),
		Queued:          int(max(c.queued.Load(), 0)),
		LastEvent:       t(c.lastEvent.Load()),
		LastResync:      t(c.lastResync.Load()),
	}
}
