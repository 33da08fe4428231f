package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/benchfmt"
)

// AllOptions say how long `tradecache bench all` measures. Scale 1 is the
// published run (a few minutes); a small scale (0.05) is the smoke run CI
// makes so that no bench rots.
type AllOptions struct {
	Cache     cache.Config // on Redis: Cache.Redis must be set
	KeyPrefix string
	Scale     float64 // multiplies every duration and the file cache's largest size; below 1, also the fan-out's clients and the cadence run's symbols
	// FanoutClientCommand runs the fan-out bench's clients in a process
	// of their own (FanoutOptions.ClientCommand); nil: in this one.
	FanoutClientCommand []string
	// IngestSimCommand runs the ingest benches' exchange in a process of
	// its own (IngestOptions.SimCommand); nil: in this one.
	IngestSimCommand []string
	// IngestSubCommand, with RedisURL (Cache's Redis), runs a subscriber
	// of the cadence run's events in a process of its own
	// (IngestOptions.SubscriberCommand); nil: none.
	IngestSubCommand []string
	RedisURL         string
	Log              io.Writer
}

// All runs every bench in one sitting, each with its reference beside it,
// and returns their figures under a prefix per run:
//
//	cache.c64.*    the tiered cache at 64 callers; redis-benchmark -c 64 -P 1 beside it
//	cache.c1024.*  at 1,024 callers; redis-benchmark -c 64 -P 16 beside it
//	filecache.*    sets and hits at 1k, 10k and 100k entries
//	fanout.*       1,000 /ws clients of 200-byte events, 1,000 events/s (1M messages/s)
//	ingest.*       exchange streams → leader → Redis, as fast as the exchange sends
//	replay.*       the same node fed recorded-style kline frames as fast as it reads them: its own limit
//	cadence.*      1,000 kline streams at Binance's 250 ms: the node's CPU as follower and leader (publishing events, as serve)
func All(ctx context.Context, o AllOptions) (benchfmt.Report, error) {
	if o.Cache.Redis == nil {
		return nil, fmt.Errorf("bench all: needs Redis (the cache and ingest benches measure it)")
	}
	if o.Scale <= 0 {
		o.Scale = 1
	}
	d := func(base time.Duration) time.Duration {
		return max(time.Duration(float64(base)*o.Scale), 100*time.Millisecond)
	}
	var rep benchfmt.Report
	rep.Add("machine.cpus", float64(runtime.NumCPU()), "cores")
	add := func(prefix string, r benchfmt.Report) {
		for _, f := range r {
			if f.Name == "machine.cpus" {
				continue
			}
			name := f.Name
			if prefix != "" {
				name = prefix + "." + strings.TrimPrefix(name, "cache.")
			}
			rep.Add(name, f.Value, f.Unit)
		}
	}
	for _, c := range []struct {
		prefix                    string
		callers, clients, pipline int
	}{{"cache.c64", 64, 64, 1}, {"cache.c1024", 1024, 64, 16}} {
		r, err := Cache(ctx, CacheOptions{Cache: o.Cache, KeyPrefix: o.KeyPrefix, Concurrency: c.callers, ValueSize: 100,
			Keys: 10000, Duration: d(5 * time.Second), Compare: true, CompareClients: c.clients, ComparePipeline: c.pipline, Log: o.Log})
		if err != nil {
			return rep, err
		}
		add(c.prefix, r)
	}
	entries := []int{1000, 10000, 100000}
	if o.Scale < 1 {
		entries = []int{1000, 10000}
	}
	r, err := Filecache(ctx, FilecacheOptions{Entries: entries, ValueSize: 256, Duration: d(2 * time.Second), Log: o.Log})
	if err != nil {
		return rep, err
	}
	add("", r)
	r, err = Fanout(ctx, FanoutOptions{Clients: max(int(1000*math.Min(o.Scale, 1)), 20), Size: 200, Rate: 1000, Duration: d(5 * time.Second),
		ClientCommand: o.FanoutClientCommand, Log: o.Log})
	if err != nil {
		return rep, err
	}
	add("", r)
	r, err = Ingest(ctx, IngestOptions{Cache: o.Cache, KeyPrefix: o.KeyPrefix, Symbols: 100, UpdateEvery: 5 * time.Millisecond, Duration: max(d(10*time.Second), time.Second),
		SimCommand: o.IngestSimCommand, Log: o.Log})
	if err != nil {
		return rep, err
	}
	add("", r)
	r, err = Ingest(ctx, IngestOptions{Cache: o.Cache, KeyPrefix: o.KeyPrefix, Symbols: 100, UpdateEvery: 5 * time.Millisecond, Duration: max(d(10*time.Second), time.Second),
		Replay: true, SimCommand: o.IngestSimCommand, Log: o.Log})
	if err != nil {
		return rep, err
	}
	add("replay", r)
	// Below scale 1 (CI's smoke run, under the race detector) the cadence
	// run has fewer symbols: a simulator built with -race on a loaded
	// machine could not tick 1,000 streams every 250 ms, and a run would
	// see seconds without a frame.
	r, err = Ingest(ctx, IngestOptions{Cache: o.Cache, KeyPrefix: o.KeyPrefix, Symbols: max(int(500*math.Min(o.Scale, 1)), 10), UpdateEvery: 250 * time.Millisecond, Duration: max(d(20*time.Second), time.Second),
		Follower: true, Events: true, SimCommand: o.IngestSimCommand, SubscriberCommand: o.IngestSubCommand, RedisURL: o.RedisURL, Log: o.Log})
	if err != nil {
		return rep, err
	}
	add("cadence", r)
	return rep, nil
}

// ReadBaseline reads the figures of an earlier `bench all --json` run (or
// any bench's --json): figure → value.
func ReadBaseline(path string) (map[string]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: baseline: %w", err)
	}
	var m map[string]struct {
		Value float64 `json:"value"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("bench: baseline %s: %w", path, err)
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = v.Value
	}
	return out, nil
}

// WriteTable prints rep as a table with, for each figure, the baseline's
// value and the change from it (when the baseline has the figure).
func WriteTable(w io.Writer, rep benchfmt.Report, baseline map[string]float64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tUNIT\tPREVIOUS\tCHANGE\t")
	for _, f := range rep {
		prev, change := "", ""
		if v, ok := baseline[f.Name]; ok {
			prev = strconv.FormatFloat(v, 'f', -1, 64)
			if v != 0 {
				change = fmt.Sprintf("%+.1f%%", (f.Value-v)/math.Abs(v)*100)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", f.Name, strconv.FormatFloat(f.Value, 'f', -1, 64), f.Unit, prev, change)
	}
	return tw.Flush()
}
