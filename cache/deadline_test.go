package cache

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func TestDeadlinesCall(t *testing.T) {
	d := newDeadlines(250 * time.Millisecond)
	within := func(t *testing.T, ctx context.Context, start time.Time) {
		t.Helper()
		dl, ok := ctx.Deadline()
		if !ok {
			t.Fatal("no deadline")
		}
		if lo, hi := start.Add(d.timeout-d.step), time.Now().Add(d.timeout); dl.Before(lo) || dl.After(hi) {
			t.Fatalf("deadline %v from the call, want within [%v, %v]", dl.Sub(start), d.timeout-d.step, d.timeout)
		}
	}

	t.Run("background shares", func(t *testing.T) {
		start := time.Now()
		a, cancelA := d.call(context.Background())
		b, cancelB := d.call(context.WithoutCancel(context.Background()))
		cancelA()
		cancelB()
		within(t, a, start)
		within(t, b, start)
		if a.Err() != nil {
			t.Fatal("a call's cancel ended the shared context")
		}
		if allocs := testing.AllocsPerRun(100, func() {
			_, cancel := d.call(context.Background())
			cancel()
		}); allocs > 0 {
			t.Errorf("%v allocations per call", allocs)
		}
	})

	t.Run("shared context expires", func(t *testing.T) {
		short := newDeadlines(64 * time.Millisecond)
		ctx, cancel := short.call(context.Background())
		defer cancel()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			t.Fatal("the shared context did not end at its deadline")
		}
		if ctx.Err() != context.DeadlineExceeded {
			t.Fatalf("err = %v", ctx.Err())
		}
		next, cancel2 := short.call(context.Background())
		defer cancel2()
		if next.Err() != nil {
			t.Fatal("a new call got an expired context")
		}
	})

	t.Run("caller's earlier deadline", func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		ctx, cancel2 := d.call(parent)
		defer cancel2()
		if ctx != parent {
			t.Fatal("want the caller's own context")
		}
	})

	t.Run("cancellable callers share per Done channel", func(t *testing.T) {
		d := newDeadlines(250 * time.Millisecond)
		parent, cancel := context.WithCancel(context.Background())
		type key struct{}
		child := context.WithValue(parent, key{}, 1) // same Done channel
		start := time.Now()
		a, cancelA := d.call(parent)
		b, cancelB := d.call(child)
		cancelA()
		cancelB()
		within(t, a, start)
		if a != b {
			t.Fatal("calls whose contexts share a Done channel got different contexts")
		}
		if allocs := testing.AllocsPerRun(100, func() {
			_, cancel := d.call(child)
			cancel()
		}); allocs > 0 {
			t.Errorf("%v allocations per call", allocs)
		}
		// Another caller's context meanwhile: one of its own, ending with it.
		other, cancelOther := context.WithCancel(context.Background())
		o, cancelO := d.call(other)
		defer cancelO()
		within(t, o, start)
		if o == a {
			t.Fatal("a caller with another Done channel got the shared context")
		}
		cancelOther()
		if o.Err() != context.Canceled || a.Err() != nil {
			t.Fatalf("other's cancel: its call %v, the shared one %v", o.Err(), a.Err())
		}
		cancel()
		if a.Err() != context.Canceled {
			t.Fatalf("the callers' cancel: shared context err = %v", a.Err())
		}
	})

	t.Run("tiny timeout", func(t *testing.T) {
		tiny := newDeadlines(time.Millisecond)
		start := time.Now()
		ctx, cancel := tiny.call(context.Background())
		defer cancel()
		dl, _ := ctx.Deadline()
		if dl.Before(start.Add(time.Millisecond)) || dl.After(time.Now().Add(time.Millisecond)) {
			t.Fatalf("deadline %v", dl.Sub(start))
		}
	})
}

func TestLimitText(t *testing.T) {
	var l limitText
	for i := range maxLimitTexts + 10 {
		n := 1000 + i
		if got := l.get(n); got != strconv.Itoa(n) {
			t.Fatalf("get(%d) = %q", n, got)
		}
		if got := l.get(n); got != strconv.Itoa(n) {
			t.Fatalf("get(%d) again = %q", n, got)
		}
	}
	if m := l.m.Load(); len(*m) != maxLimitTexts {
		t.Fatalf("%d texts cached, want the bound %d", len(*m), maxLimitTexts)
	}
	if allocs := testing.AllocsPerRun(100, func() { l.get(1000) }); allocs != 0 {
		t.Errorf("%v allocations for a cached limit", allocs)
	}
}
