package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMode is the mode events are published under ("live.kline").
const DefaultMode = "live"

// LocalConfig configures a Local bus. Zero fields take the defaults.
type LocalConfig struct {
	// Mode prefixes event names: "<Mode>.<name>" (default "live").
	Mode string
	// Publisher is the envelope's id (default: the process id, as Jesse).
	Publisher string
	// Queue bounds each subscriber's queue of undelivered events (4096).
	Queue int
	// CompressAbove: payloads whose JSON is longer are compressed
	// (default 64 KiB; negative: only PublishCompressed compresses).
	CompressAbove int
}

// Local is the in-process bus, used when there is no Redis. Publish fans
// each event out to every subscriber's bounded queue and never blocks: an
// event that finds a subscriber's queue full (LocalConfig.Queue events
// waiting) is dropped for that subscriber alone and counted in
// Stats.DroppedSlow; the other subscribers get it. Events from one
// goroutine reach every subscriber in the order published.
//
// Events are encoded as they would be on Redis, so Event.Raw is a real
// envelope to relay. Subscribers share the Event's slices: they must not
// modify them.
type Local struct {
	cfg LocalConfig

	// mu guards subs. Publish holds it shared while fanning out, so an
	// event is queued for all subscribers at once or none, and a
	// subscriber that has left is never queued to.
	mu   sync.RWMutex
	subs map[*queue]struct{}

	st counters
}

// NewLocal returns an in-process bus. It starts no goroutine.
func NewLocal(cfg LocalConfig) *Local {
	if cfg.Mode == "" {
		cfg.Mode = DefaultMode
	}
	if cfg.Publisher == "" {
		cfg.Publisher = strconv.Itoa(os.Getpid())
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.CompressAbove == 0 {
		cfg.CompressAbove = DefaultCompressAbove
	}
	return &Local{cfg: cfg, subs: make(map[*queue]struct{})}
}

// Publish sends data as event "<mode>.<name>" to every current subscriber,
// compressed when its JSON exceeds CompressAbove. It never blocks.
func (l *Local) Publish(ctx context.Context, name string, data any) error {
	return l.publish(ctx, name, data, false)
}

// PublishCompressed is Publish with the payload always compressed.
func (l *Local) PublishCompressed(ctx context.Context, name string, data any) error {
	return l.publish(ctx, name, data, true)
}

func (l *Local) publish(ctx context.Context, name string, data any, compress bool) error {
	ev, compressed, err := makeEvent(ctx, l.cfg.Publisher, l.cfg.Mode, name, data, compress, l.cfg.CompressAbove)
	if err != nil {
		l.st.publishErrors.Add(1)
		return err
	}
	l.mu.RLock()
	for q := range l.subs {
		if !q.push(ev) {
			l.st.droppedSlow.Add(1)
		}
	}
	l.mu.RUnlock()
	l.st.countPublished(compressed)
	return nil
}

// makeEvent encodes one event for either implementation.
func makeEvent(ctx context.Context, publisher, mode, name string, data any, compress bool, above int) (Event, bool, error) {
	if err := ctx.Err(); err != nil {
		return Event{}, false, fmt.Errorf("bus: publish %s.%s: %w", mode, name, err)
	}
	if name == "" {
		return Event{}, false, errors.New("bus: publish: empty event name")
	}
	full := mode + "." + name
	raw, plain, compressed, err := encode(publisher, full, data, compress, above)
	if err != nil {
		return Event{}, false, err
	}
	return Event{Publisher: publisher, Name: full, Data: plain, Raw: raw}, compressed, nil
}

// Subscribe calls fn, from the calling goroutine, for each event published
// after it registered, until ctx ends; then it returns nil. Events still
// queued when ctx ends are discarded.
func (l *Local) Subscribe(ctx context.Context, fn func(Event)) error {
	return l.SubscribeReady(ctx, fn, nil)
}

// SubscribeReady is Subscribe that calls ready(true) (when ready is not
// nil) once registered, before the first event; a Local is never down.
func (l *Local) SubscribeReady(ctx context.Context, fn func(Event), ready func(up bool)) error {
	q := newQueue(l.cfg.Queue, 0)
	l.mu.Lock()
	l.subs[q] = struct{}{}
	l.mu.Unlock()
	l.st.subscribers.Add(1)
	if ready != nil {
		ready(true)
	}
	defer func() {
		l.mu.Lock()
		delete(l.subs, q)
		l.mu.Unlock()
		l.st.subscribers.Add(-1)
	}()
	q.drain(ctx, func(ev Event) {
		l.st.received.Add(1)
		fn(ev)
	})
	return nil
}

// Stats returns the bus's counters.
func (l *Local) Stats() Stats { return l.st.snapshot() }

// Collector exports Stats as Prometheus metrics (tradecache_bus_*).
func (l *Local) Collector() prometheus.Collector { return collector{l.Stats} }
