package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/benchfmt"
	"github.com/tradecache/tradecache/internal/testenv"
)

// All runs every bench, briefly here, and names each figure under its run.
func TestAll(t *testing.T) {
	r := testenv.Shared(t)
	opt, err := cache.RedisOptions(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	// The fan-out's clients and the ingest benches' exchange in processes
	// of their own: this test binary (TestMain).
	rep, err := All(context.Background(), AllOptions{Cache: cache.Config{Redis: opt}, KeyPrefix: testenv.Prefix(t), Scale: 0.02,
		FanoutClientCommand: []string{os.Args[0]}, IngestSimCommand: []string{os.Args[0]}, IngestSubCommand: []string{os.Args[0]}, RedisURL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	requireFigures(t, rep, true, "machine.cpus", "cache.c64.get.redis", "cache.c1024.get.redis", "cache.c64.redis-benchmark.get",
		"cache.c1024.redis-benchmark.get", "cache.c1024.get.redis.ratio", "filecache.1000.get_hit", "filecache.10000.set",
		"fanout.delivered", "fanout.client_process", "ingest.events", "ingest.sim_process", "ingest.cpu", "ingest.cpu_per_100k_events",
		"replay.ingest.events", "replay.ingest.cpu_per_100k_events", "cadence.ingest.events", "cadence.ingest.cpu", "cadence.ingest.subscriber_events")
	requireFigures(t, rep, false, "cadence.ingest.follower_cpu", "cadence.ingest.events_dropped", "cadence.ingest.events_failed",
		"cadence.ingest.subscriber_cpu", "cadence.ingest.subscriber_dropped")
	if _, err := All(context.Background(), AllOptions{}); err == nil {
		t.Error("All without Redis: no error")
	}
}

func TestBaselineTable(t *testing.T) {
	var prev bytes.Buffer
	old := benchfmt.Report{{Name: "cache.c64.get.redis", Value: 100000, Unit: "ops/s"}}
	if err := old.Write(&prev, true); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "BENCHMARKS.json")
	os.WriteFile(path, prev.Bytes(), 0o600)
	base, err := ReadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	now := benchfmt.Report{{Name: "cache.c64.get.redis", Value: 150000, Unit: "ops/s"}, {Name: "fanout.delivered", Value: 5, Unit: "msgs/s"}}
	if err := WriteTable(&out, now, base); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "100000") || !strings.Contains(lines[1], "+50.0%") || strings.Contains(lines[2], "%") {
		t.Errorf("table:\n%s", out.String())
	}
	if _, err := ReadBaseline(filepath.Join(t.TempDir(), "nope.json")); err == nil {
		t.Error("a missing baseline: no error")
	}
}
