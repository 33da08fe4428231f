package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/internal/benchfmt"
)

// FilecacheOptions configures Filecache.
type FilecacheOptions struct {
	Entries   []int         // entry counts to measure at, each ≥ 1
	ValueSize int           // bytes per value (≥ 0)
	Duration  time.Duration // length of each phase
	// Log receives progress lines; nil discards.
	Log io.Writer
}

// Filecache measures the file cache at each entry count, in a temporary
// directory removed afterwards, and reports filecache.<n>.set, .get_hit,
// .get_miss (one goroutine) and .parallel.get_hit (GOMAXPROCS goroutines)
// in ops/s, after machine.cpus.
func Filecache(ctx context.Context, o FilecacheOptions) (benchfmt.Report, error) {
	log := logTo(o.Log)
	var rep benchfmt.Report
	rep.Add("machine.cpus", float64(runtime.NumCPU()), "cores")
	for _, n := range o.Entries {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		dir, err := os.MkdirTemp("", "tradecache-bench-filecache-")
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "bench filecache: %d entries of %d bytes, %v per phase, in %s\n", n, o.ValueSize, o.Duration, dir)
		r, err := measureFilecache(dir, n, o.ValueSize, o.Duration)
		os.RemoveAll(dir)
		if err != nil {
			return nil, fmt.Errorf("bench filecache: %w", err)
		}
		p := fmt.Sprintf("filecache.%d.", n)
		rep.Add(p+"set", benchfmt.Round(r.SetsPerSec, 4), "ops/s")
		rep.Add(p+"get_hit", benchfmt.Round(r.HitsPerSec, 4), "ops/s")
		rep.Add(p+"get_miss", benchfmt.Round(r.MissesPerSec, 4), "ops/s")
		rep.Add(p+"parallel.get_hit", benchfmt.Round(r.ParallelHitsPerSec, 4), "ops/s")
	}
	return rep, nil
}

// filecacheResult is what measureFilecache measured.
type filecacheResult struct {
	Entries   int           // entries in the cache while measuring
	ValueSize int           // bytes per value
	Phase     time.Duration // how long each phase ran
	Workers   int           // goroutines of the parallel phases (GOMAXPROCS)

	// One goroutine.
	SetsPerSec   float64 // Set overwriting a random present key
	HitsPerSec   float64 // Get of a random present key (renewing it)
	MissesPerSec float64 // Get of an absent key

	// Workers goroutines together.
	ParallelSetsPerSec   float64
	ParallelHitsPerSec   float64
	ParallelMissesPerSec float64
}

func (r filecacheResult) String() string {
	return fmt.Sprintf("filecache: %d entries of %d bytes, %v per phase: set %.0f/s, get-hit %.0f/s, get-miss %.0f/s (1 goroutine); set %.0f/s, get-hit %.0f/s, get-miss %.0f/s (%d goroutines)",
		r.Entries, r.ValueSize, r.Phase, r.SetsPerSec, r.HitsPerSec, r.MissesPerSec,
		r.ParallelSetsPerSec, r.ParallelHitsPerSec, r.ParallelMissesPerSec, r.Workers)
}

// entryBudget is the share of the cache's MaxBytes one entry of valueSize
// bytes is given: the value, its key and the entry file's header and
// checksum (under 64 bytes together for the keys used here), plus 512
// bytes of slack, so that filling the cache never evicts.
func entryBudget(valueSize int) int64 { return int64(valueSize) + 64 + 512 }

// measureFilecache measures a cache at dir, which must hold no entries: it
// fills it with entries values of valueSize bytes, then runs each phase
// for d: Sets overwriting random present keys, Gets of random present
// keys, Gets of absent keys, first from one goroutine, then from
// GOMAXPROCS goroutines. It flushes the cache when done.
func measureFilecache(dir string, entries int, valueSize int, d time.Duration) (filecacheResult, error) {
	if entries <= 0 || valueSize < 0 || d <= 0 {
		return filecacheResult{}, errors.New("entries and duration must be positive, value size not negative")
	}
	need := int64(entries) * entryBudget(valueSize)
	c, err := filecache.Open(dir, filecache.Options{MaxBytes: max(need, filecache.DefaultMaxBytes)})
	if err != nil {
		return filecacheResult{}, err
	}
	defer c.Close()
	if n := c.Stats().Entries; n > 0 {
		return filecacheResult{}, fmt.Errorf("%s holds %d entries; use an empty directory", c.Dir(), n)
	}
	defer c.Flush()
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = byte(i)
	}
	// Keys are made per operation, not picked from a slice of n strings:
	// at 100k entries such a slice costs the harness cache misses of its
	// own that it does not pay at 1k.
	key := func(i int) string { return "bench:" + strconv.Itoa(i) }
	workers := runtime.GOMAXPROCS(0)
	// Fill from all workers: on some file systems each new file costs
	// a millisecond of kernel time.
	var fillErr atomic.Value
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < entries; i += workers {
				if err := c.Set(key(i), value, time.Hour); err != nil {
					fillErr.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := fillErr.Load().(error); ok {
		return filecacheResult{}, err
	}
	ops := []func(rng *rand.Rand) error{
		func(rng *rand.Rand) error {
			return c.Set(key(rng.IntN(entries)), value, time.Hour)
		},
		func(rng *rand.Rand) error {
			_, ok, err := c.Get(key(rng.IntN(entries)))
			if err == nil && !ok {
				err = errors.New("miss on a present key")
			}
			return err
		},
		func(rng *rand.Rand) error {
			_, ok, err := c.Get("bench-absent:" + strconv.Itoa(rng.IntN(entries)))
			if err == nil && ok {
				err = errors.New("hit on an absent key")
			}
			return err
		},
	}
	r := filecacheResult{Entries: entries, ValueSize: valueSize, Phase: d, Workers: workers}
	single := []*float64{&r.SetsPerSec, &r.HitsPerSec, &r.MissesPerSec}
	parallel := []*float64{&r.ParallelSetsPerSec, &r.ParallelHitsPerSec, &r.ParallelMissesPerSec}
	for i, op := range ops {
		if *single[i], err = filecachePhase(op, 1, d); err != nil {
			return r, err
		}
	}
	for i, op := range ops {
		if *parallel[i], err = filecachePhase(op, workers, d); err != nil {
			return r, err
		}
	}
	return r, nil
}

// filecachePhase runs op from workers goroutines for d and returns the
// operations per second they did together.
func filecachePhase(op func(*rand.Rand) error, workers int, d time.Duration) (float64, error) {
	var total atomic.Int64
	errc := make(chan error, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			n := 0
			defer func() { total.Add(int64(n)) }()
			for time.Since(start) < d {
				for range 32 {
					if err := op(rng); err != nil {
						errc <- err
						return
					}
					n++
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(total.Load()) / el.Seconds(), nil
}
