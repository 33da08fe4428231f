package filecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func open(t testing.TB, dir string, opts Options) *Cache {
	t.Helper()
	c, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustSet(t testing.TB, c *Cache, key string, v []byte, exp time.Duration) {
	t.Helper()
	if err := c.Set(key, v, exp); err != nil {
		t.Fatalf("Set(%.40q): %v", key, err)
	}
}

// fakeClock returns a clock for Options.Now, from 2030-01-01 UTC, and
// what moves it on; safe for concurrent use.
func fakeClock() (clock func() time.Time, advance func(time.Duration)) {
	var mu sync.Mutex
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance = func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	return clock, advance
}

// got is a Get result, for cmp.
type got struct {
	V  []byte
	OK bool
}

func get(t testing.TB, c *Cache, key string) got {
	t.Helper()
	v, ok, err := c.Get(key)
	if err != nil {
		t.Fatalf("Get(%.40q): %v", key, err)
	}
	if !ok && v != nil {
		t.Fatalf("Get(%.40q): miss with a value %q", key, v)
	}
	return got{v, ok}
}

func TestSetGetDeleteFlush(t *testing.T) {
	c := open(t, t.TempDir(), Options{})
	steps := []struct {
		name string
		do   func() error
		key  string
		want got
	}{
		{"miss", nil, "a", got{}},
		{"set", func() error { return c.Set("a", []byte("1"), 0) }, "a", got{[]byte("1"), true}},
		{"overwrite", func() error { return c.Set("a", []byte("22"), time.Minute) }, "a", got{[]byte("22"), true}},
		{"empty value is a hit", func() error { return c.Set("e", nil, 0) }, "e", got{[]byte{}, true}},
		{"zero byte value", func() error { return c.Set("z", []byte{0}, 0) }, "z", got{[]byte{0}, true}},
		{"delete", func() error { return c.Delete("a") }, "a", got{}},
		{"delete missing", func() error { return c.Delete("a") }, "a", got{}},
		{"set again", func() error { return c.Set("a", []byte("3"), Never) }, "a", got{[]byte("3"), true}},
		{"flush", c.Flush, "a", got{}},
		{"flushed empty", nil, "e", got{}},
	}
	for _, s := range steps {
		if s.do != nil {
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		if diff := cmp.Diff(s.want, get(t, c, s.key)); diff != "" {
			t.Errorf("%s: Get(%q) (-want +got):\n%s", s.name, s.key, diff)
		}
	}
	if v, ok, err := c.Get("e"); v != nil || ok || err != nil {
		t.Errorf("miss = (%v, %v, %v), want (nil, false, nil)", v, ok, err)
	}
	st := c.Stats()
	if st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("after Flush: %d entries, %d bytes", st.Entries, st.Bytes)
	}
}

func TestJSON(t *testing.T) {
	c := open(t, t.TempDir(), Options{})
	type pos struct {
		Symbol string
		Qty    float64
	}
	if err := SetJSON(c, "f", false, 0); err != nil {
		t.Fatal(err)
	}
	if err := SetJSON(c, "zero", 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := SetJSON(c, "p", pos{"BTC-USDT", 1.5}, 0); err != nil {
		t.Fatal(err)
	}
	if err := SetJSON(c, "list", []int{}, 0); err != nil {
		t.Fatal(err)
	}
	b, ok, err := GetJSON[bool](c, "f")
	if b || !ok || err != nil {
		t.Errorf("GetJSON[bool] cached false = (%v, %v, %v), want (false, true, nil)", b, ok, err)
	}
	b, ok, err = GetJSON[bool](c, "missing")
	if b || ok || err != nil {
		t.Errorf("GetJSON[bool] miss = (%v, %v, %v), want (false, false, nil)", b, ok, err)
	}
	n, ok, err := GetJSON[int](c, "zero")
	if n != 0 || !ok || err != nil {
		t.Errorf("GetJSON[int] cached 0 = (%v, %v, %v)", n, ok, err)
	}
	p, ok, err := GetJSON[pos](c, "p")
	if diff := cmp.Diff(pos{"BTC-USDT", 1.5}, p); diff != "" || !ok || err != nil {
		t.Errorf("GetJSON[pos] = (%v, %v) (-want +got):\n%s", ok, err, diff)
	}
	l, ok, err := GetJSON[[]int](c, "list")
	if l == nil || len(l) != 0 || !ok || err != nil {
		t.Errorf("GetJSON[[]int] cached [] = (%#v, %v, %v)", l, ok, err)
	}
	if _, _, err := GetJSON[pos](c, "f"); err == nil {
		t.Error("GetJSON[pos] of a bool: no error")
	}
	if err := SetJSON(c, "ch", make(chan int), 0); err == nil {
		t.Error("SetJSON of a channel: no error")
	}
}

func TestSetErrors(t *testing.T) {
	c := open(t, t.TempDir(), Options{MaxBytes: 1 << 16})
	tests := []struct {
		name   string
		key    string
		value  []byte
		expire time.Duration
		want   error
	}{
		{"negative expire", "k", nil, -2, ErrInvalidExpire},
		{"very negative expire", "k", nil, -time.Hour, ErrInvalidExpire},
		{"too large", "k", make([]byte, 1<<16), 0, ErrTooLarge},
		{"key too long", strings.Repeat("k", MaxKeyLen+1), nil, 0, ErrKeyTooLong},
		{"never", "k", nil, Never, nil},
		{"positive", "k", nil, time.Nanosecond, nil},
	}
	for _, tt := range tests {
		if err := c.Set(tt.key, tt.value, tt.expire); !errors.Is(err, tt.want) {
			t.Errorf("%s: Set = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestClosed(t *testing.T) {
	c := open(t, t.TempDir(), Options{})
	mustSet(t, c, "k", make([]byte, 1000), 0) // too large for a slot: a file, and a spare
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	_, _, err := c.Get("k")
	for name, err := range map[string]error{
		"Get":    err,
		"Set":    c.Set("k", nil, 0),
		"Delete": c.Delete("k"),
		"Flush":  c.Flush(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if _, err := c.Sweep(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Sweep after Close = %v", err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Errorf("Run after Close = %v", err)
	}
	// Close removed the spare files it held: only the entry is left.
	if files := cacheFiles(t, c.Dir()); len(files) != 1 {
		t.Errorf("files after Close: %v", files)
	}
}

// cacheFiles lists the files under root but slot tables: the entry files
// (and others), relative to root.
func cacheFiles(t testing.TB, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() != tableName {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := open(t, t.TempDir(), Options{})
		mustSet(t, c, "min", []byte("m"), time.Minute)
		mustSet(t, c, "default", []byte("d"), 0)
		mustSet(t, c, "never", []byte("n"), Never)
		mustSet(t, c, "untouched", []byte("u"), time.Minute)
		steps := []struct {
			sleep time.Duration
			key   string
			hit   bool
		}{
			{59 * time.Second, "min", true}, // renewed to t=1m59s
			{59 * time.Second, "min", true}, // t=1m58s: alive only thanks to the renewal
			{0, "untouched", false},         // t=1m58s: expired at 1m
			{61 * time.Second, "min", false},
			{0, "default", true}, // t=2m59s, renewed to 1h2m59s
			{59 * time.Minute, "default", true},
			{time.Hour + time.Second, "default", false},
			{100 * 365 * 24 * time.Hour, "never", true},
		}
		for i, s := range steps {
			time.Sleep(s.sleep)
			if g := get(t, c, s.key); g.OK != s.hit {
				t.Fatalf("step %d (%v): Get(%q) hit = %v, want %v", i, time.Since(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)), s.key, g.OK, s.hit)
			}
		}
		// Expired entries were removed by Get, lazily.
		st := c.Stats()
		if st.Expired != 3 || st.Entries != 1 {
			t.Errorf("Expired = %d, Entries = %d, want 3, 1", st.Expired, st.Entries)
		}
	})
}

func TestExpiryInjectedClock(t *testing.T) {
	clock, advance := fakeClock()
	dir := t.TempDir()
	c := open(t, dir, Options{Now: clock, DefaultExpire: 10 * time.Second})
	mustSet(t, c, "a", []byte("1"), 0)
	mustSet(t, c, "b", []byte("2"), 0)
	advance(9 * time.Second)
	if !get(t, c, "a").OK {
		t.Fatal("a expired early")
	}
	advance(9 * time.Second)
	if !get(t, c, "a").OK {
		t.Fatal("a not renewed")
	}
	// Expiry outlives a restart: b expired while the cache was closed.
	c.Close()
	c = open(t, dir, Options{Now: clock, DefaultExpire: 10 * time.Second})
	if get(t, c, "b").OK {
		t.Fatal("b alive at 18s with a 10s expiry")
	}
	advance(11 * time.Second)
	n, err := c.Sweep(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 (a)", n, err)
	}
	c.Close() // removes its spare files
	if files := cacheFiles(t, dir); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

func TestRenewalSlack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := open(t, t.TempDir(), Options{TableBytes: -1}) // a file's mtime; see TestTableRenewal
		mustSet(t, c, "k", []byte("v"), time.Hour)
		_, path := c.paths("k")
		mtime := func() time.Time {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			return fi.ModTime()
		}
		t0 := mtime()
		time.Sleep(500 * time.Millisecond)
		get(t, c, "k")
		if m := mtime(); !m.Equal(t0) {
			t.Errorf("hit within the slack moved the mtime from %v to %v", t0, m)
		}
		time.Sleep(time.Second)
		get(t, c, "k")
		if m := mtime(); !m.Equal(time.Now()) {
			t.Errorf("hit after the slack: mtime %v, want %v", m, time.Now())
		}
	})
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, Options{})
	want := map[string][]byte{}
	for i := range 300 {
		k := fmt.Sprintf("key-%d", i)
		want[k] = bytes.Repeat([]byte{byte(i)}, i)
		mustSet(t, c, k, want[k], Never)
	}
	mustSet(t, c, "gone", []byte("x"), 0)
	if err := c.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	before := c.Stats()
	c.Close()

	c = open(t, filepath.Join(dir, "."), Options{})
	after := c.Stats()
	if after.Entries != before.Entries || after.Bytes != before.Bytes || after.Entries != 300 {
		t.Errorf("re-Open measured %d entries / %d bytes, before close %d / %d", after.Entries, after.Bytes, before.Entries, before.Bytes)
	}
	for k, v := range want {
		if diff := cmp.Diff(got{v, true}, get(t, c, k)); diff != "" {
			t.Fatalf("Get(%q) after re-Open (-want +got):\n%s", k, diff)
		}
	}
	if get(t, c, "gone").OK {
		t.Error("deleted key back after re-Open")
	}
}

func TestKeys(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cache")
	c := open(t, dir, Options{})
	keys := []string{
		"", "/", "a/b/c", "../../../etc/passwd", "..", ".", "a\x00b", "\x00",
		strings.Repeat("long", 2560), // 10 KB
		"κλειδί-ключ-鍵-🔑", "\xff\xfe invalid utf-8", "C:\\windows\\system32", " ",
		"BTC-USDT_RSI_14", ".tmp-0123456789abcdef",
	}
	for i, k := range keys {
		mustSet(t, c, k, []byte(fmt.Sprint(i)), 0)
	}
	for i, k := range keys {
		if diff := cmp.Diff(got{[]byte(fmt.Sprint(i)), true}, get(t, c, k)); diff != "" {
			t.Errorf("Get(%.40q) (-want +got):\n%s", k, diff)
		}
	}
	// Nothing outside the cache directory, and inside it only shard/hex.
	for _, f := range cacheFiles(t, root) {
		parts := strings.Split(f, string(filepath.Separator))
		if len(parts) != 3 || parts[0] != "cache" || len(parts[1]) != 2 || classify(parts[2]) == kindOther {
			t.Errorf("unexpected file %q", f)
		}
	}
	for _, k := range keys {
		if err := c.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Entries != 0 {
		t.Errorf("%d entries after deleting all", st.Entries)
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	c := open(t, t.TempDir(), Options{})
	// value encodes its key, so a reader can tell a value of another key.
	value := func(k string, n int) []byte {
		return bytes.Repeat([]byte(k+"|"), 1+n%50)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := range 8 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				k := fmt.Sprintf("k%d", (n*7+w)%16)
				switch n % 5 {
				case 0, 1:
					if err := c.Set(k, value(k, n), 0); err != nil {
						errc <- err
						return
					}
				case 2:
					if err := c.Delete(k); err != nil {
						errc <- err
						return
					}
				default:
					v, ok, err := c.Get(k)
					if err != nil {
						errc <- err
						return
					}
					if ok && (len(v) == 0 || !bytes.Equal(v, bytes.Repeat([]byte(k+"|"), len(v)/(len(k)+1)))) {
						errc <- fmt.Errorf("Get(%q) = %q", k, v)
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := c.Sweep(ctx); err != nil && ctx.Err() == nil {
				errc <- err
				return
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if st := c.Stats(); st.Corrupt != 0 {
		t.Errorf("%d entries reported corrupt under concurrency", st.Corrupt)
	}
}

func TestCorruptEntries(t *testing.T) {
	type damage struct {
		name  string
		do    func(t *testing.T, path string)
		sweep bool // also found by Sweep (header or size), not only Get
	}
	damages := []damage{
		{"truncated", func(t *testing.T, p string) { truncate(t, p, -3) }, true},
		{"truncated to header", func(t *testing.T, p string) { truncate(t, p, headerSize) }, true},
		{"zero length", func(t *testing.T, p string) { truncate(t, p, 0) }, true},
		{"flipped value byte", func(t *testing.T, p string) { flip(t, p, -6) }, false},
		{"flipped key byte", func(t *testing.T, p string) { flip(t, p, headerSize) }, false},
		{"flipped magic", func(t *testing.T, p string) { flip(t, p, 0) }, true},
		{"flipped checksum", func(t *testing.T, p string) { flip(t, p, -1) }, false},
		{"grown", func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("xx"))
			f.Close()
		}, true},
		{"a directory", func(t *testing.T, p string) {
			os.Remove(p)
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"a symlink", func(t *testing.T, p string) {
			os.Remove(p)
			if err := os.Symlink("/etc/hostname", p); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, d := range damages {
		for _, via := range []string{"Get", "Sweep"} {
			if via == "Sweep" && !d.sweep {
				continue
			}
			t.Run(d.name+"/"+via, func(t *testing.T) {
				var reported []*CorruptError
				var mu sync.Mutex
				// Entry files; TestTableCorrupt damages slots.
				c := open(t, t.TempDir(), Options{TableBytes: -1, OnCorrupt: func(e *CorruptError) {
					mu.Lock()
					reported = append(reported, e)
					mu.Unlock()
				}})
				for i := range 20 {
					mustSet(t, c, fmt.Sprint(i), []byte(fmt.Sprintf("value %d", i)), 0)
				}
				_, path := c.paths("7")
				d.do(t, path)
				switch via {
				case "Get":
					if g := get(t, c, "7"); g.OK {
						t.Fatalf("damaged entry read as %q", g.V)
					}
				case "Sweep":
					n, err := c.Sweep(context.Background())
					if err != nil || n != 1 {
						t.Fatalf("Sweep = %d, %v; want 1", n, err)
					}
				}
				if len(reported) != 1 || !errors.Is(reported[0], ErrCorrupt) || reported[0].Path != path {
					t.Fatalf("OnCorrupt calls: %v", reported)
				}
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("damaged file still there: %v", err)
				}
				if st := c.Stats(); st.Corrupt != 1 {
					t.Errorf("Stats.Corrupt = %d", st.Corrupt)
				}
				for i := range 20 {
					if i == 7 {
						continue
					}
					if diff := cmp.Diff(got{[]byte(fmt.Sprintf("value %d", i)), true}, get(t, c, fmt.Sprint(i))); diff != "" {
						t.Errorf("entry %d (-want +got):\n%s", i, diff)
					}
				}
				// The key works again.
				mustSet(t, c, "7", []byte("new"), 0)
				if g := get(t, c, "7"); string(g.V) != "new" {
					t.Errorf("after re-Set: %q", g.V)
				}
			})
		}
	}
}

func truncate(t *testing.T, path string, size int) {
	t.Helper()
	if size < 0 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		size += int(fi.Size())
	}
	if err := os.Truncate(path, int64(size)); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestEvictionOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const val = 1000
		size := entrySize(4, val)
		// Room for 20 entries; eviction brings it down to 18.
		c := open(t, t.TempDir(), Options{MaxBytes: 20 * size, TableBytes: -1}) // the files' budget; TestTableEviction has the table's
		v := make([]byte, val)
		// 10 entries that never expire, then 10 with a short expiry.
		for i := range 10 {
			mustSet(t, c, fmt.Sprintf("n%03d", i), v, Never)
			time.Sleep(time.Second)
		}
		for i := range 10 {
			mustSet(t, c, fmt.Sprintf("s%03d", i), v, time.Hour)
			time.Sleep(time.Second)
		}
		// Use n000 and n001: they become the most recently used.
		time.Sleep(time.Minute)
		get(t, c, "n000")
		get(t, c, "n001")
		// Over budget: evict s000..s002 (expiring soonest) then nothing
		// else (18 entries - 1 new = fits after 3).
		mustSet(t, c, "x000", v, Never)
		st := c.Stats()
		if st.Bytes > c.maxBytes/10*9 || st.Evictions != 3 || st.EvictWalks != 1 {
			t.Errorf("after eviction: %d bytes (budget %d), %d evictions, %d walks", st.Bytes, c.maxBytes, st.Evictions, st.EvictWalks)
		}
		var gone []string
		for _, k := range []string{"n000", "n001", "n002", "n009", "s000", "s001", "s002", "s003", "s009", "x000"} {
			if !get(t, c, k).OK {
				gone = append(gone, k)
			}
		}
		if diff := cmp.Diff([]string{"s000", "s001", "s002"}, gone); diff != "" {
			t.Errorf("evicted (-want +got):\n%s", diff)
		}
		for i := range 10 {
			mustSet(t, c, fmt.Sprintf("y%03d", i), v, Never)
			time.Sleep(time.Second)
		}
		gone = gone[:0]
		for _, k := range []string{"n000", "n001", "n002", "n003", "n004", "n005", "n006", "n007", "n008", "n009"} {
			if !get(t, c, k).OK {
				gone = append(gone, k)
			}
		}
		// 10 more entries: 3 evictions of 3 entries: the 7 s entries
		// left, then the 2 least recently used Never entries (n002 and
		// n009 were read by the check above, n000 and n001 before).
		if diff := cmp.Diff([]string{"n003", "n004"}, gone); diff != "" {
			t.Errorf("evicted Never entries (-want +got):\n%s", diff)
		}
		if st := c.Stats(); st.Bytes > c.maxBytes {
			t.Errorf("%d bytes over the %d budget", st.Bytes, c.maxBytes)
		}
	})
}

func TestEvictionBudgetHolds(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, Options{MaxBytes: 256 << 10, TableBytes: -1}) // the files' budget
	v := make([]byte, 3000)
	for i := range 1000 {
		mustSet(t, c, fmt.Sprint(i), v, 0)
	}
	var total int64
	for _, f := range cacheFiles(t, dir) {
		if classify(filepath.Base(f)) == kindEntry {
			fi, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			total += fi.Size()
		}
	}
	st := c.Stats()
	if total > c.maxBytes || st.Bytes != total {
		t.Errorf("on disk %d bytes, Stats %d, budget %d", total, st.Bytes, c.maxBytes)
	}
	// Walks are amortised: one per ~10% of the budget written.
	if st.EvictWalks > 1000*3040/(256<<10/10)+2 {
		t.Errorf("%d eviction walks for 1000 sets", st.EvictWalks)
	}
	// The latest entries survive.
	if !get(t, c, "999").OK {
		t.Error("the latest entry was evicted")
	}
}

func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := open(t, t.TempDir(), Options{SweepEvery: time.Minute})
		mustSet(t, c, "a", []byte("1"), 30*time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if st := c.Stats(); st.Expired != 1 {
			t.Errorf("Run swept %d expired entries, want 1", st.Expired)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestOpenRejectsSymlinkedShard(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "7f")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("Open accepted a shard that is a symlink")
	}
}

func TestFlushRemovesOrphanTemps(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, Options{})
	mustSet(t, c, "a", []byte("1"), 0)
	// An orphan: a temp file nobody holds locked, as a dead writer leaves.
	orphan := filepath.Join(dir, "3c", tempPrefix+"deadbeefdeadbeef")
	if err := os.WriteFile(orphan, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Files that are not ours are left alone.
	other := filepath.Join(dir, "3c", "README")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{filepath.Join("3c", "README")}, cacheFiles(t, dir)); diff != "" {
		t.Errorf("files after Flush (-want +got):\n%s", diff)
	}
}

func TestOpenExistingRefusesWhatIsNotACache(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Join(dir, "typo"), dir} {
		if _, err := OpenExisting(d, Options{}); !errors.Is(err, ErrNotCache) {
			t.Errorf("OpenExisting(%s) = %v, want ErrNotCache", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "typo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenExisting created the directory: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("OpenExisting created %d entries in an empty directory", len(entries))
	}
	c, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c, err = OpenExisting(dir, Options{})
	if err != nil {
		t.Fatalf("OpenExisting of a cache Open made: %v", err)
	}
	c.Close()
}
