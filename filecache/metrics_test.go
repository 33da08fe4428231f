package filecache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// keyInShard returns a key whose entry lives in shard directory dir.
func keyInShard(c *Cache, dir string) string {
	for i := 0; ; i++ {
		k := fmt.Sprint("k", i)
		if d, _ := c.paths(k); d == dir {
			return k
		}
	}
}

// The collector exports every counter of Stats, by one Register call, and
// the file system errors Stats now counts.
func TestCollector(t *testing.T) {
	clock, advance := fakeClock()
	dir := t.TempDir()
	c := open(t, dir, Options{Now: clock, MaxBytes: 4096})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())

	mustSet(t, c, "a", []byte("1"), time.Minute)
	mustSet(t, c, "b", []byte("2"), time.Hour)
	mustSet(t, c, "c", []byte("3"), time.Hour)
	get(t, c, "a")       // hit
	get(t, c, "missing") // miss
	advance(2 * time.Minute)
	get(t, c, "a") // expired: a miss, removed
	_, pc := c.paths("c")
	flip(t, pc, 0)
	get(t, c, "c") // corrupt: a miss, dropped
	if err := c.Delete("b"); err != nil {
		t.Fatal(err)
	}
	// The size budget: each entry is ~1 KiB, the fifth evicts.
	for i := range 5 {
		mustSet(t, c, fmt.Sprint("big", i), make([]byte, 1000), time.Duration(i+1)*time.Hour)
	}
	// A shard directory replaced by a file: every call on its keys fails
	// on the file system (ENOTDIR).
	shard := c.shardDir(0x7f)
	k := keyInShard(c, shard)
	if err := os.Remove(shard); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shard, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(k, []byte("x"), time.Hour); err == nil {
		t.Fatal("Set in a shard that is a file succeeded")
	}
	if _, _, err := c.Get(k); err == nil {
		t.Fatal("Get in a shard that is a file succeeded")
	}
	if err := c.Delete(k); err == nil {
		t.Fatal("Delete in a shard that is a file succeeded")
	}

	s := c.Stats()
	want := fmt.Sprintf(`
# HELP tradecache_filecache_bytes Approximate bytes of the entries, in the slot table and in files.
# TYPE tradecache_filecache_bytes gauge
tradecache_filecache_bytes{dir=%[1]q} %[2]d
# HELP tradecache_filecache_corrupt_total Corrupt entries dropped.
# TYPE tradecache_filecache_corrupt_total counter
tradecache_filecache_corrupt_total{dir=%[1]q} 1
# HELP tradecache_filecache_deletes_total Delete calls that removed an entry.
# TYPE tradecache_filecache_deletes_total counter
tradecache_filecache_deletes_total{dir=%[1]q} 1
# HELP tradecache_filecache_entries Approximate number of entries.
# TYPE tradecache_filecache_entries gauge
tradecache_filecache_entries{dir=%[1]q} %[3]d
# HELP tradecache_filecache_errors_total Calls that failed on the file system, by operation (get, set, delete).
# TYPE tradecache_filecache_errors_total counter
tradecache_filecache_errors_total{dir=%[1]q,op="delete"} 1
tradecache_filecache_errors_total{dir=%[1]q,op="get"} 1
tradecache_filecache_errors_total{dir=%[1]q,op="set"} 1
# HELP tradecache_filecache_evict_walks_total Directory walks made by eviction.
# TYPE tradecache_filecache_evict_walks_total counter
tradecache_filecache_evict_walks_total{dir=%[1]q} %[4]d
# HELP tradecache_filecache_evictions_total Entries removed to keep the cache within its size budget.
# TYPE tradecache_filecache_evictions_total counter
tradecache_filecache_evictions_total{dir=%[1]q} %[5]d
# HELP tradecache_filecache_expired_total Expired entries removed, by Get or a directory walk.
# TYPE tradecache_filecache_expired_total counter
tradecache_filecache_expired_total{dir=%[1]q} 1
# HELP tradecache_filecache_hits_total Gets that found a live entry.
# TYPE tradecache_filecache_hits_total counter
tradecache_filecache_hits_total{dir=%[1]q} 1
# HELP tradecache_filecache_max_bytes Size budget of the slot table and the entry files.
# TYPE tradecache_filecache_max_bytes gauge
tradecache_filecache_max_bytes{dir=%[1]q} 4096
# HELP tradecache_filecache_misses_total Gets that found nothing, an expired entry or a corrupt one.
# TYPE tradecache_filecache_misses_total counter
tradecache_filecache_misses_total{dir=%[1]q} 3
# HELP tradecache_filecache_sets_total Entries written.
# TYPE tradecache_filecache_sets_total counter
tradecache_filecache_sets_total{dir=%[1]q} 8
# HELP tradecache_filecache_sweep_errors_total Periodic sweeps (Run) that failed.
# TYPE tradecache_filecache_sweep_errors_total counter
tradecache_filecache_sweep_errors_total{dir=%[1]q} 0
# HELP tradecache_filecache_table_bytes Size of the slot table file (0: none).
# TYPE tradecache_filecache_table_bytes gauge
tradecache_filecache_table_bytes{dir=%[1]q} 0
# HELP tradecache_filecache_temp_removed_total Temp files of dead writers removed.
# TYPE tradecache_filecache_temp_removed_total counter
tradecache_filecache_temp_removed_total{dir=%[1]q} 0
`, c.Dir(), s.Bytes, s.Entries, s.EvictWalks, s.Evictions)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if s.Evictions == 0 || s.EvictWalks == 0 {
		t.Errorf("no eviction under a 4 KiB budget: %+v", s)
	}
	// A second cache registers beside the first: its dir label differs.
	c2 := open(t, filepath.Join(dir, "..", filepath.Base(dir)+"-2"), Options{})
	if err := reg.Register(c2.Collector()); err != nil {
		t.Errorf("a second cache's collector: %v", err)
	}
}

// Inspect reports what the directory holds, whichever process wrote it,
// and changes nothing.
func TestInspect(t *testing.T) {
	clock, advance := fakeClock()
	dir := t.TempDir()
	c := open(t, dir, Options{Now: clock, TableBytes: -1}) // entry files; TestTableInspect has slots
	mustSet(t, c, "old", []byte("1"), time.Hour)           // the least recently used
	advance(time.Second)
	mustSet(t, c, "short", []byte("22"), time.Minute)
	mustSet(t, c, "forever", []byte("333"), Never)
	mustSet(t, c, "bad", []byte("4444"), time.Hour)
	_, bad := c.paths("bad")
	flip(t, bad, 0)
	if err := os.WriteFile(filepath.Join(c.shardDir(3), "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.shardDir(4), tempPrefix+"dead"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	advance(2 * time.Minute) // "short" expires
	before := cacheFiles(t, dir)

	// Another handle on the directory (as the CLI opens it) sees the same.
	other, err := OpenExisting(dir, Options{Now: clock, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	got, err := other.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	size := func(k string, v int) int64 { return entrySize(len(k), v) }
	want := DirStats{
		Entries:      2,
		Bytes:        size("old", 1) + size("forever", 3),
		NoExpiry:     1,
		Expired:      1,
		ExpiredBytes: size("short", 2),
		Corrupt:      1,
		TempFiles:    1,
		Other:        1,
		MaxBytes:     1 << 20,
		OldestAccess: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Inspect (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, cacheFiles(t, dir)); diff != "" {
		t.Errorf("Inspect changed the directory (-before +after):\n%s", diff)
	}
	other.Close()
	if _, err := other.Inspect(context.Background()); err != ErrClosed {
		t.Errorf("Inspect after Close = %v, want ErrClosed", err)
	}
}
