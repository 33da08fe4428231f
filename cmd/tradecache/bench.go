package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/internal/benchfmt"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/internal/gateway"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/node"
)

// benchSettings is what the cache and ingest benchmarks take: Redis (or,
// for bench cache, the memory tier) and the key prefix.
type benchSettings struct {
	redis node.Redis
	keys  node.Keys
}

func benchCacheCmd(ctx context.Context, e *env, args []string) error {
	var b benchSettings
	var o benchCacheOpts
	cmd := config.Command{Name: "bench cache", Summary: "Measures Set then Get through the tiered cache: on Redis when one is configured (and redis-benchmark beside it), else on the memory tier.",
		Groups: []config.Group{config.Redis(&b.redis), config.Memory(&b.redis), config.Keys(&b.keys)},
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent callers")
			fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each phase (set, then get)")
			fs.IntVar(&o.valueSize, "value-size", 100, "value size in bytes")
			fs.IntVar(&o.keys, "keys", 10000, "distinct keys")
			fs.BoolVar(&o.json, "json", false, "print one JSON object")
			fs.BoolVar(&o.compare, "compare", true, "also run redis-benchmark (when on the PATH) and print the ratio")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	rep, err := benchCache(ctx, b, o, e.stderr)
	if err != nil {
		return err
	}
	return rep.Write(e.stdout, o.json)
}

func benchFilecacheCmd(ctx context.Context, e *env, args []string) error {
	var valueSize int
	var d time.Duration
	var entries string
	var asJSON bool
	cmd := config.Command{Name: "bench filecache", Summary: "Measures the file cache's sets, hits and misses at several entry counts, in a temporary directory.",
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&valueSize, "value-size", 256, "value size in bytes")
			fs.DurationVar(&d, "duration", 2*time.Second, "length of each phase")
			fs.StringVar(&entries, "entries", "1000,10000,100000", "entry counts to measure at, comma-separated")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	var ns []int
	for _, f := range strings.Split(entries, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("%w: bench filecache: --entries %q: want positive counts, comma-separated", errUsage, entries)
		}
		ns = append(ns, n)
	}
	if valueSize < 0 || d <= 0 {
		return fmt.Errorf("%w: bench filecache: --value-size ≥ 0 and --duration > 0", errUsage)
	}
	rep, err := benchFilecache(ctx, ns, valueSize, d, e.stderr)
	if err != nil {
		return err
	}
	return rep.Write(e.stdout, asJSON)
}

func benchIngestCmd(ctx context.Context, e *env, args []string) error {
	var b benchSettings
	var o benchIngestOpts
	cmd := config.Command{Name: "bench ingest", Summary: "Runs a fast simulated exchange and one leading node, and measures kline events/s from the streams through the leader into Redis.",
		Groups: []config.Group{config.Redis(&b.redis), config.Keys(&b.keys)},
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured run to this file")
			fs.IntVar(&o.symbols, "symbols", 100, "number of simulated symbols (each streams every interval)")
			fs.DurationVar(&o.every, "update-every", 5*time.Millisecond, "kline update period of the simulated exchange per stream")
			fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured run")
			fs.BoolVar(&o.json, "json", false, "print one JSON object")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	rep, err := benchIngest(ctx, b, o, e.stderr)
	if err != nil {
		return err
	}
	return rep.Write(e.stdout, o.json)
}

func benchFanoutCmd(ctx context.Context, e *env, args []string) error {
	var clients, size, rate int
	var d time.Duration
	var asJSON bool
	cmd := config.Command{Name: "bench fanout", Summary: "Runs a /ws gateway on loopback with real WebSocket clients and measures messages/s delivered and latency.",
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&clients, "clients", 1000, "WebSocket clients on loopback")
			fs.IntVar(&size, "size", 200, "event size in bytes")
			fs.IntVar(&rate, "rate", 200, "events published per second (each reaches every client)")
			fs.DurationVar(&d, "duration", 5*time.Second, "measured run")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	if clients < 1 || size < 1 || rate < 1 || d <= 0 {
		return fmt.Errorf("%w: bench fanout: --clients, --size, --rate ≥ 1 and --duration > 0", errUsage)
	}
	fmt.Fprintf(e.stderr, "bench fanout: %d clients, %d-byte events, %d events/s (%d messages/s), %v\n", clients, size, rate, clients*rate, d)
	r, err := gateway.BenchFanout(ctx, clients, size, rate, d)
	if err != nil {
		return fmt.Errorf("bench fanout: %w", err)
	}
	return r.Report().Write(e.stdout, asJSON)
}

// benchKeyPrefix starts every key a cache benchmark writes.
const benchKeyPrefix = "tradecache_bench:"

type benchCacheOpts struct {
	concurrency, valueSize, keys int
	duration                     time.Duration
	json, compare                bool
}

// benchCache measures Set then Get through the tiered cache: on Redis when
// one is configured, else on the memory tier. Keys are a "bench" kind with
// a 10-minute TTL, so a run leaves nothing behind for long.
func benchCache(ctx context.Context, c benchSettings, o benchCacheOpts, stderr io.Writer) (benchfmt.Report, error) {
	if o.concurrency < 1 || o.keys < 1 || o.valueSize < 0 || o.duration <= 0 {
		return nil, fmt.Errorf("%w: bench cache: --concurrency, --keys must be >= 1, --duration > 0", errUsage)
	}
	reg, err := c.keys.Registry()
	if err != nil {
		return nil, err
	}
	if err := reg.Register(keyspace.Kind{Name: "bench", Pattern: benchKeyPrefix + "{id}", TTL: 10 * time.Minute}); err != nil {
		return nil, err
	}
	keys := make([]keyspace.Key, o.keys)
	for i := range keys {
		keys[i], _ = reg.Key("bench", strconv.Itoa(i))
	}
	cc, err := c.redis.CacheConfig()
	if err != nil {
		return nil, err
	}
	cc.MemoryEntries = max(cc.MemoryEntries, o.keys)
	cc.Logger = quietLogger()
	tc, err := cache.New(cc)
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	tier := "memory"
	if cc.Redis != nil {
		if err := tc.Connect(ctx); err != nil {
			return nil, fmt.Errorf("bench cache: %w", err)
		}
		tier = "redis"
	}
	value := bytes.Repeat([]byte("x"), o.valueSize)
	var rep benchfmt.Report
	rep.Add("machine.cpus", float64(runtime.NumCPU()), "cores")
	rep.Add("bench.concurrency", float64(o.concurrency), "callers")
	rep.Add("bench.value_size", float64(o.valueSize), "bytes")
	fmt.Fprintf(stderr, "bench cache: %s tier, %d callers, %d keys, %d-byte values, %v per phase\n", tier, o.concurrency, o.keys, o.valueSize, o.duration)

	var rps = map[string]float64{}
	for _, op := range []string{"set", "get"} {
		ops, h, errs := hammer(ctx, o.concurrency, o.duration, func(r *rand.Rand) error {
			k := keys[r.IntN(len(keys))]
			if op == "set" {
				return tc.Set(ctx, k, value)
			}
			_, _, err := tc.Get(ctx, k)
			return err
		})
		if errs > 0 {
			return nil, fmt.Errorf("bench cache: %d %s calls failed", errs, op)
		}
		name := "cache." + op + "." + tier
		rps[op] = ops
		rep.Add(name, benchfmt.Round(ops, 4), "ops/s")
		rep.AddLatency(name, h)
	}
	if tc.Tier().String() != tier {
		return nil, fmt.Errorf("bench cache: the cache left the %s tier during the run", tier)
	}
	if tier == "redis" && o.compare {
		if err := compareRedisBenchmark(ctx, cc, o, rps, &rep, stderr); err != nil {
			fmt.Fprintln(stderr, "bench cache: redis-benchmark comparison skipped:", err)
		}
	}
	return rep, nil
}

// hammer runs f from n goroutines for d and returns ops/s, the merged
// latency histogram and the number of errors.
func hammer(ctx context.Context, n int, d time.Duration, f func(*rand.Rand) error) (float64, *benchfmt.Hist, int) {
	hs := make([]benchfmt.Hist, n)
	errs := make([]int, n)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for g := range n {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			h := &hs[g]
			for i := 0; ; i++ {
				if i%64 == 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
					return
				}
				t0 := time.Now()
				if err := f(r); err != nil {
					errs[g]++
				}
				h.Record(time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all benchfmt.Hist
	total := 0
	for g := range hs {
		all.Merge(&hs[g])
		total += errs[g]
	}
	return float64(all.Count()) / elapsed.Seconds(), &all, total
}

// compareRedisBenchmark runs redis-benchmark with the same concurrency,
// value size and key count, without pipelining (-P 1), and reports its
// figures and our ratio to them.
func compareRedisBenchmark(ctx context.Context, cc cache.Config, o benchCacheOpts, rps map[string]float64, rep *benchfmt.Report, stderr io.Writer) error {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return fmt.Errorf("redis-benchmark is not on the PATH (Debian: apt-get install redis-tools)")
	}
	if cc.Redis.TLSConfig != nil || len(cc.Redis.InitAddress) != 1 {
		return fmt.Errorf("only a single plain-TCP server is compared")
	}
	host, port, err := net.SplitHostPort(cc.Redis.InitAddress[0])
	if err != nil {
		return err
	}
	for _, op := range []string{"set", "get"} {
		n := max(int(rps[op]*o.duration.Seconds()), 10000)
		// The same commands as "-t set/get -d size -r keys", spelled out so
		// the keys carry our prefix and a TTL: a comparison run leaves no
		// TTL-less key behind (-t would write "key:…" without one).
		cmd := []string{"GET", benchKeyPrefix + "rb:__rand_int__"}
		if op == "set" {
			cmd = []string{"SET", benchKeyPrefix + "rb:__rand_int__", string(bytes.Repeat([]byte("x"), o.valueSize)), "EX", "600"}
		}
		args := []string{"-h", host, "-p", port, "-c", strconv.Itoa(o.concurrency), "-P", "1",
			"-n", strconv.Itoa(n), "-r", strconv.Itoa(o.keys), "-q", "--csv"}
		if cc.Redis.Password != "" {
			args = append(args, "-a", cc.Redis.Password, "--no-auth-warning")
		}
		if cc.Redis.Username != "" {
			args = append(args, "--user", cc.Redis.Username)
		}
		if cc.Redis.SelectDB != 0 {
			args = append(args, "--dbnum", strconv.Itoa(cc.Redis.SelectDB))
		}
		args = append(args, cmd...)
		fmt.Fprintf(stderr, "bench cache: redis-benchmark -c %d -P 1 -n %d -r %d %s …\n", o.concurrency, n, o.keys, cmd[0])
		out, err := exec.CommandContext(ctx, bin, args...).Output()
		if err != nil {
			return fmt.Errorf("redis-benchmark: %w", err)
		}
		rb, p50, p99, err := parseRedisBenchmark(out)
		if err != nil {
			return err
		}
		name := "redis-benchmark." + op
		rep.Add(name, benchfmt.Round(rb, 4), "ops/s")
		rep.Add(name+".p50", p50*1000, "us")
		rep.Add(name+".p99", p99*1000, "us")
		rep.Add("cache."+op+".redis.ratio", benchfmt.Round(rps[op]/rb, 3), "x")
	}
	return nil
}

// parseRedisBenchmark reads the CSV of redis-benchmark 7:
// "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
func parseRedisBenchmark(out []byte) (rps, p50ms, p99ms float64, err error) {
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(recs) < 2 || len(recs[1]) < 7 {
		return 0, 0, 0, fmt.Errorf("unexpected redis-benchmark output %q", out)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	get := func(name string) (float64, error) {
		i, ok := col[name]
		if !ok {
			return 0, fmt.Errorf("redis-benchmark output lacks %q", name)
		}
		return strconv.ParseFloat(recs[1][i], 64)
	}
	if rps, err = get("rps"); err != nil {
		return
	}
	if p50ms, err = get("p50_latency_ms"); err != nil {
		return
	}
	p99ms, err = get("p99_latency_ms")
	return
}

// benchFilecache reports the file cache's set, get-hit and get-miss rates
// at several entry counts, in a temporary directory.
func benchFilecache(ctx context.Context, entries []int, valueSize int, d time.Duration, stderr io.Writer) (benchfmt.Report, error) {
	var rep benchfmt.Report
	rep.Add("machine.cpus", float64(runtime.NumCPU()), "cores")
	for _, n := range entries {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		dir, err := os.MkdirTemp("", "tradecache-bench-filecache-")
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "bench filecache: %d entries of %d bytes, %v per phase, in %s\n", n, valueSize, d, dir)
		r, err := filecache.Bench(dir, n, valueSize, d)
		os.RemoveAll(dir)
		if err != nil {
			return nil, fmt.Errorf("bench filecache: %w", err)
		}
		p := fmt.Sprintf("filecache.%d.", n)
		rep.Add(p+"set", benchfmt.Round(r.SetsPerSec, 4), "ops/s")
		rep.Add(p+"get_hit", benchfmt.Round(r.HitsPerSec, 4), "ops/s")
		rep.Add(p+"get_miss", benchfmt.Round(r.MissesPerSec, 4), "ops/s")
		rep.Add(p+"parallel.get_hit", benchfmt.Round(r.ParallelHitsPerSec, 4), "ops/s")
	}
	return rep, nil
}
