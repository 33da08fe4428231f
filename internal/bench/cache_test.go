package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
)

func TestCacheMemory(t *testing.T) {
	var log bytes.Buffer
	rep, err := Cache(context.Background(), CacheOptions{Concurrency: 4, ValueSize: 10, Keys: 100, Duration: 50 * time.Millisecond, Compare: true, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	requireFigures(t, rep, true, "machine.cpus", "bench.concurrency", "bench.value_size",
		"cache.set.memory", "cache.set.memory.p50", "cache.set.memory.p99", "cache.get.memory", "cache.get.memory.p99")
	if f := figures(rep); f["cache.get.memory"].Unit != "ops/s" || f["cache.get.memory.p99"].Unit != "us" {
		t.Errorf("units: %s", show(rep))
	}
	if _, ok := figures(rep)["redis-benchmark.get"]; ok {
		t.Errorf("compared with redis-benchmark on the memory tier:\n%s", show(rep))
	}
	if !strings.Contains(log.String(), "memory tier, 4 callers, 100 keys") {
		t.Errorf("log = %q", log.String())
	}
}

func TestCacheRedis(t *testing.T) {
	r := testenv.Shared(t)
	opt, err := cache.RedisOptions(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.Prefix(t)
	rep, err := Cache(context.Background(), CacheOptions{Cache: cache.Config{Redis: opt}, KeyPrefix: prefix,
		Concurrency: 4, ValueSize: 10, Keys: 100, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	requireFigures(t, rep, true, "cache.set.redis", "cache.set.redis.p99", "cache.get.redis", "cache.get.redis.p50")
	// The keys are the "bench" kind's, under the deployment's prefix, with a TTL.
	rc := r.Client(t)
	ctx := context.Background()
	ttl, err := rc.Do(ctx, rc.B().Pttl().Key(prefix+"tradecache_bench:7").Build()).AsInt64()
	if err != nil || ttl <= 0 || ttl > (10*time.Minute).Milliseconds() {
		t.Errorf("PTTL of a bench key = %d, %v; want a TTL of at most 10 min", ttl, err)
	}
}

func TestCacheRefusesBadOptions(t *testing.T) {
	for _, o := range []CacheOptions{
		{Concurrency: 0, Keys: 1, Duration: time.Millisecond},
		{Concurrency: 1, Keys: 0, Duration: time.Millisecond},
		{Concurrency: 1, Keys: 1, ValueSize: -1, Duration: time.Millisecond},
		{Concurrency: 1, Keys: 1},
	} {
		if _, err := Cache(context.Background(), o); err == nil {
			t.Errorf("Cache(%+v) ran", o)
		}
	}
}

func TestParseRedisBenchmark(t *testing.T) {
	out := []byte(`"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"GET tradecache_bench:rb:__rand_int__","51020.41","0.520","0.104","0.503","0.743","0.959","2.183"
`)
	rps, p50, p99, err := parseRedisBenchmark(out)
	if err != nil || rps != 51020.41 || p50 != 0.503 || p99 != 0.959 {
		t.Errorf("parseRedisBenchmark = %v %v %v %v", rps, p50, p99, err)
	}
	// Cluster mode (--cluster) describes the masters first.
	cluster := append([]byte("Cluster has 3 master nodes:\n\nMaster 0: 6c9a 127.0.0.1:7003\n\n"), out...)
	if rps, _, _, err := parseRedisBenchmark(cluster); err != nil || rps != 51020.41 {
		t.Errorf("parseRedisBenchmark of cluster mode = %v %v", rps, err)
	}
	for _, bad := range []string{"", "ERR\n", `"test","rps"` + "\n" + `"GET","1"` + "\n",
		`"test","rps","a","b","c","d","e"` + "\n" + `"GET","1","2","3","4","5","6"` + "\n"} {
		if _, _, _, err := parseRedisBenchmark([]byte(bad)); err == nil {
			t.Errorf("parseRedisBenchmark(%q) accepted it", bad)
		}
	}
}
