package cache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
)

// A Sentinel failover, asked for or forced by killing the master, is
// survived like a Redis restart: no call waits past the deadline, the
// cache ends on the Redis tier of the new master, and what was written
// last lands there (written back when it went to the memory tier).
func TestSentinelFailover(t *testing.T) {
	for _, mode := range []string{"SENTINEL FAILOVER", "master killed"} {
		t.Run(mode, func(t *testing.T) {
			s := testenv.StartSentinel(t)
			opt, err := cache.RedisOptions(s.URL())
			if err != nil {
				t.Fatal(err)
			}
			c, err := cache.New(cache.Config{Redis: opt, CallTimeout: callTimeout, FailureThreshold: 3,
				ProbeMin: 50 * time.Millisecond, ProbeMax: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			defer func() { cancel(); <-done }()
			testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis }, "never on the Redis tier")
			reg := registry(t, time.Minute)

			const workers = 16
			var stop atomic.Bool
			var wg sync.WaitGroup
			var mu sync.Mutex // guards last and maxCall
			last := map[string]string{}
			var maxCall time.Duration
			for g := range workers {
				wg.Go(func() {
					k := key(t, reg, fmt.Sprint(g))
					for i := 0; !stop.Load(); i++ {
						v := fmt.Sprintf("w%d-%d", g, i)
						t0 := time.Now()
						err := c.Set(ctx, k, []byte(v))
						_, _, _ = c.Get(ctx, k)
						d := time.Since(t0)
						mu.Lock()
						maxCall = max(maxCall, d/2)
						if err == nil {
							last[k.Name()] = v
						}
						mu.Unlock()
						time.Sleep(5 * time.Millisecond)
					}
				})
			}
			time.Sleep(300 * time.Millisecond)
			old := s.MasterAddr(t)
			if mode == "master killed" {
				s.Master.Stop(t)
				testenv.Eventually(t, 20*time.Second, func() bool { return s.MasterAddr(t) != old }, "no failover after the master died")
			} else {
				s.Failover(t)
			}
			now := s.MasterAddr(t)
			testenv.Eventually(t, 15*time.Second, func() bool { return c.Tier() == cache.TierRedis && c.Stats().MemoryEntries == 0 }, "not back on the Redis tier of the new master")
			time.Sleep(500 * time.Millisecond) // writes after the failover
			stop.Store(true)
			wg.Wait()
			testenv.Eventually(t, 5*time.Second, func() bool { return c.Stats().MemoryEntries == 0 }, "memory tier not written back")

			if maxCall > callTimeout+slack {
				t.Errorf("slowest call %v, deadline %v", maxCall, callTimeout)
			}
			nm, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{now}, DisableCache: true, ForceSingleClient: true})
			if err != nil {
				t.Fatal(err)
			}
			defer nm.Close()
			for k, v := range last {
				got, err := nm.Do(ctx, nm.B().Get().Key(k).Build()).ToString()
				if err != nil || got != v {
					t.Errorf("new master %s: %s = %q %v, last written %q", now, k, got, err, v)
				}
			}
			st := c.Stats()
			t.Logf("%s: master %s → %s; slowest call %v; tier switches to memory %d, written back %d", mode, old, now, maxCall, st.ToMemory, st.WrittenBack)
		})
	}
}
