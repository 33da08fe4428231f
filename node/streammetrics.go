package node

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/exchange/binance"
)

// streamMetrics sums the counters of every binance.Streams and
// binance.UserStream the node runs (one per leadership term) for /metrics.
type streamMetrics struct {
	market counters[*binance.Streams, binance.Stats]
	user   counters[*binance.UserStream, binance.UserStats]
}

func newStreamMetrics() *streamMetrics {
	return &streamMetrics{
		market: counters[*binance.Streams, binance.Stats]{live: map[*binance.Streams]struct{}{}, add: addStats,
			stats: (*binance.Streams).Stats, ended: func(st *binance.Stats) { st.Connections = 0 }},
		user: counters[*binance.UserStream, binance.UserStats]{live: map[*binance.UserStream]struct{}{}, add: addUserStats,
			stats: (*binance.UserStream).Stats, ended: func(st *binance.UserStats) { st.Connections = 0 }},
	}
}

// run runs s, tracking its counters.
func (m *streamMetrics) run(ctx context.Context, s *binance.Streams) error {
	return m.market.run(ctx, s, s.Run)
}

// runUser runs us, tracking its counters.
func (m *streamMetrics) runUser(ctx context.Context, us *binance.UserStream) error {
	return m.user.run(ctx, us, us.Run)
}

// counters sums the counters T of streams S: the finished ones folded
// into a total, the running ones read live. Bounded: only running streams
// are held.
type counters[S comparable, T any] struct {
	mu    sync.Mutex // guards done and live
	done  T
	live  map[S]struct{}
	stats func(S) T
	add   func(a, b T) T
	ended func(*T) // zeroes a finished stream's gauges
}

func (c *counters[S, T]) run(ctx context.Context, s S, run func(context.Context) error) error {
	c.mu.Lock()
	c.live[s] = struct{}{}
	c.mu.Unlock()
	err := run(ctx)
	st := c.stats(s)
	c.ended(&st)
	c.mu.Lock()
	delete(c.live, s)
	c.done = c.add(c.done, st)
	c.mu.Unlock()
	return err
}

func (c *counters[S, T]) total() T {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.done
	for s := range c.live {
		t = c.add(t, c.stats(s))
	}
	return t
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

func addUserStats(a, b binance.UserStats) binance.UserStats {
	a.Frames += b.Frames
	a.AccountEvents += b.AccountEvents
	a.OrderEvents += b.OrderEvents
	a.ExpiredEvents += b.ExpiredEvents
	a.Malformed += b.Malformed
	a.Unknown += b.Unknown
	a.Oversized += b.Oversized
	a.Duplicates += b.Duplicates
	a.Connects += b.Connects
	a.Reconnects += b.Reconnects
	a.Rotations += b.Rotations
	a.Expirations += b.Expirations
	a.StaleResets += b.StaleResets
	a.PongTimeouts += b.PongTimeouts
	a.DialErrors += b.DialErrors
	a.Connections += b.Connections
	return a
}

var (
	descFrames  = prometheus.NewDesc("tradecache_stream_frames_total", "Frames read from the exchange's market streams.", nil, nil)
	descSEvents = prometheus.NewDesc("tradecache_stream_events_total", "Decoded stream events, by kind.", []string{"kind"}, nil)
	descDropped = prometheus.NewDesc("tradecache_stream_dropped_total", "Frames dropped: malformed, unknown (event type or stream), oversized (connection reset), duplicate (rotation overlap).", []string{"reason"}, nil)
	descConnEv  = prometheus.NewDesc("tradecache_stream_connection_events_total", "Connection events: connect, reconnect, rotation, stale_reset, dial_error, control_error.", []string{"event"}, nil)
	descConns   = prometheus.NewDesc("tradecache_stream_connections", "Stream connections open now.", nil, nil)

	descUEvents  = prometheus.NewDesc("tradecache_user_stream_events_total", "User data stream events delivered, by kind.", []string{"kind"}, nil)
	descUDropped = prometheus.NewDesc("tradecache_user_stream_dropped_total", "User data stream frames dropped: malformed, unknown, oversized (connection reset), duplicate (rotation overlap).", []string{"reason"}, nil)
	descUConnEv  = prometheus.NewDesc("tradecache_user_stream_connection_events_total", "User data stream connection events: connect, reconnect, rotation, expiration, stale_reset, pong_timeout, dial_error.", []string{"event"}, nil)
	descUConns   = prometheus.NewDesc("tradecache_user_stream_connections", "User data stream connections open now.", nil, nil)
)

func (m *streamMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFrames, descSEvents, descDropped, descConnEv, descConns, descUEvents, descUDropped, descUConnEv, descUConns} {
		ch <- d
	}
}

func (m *streamMetrics) Collect(ch chan<- prometheus.Metric) {
	t := m.market.total()
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

	u := m.user.total()
	c(descUEvents, u.AccountEvents, "account")
	c(descUEvents, u.OrderEvents, "order")
	c(descUEvents, u.ExpiredEvents, "listen_key_expired")
	c(descUDropped, u.Malformed, "malformed")
	c(descUDropped, u.Unknown, "unknown")
	c(descUDropped, u.Oversized, "oversized")
	c(descUDropped, u.Duplicates, "duplicate")
	c(descUConnEv, u.Connects, "connect")
	c(descUConnEv, u.Reconnects, "reconnect")
	c(descUConnEv, u.Rotations, "rotation")
	c(descUConnEv, u.Expirations, "expiration")
	c(descUConnEv, u.StaleResets, "stale_reset")
	c(descUConnEv, u.PongTimeouts, "pong_timeout")
	c(descUConnEv, u.DialErrors, "dial_error")
	ch <- prometheus.MustNewConstMetric(descUConns, prometheus.GaugeValue, float64(u.Connections))
}
