package marketdata

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the node's counters and mode as Prometheus metrics.
func (n *Node) Collector() prometheus.Collector { return collector{n} }

var (
	descMode    = prometheus.NewDesc("tradecache_marketdata_mode", "1 for the node's market data role (leader, follower, standalone, idle), 0 for the others.", []string{"mode"}, nil)
	descEvents  = prometheus.NewDesc("tradecache_marketdata_events_total", "Stream events received; ignored ones are for series not configured.", []string{"result"}, nil)
	descUpserts = prometheus.NewDesc("tradecache_marketdata_kline_upserts_total", "Klines written after coalescing, by source.", []string{"source"}, nil)
	descFlushes = prometheus.NewDesc("tradecache_marketdata_flushes_total", "Buffer flushes.", nil, nil)
	descBackf   = prometheus.NewDesc("tradecache_marketdata_backfills_total", "Series backfilled from REST after a gap.", nil, nil)
	descWErr    = prometheus.NewDesc("tradecache_marketdata_write_errors_total", "Failed writes: kind=error (retried next flush) or fenced (lease lost; nothing landed).", []string{"kind"}, nil)
	descTerms   = prometheus.NewDesc("tradecache_marketdata_leader_terms_total", "Leadership terms this node started.", nil, nil)
	descGroups  = prometheus.NewDesc("tradecache_marketdata_stream_groups_held", "Stream groups this node streams now (1 for the single group while it leads or streams standalone).", nil, nil)
	descRepairs = prometheus.NewDesc("tradecache_marketdata_repairs_total", "What the leader's fenced writes removed because no reader could use it: action=member_removed (a kline member), field_removed (a hash field) or key_replaced (a key of another Redis type).", []string{"action"}, nil)
)

type collector struct{ n *Node }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMode, descEvents, descUpserts, descFlushes, descBackf, descWErr, descTerms, descRepairs, descGroups} {
		ch <- d
	}
	for _, d := range integrityDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st, mode := &c.n.st, c.n.Mode()
	for m := ModeIdle; m <= ModeStandalone; m++ {
		v := 0.0
		if m == mode {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descMode, prometheus.GaugeValue, v, m.String())
	}
	cnt := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ev, ig := st.Events.Load(), st.Ignored.Load()
	cnt(descEvents, ev-ig, "used")
	cnt(descEvents, ig, "ignored")
	cnt(descUpserts, st.KlinesWritten.Load(), "stream")
	cnt(descUpserts, st.BackfillKline.Load(), "backfill")
	cnt(descFlushes, st.Flushes.Load())
	cnt(descBackf, st.Backfills.Load())
	cnt(descWErr, st.WriteErrors.Load(), "error")
	cnt(descWErr, st.Fenced.Load(), "fenced")
	cnt(descTerms, st.Terms.Load())
	cnt(descRepairs, st.MembersRemoved.Load(), "member_removed")
	cnt(descRepairs, st.FieldsRemoved.Load(), "field_removed")
	cnt(descRepairs, st.KeysReplaced.Load(), "key_replaced")
	ch <- prometheus.MustNewConstMetric(descGroups, prometheus.GaugeValue, float64(len(c.n.HeldGroups())))
	c.n.collectIntegrity(ch)
}
