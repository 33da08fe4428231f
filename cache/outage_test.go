package cache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
)

const (
	outageWorkers = 64
	callTimeout   = 200 * time.Millisecond
	// slack is what a call may take beyond the Redis deadline: the memory
	// tier, the scheduler of a 2-core machine running 64 goroutines and
	// redis-server, the race detector.
	slack = 50 * time.Millisecond
)

// outageRun drives 64 goroutines of reads and writes through an outage made
// by outage (kill or pause) and ended by recover, and checks what the tiered cache
// promises: no call errs, none blocks past the Redis deadline, the tier goes
// memory then back to redis, nothing written during the outage is lost and
// no read returns a value older than the last one written.
func outageRun(t *testing.T, outage, recover func(*testenv.Redis)) {
	r := testenv.Start(t)
	var mu sync.Mutex
	var changes []string
	c := start(t, r, cache.Config{
		CallTimeout: callTimeout, FailureThreshold: 3,
		ProbeMin: 50 * time.Millisecond, ProbeMax: 500 * time.Millisecond,
		OnTierChange: func(_, to cache.Tier, _ string) {
			mu.Lock()
			changes = append(changes, to.String())
			mu.Unlock()
		},
	})
	reg := registry(t, time.Minute)
	ctx := context.Background()

	// Each worker owns 2 hot keys, written all the time, and 1 key written
	// only while the cache is on the memory tier: 192 keys, under the
	// memory tier's 200 so the LRU bound loses nothing.
	type worker struct {
		keys      [3]keyspace.Key
		last      [3]string // last value written per key
		outageSet int
		maxCall   time.Duration
		err       error
	}
	ws := make([]*worker, outageWorkers)
	for g := range ws {
		w := &worker{}
		for j := range w.keys {
			w.keys[j] = key(t, reg, fmt.Sprintf("w%d-%d", g, j))
		}
		ws[g] = w
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g, w := range ws {
		wg.Go(func() {
			timed := func(f func() error) {
				t0 := time.Now()
				err := f()
				if d := time.Since(t0); d > w.maxCall {
					w.maxCall = d
				}
				if err != nil && w.err == nil {
					w.err = err
				}
			}
			for i := 0; !stop.Load(); i++ {
				// Pace like a real caller. 64 goroutines spinning on 2 cores
				// would measure the scheduler's time slices, not the cache.
				time.Sleep(time.Millisecond)
				j := i % 2
				if c.Tier() == cache.TierMemory && i%3 == 0 {
					j = 2
					w.outageSet++
				}
				val := fmt.Sprintf("g%d-%d", g, i)
				timed(func() error { return c.Set(ctx, w.keys[j], []byte(val)) })
				w.last[j] = val
				rj := (i + 1) % 3
				timed(func() error {
					v, ok, err := c.Get(ctx, w.keys[rj])
					if err == nil && ok && string(v) != w.last[rj] {
						err = fmt.Errorf("read %s = %q, last written %q", w.keys[rj], v, w.last[rj])
					}
					return err
				})
			}
		})
	}

	time.Sleep(300 * time.Millisecond)
	outage(r)
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierMemory }, "no switch to memory")
	time.Sleep(700 * time.Millisecond)
	recover(r)
	testenv.Eventually(t, 10*time.Second, func() bool { return c.Tier() == cache.TierRedis && c.Stats().MemoryEntries == 0 }, "no recovery")
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	rc := r.Client(t)
	var outageSets int
	var maxCall time.Duration
	for g, w := range ws {
		if w.err != nil {
			t.Errorf("worker %d: %v", g, w.err)
		}
		maxCall = max(maxCall, w.maxCall)
		outageSets += w.outageSet
		for j, k := range w.keys {
			if w.last[j] == "" {
				continue
			}
			got, err := rc.Do(ctx, rc.B().Get().Key(k.Name()).Build()).ToString()
			if err != nil || got != w.last[j] {
				t.Errorf("redis %s = %q %v, last written %q", k, got, err, w.last[j])
			}
		}
	}
	if maxCall > callTimeout+slack {
		t.Errorf("slowest call %v, deadline %v", maxCall, callTimeout)
	}
	if outageSets == 0 {
		t.Error("no write happened on the memory tier")
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"redis", "memory", "redis"}, changes); diff != "" {
		t.Errorf("tier changes (-want +got):\n%s", diff)
	}
	s := c.Stats()
	t.Logf("slowest call %v; %d outage-only writes; stats %+v", maxCall, outageSets, s)
	if s.Evictions != 0 {
		t.Errorf("%d memory entries evicted", s.Evictions)
	}
}

// TestOutageKill: Redis is killed (SIGKILL) under load and restarted empty.
func TestOutageKill(t *testing.T) {
	outageRun(t, func(r *testenv.Redis) { r.Stop(t) }, func(r *testenv.Redis) { r.Restart(t) })
}

// TestOutagePause: Redis hangs (SIGSTOP) under load, keeping its data and
// the writes queued on its sockets, and resumes.
func TestOutagePause(t *testing.T) {
	outageRun(t, func(r *testenv.Redis) { r.Pause(t) }, func(r *testenv.Redis) { r.Resume(t) })
}
