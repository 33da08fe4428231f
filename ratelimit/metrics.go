package ratelimit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descLimit     = prometheus.NewDesc("tradecache_rest_weight_limit", "REST request weight per minute a priority may use (system: the whole budget; user: its share).", []string{"priority"}, nil)
	descUsed      = prometheus.NewDesc("tradecache_rest_weight_used", "REST request weight used in the current minute by every node sharing the budget, as this node knows it (the shared count, raised by the exchange's X-MBX-USED-WEIGHT-1M).", nil, nil)
	descRemaining = prometheus.NewDesc("tradecache_rest_weight_remaining", "REST request weight a priority may still use this minute, as this node knows it.", []string{"priority"}, nil)
	descGranted   = prometheus.NewDesc("tradecache_rest_weight_granted_total", "REST request weight this node was granted, by priority.", []string{"priority"}, nil)
	descRefused   = prometheus.NewDesc("tradecache_rest_refused_total", "REST requests refused before they were sent: reason=budget (the minute's share spent) or cooldown (after a 429/418), by priority.", []string{"reason", "priority"}, nil)
	descCooldowns = prometheus.NewDesc("tradecache_rest_cooldowns_total", "Cooldowns this node started after the exchange answered 429 or 418.", []string{"status"}, nil)
	descCoolLeft  = prometheus.NewDesc("tradecache_rest_cooldown_seconds", "Seconds left of the REST cooldown in force, as this node knows it; 0 for none.", nil, nil)
	descStore     = prometheus.NewDesc("tradecache_rest_budget_store", "1 for where the budget's last decision was made: redis (shared by every node) or memory (this node alone, Redis unreachable).", []string{"store"}, nil)
	descRedisErr  = prometheus.NewDesc("tradecache_rest_budget_redis_errors_total", "Failed Redis calls of the budget (the call was decided in memory).", nil, nil)
)

// Collector exports the budget as Prometheus metrics.
func (b *Budget) Collector() prometheus.Collector { return collector{b} }

type collector struct{ b *Budget }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLimit, descUsed, descRemaining, descGranted, descRefused, descCooldowns, descCoolLeft, descStore, descRedisErr} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	now := time.Now()
	b.mu.Lock()
	used := b.usedAt(now)
	left := max(b.coolUntil.Sub(now), 0)
	b.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	cnt := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descUsed, float64(used))
	gauge(descCoolLeft, left.Seconds())
	for _, p := range []Priority{User, System} {
		gauge(descLimit, float64(b.Ceiling(p)), p.String())
		gauge(descRemaining, float64(max(b.Ceiling(p)-used, 0)), p.String())
		cnt(descGranted, b.st.granted[p].Load(), p.String())
		cnt(descRefused, b.st.refused[0][p].Load(), ReasonBudget, p.String())
		cnt(descRefused, b.st.refused[1][p].Load(), ReasonCooldown, p.String())
	}
	cnt(descCooldowns, b.st.cooldowns[0].Load(), "429")
	cnt(descCooldowns, b.st.cooldowns[1].Load(), "418")
	shared := 0.0
	if b.st.shared.Load() {
		shared = 1
	}
	gauge(descStore, shared, "redis")
	gauge(descStore, 1-shared, "memory")
	cnt(descRedisErr, b.st.redisErrors.Load())
}
