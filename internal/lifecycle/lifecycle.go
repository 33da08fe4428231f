// Package lifecycle holds the two small helpers the long-lived parts share
// for switching roles as Redis comes and goes.
package lifecycle

import (
	"context"
	"time"
)

// CancelWhen calls cancel as soon as cond holds, polling every 200 ms, or
// stops when ctx ends. The returned channel is closed once it has stopped,
// so the caller can wait for its goroutine.
func CancelWhen(ctx context.Context, cancel context.CancelFunc, cond func() bool) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if cond() {
					cancel()
					return
				}
			}
		}
	}()
	return done
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// WaitFor polls cond every 50 ms until it holds, d passes or ctx ends, and
// reports whether it held.
func WaitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		Sleep(ctx, 50*time.Millisecond)
	}
	return true
}
