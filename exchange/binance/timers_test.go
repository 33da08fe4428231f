package binance

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tradecache/tradecache/exchange"
)

func TestPacerSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pacer{interval: 200 * time.Millisecond}
		start := time.Now()
		var at []time.Duration
		for range 6 {
			if err := p.wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			at = append(at, time.Since(start))
		}
		for i, d := range at {
			if want := time.Duration(i) * 200 * time.Millisecond; d != want {
				t.Errorf("call %d at %v, want %v", i, d, want)
			}
		}
		// Idle time is not banked: after a pause the next call is not early.
		time.Sleep(time.Second)
		_ = p.wait(context.Background())
		t0 := time.Now()
		_ = p.wait(context.Background())
		if d := time.Since(t0); d != 200*time.Millisecond {
			t.Errorf("after idle: waited %v", d)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.wait(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled wait = %v", err)
		}
	})
}

func TestWatchStaleSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const after = 30 * time.Second
		var lastNs atomic.Int64
		lastNs.Store(time.Now().UnixNano())
		lastFn := func() time.Time { return time.Unix(0, lastNs.Load()) }
		done := make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { done <- watchStale(ctx, lastFn, after) }()

		// Activity every 20 s keeps it alive.
		for range 5 {
			time.Sleep(20 * time.Second)
			lastNs.Store(time.Now().UnixNano())
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("reset while active: %v", err)
			default:
			}
		}
		// Silence: reset exactly StaleAfter after the last frame.
		silentFrom := lastFn()
		err := <-done
		if !errors.Is(err, errStale) || time.Since(silentFrom) != after {
			t.Errorf("err %v after %v of silence, want errStale after %v", err, time.Since(silentFrom), after)
		}

		// Cancellation ends it quietly.
		ctx2, cancel2 := context.WithCancel(context.Background())
		go func() { done <- watchStale(ctx2, func() time.Time { return time.Now() }, after) }()
		cancel2()
		if err := <-done; err != nil {
			t.Errorf("cancelled watchdog = %v", err)
		}
	})
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 250 * time.Millisecond, max: 30 * time.Second}
	caps := []time.Duration{250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000}
	for i, c := range caps {
		c *= time.Millisecond
		for range 20 { // jitter stays within [cap/2, cap]
			bb := b
			d := bb.next()
			if d < c/2 || d > c {
				t.Fatalf("step %d: %v outside [%v, %v]", i, d, c/2, c)
			}
		}
		b.next()
	}
	for range 100 {
		b.next() // no overflow at large n
	}
	if d := b.next(); d < 15*time.Second || d > 30*time.Second {
		t.Errorf("capped delay %v", d)
	}
	b.reset()
	if d := b.next(); d > 250*time.Millisecond {
		t.Errorf("after reset %v", d)
	}
}

func TestSleepCtxSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !sleepCtx(context.Background(), time.Minute) || time.Since(start) != time.Minute {
			t.Error("sleepCtx did not sleep a minute")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if sleepCtx(ctx, time.Hour) || time.Since(start) != time.Minute+time.Second {
			t.Error("sleepCtx ignored ctx")
		}
	})
}

// TestOverlapFilter exercises the rotation duplicate filter directly.
func TestOverlapFilter(t *testing.T) {
	var got []int64
	s := &Streams{}
	s.cfg.OnEvent = func(ev exchange.Event) { got = append(got, ev.EventTime) }
	sl := &slot{s: s}
	kl := func(e, bar int64, closed bool) exchange.Event {
		return exchange.Event{Kind: exchange.EventKline, Stream: "x@kline_1m", EventTime: e,
			Kline: exchange.Kline{OpenTime: bar, Closed: closed}}
	}
	sl.deliver(1, kl(5, 0, false))
	sl.deliver(1, kl(5, 0, false)) // no filter outside a rotation
	sl.setOverlap(true)
	const oldC, newC = 1, 2
	sl.deliver(oldC, kl(10, 1, false))
	sl.deliver(newC, kl(10, 1, false)) // same event from the other connection
	sl.deliver(newC, kl(11, 1, true))  // new is ahead
	sl.deliver(oldC, kl(11, 1, true))  // duplicate closed bar
	sl.deliver(newC, kl(12, 2, false))
	sl.deliver(oldC, kl(9, 0, true))   // a late closed bar is never lost
	sl.deliver(oldC, kl(11, 1, false)) // older open update: superseded
	sl.deliver(newC, kl(12, 2, false)) // same conn, same E: kept
	sl.deliver(oldC, kl(13, 2, false))
	sl.setOverlap(false)
	sl.deliver(newC, kl(13, 2, false)) // filter off again
	want := []int64{5, 5, 10, 11, 12, 9, 12, 13, 13}
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	if d := s.Stats().Duplicates; d != 3 {
		t.Errorf("duplicates %d, want 3", d)
	}
}
