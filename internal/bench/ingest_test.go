package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
)

func TestIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	r := testenv.Shared(t)
	opt, err := cache.RedisOptions(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	prefix := testenv.Prefix(t)
	rep, err := Ingest(context.Background(), IngestOptions{Cache: cache.Config{Redis: opt}, KeyPrefix: prefix,
		Symbols: 2, UpdateEvery: 5 * time.Millisecond, Duration: 300 * time.Millisecond, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	requireFigures(t, rep, true, "machine.cpus", "ingest.streams", "ingest.events", "ingest.kline_upserts", "ingest.flushes", "ingest.heap")
	requireFigures(t, rep, false, "ingest.latency.p50", "ingest.latency.p99")
	if f := figures(rep)["ingest.streams"]; f.Value != 4 {
		t.Errorf("ingest.streams = %v, want 4 (2 symbols × 2 intervals)", f.Value)
	}
	if !strings.Contains(log.String(), "into "+r.Addr()) {
		t.Errorf("log = %q", log.String())
	}
	// Everything lives under the deployment's prefix and the bench's.
	keys := r.KeysMatching(t, prefix+"*")
	if len(keys) == 0 {
		t.Fatalf("no keys under %s", prefix)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix+"tradecache_bench:") {
			t.Errorf("key %s outside %stradecache_bench:", k, prefix)
		}
	}
}

// With the exchange in a process of its own (this test binary, TestMain),
// the node measured as a follower first, then as the leader.
func TestIngestSimProcessFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	r := testenv.Shared(t)
	opt, err := cache.RedisOptions(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Ingest(context.Background(), IngestOptions{Cache: cache.Config{Redis: opt}, KeyPrefix: testenv.Prefix(t),
		Symbols: 2, UpdateEvery: 5 * time.Millisecond, Duration: 300 * time.Millisecond, Follower: true, SimCommand: []string{os.Args[0]}})
	if err != nil {
		t.Fatal(err)
	}
	requireFigures(t, rep, true, "ingest.events", "ingest.sim_process", "ingest.cpu", "ingest.cpu_per_100k_events")
	requireFigures(t, rep, false, "ingest.follower_cpu")
	// The kline streams replayed from templates, the exchange in process.
	rep, err = Ingest(context.Background(), IngestOptions{Cache: cache.Config{Redis: opt}, KeyPrefix: testenv.Prefix(t),
		Symbols: 2, UpdateEvery: time.Second, Duration: 300 * time.Millisecond, Replay: true})
	if err != nil {
		t.Fatal(err)
	}
	requireFigures(t, rep, true, "ingest.events", "ingest.replay", "ingest.kline_upserts")
	if _, err := Ingest(context.Background(), IngestOptions{Cache: cache.Config{Redis: opt}, KeyPrefix: testenv.Prefix(t),
		Symbols: 1, UpdateEvery: time.Millisecond, Duration: time.Millisecond, SimCommand: []string{"/nonexistent/tradecache"}}); err == nil {
		t.Error("an exchange process that cannot start: no error")
	}
}

func TestIngestRefusesBadOptions(t *testing.T) {
	opt, err := cache.RedisOptions("redis://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []IngestOptions{
		{Symbols: 1, UpdateEvery: time.Millisecond, Duration: time.Millisecond},
		{Cache: cache.Config{Redis: opt}, Symbols: 0, UpdateEvery: time.Millisecond, Duration: time.Millisecond},
		{Cache: cache.Config{Redis: opt}, Symbols: 1, Duration: time.Millisecond},
		{Cache: cache.Config{Redis: opt}, Symbols: 1, UpdateEvery: time.Millisecond},
	} {
		if _, err := Ingest(context.Background(), o); err == nil {
			t.Errorf("Ingest(%+v) ran", o)
		}
	}
}

// With events, a subscriber in a process of its own (this test binary,
// TestMain) receives them and reports its CPU over the measured run.
func TestIngestSubscriberProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	r := testenv.Shared(t)
	opt, err := cache.RedisOptions(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	o := IngestOptions{Cache: cache.Config{Redis: opt}, KeyPrefix: testenv.Prefix(t), Symbols: 2, UpdateEvery: 5 * time.Millisecond,
		Duration: 500 * time.Millisecond, Events: true, SubscriberCommand: []string{os.Args[0]}, RedisURL: r.URL()}
	rep, err := Ingest(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	requireFigures(t, rep, true, "ingest.events", "ingest.subscriber_events")
	requireFigures(t, rep, false, "ingest.subscriber_cpu", "ingest.subscriber_dropped", "ingest.subscriber_malformed")
	got := figures(rep)
	if m := got["ingest.subscriber_malformed"].Value; m != 0 {
		t.Errorf("the subscriber could not decode %v of the leader's events", m)
	}
	// Every write is published: the subscriber gets at least the kline
	// writes (the windows differ by the time a line takes between the
	// processes, a flush at most).
	if sub, wr := got["ingest.subscriber_events"].Value, got["ingest.kline_upserts"].Value; sub < wr/2 {
		t.Errorf("subscriber received %v events/s, the node wrote %v klines/s", sub, wr)
	}

	for name, bad := range map[string]func(*IngestOptions){
		"no events":       func(o *IngestOptions) { o.Events = false },
		"no Redis URL":    func(o *IngestOptions) { o.RedisURL = "" },
		"cannot start":    func(o *IngestOptions) { o.SubscriberCommand = []string{"/nonexistent/tradecache"} },
		"wrong Redis URL": func(o *IngestOptions) { o.RedisURL = "redis://127.0.0.1:1" },
	} {
		o := o
		o.Duration = 100 * time.Millisecond
		bad(&o)
		if _, err := Ingest(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A subscriber process that never gets an event times out on the bench's
// side and exits by itself (not killed) when the bench closes its stdin.
func TestIngestSubscriberNeverReady(t *testing.T) {
	r := testenv.Shared(t)
	p, err := startSub([]string{os.Args[0]}, r.URL(), 0, testenv.Prefix(t)+"silent")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ready(context.Background(), 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("ready on a silent channel: %v", err)
	}
	p.stop()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the subscriber process exited with %d, want 0 (by itself, on its stdin's end)", code)
	}
}
