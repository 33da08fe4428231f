package node

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/exchange/binance"
)

// streamMetrics sums the counters of every binance.Streams the node runs
// (one per leadership term) for /metrics: the finished ones folded into a
// total, the running ones read live. Bounded: only running Streams are held.
type streamMetrics struct {
	mu   sync.Mutex // guards done and live
	done binance.Stats
	live map[*binance.Streams]struct{}
}

func newStreamMetrics() *streamMetrics {
	return &streamMetrics{live: map[*binance.Streams]struct{}{}}
}

// run runs s, tracking its counters.
func (m *streamMetrics) run(ctx context.Context, s *binance.Streams) error {
	m.mu.Lock()
	m.live[s] = struct{}{}
	m.mu.Unlock()
	err := s.Run(ctx)
	st := s.Stats()
	m.mu.Lock()
	delete(m.live, s)
	st.Connections = 0
	m.done = addStats(m.done, st)
	m.mu.Unlock()
	return err
}

func addStats(a, b binance.Stats) binance.Stats {
	a.Frames += b.Frames
	a.KlineEvents += b.KlineEvents
	a.TickerEvents += b.TickerEvents
	a.TickersEvents += b.TickersEvents
	a.BookEvents += b.BookEvents
	a.Malformed += b.Malformed
	a.Unknown += b.Unknown
	a.Oversized += b.Oversized
	a.Duplicates += b.Duplicates
	a.Connects += b.Connects
	a.Reconnects += b.Reconnects
	a.Rotations += b.Rotations
	a.StaleResets += b.StaleResets
	a.DialErrors += b.DialErrors
	a.ControlErrors += b.ControlErrors
	a.Connections += b.Connections
	return a
}

func (m *streamMetrics) total() binance.Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.done
	for s := range m.live {
		t = addStats(t, s.Stats())
	}
	return t
}

var (
	descFrames  = prometheus.NewDesc("tradecache_stream_frames_total", "Frames read from the exchange's market streams.", nil, nil)
	descSEvents = prometheus.NewDesc("tradecache_stream_events_total", "Decoded stream events, by kind.", []string{"kind"}, nil)
	descDropped = prometheus.NewDesc("tradecache_stream_dropped_total", "Frames dropped: malformed, unknown (event type or stream), oversized (connection reset), duplicate (rotation overlap).", []string{"reason"}, nil)
	descConnEv  = prometheus.NewDesc("tradecache_stream_connection_events_total", "Connection events: connect, reconnect, rotation, stale_reset, dial_error, control_error.", []string{"event"}, nil)
	descConns   = prometheus.NewDesc("tradecache_stream_connections", "Stream connections open now.", nil, nil)
)

func (m *streamMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFrames, descSEvents, descDropped, descConnEv, descConns} {
		ch <- d
	}
}

func (m *streamMetrics) Collect(ch chan<- prometheus.Metric) {
	t := m.total()
	c := func(d *prometheus.Desc, v int64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	c(descFrames, t.Frames)
	c(descSEvents, t.KlineEvents, "kline")
	c(descSEvents, t.TickerEvents, "ticker")
	c(descSEvents, t.TickersEvents, "ticker_arr")
	c(descSEvents, t.BookEvents, "book_ticker")
	c(descDropped, t.Malformed, "malformed")
	c(descDropped, t.Unknown, "unknown")
	c(descDropped, t.Oversized, "oversized")
	c(descDropped, t.Duplicates, "duplicate")
	c(descConnEv, t.Connects, "connect")
	c(descConnEv, t.Reconnects, "reconnect")
	c(descConnEv, t.Rotations, "rotation")
	c(descConnEv, t.StaleResets, "stale_reset")
	c(descConnEv, t.DialErrors, "dial_error")
	c(descConnEv, t.ControlErrors, "control_error")
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(t.Connections))
}
