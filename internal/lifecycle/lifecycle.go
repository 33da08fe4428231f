// Package lifecycle holds what the long-lived parts share for switching
// roles as Redis comes and goes: the standalone/elected supervisor (Role)
// and its small helpers.
package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/leader"
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

// Role is a part that holds an exchange stream either elected (Redis up)
// or alone (Redis down, or no election configured).
type Role struct {
	// Redis returns the Redis client while Redis is reachable, nil otherwise.
	Redis func() valkey.Client
	// Elector campaigns for the role's lease; nil: always Standalone,
	// unless Campaign is set.
	Elector *leader.Elector
	// Campaign, when set instead of Elector, campaigns for the role's
	// leases itself (several, each leading through its own work) until
	// ctx ends; it must return once every term it started has ended.
	Campaign func(ctx context.Context)
	// Standalone holds the stream while there is nothing to elect on; it
	// must return when ctx ends (Redis has come back).
	Standalone func(ctx context.Context) error
	// Lead holds the stream for one term with Redis client cl; it must
	// return when ctx ends (the lease is lost).
	Lead func(ctx context.Context, cl valkey.Client, t leader.Term) error
	// Follow, if set, is called each time the node starts campaigning.
	Follow func()
	// Logger reports a failed Standalone run; Name prefixes the message.
	Logger *slog.Logger
	Name   string
}

// Run plays the role until ctx ends, switching between standalone and
// elected as Redis goes and comes. At start it gives the cache a moment
// to connect before deciding Redis is down.
func (r Role) Run(ctx context.Context) {
	elected := r.Elector != nil || r.Campaign != nil
	if elected {
		WaitFor(ctx, 3*time.Second, func() bool { return r.Redis() != nil })
	}
	for ctx.Err() == nil {
		if !elected || r.Redis() == nil {
			sctx, cancel := context.WithCancel(ctx)
			stop := CancelWhen(sctx, cancel, func() bool { return elected && r.Redis() != nil })
			err := r.Standalone(sctx)
			cancel()
			<-stop
			if err != nil && ctx.Err() == nil {
				r.Logger.Error(r.Name+": standalone stream failed", "err", err)
				Sleep(ctx, time.Second)
			}
			continue
		}
		if r.Follow != nil {
			r.Follow()
		}
		ectx, cancel := context.WithCancel(ctx)
		stop := CancelWhen(ectx, cancel, func() bool { return r.Redis() == nil })
		if r.Campaign != nil {
			r.Campaign(ectx)
			cancel()
			<-stop
			continue
		}
		r.Elector.Run(ectx, func(lctx context.Context, t leader.Term) error {
			cl := r.Redis()
			if cl == nil {
				return errors.New("redis went away")
			}
			return r.Lead(lctx, cl, t)
		})
		cancel()
		<-stop
	}
}
