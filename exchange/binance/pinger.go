package binance

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// errNoPong ends a connection whose server left a ping unanswered for the
// pinger's timeout.
var errNoPong = errors.New("ping unanswered")

// pinger pings a connection every interval. Without a timeout it only
// keeps the connection's last-frame time fresh (the pong counts as a
// frame; the staleness watchdog acts on silence). With one, a ping whose
// pong has not come within it ends run with errNoPong — unless the delay
// is this process's own: a frame read since the ping was sent (the
// reader was behind a backlog), a reader busy in its handler, or a pong
// read within a short grace after the deadline (the process was paused).
type pinger struct {
	c        *websocket.Conn
	interval time.Duration
	timeout  time.Duration    // 0: pings' errors are ignored
	last     func() time.Time // the connection's last frame read
	busy     func() bool      // the reader is handling a message
	sent     atomic.Int64     // UnixNano of the ping awaiting its pong; 0: none
}

// run pings until ctx ends (nil) or a pong is overdue (errNoPong).
func (p *pinger) run(ctx context.Context) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		wait := p.timeout
		if wait <= 0 {
			wait = p.interval
		}
		sent := time.Now()
		p.sent.Store(sent.UnixNano())
		pctx, cancel := context.WithTimeout(ctx, wait)
		err := p.c.Ping(pctx)
		cancel()
		if err == nil {
			p.sent.Store(0)
			continue
		}
		if p.timeout <= 0 || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		// A short grace first: a paused process reads its pong right
		// after resuming.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(p.timeout/10, 250*time.Millisecond)):
		}
		if p.ours(sent) {
			p.sent.Store(0)
			continue
		}
		return fmt.Errorf("%w within %v", errNoPong, p.timeout)
	}
}

// ours reports whether a late pong is this process's delay, not the
// server's silence.
func (p *pinger) ours(sent time.Time) bool {
	return p.last().After(sent) || p.busy != nil && p.busy()
}

// outstanding reports whether a ping was awaiting its pong when the
// pinger last stopped or now.
func (p *pinger) outstanding() bool { return p.sent.Load() != 0 }
