package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/benchfmt"
	"github.com/tradecache/tradecache/keyspace"
)

// benchKeys starts every key a benchmark writes to Redis (after the
// deployment's key prefix), so a run's keys are easy to tell apart.
const benchKeys = "tradecache_bench:"

// CacheOptions configures Cache.
type CacheOptions struct {
	// Cache is the tiered cache to measure: on Redis when Cache.Redis is
	// set, else on the memory tier. MemoryEntries is raised to Keys; a nil
	// Logger discards.
	Cache cache.Config
	// KeyPrefix is the deployment's key prefix; keys are
	// KeyPrefix + "tradecache_bench:" + a number.
	KeyPrefix string

	Concurrency int           // concurrent callers (≥ 1)
	ValueSize   int           // bytes per value (≥ 0)
	Keys        int           // distinct keys (≥ 1)
	Duration    time.Duration // length of each phase: set, then get
	// Compare also runs redis-benchmark, when on the Redis tier and on the
	// PATH, with the same concurrency, value size and key count, and
	// reports its figures and the ratio to them.
	Compare bool
	// CompareClients and ComparePipeline are redis-benchmark's -c and -P:
	// 0 means Concurrency and 1 (no pipelining).
	CompareClients, ComparePipeline int
	// CPUProfile, when set, is the file a CPU profile of the get phase is
	// written to.
	CPUProfile string
	// Log receives progress lines; nil discards.
	Log io.Writer
}

// Cache measures Set then Get through the tiered cache, from Concurrency
// goroutines for Duration each, and reports ops/s, latency and this
// process's CPU time per call as cache.<op>.<tier>[.p50|.p99|.cpu_per_op],
// with bench.* figures describing the run.
// Keys are a "bench" kind with a 10-minute TTL, so a run leaves nothing
// behind for long. With Compare on Redis it adds redis-benchmark.<op>
// figures and cache.<op>.redis.ratio; when the comparison cannot run, it
// says why on Log and reports without it.
func Cache(ctx context.Context, o CacheOptions) (benchfmt.Report, error) {
	if o.Concurrency < 1 || o.Keys < 1 || o.ValueSize < 0 || o.Duration <= 0 {
		return nil, errors.New("bench cache: concurrency and keys must be ≥ 1, value size ≥ 0, duration > 0")
	}
	log := logTo(o.Log)
	reg, err := keyspace.New(keyspace.Config{Prefix: o.KeyPrefix})
	if err != nil {
		return nil, err
	}
	if err := reg.Register(keyspace.Kind{Name: "bench", Pattern: benchKeys + "{id}", TTL: 10 * time.Minute}); err != nil {
		return nil, err
	}
	keys := make([]keyspace.Key, o.Keys)
	for i := range keys {
		keys[i], _ = reg.Key("bench", strconv.Itoa(i))
	}
	cc := o.Cache
	cc.MemoryEntries = max(cc.MemoryEntries, o.Keys)
	if cc.Logger == nil {
		cc.Logger = discardLogger()
	}
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
	value := bytes.Repeat([]byte("x"), o.ValueSize)
	var rep benchfmt.Report
	rep.Add("machine.cpus", float64(runtime.NumCPU()), "cores")
	rep.Add("bench.concurrency", float64(o.Concurrency), "callers")
	rep.Add("bench.value_size", float64(o.ValueSize), "bytes")
	fmt.Fprintf(log, "bench cache: %s tier, %d callers, %d keys, %d-byte values, %v per phase\n", tier, o.Concurrency, o.Keys, o.ValueSize, o.Duration)

	var rps = map[string]float64{}
	for _, op := range []string{"set", "get"} {
		if op == "get" && o.CPUProfile != "" {
			stop, err := startCPUProfile(o.CPUProfile)
			if err != nil {
				return nil, err
			}
			defer stop()
		}
		cpu0 := processCPU()
		ops, h, errs := hammer(ctx, o.Concurrency, o.Duration, func(r *rand.Rand) error {
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
		cpu := processCPU() - cpu0
		name := "cache." + op + "." + tier
		rps[op] = ops
		rep.Add(name, benchfmt.Round(ops, 4), "ops/s")
		rep.AddLatency(name, h)
		if n := h.Count(); n > 0 {
			// This process's CPU per call (callers, client library, the
			// bench's own clock reads): steadier than ops/s on a shared
			// machine, where ops/s also measures what others leave us.
			rep.Add(name+".cpu_per_op", benchfmt.Round(float64(cpu.Nanoseconds())/float64(n), 3), "ns")
		}
	}
	if tc.Tier().String() != tier {
		return nil, fmt.Errorf("bench cache: the cache left the %s tier during the run", tier)
	}
	if tier == "redis" && o.Compare {
		cluster := false
		if cl := tc.Redis(); cl != nil && cl.Mode() == valkey.ClientModeCluster {
			cluster = true
			rep.Add("redis.cluster_nodes", float64(len(cl.Nodes())), "nodes")
		}
		if err := compareRedisBenchmark(ctx, cc, cluster, o, rps, &rep, log); err != nil {
			fmt.Fprintln(log, "bench cache: redis-benchmark comparison skipped:", err)
		}
	}
	return rep, nil
}

// startCPUProfile starts a CPU profile into path; stop ends it.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
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

// compareRedisBenchmark runs redis-benchmark with the same value size and
// key count, by default the same concurrency without pipelining (-P 1),
// and reports its figures and our ratio to them.
// On a cluster redis-benchmark runs in its cluster mode (--cluster), from
// the first address, against every master.
func compareRedisBenchmark(ctx context.Context, cc cache.Config, cluster bool, o CacheOptions, rps map[string]float64, rep *benchfmt.Report, log io.Writer) error {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return fmt.Errorf("redis-benchmark is not on the PATH (Debian: apt-get install redis-tools)")
	}
	if cc.Redis.TLSConfig != nil || len(cc.Redis.InitAddress) == 0 || len(cc.Redis.InitAddress) > 1 && !cluster {
		return fmt.Errorf("only plain-TCP servers are compared, a single one or a cluster")
	}
	host, port, err := net.SplitHostPort(cc.Redis.InitAddress[0])
	if err != nil {
		return err
	}
	clients, pipeline := o.CompareClients, o.ComparePipeline
	if clients < 1 {
		clients = o.Concurrency
	}
	if pipeline < 1 {
		pipeline = 1
	}
	prefix := o.KeyPrefix + benchKeys
	for _, op := range []string{"set", "get"} {
		n := max(int(rps[op]*o.Duration.Seconds()), 10000) * pipeline
		// The same commands as "-t set/get -d size -r keys", spelled out so
		// the keys carry our prefix and a TTL: a comparison run leaves no
		// TTL-less key behind (-t would write "key:…" without one).
		key := prefix + "rb:__rand_int__"
		if cluster {
			// redis-benchmark replaces {tag} with a hash tag of each master's.
			key = prefix + "rb:{tag}:__rand_int__"
		}
		cmd := []string{"GET", key}
		if op == "set" {
			cmd = []string{"SET", key, string(bytes.Repeat([]byte("x"), o.ValueSize)), "EX", "600"}
		}
		args := []string{"-h", host, "-p", port, "-c", strconv.Itoa(clients), "-P", strconv.Itoa(pipeline),
			"-n", strconv.Itoa(n), "-r", strconv.Itoa(o.Keys), "-q", "--csv"}
		if cc.Redis.Password != "" {
			args = append(args, "-a", cc.Redis.Password, "--no-auth-warning")
		}
		if cc.Redis.Username != "" {
			args = append(args, "--user", cc.Redis.Username)
		}
		if cc.Redis.SelectDB != 0 {
			args = append(args, "--dbnum", strconv.Itoa(cc.Redis.SelectDB))
		}
		if cluster {
			args = append(args, "--cluster")
		}
		args = append(args, cmd...)
		fmt.Fprintf(log, "bench cache: redis-benchmark -c %d -P %d -n %d -r %d %s …\n", clients, pipeline, n, o.Keys, cmd[0])
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
	// In cluster mode the CSV follows a description of the masters.
	if i := bytes.Index(out, []byte(`"test",`)); i > 0 {
		out = out[i:]
	}
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
