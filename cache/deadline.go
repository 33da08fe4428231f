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
// concurrent callers that was a fifth of the process's CPU (BenchmarkRedisGet,
// CPU profile). A caller whose context can never be cancelled shares one
// context per step instead: every call started within a step gets that
// step's context, whose deadline lies between CallTimeout−step and
// CallTimeout after the call's start, never later.
type deadlines struct {
	timeout time.Duration
	step    time.Duration // at least 1 ms, at most timeout/32

	cur atomic.Pointer[sharedDeadline]
	mu  sync.Mutex // serialises making a new shared context
}

// sharedDeadline is a context expiring at deadline, shared by the calls of
// one step. Its own timer cancels it at the deadline; cancel is kept only
// so that the context is released like any other, never called early.
type sharedDeadline struct {
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
	now := time.Now()
	due := now.Add(d.timeout)
	if ctx.Done() == nil {
		// Never cancelled (Background, WithoutCancel): only the call
		// timeout ends the call. Values are not used by the Redis client.
		return d.shared(due), noCancel
	}
	if dl, ok := ctx.Deadline(); ok && !dl.After(due) {
		// The caller's own deadline comes first: it bounds the call.
		return ctx, noCancel
	}
	return context.WithDeadline(ctx, due)
}

// shared returns a context expiring between due−step and due.
func (d *deadlines) shared(due time.Time) context.Context {
	if s := d.cur.Load(); s != nil && !s.deadline.After(due) && s.deadline.After(due.Add(-d.step)) {
		return s.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.cur.Load(); s != nil && !s.deadline.After(due) && s.deadline.After(due.Add(-d.step)) {
		return s.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), due)
	d.cur.Store(&sharedDeadline{ctx: ctx, cancel: cancel, deadline: due})
	return ctx
}

func noCancel() {}
