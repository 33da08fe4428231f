package notify

import "github.com/prometheus/client_golang/prometheus"

// Stats is a snapshot of the Notifier's counters since New.
type Stats struct {
	Received     uint64 // Notify calls (HandleEvent's included)
	Deduplicated uint64 // repeats collapsed into an earlier notification
	Sinks        []SinkStats
}

// SinkStats are one sink's counters.
type SinkStats struct {
	Sink    string
	Sent    uint64 // notifications delivered
	Failed  uint64 // notifications given up on: permanent error or attempts exhausted
	Retries uint64 // attempts repeated after a temporary failure
	Dropped uint64 // notifications dropped from a full queue (the oldest)
	Queued  int    // notifications waiting now
}

// Stats returns the current counters, sinks in Config order (Webhook,
// Telegram, Slack, Discord, then WithSink's).
func (n *Notifier) Stats() Stats {
	s := Stats{Received: n.received.Load(), Deduplicated: n.deduplicated.Load()}
	for _, w := range n.workers {
		q, d := w.q.stats()
		s.Sinks = append(s.Sinks, SinkStats{
			Sink:    w.sink.Name(),
			Sent:    w.sent.Load(),
			Failed:  w.failed.Load(),
			Retries: w.retries.Load(),
			Dropped: d,
			Queued:  q,
		})
	}
	return s
}

// Collector exports Stats as Prometheus metrics: reg.MustRegister(n.Collector()).
func (n *Notifier) Collector() prometheus.Collector { return collector{n} }

var (
	descReceived     = prometheus.NewDesc("tradecache_notify_received_total", "Notifications given to Notify.", nil, nil)
	descDeduplicated = prometheus.NewDesc("tradecache_notify_deduplicated_total", "Repeated notifications collapsed within the dedupe window.", nil, nil)
	descSent         = prometheus.NewDesc("tradecache_notify_sent_total", "Notifications delivered, by sink.", []string{"sink"}, nil)
	descFailed       = prometheus.NewDesc("tradecache_notify_failed_total", "Notifications given up on after a permanent error or the last attempt, by sink.", []string{"sink"}, nil)
	descRetries      = prometheus.NewDesc("tradecache_notify_retries_total", "Delivery attempts repeated after a temporary failure, by sink.", []string{"sink"}, nil)
	descDropped      = prometheus.NewDesc("tradecache_notify_dropped_total", "Notifications dropped from a full queue, by sink.", []string{"sink"}, nil)
	descQueued       = prometheus.NewDesc("tradecache_notify_queued", "Notifications waiting for delivery, by sink.", []string{"sink"}, nil)
)

type collector struct{ n *Notifier }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReceived, descDeduplicated, descSent, descFailed, descRetries, descDropped, descQueued} {
		ch <- d
	}
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	s := k.n.Stats()
	cnt, g := prometheus.CounterValue, prometheus.GaugeValue
	ch <- prometheus.MustNewConstMetric(descReceived, cnt, float64(s.Received))
	ch <- prometheus.MustNewConstMetric(descDeduplicated, cnt, float64(s.Deduplicated))
	for _, x := range s.Sinks {
		ch <- prometheus.MustNewConstMetric(descSent, cnt, float64(x.Sent), x.Sink)
		ch <- prometheus.MustNewConstMetric(descFailed, cnt, float64(x.Failed), x.Sink)
		ch <- prometheus.MustNewConstMetric(descRetries, cnt, float64(x.Retries), x.Sink)
		ch <- prometheus.MustNewConstMetric(descDropped, cnt, float64(x.Dropped), x.Sink)
		ch <- prometheus.MustNewConstMetric(descQueued, g, float64(x.Queued), x.Sink)
	}
}
