package cache_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/benchfmt"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
)

func benchKeys(b *testing.B, n int) []keyspace.Key {
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(b)}))
	if err := reg.Register(keyspace.Kind{Name: "item", Pattern: "item:{id}", TTL: time.Minute}); err != nil {
		b.Fatal(err)
	}
	keys := make([]keyspace.Key, n)
	for i := range keys {
		keys[i], _ = reg.Key("item", strconv.Itoa(i))
	}
	return keys
}

// BenchmarkMemoryGet: a hit on the memory tier, one caller; reports p99.
func BenchmarkMemoryGet(b *testing.B) {
	c, _ := cache.New(cache.Config{})
	keys := benchKeys(b, 200)
	ctx := context.Background()
	for _, k := range keys {
		c.Set(ctx, k, []byte("0123456789012345678901234567890123456789"))
	}
	var h benchfmt.Hist
	i := 0
	for b.Loop() {
		t0 := time.Now()
		c.Get(ctx, keys[i%len(keys)])
		h.Record(time.Since(t0))
		i++
	}
	b.ReportMetric(float64(h.Quantile(0.99).Nanoseconds()), "p99-ns")
}

// BenchmarkRedisGet: Get on the Redis tier from 64 and 1,024 concurrent
// callers (RunParallel with parallelism callers/GOMAXPROCS), valkey-go
// auto-pipelining.
func BenchmarkRedisGet(b *testing.B) {
	for _, callers := range []int{64, 1024} {
		b.Run("c"+strconv.Itoa(callers), func(b *testing.B) { benchRedisGet(b, callers) })
	}
}

func benchRedisGet(b *testing.B, callers int) {
	r := testenv.Shared(b)
	opt, _ := cache.RedisOptions(r.URL())
	c, _ := cache.New(cache.Config{Redis: opt})
	ctx := context.Background()
	if err := c.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := benchKeys(b, 1000)
	for _, k := range keys {
		c.Set(ctx, k, make([]byte, 100))
	}
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	var n atomic.Int64
	b.ResetTimer()
	cpu0 := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		i := int(n.Add(1)) * 7919
		for pb.Next() {
			if _, _, err := c.Get(ctx, keys[i%len(keys)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	reportCPU(b, cpu0)
}

// reportCPU reports the process's CPU time per operation since cpu0: on a
// shared machine it varies less than ns/op, which counts waiting for a
// core too.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkRedisGetSerial: one caller's Get on the Redis tier, one round
// trip at a time: the allocations and CPU of the call path itself.
func BenchmarkRedisGetSerial(b *testing.B) {
	r := testenv.Shared(b)
	opt, _ := cache.RedisOptions(r.URL())
	c, _ := cache.New(cache.Config{Redis: opt})
	ctx := context.Background()
	if err := c.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := benchKeys(b, 100)
	for _, k := range keys {
		c.Set(ctx, k, make([]byte, 100))
	}
	b.ReportAllocs()
	i := 0
	cpu0 := processCPU()
	for b.Loop() {
		if _, _, err := c.Get(ctx, keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportCPU(b, cpu0)
}

// BenchmarkOutageCall: a Set once the cache has switched to the memory
// tier with Redis dead: what a caller pays during an outage.
func BenchmarkOutageCall(b *testing.B) {
	r := testenv.Start(b)
	opt, _ := cache.RedisOptions(r.URL())
	c, _ := cache.New(cache.Config{Redis: opt, FailureThreshold: 1, CallTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	if err := c.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := benchKeys(b, 150)
	r.Stop(b)
	c.Set(ctx, keys[0], []byte("x")) // fails and switches
	if c.Tier() != cache.TierMemory {
		b.Fatal("still on redis")
	}
	var h benchfmt.Hist
	i := 0
	for b.Loop() {
		t0 := time.Now()
		c.Set(ctx, keys[i%len(keys)], []byte("value"))
		h.Record(time.Since(t0))
		i++
	}
	b.ReportMetric(float64(h.Quantile(0.99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(h.Max().Nanoseconds()), "max-ns")
}
