package bus

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a snapshot of a bus's counters since it was made. Both
// implementations fill the fields that apply to them.
type Stats struct {
	Published     uint64 // events sent (Redis: PUBLISH answered; Local: fanned out)
	Compressed    uint64 // of which sent compressed
	PublishErrors uint64 // events that could not be sent: encoding, no Redis, timeout, Redis error
	Received      uint64 // events handed to a subscriber's fn
	Malformed     uint64 // Redis: messages on the channel that failed to decode, dropped
	Resubscribes  uint64 // Redis: subscriptions re-established after the first, per Subscribe call
	DroppedSlow   uint64 // events dropped for a subscriber whose queue was full
	DroppedAsync  uint64 // Redis: PublishAsync events dropped (queue full, or left when Run ended)
	Subscribers   int    // Subscribe calls in progress
	AsyncQueued   int    // Redis: events waiting in the PublishAsync queue
}

// counters are the atomics behind Stats.
type counters struct {
	plain, compressed, publishErrors  atomic.Uint64 // published events by encoding
	received, malformed, resubscribes atomic.Uint64
	droppedSlow, droppedAsync         atomic.Uint64
	subscribers                       atomic.Int64
}

func (c *counters) countPublished(compressed bool) {
	if compressed {
		c.compressed.Add(1)
	} else {
		c.plain.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	// Loaded apart so that Compressed never exceeds Published.
	plain, compressed := c.plain.Load(), c.compressed.Load()
	return Stats{
		Published:     plain + compressed,
		Compressed:    compressed,
		PublishErrors: c.publishErrors.Load(),
		Received:      c.received.Load(),
		Malformed:     c.malformed.Load(),
		Resubscribes:  c.resubscribes.Load(),
		DroppedSlow:   c.droppedSlow.Load(),
		DroppedAsync:  c.droppedAsync.Load(),
		Subscribers:   int(c.subscribers.Load()),
	}
}

var (
	descPublished    = prometheus.NewDesc("tradecache_bus_published_total", "Events published, by encoding (plain or compressed).", []string{"encoding"}, nil)
	descPublishErrs  = prometheus.NewDesc("tradecache_bus_publish_errors_total", "Events that could not be published (no Redis, timeout, Redis or encoding error).", nil, nil)
	descReceived     = prometheus.NewDesc("tradecache_bus_received_total", "Events handed to subscribers.", nil, nil)
	descMalformed    = prometheus.NewDesc("tradecache_bus_malformed_total", "Messages on the channel that were not a valid envelope, dropped.", nil, nil)
	descResubscribes = prometheus.NewDesc("tradecache_bus_resubscribes_total", "Redis subscriptions re-established after a connection failure.", nil, nil)
	descDropped      = prometheus.NewDesc("tradecache_bus_dropped_total", "Events dropped by a full bounded queue: queue=subscriber (a subscriber too slow) or async (PublishAsync).", []string{"queue"}, nil)
	descSubscribers  = prometheus.NewDesc("tradecache_bus_subscribers", "Subscribe calls in progress.", nil, nil)
	descAsyncQueued  = prometheus.NewDesc("tradecache_bus_async_queued", "Events waiting in the PublishAsync queue.", nil, nil)
)

// collector exports a bus's Stats as const metrics.
type collector struct{ stats func() Stats }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descPublishErrs, descReceived, descMalformed, descResubscribes, descDropped, descSubscribers, descAsyncQueued} {
		ch <- d
	}
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	s := k.stats()
	g, cnt := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(descPublished, cnt, float64(s.Published-s.Compressed), "plain")
	ch <- prometheus.MustNewConstMetric(descPublished, cnt, float64(s.Compressed), "compressed")
	ch <- prometheus.MustNewConstMetric(descPublishErrs, cnt, float64(s.PublishErrors))
	ch <- prometheus.MustNewConstMetric(descReceived, cnt, float64(s.Received))
	ch <- prometheus.MustNewConstMetric(descMalformed, cnt, float64(s.Malformed))
	ch <- prometheus.MustNewConstMetric(descResubscribes, cnt, float64(s.Resubscribes))
	ch <- prometheus.MustNewConstMetric(descDropped, cnt, float64(s.DroppedSlow), "subscriber")
	ch <- prometheus.MustNewConstMetric(descDropped, cnt, float64(s.DroppedAsync), "async")
	ch <- prometheus.MustNewConstMetric(descSubscribers, g, float64(s.Subscribers))
	ch <- prometheus.MustNewConstMetric(descAsyncQueued, g, float64(s.AsyncQueued))
}
