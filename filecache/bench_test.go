package filecache

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Benchmarks run against caches pre-filled once per size and layout and
// shared by the benchmarks (filling 100k entries takes a while), in
// directories removed by TestMain.
var (
	benchMu   sync.Mutex
	benchDirs = map[benchCache]string{}
)

// benchCache is a pre-filled cache: n entries, stored as layout says.
type benchCache struct {
	n      int
	layout layout
}

// layout is how a benchmark's cache stores its entries.
type layout int

const (
	inTable layout = iota // the slot table, the default
	inFiles               // a file per entry (TableBytes -1)
)

func (l layout) options() Options {
	o := Options{} // DefaultMaxBytes: a table of 128 MiB, as tradecache bench filecache uses
	if l == inFiles {
		o.TableBytes = -1
	}
	return o
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range benchDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

const benchValue = 256

func benchKey(i int) string { return "bench:" + strconv.Itoa(i) }

// prefilled returns a cache holding n entries of benchValue bytes, in the
// slot table.
func prefilled(b *testing.B, n int) *Cache { return prefilledAs(b, n, inTable) }

// prefilledAs returns a cache holding n entries of benchValue bytes,
// stored as l says.
func prefilledAs(b *testing.B, n int, l layout) *Cache {
	benchMu.Lock()
	defer benchMu.Unlock()
	dir, ok := benchDirs[benchCache{n, l}]
	if !ok {
		var err error
		if dir, err = os.MkdirTemp("", "filecache-bench-"); err != nil {
			b.Fatal(err)
		}
		benchDirs[benchCache{n, l}] = dir
		c, err := Open(dir, l.options())
		if err != nil {
			b.Fatal(err)
		}
		v := make([]byte, benchValue)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := w; i < n; i += 4 {
					if err := c.Set(benchKey(i), v, time.Hour); err != nil {
						panic(err)
					}
				}
			})
		}
		wg.Wait()
		c.Close()
	}
	c, err := Open(dir, l.options())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

var benchSizes = []int{1_000, 10_000, 100_000}

func sizeName(n int) string { return fmt.Sprintf("entries=%dk", n/1000) }

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkSet overwrites random present keys: the entry count stays n.
func BenchmarkSet(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			c := prefilled(b, n)
			v := make([]byte, benchValue)
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			for b.Loop() {
				if err := c.Set(benchKey(rng.IntN(n)), v, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			reportOps(b)
		})
	}
}

// BenchmarkGetHit reads random present keys (renewing them).
func BenchmarkGetHit(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			c := prefilled(b, n)
			rng := rand.New(rand.NewPCG(2, uint64(n)))
			for b.Loop() {
				if _, ok, err := c.Get(benchKey(rng.IntN(n))); !ok || err != nil {
					b.Fatal("miss", err)
				}
			}
			reportOps(b)
		})
	}
}

// BenchmarkGetMiss reads absent keys.
func BenchmarkGetMiss(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			c := prefilled(b, n)
			rng := rand.New(rand.NewPCG(3, uint64(n)))
			for b.Loop() {
				if _, ok, err := c.Get("absent:" + strconv.Itoa(rng.IntN(n))); ok || err != nil {
					b.Fatal("hit", err)
				}
			}
			reportOps(b)
		})
	}
}

// BenchmarkSetNew writes keys that do not exist yet: each allocates an
// inode (the cost the spare pool saves on overwrites).
func BenchmarkSetNew(b *testing.B) {
	c := open(b, b.TempDir(), Options{})
	v := make([]byte, benchValue)
	i := 0
	for b.Loop() {
		i++
		if err := c.Set(benchKey(i), v, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b)
}

// BenchmarkKernelFloor is what the file system alone costs a hit: open,
// fstat, pread and close of a random entry file by its path, none of the
// cache's own work. Compared across sizes with BenchmarkGetHit, it tells
// how much of a hit's slowdown at more entries is the kernel's (its
// dentry and inode working set) and how much the cache's.
func BenchmarkKernelFloor(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			c := prefilledAs(b, n, inFiles)
			paths := make([]string, n)
			for i := range paths {
				_, paths[i] = c.paths(benchKey(i))
			}
			rng := rand.New(rand.NewPCG(4, uint64(n)))
			for b.Loop() {
				buf, _, h, err := readFile(paths[rng.IntN(n)])
				if err != nil || len(buf) == 0 {
					b.Fatal(err)
				}
				h.close()
			}
			reportOps(b)
		})
	}
}
