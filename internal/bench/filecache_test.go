package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tradecache/tradecache/filecache"
)

// TestFilecacheFigures logs the file cache's figures at 1k, 10k and 100k
// entries of 256 bytes:
//
//	FILECACHE_BENCH=1 go test -run TestFilecacheFigures -v ./internal/bench
func TestFilecacheFigures(t *testing.T) {
	if os.Getenv("FILECACHE_BENCH") == "" {
		t.Skip("set FILECACHE_BENCH=1")
	}
	for _, n := range []int{1_000, 10_000, 100_000} {
		r, err := measureFilecache(t.TempDir(), n, 256, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
	}
}

func TestMeasureFilecache(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	r, err := measureFilecache(t.TempDir(), 500, 100, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.SetsPerSec <= 0 || r.HitsPerSec <= 0 || r.MissesPerSec <= 0 || r.ParallelHitsPerSec <= 0 || r.Workers == 0 {
		t.Errorf("measureFilecache = %+v", r)
	}
	t.Log(r)
	// A directory that holds entries is refused.
	dir := t.TempDir()
	c, err := filecache.Open(dir, filecache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set("mine", []byte("precious"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := measureFilecache(dir, 10, 10, time.Millisecond); err == nil {
		t.Error("measureFilecache ran on a cache holding entries")
	}
	if v, ok, err := c.Get("mine"); err != nil || !ok || string(v) != "precious" {
		t.Errorf("measureFilecache destroyed an entry: %q %v %v", v, ok, err)
	}
}

func TestFilecache(t *testing.T) {
	rep, err := Filecache(context.Background(), FilecacheOptions{Entries: []int{50, 100}, ValueSize: 16, Duration: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	requireFigures(t, rep, true, "machine.cpus",
		"filecache.50.set", "filecache.50.get_hit", "filecache.50.get_miss", "filecache.50.parallel.get_hit",
		"filecache.100.set", "filecache.100.get_hit", "filecache.100.get_miss", "filecache.100.parallel.get_hit")
	if len(rep) != 9 {
		t.Errorf("%d figures:\n%s", len(rep), show(rep))
	}
	if _, err := Filecache(context.Background(), FilecacheOptions{Entries: []int{0}, Duration: time.Millisecond}); err == nil {
		t.Error("Filecache ran at 0 entries")
	}
}
