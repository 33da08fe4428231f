package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tradecache/tradecache/internal/bench"
	"github.com/tradecache/tradecache/internal/config"
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
	o := bench.CacheOptions{Log: e.stderr}
	var asJSON bool
	cmd := config.Command{Name: "bench cache", Summary: "Measures Set then Get through the tiered cache: on Redis when one is configured (and redis-benchmark beside it), else on the memory tier.",
		Groups: []config.Group{config.Redis(&b.redis), config.Memory(&b.redis), config.Keys(&b.keys)},
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&o.Concurrency, "concurrency", 64, "concurrent callers")
			fs.DurationVar(&o.Duration, "duration", 5*time.Second, "length of each phase (set, then get)")
			fs.IntVar(&o.ValueSize, "value-size", 100, "value size in bytes")
			fs.IntVar(&o.Keys, "keys", 10000, "distinct keys")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object")
			fs.BoolVar(&o.Compare, "compare", true, "also run redis-benchmark (when on the PATH) and print the ratio")
			fs.IntVar(&o.CompareClients, "compare-clients", 0, "redis-benchmark's connections (-c); 0: --concurrency")
			fs.IntVar(&o.ComparePipeline, "compare-pipeline", 1, "redis-benchmark's pipeline depth (-P)")
			fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the get phase to this file")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	if o.Concurrency < 1 || o.Keys < 1 || o.ValueSize < 0 || o.Duration <= 0 {
		return fmt.Errorf("%w: bench cache: --concurrency, --keys must be >= 1, --duration > 0", errUsage)
	}
	cc, err := b.redis.CacheConfig()
	if err != nil {
		return err
	}
	o.Cache, o.KeyPrefix = cc, b.keys.Prefix
	rep, err := bench.Cache(ctx, o)
	if err != nil {
		return err
	}
	return rep.Write(e.stdout, asJSON)
}

func benchFilecacheCmd(ctx context.Context, e *env, args []string) error {
	o := bench.FilecacheOptions{Log: e.stderr}
	var entries string
	var asJSON bool
	cmd := config.Command{Name: "bench filecache", Summary: "Measures the file cache's sets, hits and misses at several entry counts, in a temporary directory.",
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&o.ValueSize, "value-size", 256, "value size in bytes")
			fs.DurationVar(&o.Duration, "duration", 2*time.Second, "length of each phase")
			fs.StringVar(&entries, "entries", "1000,10000,100000", "entry counts to measure at, comma-separated")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	for _, f := range strings.Split(entries, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("%w: bench filecache: --entries %q: want positive counts, comma-separated", errUsage, entries)
		}
		o.Entries = append(o.Entries, n)
	}
	if o.ValueSize < 0 || o.Duration <= 0 {
		return fmt.Errorf("%w: bench filecache: --value-size ≥ 0 and --duration > 0", errUsage)
	}
	rep, err := bench.Filecache(ctx, o)
	if err != nil {
		return err
	}
	return rep.Write(e.stdout, asJSON)
}

func benchIngestCmd(ctx context.Context, e *env, args []string) error {
	var b benchSettings
	o := bench.IngestOptions{Log: e.stderr}
	var asJSON, inProcess, subscriber bool
	cmd := config.Command{Name: "bench ingest", Summary: "Runs a simulated exchange in a process of its own and one leading node, and measures kline events/s from the streams through the leader into Redis and the node's CPU per 100k events/s.",
		Groups: []config.Group{config.Redis(&b.redis), config.Keys(&b.keys)},
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured run to this file")
			fs.IntVar(&o.Symbols, "symbols", 100, "number of simulated symbols (each streams every interval)")
			fs.DurationVar(&o.UpdateEvery, "update-every", 5*time.Millisecond, "kline update period of the simulated exchange per stream")
			fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured run")
			fs.BoolVar(&o.Follower, "follower", false, "first measure the node's CPU as a follower for --duration (the bench holds the lease), then as the leader")
			fs.BoolVar(&inProcess, "in-process", false, "run the exchange in the node's process (its CPU figures then hold both)")
			fs.DurationVar(&o.FlushEvery, "flush-every", 0, "the node's buffer → Redis period (0: its default, 100ms)")
			fs.BoolVar(&o.Events, "events", false, "publish what the node writes as events on a Redis channel, as serve's leader does")
			fs.BoolVar(&subscriber, "subscriber", false, "with --events: also subscribe to them in a process of its own, as a node does while a /ws client listens or notifications are forwarded, and measure its CPU")
			fs.BoolVar(&o.Replay, "replay", false, "send the kline streams from templates as fast as the node reads them (--update-every unused), not from the simulated market")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	if b.redis.URL == "" {
		return fmt.Errorf("%w: bench ingest measures writes into Redis: set --redis or REDIS_URL", errUsage)
	}
	if !inProcess {
		var err error
		if o.SimCommand, err = selfCommand("bench ingest", "bench", "ingest-sim"); err != nil {
			return err
		}
	}
	if o.Symbols < 1 || o.UpdateEvery <= 0 || o.Duration <= 0 {
		return fmt.Errorf("%w: bench ingest: --symbols ≥ 1, --update-every and --duration > 0", errUsage)
	}
	if subscriber {
		if !o.Events {
			return fmt.Errorf("%w: bench ingest: --subscriber measures a subscriber of the events: add --events", errUsage)
		}
		var err error
		if o.SubscriberCommand, err = selfCommand("bench ingest", "bench", "ingest-sub"); err != nil {
			return err
		}
		o.RedisURL = b.redis.URL
	}
	cc, err := b.redis.CacheConfig()
	if err != nil {
		return err
	}
	o.Cache, o.KeyPrefix = cc, b.keys.Prefix
	rep, err := bench.Ingest(ctx, o)
	if err != nil {
		return err
	}
	return rep.Write(e.stdout, asJSON)
}

func benchFanoutCmd(ctx context.Context, e *env, args []string) error {
	o := bench.FanoutOptions{Log: e.stderr}
	var asJSON, inProcess bool
	cmd := config.Command{Name: "bench fanout", Summary: "Runs a /ws gateway on loopback with WebSocket clients in a process of their own and measures messages/s delivered, latency, and the gateway process's CPU and memory per idle connection.",
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&o.Clients, "clients", 1000, "WebSocket clients on loopback")
			fs.IntVar(&o.Size, "size", 200, "event size in bytes")
			fs.IntVar(&o.Rate, "rate", 1000, "events published per second (each reaches every client)")
			fs.DurationVar(&o.Duration, "duration", 5*time.Second, "measured run")
			fs.BoolVar(&inProcess, "in-process", false, "run the clients in the gateway's process (its CPU and memory figures then hold both ends)")
			fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the gateway's process during the run to this file")
			fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile of the gateway's process to this file once the clients are connected and idle")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	if o.Clients < 1 || o.Size < 1 || o.Rate < 1 || o.Duration <= 0 {
		return fmt.Errorf("%w: bench fanout: --clients, --size, --rate ≥ 1 and --duration > 0", errUsage)
	}
	if !inProcess {
		var err error
		if o.ClientCommand, err = fanoutClientCommand(); err != nil {
			return err
		}
	}
	rep, err := bench.Fanout(ctx, o)
	if err != nil {
		return err
	}
	return rep.Write(e.stdout, asJSON)
}

// fanoutClientCommand is the command line of bench fanout's client
// process: this executable's hidden bench fanout-clients.
func fanoutClientCommand() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench fanout: cannot find this executable to start the client process (--in-process runs without one): %w", err)
	}
	return []string{exe, "bench", "fanout-clients"}, nil
}

// selfCommand is the command line of a bench's helper process: this
// executable with args (a hidden command).
func selfCommand(bench string, args ...string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%s: cannot find this executable to start its helper process: %w", bench, err)
	}
	return append([]string{exe}, args...), nil
}

// benchIngestSimCmd is the exchange process of bench ingest: Ingest
// starts it with its settings in the environment and reads its stdout.
func benchIngestSimCmd(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 || !bench.IsIngestSim(e.getenv) {
		return fmt.Errorf("%w: bench ingest-sim is started by bench ingest, not by hand", errUsage)
	}
	if code := bench.IngestSimMain(ctx, os.Stdin, e.stdout, e.getenv); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// benchIngestSubCmd is the event subscriber process of bench ingest
// --subscriber: Ingest starts it with its settings in the environment,
// talks to it on its stdin and reads its stdout.
func benchIngestSubCmd(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 || !bench.IsIngestSub(e.getenv) {
		return fmt.Errorf("%w: bench ingest-sub is started by bench ingest, not by hand", errUsage)
	}
	if code := bench.IngestSubMain(ctx, os.Stdin, e.stdout, e.getenv); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// benchFanoutClientsCmd is the client process of bench fanout: Fanout
// starts it with its settings in the environment and reads its stdout.
func benchFanoutClientsCmd(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 || !bench.IsFanoutClients(e.getenv) {
		return fmt.Errorf("%w: bench fanout-clients is started by bench fanout, not by hand", errUsage)
	}
	if code := bench.FanoutClientsMain(ctx, os.Stdin, e.stdout, e.getenv); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func benchAllCmd(ctx context.Context, e *env, args []string) error {
	var b benchSettings
	o := bench.AllOptions{Log: e.stderr}
	var asJSON bool
	var baseline string
	cmd := config.Command{Name: "bench all", Summary: "Runs every bench in one sitting (cache at 64 and 1,024 callers beside redis-benchmark, file cache, fan-out, ingest, CPU at Binance's cadence) and prints a table, with an earlier run's figures beside them (--baseline).",
		Groups: []config.Group{config.Redis(&b.redis), config.Keys(&b.keys)},
		Flags: func(fs *flag.FlagSet) {
			fs.Float64Var(&o.Scale, "scale", 1, "multiplies every bench's duration (0.05: a smoke run)")
			fs.StringVar(&baseline, "baseline", "", "an earlier `bench all --json` output to compare with (BENCHMARKS.json holds the published run)")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object")
		}}
	if _, err := e.parse(cmd, args); err != nil {
		return err
	}
	if b.redis.URL == "" {
		return fmt.Errorf("%w: bench all measures Redis too: set --redis or REDIS_URL", errUsage)
	}
	if o.Scale <= 0 {
		return fmt.Errorf("%w: bench all: --scale > 0", errUsage)
	}
	var base map[string]float64
	if baseline != "" {
		var err error
		if base, err = bench.ReadBaseline(baseline); err != nil {
			return fmt.Errorf("%w: bench all: %w", errUsage, err)
		}
	}
	cc, err := b.redis.CacheConfig()
	if err != nil {
		return err
	}
	o.Cache, o.KeyPrefix = cc, b.keys.Prefix
	if o.FanoutClientCommand, err = fanoutClientCommand(); err != nil {
		return err
	}
	if o.IngestSimCommand, err = selfCommand("bench all", "bench", "ingest-sim"); err != nil {
		return err
	}
	if o.IngestSubCommand, err = selfCommand("bench all", "bench", "ingest-sub"); err != nil {
		return err
	}
	o.RedisURL = b.redis.URL
	rep, err := bench.All(ctx, o)
	if err != nil {
		return err
	}
	if asJSON {
		return rep.Write(e.stdout, true)
	}
	return bench.WriteTable(e.stdout, rep, base)
}
