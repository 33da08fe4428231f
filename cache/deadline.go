package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlines gives Redis calls their deadline (Config.CallTimeout) without
// a context and a timer per call. context.WithTimeout allocates a context,
// starts a timer and, once valkey-go waits on it, a Done channel: at 1,024
// concurrent callers that was a fifth of the process's CPU
// (BenchmarkRedisGet, CPU profile). Calls of callers that share a Done
// channel (one long-lived context, or none: Background) share one context
// per step instead: every such call started within a step gets that
// step's context, derived from the caller's, whose deadline lies between
// CallTimeout−step and CallTimeout after the call's start, never later.
// One group of callers holds the shared context at a time; others get a
// context of their own, as before.
type deadlines struct {
	timeout time.Duration
	step    time.Duration // at least 1 ms, at most timeout/32

	cur atomic.Pointer[sharedDeadline]
	mu  sync.Mutex // serialises making a new shared context
}

// sharedDeadline is a context expiring at deadline, shared by the calls of
// one step whose contexts have the Done channel done. It ends with their
// context or at its deadline (its own timer cancels it); cancel is kept
// only so that the context is released like any other, never called early.
type sharedDeadline struct {
	done     <-chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

func newDeadlines(timeout time.Duration) *deadlines {
	return &deadlines{timeout: timeout, step: max(timeout/32, time.Millisecond)}
}

// call returns the context of one Redis call made on behalf of ctx: one
// that ends when ctx does or CallTimeout from now, whichever comes first.
// cancel must be called when the call is done.
func (d *deadlines) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.step >= d.timeout {
		// A timeout this short gets a context of its own.
		return context.WithTimeout(ctx, d.timeout)
	}
	due := time.Now().Add(d.timeout)
	done := ctx.Done()
	if done != nil {
		if dl, ok := ctx.Deadline(); ok && !dl.After(due) {
			// The caller's own deadline comes first: it bounds the call.
			return ctx, noCancel
		}
	}
	s := d.cur.Load()
	if s != nil && d.fits(s, due) {
		if s.done == done {
			return s.ctx, noCancel
		}
		// Other callers hold this step's shared context.
		return context.WithDeadline(ctx, due)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.cur.Load(); s != nil && d.fits(s, due) {
		if s.done == done {
			return s.ctx, noCancel
		}
		return context.WithDeadline(ctx, due)
	}
	// Derived from this caller's context: it ends with it, as do the
	// contexts of every caller that will share it (they share its Done
	// channel). They get this caller's values, which the Redis client does
	// not read (the cache sets no hooks).
	sctx, cancel := context.WithDeadline(ctx, due)
	d.cur.Store(&sharedDeadline{done: done, ctx: sctx, cancel: cancel, deadline: due})
	return sctx, noCancel
}

// fits reports whether s's deadline suits a call due at due: not later,
// and less than a step earlier.
func (d *deadlines) fits(s *sharedDeadline, due time.Time) bool {
	return !s.deadline.After(due) && s.deadline.After(due.Add(-d.step))
}

func noCancel() {}
