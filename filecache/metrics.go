package filecache

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the cache's Stats as Prometheus metrics
// (tradecache_filecache_*), labelled with the cache's directory so that
// several caches can share a registry:
//
//	reg.MustRegister(c.Collector())
//
// The counters are this process's since Open; bytes and entries are its
// approximation of the directory (see Stats).
func (c *Cache) Collector() prometheus.Collector {
	return &collector{c: c, descs: newDescs(c.root)}
}

type descs struct {
	hits, misses, sets, deletes, expired, corrupt *prometheus.Desc
	evictions, evictWalks, tempRemoved            *prometheus.Desc
	sweepErrors, errors                           *prometheus.Desc
	bytes, entries, maxBytes, tableBytes          *prometheus.Desc
}

func newDescs(dir string) descs {
	l := prometheus.Labels{"dir": dir}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tradecache_filecache_"+name, help, labels, l)
	}
	return descs{
		hits:        d("hits_total", "Gets that found a live entry."),
		misses:      d("misses_total", "Gets that found nothing, an expired entry or a corrupt one."),
		sets:        d("sets_total", "Entries written."),
		deletes:     d("deletes_total", "Delete calls that removed an entry."),
		expired:     d("expired_total", "Expired entries removed, by Get or a directory walk."),
		corrupt:     d("corrupt_total", "Corrupt entries dropped."),
		evictions:   d("evictions_total", "Entries removed to keep the cache within its size budget."),
		evictWalks:  d("evict_walks_total", "Directory walks made by eviction."),
		tempRemoved: d("temp_removed_total", "Temp files of dead writers removed."),
		sweepErrors: d("sweep_errors_total", "Periodic sweeps (Run) that failed."),
		errors:      d("errors_total", "Calls that failed on the file system, by operation (get, set, delete).", "op"),
		bytes:       d("bytes", "Approximate bytes of the entries, in the slot table and in files."),
		entries:     d("entries", "Approximate number of entries."),
		maxBytes:    d("max_bytes", "Size budget of the slot table and the entry files."),
		tableBytes:  d("table_bytes", "Size of the slot table file (0: none)."),
	}
}

type collector struct {
	c     *Cache
	descs descs
}

func (k *collector) Describe(ch chan<- *prometheus.Desc) {
	d := k.descs
	for _, x := range []*prometheus.Desc{d.hits, d.misses, d.sets, d.deletes, d.expired, d.corrupt,
		d.evictions, d.evictWalks, d.tempRemoved, d.sweepErrors, d.errors, d.bytes, d.entries, d.maxBytes, d.tableBytes} {
		ch <- x
	}
}

func (k *collector) Collect(ch chan<- prometheus.Metric) {
	s, d := k.c.Stats(), k.descs
	cnt := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v))
	}
	cnt(d.hits, s.Hits)
	cnt(d.misses, s.Misses)
	cnt(d.sets, s.Sets)
	cnt(d.deletes, s.Deletes)
	cnt(d.expired, s.Expired)
	cnt(d.corrupt, s.Corrupt)
	cnt(d.evictions, s.Evictions)
	cnt(d.evictWalks, s.EvictWalks)
	cnt(d.tempRemoved, s.TempRemoved)
	cnt(d.sweepErrors, s.SweepErrors)
	cnt(d.errors, s.GetErrors, "get")
	cnt(d.errors, s.SetErrors, "set")
	cnt(d.errors, s.DeleteErrors, "delete")
	gauge(d.bytes, s.Bytes)
	gauge(d.entries, s.Entries)
	gauge(d.maxBytes, s.MaxBytes)
	gauge(d.tableBytes, s.TableBytes)
}
