package notify

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"time"
)

// maxDedupeEntries bounds the notifications remembered for de-duplication.
// Beyond it, new notifications pass undeduplicated: a storm of distinct
// messages costs sends (which the queues bound), never memory.
const maxDedupeEntries = 1024

// deduper collapses identical notifications (same Event, Title, Text)
// within a window into the first, and reports the count of the others
// when the window closes.
type deduper struct {
	window time.Duration

	mu      sync.Mutex // guards entries
	entries map[[sha256.Size]byte]*dupEntry
	kick    chan struct{} // cap 1: entries went from empty to non-empty
}

type dupEntry struct {
	n       Notification // the one sent
	until   time.Time    // end of the current window
	repeats int          // repeats collapsed in it
}

func newDeduper(window time.Duration) *deduper {
	return &deduper{window: window, entries: map[[sha256.Size]byte]*dupEntry{}, kick: make(chan struct{}, 1)}
}

func dupKey(x Notification) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range []string{x.Event, x.Title, x.Text} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// admit says whether x is to be sent; false means it repeats one sent
// within the window, and is counted. summary, when not nil, reports the
// repeats of a window that had closed but was not yet reported.
func (d *deduper) admit(x Notification, now time.Time) (ok bool, summary *Notification) {
	k := dupKey(x)
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[k]
	if e != nil && !now.Before(e.until) {
		summary = d.closeLocked(k, e, now)
		e = d.entries[k]
	}
	if e != nil {
		e.repeats++
		return false, summary
	}
	if len(d.entries) < maxDedupeEntries {
		d.entries[k] = &dupEntry{n: x, until: now.Add(d.window)}
		if len(d.entries) == 1 {
			select {
			case d.kick <- struct{}{}:
			default:
			}
		}
	}
	return true, summary
}

// closeLocked ends e's window at now. Without repeats, e is forgotten;
// with some, it returns the summary to send and opens a new window, so a
// message repeating without end is sent once per window.
func (d *deduper) closeLocked(k [sha256.Size]byte, e *dupEntry, now time.Time) *Notification {
	if e.repeats == 0 {
		delete(d.entries, k)
		return nil
	}
	s := e.n
	s.Text = strings.TrimRight(s.Text, "\n") + fmt.Sprintf("\n(repeated %d times in the last %s)", e.repeats, shortDuration(d.window))
	s.Time = now
	e.until, e.repeats = now.Add(d.window), 0
	return &s
}

// run reports repeats when their window closes, until ctx ends.
func (d *deduper) run(ctx context.Context, emit func(Notification)) {
	t := time.NewTimer(0)
	t.Stop()
	defer t.Stop()
	for {
		now := time.Now()
		var out []Notification
		var next time.Time
		d.mu.Lock()
		for k, e := range d.entries {
			if !now.Before(e.until) {
				if s := d.closeLocked(k, e, now); s != nil {
					out = append(out, *s)
				} else {
					continue // forgotten
				}
			}
			if next.IsZero() || e.until.Before(next) {
				next = e.until
			}
		}
		d.mu.Unlock()
		for _, s := range out {
			emit(s)
		}
		var fire <-chan time.Time
		if !next.IsZero() {
			t.Reset(next.Sub(now))
			fire = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-fire:
		case <-d.kick:
		}
	}
}

// shortDuration prints 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
