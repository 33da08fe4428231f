package cache

import "github.com/prometheus/client_golang/prometheus"

// Stats is a snapshot of the cache's counters since New.
type Stats struct {
	Tier          Tier
	Embedded      bool   // no Redis configured
	HitsRedis     uint64 // reads answered by Redis
	MissesRedis   uint64
	HitsMemory    uint64 // reads answered by the memory tier
	MissesMemory  uint64
	ToMemory      uint64 // switches to the memory tier
	ToRedis       uint64 // switches back (and the first connection)
	RedisErrors   uint64 // connection failures and timeouts
	ReplyErrors   uint64 // errors Redis returned (WRONGTYPE…)
	WrittenBack   uint64 // memory entries written to Redis on recovery
	SkippedNewer  uint64 // memory entries dropped because Redis held a newer copy
	MemoryEntries int
	Evictions     uint64 // memory entries evicted by the LRU bound
	Loads         uint64 // GetOrLoad loader calls
	LoadErrors    uint64
	// Bad counts the values found unusable in Redis (ReportBad), by kind
	// and reason.
	Bad map[BadCount]uint64
}

// Stats returns the current counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Tier:          c.Tier(),
		Embedded:      c.Embedded(),
		HitsRedis:     c.st.hits[TierRedis].Load(),
		MissesRedis:   c.st.misses[TierRedis].Load(),
		HitsMemory:    c.st.hits[TierMemory].Load(),
		MissesMemory:  c.st.misses[TierMemory].Load(),
		ToMemory:      c.st.toMemory.Load(),
		ToRedis:       c.st.toRedis.Load(),
		RedisErrors:   c.st.connErrors.Load(),
		ReplyErrors:   c.st.replyErrs.Load(),
		WrittenBack:   c.st.written.Load(),
		SkippedNewer:  c.st.skipped.Load(),
		MemoryEntries: c.mem.len(),
		Evictions:     c.mem.evicted(),
		Loads:         c.st.loads.Load(),
		LoadErrors:    c.st.loadErrors.Load(),
		Bad:           c.bad.badCounts(),
	}
}

// Collector exports Stats as Prometheus metrics. Register it with the
// node's registry: reg.MustRegister(c.Collector()).
func (c *Cache) Collector() prometheus.Collector { return collector{c} }

var (
	descTier      = prometheus.NewDesc("tradecache_cache_tier", "1 for the tier the cache is on, 0 for the other.", []string{"tier"}, nil)
	descHits      = prometheus.NewDesc("tradecache_cache_hits_total", "Reads that found a value, by tier.", []string{"tier"}, nil)
	descMisses    = prometheus.NewDesc("tradecache_cache_misses_total", "Reads that found nothing, by tier.", []string{"tier"}, nil)
	descSwitches  = prometheus.NewDesc("tradecache_cache_tier_switches_total", "Tier changes, by the tier switched to.", []string{"to"}, nil)
	descErrors    = prometheus.NewDesc("tradecache_cache_redis_errors_total", "Failed Redis calls: kind=connection (outage, timeout) or reply (an error Redis returned).", []string{"kind"}, nil)
	descWriteBack = prometheus.NewDesc("tradecache_cache_writebacks_total", "Memory entries replayed to Redis after an outage: result=written or skipped_newer.", []string{"result"}, nil)
	descEntries   = prometheus.NewDesc("tradecache_cache_memory_entries", "Entries held by the memory tier.", nil, nil)
	descEvictions = prometheus.NewDesc("tradecache_cache_memory_evictions_total", "Memory-tier entries evicted by the LRU bound.", nil, nil)
	descLoads     = prometheus.NewDesc("tradecache_cache_loads_total", "GetOrLoad loader calls, by result.", []string{"result"}, nil)
	descOversized = prometheus.NewDesc("tradecache_cache_oversized_total", "Values in Redis over their kind's size limit, refused or skipped without being fetched, by key kind.", []string{"kind"}, nil)
	descInvalid   = prometheus.NewDesc("tradecache_cache_invalid_total", "Values in Redis not used: reason=undecodable, no_ttl or wrong_type, by key kind.", []string{"kind", "reason"}, nil)
)

type collector struct{ c *Cache }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTier, descHits, descMisses, descSwitches, descErrors, descWriteBack, descEntries, descEvictions, descLoads, descOversized, descInvalid} {
		ch <- d
	}
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	s := k.c.Stats()
	b := func(t Tier) float64 {
		if s.Tier == t {
			return 1
		}
		return 0
	}
	g, cnt := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(descTier, g, b(TierRedis), "redis")
	ch <- prometheus.MustNewConstMetric(descTier, g, b(TierMemory), "memory")
	ch <- prometheus.MustNewConstMetric(descHits, cnt, float64(s.HitsRedis), "redis")
	ch <- prometheus.MustNewConstMetric(descHits, cnt, float64(s.HitsMemory), "memory")
	ch <- prometheus.MustNewConstMetric(descMisses, cnt, float64(s.MissesRedis), "redis")
	ch <- prometheus.MustNewConstMetric(descMisses, cnt, float64(s.MissesMemory), "memory")
	ch <- prometheus.MustNewConstMetric(descSwitches, cnt, float64(s.ToRedis), "redis")
	ch <- prometheus.MustNewConstMetric(descSwitches, cnt, float64(s.ToMemory), "memory")
	ch <- prometheus.MustNewConstMetric(descErrors, cnt, float64(s.RedisErrors), "connection")
	ch <- prometheus.MustNewConstMetric(descErrors, cnt, float64(s.ReplyErrors), "reply")
	ch <- prometheus.MustNewConstMetric(descWriteBack, cnt, float64(s.WrittenBack), "written")
	ch <- prometheus.MustNewConstMetric(descWriteBack, cnt, float64(s.SkippedNewer), "skipped_newer")
	ch <- prometheus.MustNewConstMetric(descEntries, g, float64(s.MemoryEntries))
	ch <- prometheus.MustNewConstMetric(descEvictions, cnt, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(descLoads, cnt, float64(s.Loads-s.LoadErrors), "ok")
	ch <- prometheus.MustNewConstMetric(descLoads, cnt, float64(s.LoadErrors), "error")
	for k, n := range s.Bad {
		if k.Reason == BadOversized {
			ch <- prometheus.MustNewConstMetric(descOversized, cnt, float64(n), k.Kind)
		} else {
			ch <- prometheus.MustNewConstMetric(descInvalid, cnt, float64(n), k.Kind, k.Reason)
		}
	}
}
