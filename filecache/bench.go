package filecache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// BenchResult is what Bench measured.
type BenchResult struct {
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

func (r BenchResult) String() string {
	return fmt.Sprintf("filecache: %d entries of %d bytes, %v per phase: set %.0f/s, get-hit %.0f/s, get-miss %.0f/s (1 goroutine); set %.0f/s, get-hit %.0f/s, get-miss %.0f/s (%d goroutines)",
		r.Entries, r.ValueSize, r.Phase, r.SetsPerSec, r.HitsPerSec, r.MissesPerSec,
		r.ParallelSetsPerSec, r.ParallelHitsPerSec, r.ParallelMissesPerSec, r.Workers)
}

// Bench measures a cache at dir, which must hold no entries: it fills it
// with entries values of valueSize bytes, then runs each phase for d:
// Sets overwriting random present keys, Gets of random present keys, Gets
// of absent keys, first from one goroutine, then from GOMAXPROCS
// goroutines. It flushes the cache when done. It is what
// `tradecache bench filecache` prints.
func Bench(dir string, entries int, valueSize int, d time.Duration) (BenchResult, error) {
	if entries <= 0 || valueSize < 0 || d <= 0 {
		return BenchResult{}, errors.New("filecache: bench: entries and d must be positive, valueSize not negative")
	}
	need := int64(entries) * (entrySize(24, valueSize) + 512)
	c, err := Open(dir, Options{MaxBytes: max(need, DefaultMaxBytes)})
	if err != nil {
		return BenchResult{}, err
	}
	defer c.Close()
	if n := c.Stats().Entries; n > 0 {
		return BenchResult{}, fmt.Errorf("filecache: bench: %s holds %d entries; use an empty directory", c.Dir(), n)
	}
	defer c.Flush()
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = byte(i)
	}
	keys := make([]string, entries)
	for i := range keys {
		keys[i] = "bench:" + strconv.Itoa(i)
	}
	workers := runtime.GOMAXPROCS(0)
	// Fill from all workers: on some file systems each new file costs
	// a millisecond of kernel time.
	var fillErr atomic.Value
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < entries; i += workers {
				if err := c.Set(keys[i], value, time.Hour); err != nil {
					fillErr.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := fillErr.Load().(error); ok {
		return BenchResult{}, err
	}
	missKeys := make([]string, entries)
	for i := range missKeys {
		missKeys[i] = "bench-absent:" + strconv.Itoa(i)
	}
	ops := []func(rng *rand.Rand) error{
		func(rng *rand.Rand) error {
			return c.Set(keys[rng.IntN(entries)], value, time.Hour)
		},
		func(rng *rand.Rand) error {
			_, ok, err := c.Get(keys[rng.IntN(entries)])
			if err == nil && !ok {
				err = errors.New("filecache: bench: miss on a present key")
			}
			return err
		},
		func(rng *rand.Rand) error {
			_, ok, err := c.Get(missKeys[rng.IntN(entries)])
			if err == nil && ok {
				err = errors.New("filecache: bench: hit on an absent key")
			}
			return err
		},
	}
	r := BenchResult{Entries: entries, ValueSize: valueSize, Phase: d, Workers: workers}
	single := []*float64{&r.SetsPerSec, &r.HitsPerSec, &r.MissesPerSec}
	parallel := []*float64{&r.ParallelSetsPerSec, &r.ParallelHitsPerSec, &r.ParallelMissesPerSec}
	for i, op := range ops {
		if *single[i], err = benchPhase(op, 1, d); err != nil {
			return r, err
		}
	}
	for i, op := range ops {
		if *parallel[i], err = benchPhase(op, workers, d); err != nil {
			return r, err
		}
	}
	return r, nil
}

// benchPhase runs op from workers goroutines for d and returns the
// operations per second they did together.
func benchPhase(op func(*rand.Rand) error, workers int, d time.Duration) (float64, error) {
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
