//go:build linux

package filecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// slotOf returns where key's entry is in c's table, failing if it is not.
func slotOf(t *testing.T, c *Cache, key string) (b uint32, w int) {
	t.Helper()
	sum := sha256.Sum256([]byte(key))
	r, _, err := c.tab.find(c.tab.locate(&sum), key)
	if err != nil || r.way < 0 {
		t.Fatalf("%q not in the table (%v)", key, err)
	}
	return r.b, r.way
}

// entryFiles lists the entry files under dir (no spares, no table).
func entryFiles(t *testing.T, dir string) []string {
	var files []string
	for _, f := range cacheFiles(t, dir) {
		if classify(filepath.Base(f)) == kindEntry {
			files = append(files, f)
		}
	}
	return files
}

func TestTableHoldsSmallEntries(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, Options{})
	if c.tab == nil {
		t.Fatal("no table with the default options")
	}
	large := make([]byte, maxSlotEntry) // with its header, too large for a slot
	for i := range 100 {
		mustSet(t, c, fmt.Sprint("small-", i), []byte(fmt.Sprint("v", i)), time.Hour)
	}
	mustSet(t, c, "large", large, time.Hour)
	if files := entryFiles(t, dir); len(files) != 1 {
		t.Errorf("entry files: %v, want the large entry's alone", files)
	}
	// The same key moves between a file and the table: Get always sees
	// the latest Set, and the other place no longer holds it.
	for round, v := range [][]byte{[]byte("small again"), large, []byte("small at last")} {
		mustSet(t, c, "large", v, time.Hour)
		if diff := cmp.Diff(got{v, true}, get(t, c, "large")); diff != "" {
			t.Fatalf("round %d (-want +got):\n%s", round, diff)
		}
		wantFiles := 0
		if len(v) == len(large) {
			wantFiles = 1
		}
		if files := entryFiles(t, dir); len(files) != wantFiles {
			t.Errorf("round %d: entry files %v", round, files)
		}
	}
	st := c.Stats()
	if st.Entries != 101 || st.TableBytes == 0 {
		t.Errorf("Stats: %d entries, table %d bytes; want 101 entries and a table", st.Entries, st.TableBytes)
	}
	if err := c.Delete("small-7"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = open(t, dir, Options{})
	after := c.Stats()
	if after.Entries != 100 || after.Bytes != st.Bytes-entrySize(len("small-7"), len("v7")) {
		t.Errorf("re-Open measured %d entries / %d bytes, want 100 / %d", after.Entries, after.Bytes, st.Bytes-entrySize(7, 2))
	}
	for i := range 100 {
		k := fmt.Sprint("small-", i)
		want := got{[]byte(fmt.Sprint("v", i)), true}
		if i == 7 {
			want = got{}
		}
		if diff := cmp.Diff(want, get(t, c, k)); diff != "" {
			t.Errorf("Get(%q) after re-Open (-want +got):\n%s", k, diff)
		}
	}
	ds, err := c.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ds.Entries != 100 || ds.Bytes != after.Bytes || ds.TableBytes != after.TableBytes {
		t.Errorf("Inspect: %+v; Stats: %+v", ds, after)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 || get(t, c, "small-1").OK {
		t.Errorf("after Flush: %d entries, %d bytes", st.Entries, st.Bytes)
	}
}

// Sliding expiry in the table: a hit renews the slot's access time (not
// within the slack), an entry expires after its expiry without a hit, and
// Sweep removes it.
func TestTableRenewal(t *testing.T) {
	clock, advance := fakeClock()
	c := open(t, t.TempDir(), Options{Now: clock})
	mustSet(t, c, "k", []byte("v"), time.Hour)
	mustSet(t, c, "other", []byte("w"), time.Hour)
	b, w := slotOf(t, c, "k")
	access := func() time.Time { return time.Unix(0, atomic.LoadInt64(c.tab.access(b, w))).UTC() }
	t0 := access()
	advance(500 * time.Millisecond)
	get(t, c, "k")
	if a := access(); !a.Equal(t0) {
		t.Errorf("a hit within the slack moved the access from %v to %v", t0, a)
	}
	advance(59 * time.Minute)
	if !get(t, c, "k").OK {
		t.Fatal("k expired early")
	}
	if a := access(); !a.Equal(clock()) {
		t.Errorf("hit after the slack: access %v, want %v", a, clock())
	}
	advance(59 * time.Minute) // "other" expired, "k" renewed 59 min ago
	n, err := c.Sweep(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	if st := c.Stats(); st.Entries != 1 || st.Expired != 1 {
		t.Errorf("after Sweep: %d entries, %d expired", st.Entries, st.Expired)
	}
	advance(time.Hour)
	if get(t, c, "k").OK {
		t.Error("k alive an hour after its last hit")
	}
}

// A damaged slot is a miss, reported once, and dropped alone.
func TestTableCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		off   int64 // from the slot's start
		sweep bool  // Sweep sees it too (header or length)
	}{
		{"value byte", slotHeadSize + headerSize + 3, false},
		{"magic", slotHeadSize, true},
		{"length", 8, true},
	} {
		for _, via := range []string{"Get", "Sweep"} {
			if via == "Sweep" && !tc.sweep {
				continue
			}
			t.Run(tc.name+"/"+via, func(t *testing.T) {
				var reported []*CorruptError
				c := open(t, t.TempDir(), Options{OnCorrupt: func(e *CorruptError) { reported = append(reported, e) }})
				for i := range 20 {
					mustSet(t, c, fmt.Sprint(i), []byte(fmt.Sprintf("value %d", i)), 0)
				}
				b, w := slotOf(t, c, "7")
				f, err := os.OpenFile(c.tab.path, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				var one [1]byte
				off := c.tab.slotOff(b, w) + tc.off
				f.ReadAt(one[:], off)
				one[0] ^= 0x40
				if _, err := f.WriteAt(one[:], off); err != nil {
					t.Fatal(err)
				}
				f.Close()
				switch via {
				case "Get":
					if g := get(t, c, "7"); g.OK {
						t.Fatalf("damaged entry read as %q", g.V)
					}
				case "Sweep":
					if n, err := c.Sweep(context.Background()); err != nil || n != 1 {
						t.Fatalf("Sweep = %d, %v; want 1", n, err)
					}
				}
				if len(reported) != 1 || !errors.Is(reported[0], ErrCorrupt) || reported[0].Path != c.tab.path {
					t.Fatalf("OnCorrupt calls: %v", reported)
				}
				if st := c.Stats(); st.Corrupt != 1 || st.Entries != 19 {
					t.Errorf("Stats: %d corrupt, %d entries", st.Corrupt, st.Entries)
				}
				for i := range 20 {
					if g := get(t, c, fmt.Sprint(i)); g.OK != (i != 7) {
						t.Errorf("Get(%d) = %v", i, g)
					}
				}
				mustSet(t, c, "7", []byte("again"), 0)
				if !get(t, c, "7").OK {
					t.Error("the key cannot be set again")
				}
			})
		}
	}
}

// A full pair of buckets evicts the entry expiring soonest, then the least
// recently used; the newest entry is always kept.
func TestTableEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The smallest table: 16 buckets of 8 slots.
		c := open(t, t.TempDir(), Options{MaxBytes: 1 << 20, TableBytes: tableSize(minBuckets)})
		if c.tab == nil || c.tab.buckets != minBuckets {
			t.Fatalf("table %+v", c.tab)
		}
		// Keys whose two buckets are the same two: 16 slots between them.
		var keys []string
		var want pair
		for i := 0; len(keys) < 26; i++ {
			k := fmt.Sprint("key-", i)
			sum := sha256.Sum256([]byte(k))
			p := c.tab.locate(&sum)
			if p.b1 == p.b2 {
				continue
			}
			if len(keys) == 0 {
				want = p
			}
			if min(p.b1, p.b2) == min(want.b1, want.b2) && max(p.b1, p.b2) == max(want.b1, want.b2) {
				keys = append(keys, k)
			}
		}
		set := func(i int, exp time.Duration) {
			t.Helper()
			mustSet(t, c, keys[i], []byte(keys[i]), exp)
			time.Sleep(time.Second)
		}
		present := func() (in []int) {
			for i, k := range keys {
				sum := sha256.Sum256([]byte(k))
				if r, _, _ := c.tab.find(c.tab.locate(&sum), k); r.way >= 0 {
					in = append(in, i)
				}
			}
			return in
		}
		for i := range 8 {
			set(i, time.Hour) // 0..7 expire
		}
		for i := 8; i < 16; i++ {
			set(i, Never)
		}
		// Full: 16 evicts 0, the entry expiring soonest; 17..23 evict 1..7.
		for i := 16; i < 24; i++ {
			set(i, Never)
		}
		if diff := cmp.Diff([]int{8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}, present()); diff != "" {
			t.Errorf("after 8 more Never entries (-want +got):\n%s", diff)
		}
		// All Never: the least recently used goes, and a hit counts as a
		// use (8 was read, 9 was not).
		get(t, c, keys[8])
		set(24, Never)
		set(25, Never)
		got := present()
		if len(got) != 16 || got[0] != 8 || got[1] != 11 {
			t.Errorf("after two more: %v, want 8, then 11.. (9 and 10 least recently used)", got)
		}
		if st := c.Stats(); st.Evictions != 10 || st.Entries != 16 {
			t.Errorf("Stats: %d evictions, %d entries; want 10, 16", st.Evictions, st.Entries)
		}
	})
}

// A writer that died in the middle of a write leaves its bucket's seq odd:
// readers and writers carry on, and the next reader or writer to take the
// lock makes it even (else every Get of the bucket would take the lock).
func TestTableDeadWriter(t *testing.T) {
	c := open(t, t.TempDir(), Options{})
	mustSet(t, c, "k", []byte("v"), 0)
	b, _ := slotOf(t, c, "k")
	seq := c.tab.seq(b)
	atomic.StoreUint64(seq, atomic.LoadUint64(seq)|1)
	if diff := cmp.Diff(got{[]byte("v"), true}, get(t, c, "k")); diff != "" {
		t.Errorf("Get in a bucket left odd (-want +got):\n%s", diff)
	}
	if s := atomic.LoadUint64(seq); s&1 != 0 {
		t.Errorf("seq %d still odd after a Get took the lock", s)
	}
	atomic.StoreUint64(seq, atomic.LoadUint64(seq)|1)
	mustSet(t, c, "k", []byte("w"), 0)
	if s := atomic.LoadUint64(seq); s&1 != 0 {
		t.Errorf("seq %d still odd after a Set", s)
	}
	if diff := cmp.Diff(got{[]byte("w"), true}, get(t, c, "k")); diff != "" {
		t.Errorf("Get after the repair (-want +got):\n%s", diff)
	}
}

// With Sync, a Set in the table returns once its bucket is on disk
// (msync); what it wrote reads back after a re-Open.
func TestTableSync(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, Options{Sync: true})
	mustSet(t, c, "k", []byte("v"), Never)
	c.Close()
	c = open(t, dir, Options{Sync: true})
	if diff := cmp.Diff(got{[]byte("v"), true}, get(t, c, "k")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Another program truncating the table file is an error, not a crash.
func TestTableTruncated(t *testing.T) {
	c := open(t, t.TempDir(), Options{})
	mustSet(t, c, "k", []byte("v"), 0)
	if err := os.Truncate(c.tab.path, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get("k"); !errors.Is(err, errFault) {
		t.Errorf("Get = %v, want errFault", err)
	}
	if err := c.Set("k", []byte("v"), 0); !errors.Is(err, errFault) {
		t.Errorf("Set = %v, want errFault", err)
	}
	if st := c.Stats(); st.GetErrors != 1 || st.SetErrors != 1 {
		t.Errorf("errors counted: get %d, set %d", st.GetErrors, st.SetErrors)
	}
}

// A table of another geometry or version is refused with what to do.
func TestTableRefusesAForeignFile(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, Options{})
	c.Close()
	path := filepath.Join(dir, tableName)
	if err := os.WriteFile(path, []byte("not a table, not at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "not a usable slot table") {
		t.Fatalf("Open = %v", err)
	}
}

// Goroutines writing and reading the same few keys never see a value that
// is not one of the key's.
func TestTableConcurrent(t *testing.T) {
	c := open(t, t.TempDir(), Options{MaxBytes: 1 << 20, TableBytes: tableSize(minBuckets)})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				k := fmt.Sprint("k", (i*7+g)%40)
				if i%3 == 0 {
					if err := c.Set(k, []byte(k+"/"+fmt.Sprint(g, i)), Never); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				v, ok, err := c.Get(k)
				if err != nil {
					t.Error(err)
					return
				}
				if ok && !strings.HasPrefix(string(v), k+"/") {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d reads returned another key's value", n)
	}
	if st := c.Stats(); st.Corrupt != 0 {
		t.Errorf("%d corrupt entries from concurrent writers", st.Corrupt)
	}
}

// Two processes rewrite the same keys while this one reads them; keys move
// between the table and files. No read returns another key's value or a
// damaged one, and each key ends with a value of its last writer's last
// round (an older value coming back from a file would not be).
func TestTableProcessesShareKeys(t *testing.T) {
	dir := t.TempDir()
	const keys, rounds = 60, 40
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for p := range 2 {
		cmd := helper(t, "churn", dir, fmt.Sprint("FILECACHE_N=", keys), fmt.Sprint("FILECACHE_ROUNDS=", rounds))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[p] = cmd.Wait() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	c := open(t, dir, Options{})
	reads, bad := 0, 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		for i := range keys {
			k := fmt.Sprint("churn-", i)
			g := get(t, c, k)
			reads++
			if g.OK && !strings.HasPrefix(string(g.V), k+"/") {
				bad++
			}
		}
	}
	for p, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", p, err)
		}
	}
	if bad != 0 || c.Stats().Corrupt != 0 {
		t.Errorf("%d of %d reads returned a wrong value; %d corrupt", bad, reads, c.Stats().Corrupt)
	}
	for i := range keys {
		k := fmt.Sprint("churn-", i)
		g := get(t, c, k)
		f := strings.Split(string(g.V), "/")
		if !g.OK || len(f) < 3 || f[0] != k || f[2] != fmt.Sprint(rounds-1) {
			t.Errorf("%s ends as %.40q, want its last round's", k, g.V)
		}
	}
	t.Logf("%d reads while two processes wrote", reads)
}

// Two choices placed by load: a table three-quarters full evicts nothing
// (placing first-fit in the first bucket evicted 62 of these).
func TestTableFillsBeforeEvicting(t *testing.T) {
	const buckets = 1024
	c := open(t, t.TempDir(), Options{MaxBytes: 64 << 20, TableBytes: tableSize(buckets)})
	keys := buckets * tableWays * 3 / 4
	for i := range keys {
		mustSet(t, c, fmt.Sprint("key-", i), []byte("v"), Never)
	}
	if st := c.Stats(); st.Evictions != 0 || st.Entries != int64(keys) {
		t.Errorf("%d keys in %d slots: %d evictions, %d entries", keys, buckets*tableWays, st.Evictions, st.Entries)
	}
}

// A large Set cut short by Close after writing its temp file changes
// nothing: the key's slot goes and its file arrives in one step, under the
// key's bucket locks, or neither happens.
func TestTableLargeSetCutShort(t *testing.T) {
	dir := t.TempDir()
	var arm atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	now := func() time.Time {
		if arm.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		return time.Now()
	}
	c, err := Open(dir, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, c, "k", []byte("small"), Never)
	large := bytes.Repeat([]byte("L"), 4096)
	arm.Store(true)
	done := make(chan error)
	go func() { done <- c.Set("k", large, Never) }()
	<-entered // writing the temp file, the table released
	c.Close()
	close(release)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("the cut Set = %v, want ErrClosed", err)
	}
	c = open(t, dir, Options{})
	if diff := cmp.Diff(got{[]byte("small"), true}, get(t, c, "k")); diff != "" {
		t.Errorf("after re-Open (-want +got):\n%s", diff)
	}
	if files := entryFiles(t, dir); len(files) != 0 {
		t.Errorf("entry files after the cut Set: %v", files)
	}
	if err := c.Delete("k"); err != nil {
		t.Fatal(err)
	}
	if g := get(t, c, "k"); g.OK {
		t.Errorf("Get after Delete = %.20q, want a miss", g.V)
	}
}

// Bytes flipped anywhere in the table (meta lines, slot heads, entries):
// every Get is the key's own value or a miss, walks do not fail, and the
// cache goes on taking Sets.
func TestTableRandomDamage(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			c := open(t, t.TempDir(), Options{MaxBytes: 1 << 20, TableBytes: tableSize(minBuckets)})
			val := func(k string) []byte { return []byte(k + "=" + strings.Repeat("v", len(k)*3)) }
			var keys []string
			for i := range 100 {
				k := fmt.Sprint("k", i)
				keys = append(keys, k)
				mustSet(t, c, k, val(k), Never)
			}
			f, err := os.OpenFile(c.tab.path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			size := c.tab.bytes()
			for range 300 {
				off := tableHeaderSize + rng.Int64N(size-tableHeaderSize)
				var one [1]byte
				f.ReadAt(one[:], off)
				one[0] ^= byte(1 << rng.IntN(8))
				if _, err := f.WriteAt(one[:], off); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			hits := 0
			for _, k := range keys {
				v, ok, err := c.Get(k)
				if err != nil {
					t.Fatalf("Get(%s): %v", k, err)
				}
				if ok {
					hits++
					if !bytes.Equal(v, val(k)) {
						t.Errorf("Get(%s) = %q", k, v)
					}
				}
			}
			if _, err := c.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Inspect(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				mustSet(t, c, k, val(k), Never)
			}
			for _, k := range keys[len(keys)-8:] {
				if g := get(t, c, k); !g.OK || !bytes.Equal(g.V, val(k)) {
					t.Errorf("after the damage, Set then Get(%s) = %v", k, g)
				}
			}
			t.Logf("%d of %d keys survived 300 flipped bits", hits, len(keys))
		})
	}
}

// MaxBytes bounds the disk the table and the files hold together, and the
// table holds only the pages written (its file is sparse): large entries
// may use what small ones have not, and give it back as the table grows.
func TestTableBudgetSharesDisk(t *testing.T) {
	dir := t.TempDir()
	const budget = 1 << 20
	c := open(t, dir, Options{MaxBytes: budget}) // a table of up to half
	large := make([]byte, 10_000)
	for i := range 80 { // 800 KB: more than half the budget
		mustSet(t, c, fmt.Sprint("large-", i), large, Never)
	}
	if st := c.Stats(); st.Evictions != 0 || st.Entries != 80 {
		t.Fatalf("80 large entries in an empty table's cache: %d evictions, %d entries", st.Evictions, st.Entries)
	}
	for i := range 1000 { // fills most of the table's 127 pages
		mustSet(t, c, fmt.Sprint("small-", i), []byte("v"), Never)
	}
	var files int64
	for _, f := range entryFiles(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		files += fi.Size()
	}
	used := c.tab.used()
	if files+used > budget || used < 100*bucketSize {
		t.Errorf("on disk: files %d + table %d bytes, budget %d", files, used, budget)
	}
	if st := c.Stats(); st.Evictions == 0 {
		t.Error("the table grew and no file was evicted")
	}
	if !get(t, c, "large-79").OK || !get(t, c, "small-999").OK {
		t.Error("the newest entries were evicted")
	}
}

// A table this process may only read (another user's cache, a read-only
// mount) serves Gets: hits, and expired entries as misses, without writing;
// writes fail with errReadOnly. (Tests run as root here, whom permissions
// do not stop: the table is mapped read-only by hand.)
func TestTableReadOnly(t *testing.T) {
	clock, advance := fakeClock()
	dir := t.TempDir()
	w := open(t, dir, Options{Now: clock})
	mustSet(t, w, "live", []byte("1"), Never)
	mustSet(t, w, "short", []byte("2"), time.Minute)
	r, err := OpenExisting(dir, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f, err := os.Open(filepath.Join(dir, tableName))
	if err != nil {
		t.Fatal(err)
	}
	ro, err := mapTable(f.Name(), f)
	if err != nil {
		t.Fatal(err)
	}
	r.tab.close()
	r.tab = ro
	advance(time.Hour) // "short" expired; a hit would renew "live"
	if diff := cmp.Diff(got{[]byte("1"), true}, get(t, r, "live")); diff != "" {
		t.Errorf("hit (-want +got):\n%s", diff)
	}
	if g := get(t, r, "short"); g.OK {
		t.Error("expired entry read")
	}
	if err := r.Set("k", []byte("v"), 0); !errors.Is(err, errReadOnly) {
		t.Errorf("Set = %v, want errReadOnly", err)
	}
	// The writer still sees "short" (expired, not removed) until it looks.
	if st := w.Stats(); st.Entries != 2 {
		t.Errorf("writer's entries %d", st.Entries)
	}
}

// A new key takes its preferred slot (the one a lookup loads ahead of
// the tags) in the bucket chosen whenever that slot is empty, and
// another empty slot of it otherwise.
func TestTablePreferredSlot(t *testing.T) {
	c := open(t, t.TempDir(), Options{})
	preferred, other := 0, 0
	for i := range 300 {
		k := fmt.Sprint("key-", i)
		sum := sha256.Sum256([]byte(k))
		p := c.tab.locate(&sum)
		free := map[uint32]bool{}
		for _, b := range p.list() {
			free[b] = atomic.LoadUint32(c.tab.tag(b, p.way())) == 0
		}
		mustSet(t, c, k, []byte(k), Never)
		b, w := slotOf(t, c, k)
		switch {
		case w == p.way():
			preferred++
		case free[b]:
			t.Errorf("%s in slot %d of bucket %d, its preferred slot %d empty", k, w, b, p.way())
		default:
			other++
		}
	}
	if preferred < 200 {
		t.Errorf("%d of 300 keys in their preferred slot, %d elsewhere", preferred, other)
	}
}
