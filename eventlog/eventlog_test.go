package eventlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/slogtest"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/eventlog"
)

// run starts h.Run until the end of the test.
func run(t *testing.T, h *eventlog.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// sink subscribes to a Local bus and keeps the events.
type sink struct {
	mu  sync.Mutex
	evs []bus.Event
}

func subscribe(t *testing.T, b *bus.Local) *sink {
	t.Helper()
	s := &sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	registered := make(chan struct{})
	go func() {
		defer close(done)
		close(registered)
		b.Subscribe(ctx, func(ev bus.Event) {
			s.mu.Lock()
			s.evs = append(s.evs, ev)
			s.mu.Unlock()
		})
	}()
	<-registered
	// Local registers at once; wait until it counts the subscriber.
	for b.Stats().Subscribers == 0 {
		time.Sleep(time.Millisecond)
	}
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func (s *sink) events() []bus.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bus.Event(nil), s.evs...)
}

// payloads decodes the records published under name.
func (s *sink) payloads(t *testing.T, name string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, ev := range s.events() {
		if ev.Name != name {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			t.Fatalf("payload %s: %v", ev.Data, err)
		}
		out = append(out, m)
	}
	return out
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPublishes(t *testing.T) {
	b := bus.NewLocal(bus.LocalConfig{Publisher: "node-a"})
	s := subscribe(t, b)
	var out bytes.Buffer
	next := slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})
	h := eventlog.New(next, b, eventlog.Config{SessionID: "sess-1", NodeID: "node-a"})
	run(t, h)
	log := slog.New(h)

	log.Debug("debug only goes to the next handler")
	log.Info("kline flushed", "symbol", "BTCUSDT", "n", 3)
	log.With("component", "cache").WithGroup("redis").Warn("tier changed", "to", "memory")
	log.Error("publish failed", "err", errors.New("boom"))

	eventually(t, func() bool { return len(s.events()) == 3 }, "3 events published")
	want := map[string][]map[string]any{
		"live.info_log": {
			{"session_id": "sess-1", "node_id": "node-a", "level": "INFO", "message": "kline flushed",
				"attrs": map[string]any{"symbol": "BTCUSDT", "n": 3.0}},
			{"session_id": "sess-1", "node_id": "node-a", "level": "WARN", "message": "tier changed",
				"attrs": map[string]any{"component": "cache", "redis": map[string]any{"to": "memory"}}},
		},
		"live.error_log": {
			{"session_id": "sess-1", "node_id": "node-a", "level": "ERROR", "message": "publish failed",
				"attrs": map[string]any{"err": "boom"}},
		},
	}
	ids := map[string]bool{}
	for name, w := range want {
		got := s.payloads(t, name)
		for _, p := range got {
			id, _ := p["id"].(string)
			ts, _ := p["timestamp"].(float64)
			if len(id) != 36 || ids[id] || ts < float64(time.Now().Add(-time.Minute).UnixMilli()) {
				t.Errorf("%s: id %q (or a repeated one), timestamp %v", name, id, ts)
			}
			ids[id] = true
			delete(p, "id")
			delete(p, "timestamp")
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s payloads (-want +got):\n%s", name, diff)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 4 {
		t.Errorf("next handler wrote %d lines, want 4:\n%s", n, out.String())
	}
	if s := h.Stats(); s.Published != 3 || s.RateLimited+s.QueueFull+s.PublishErrors != 0 {
		t.Errorf("stats %+v", s)
	}
}

// The slog.Handler contract, checked on what the handler keeps and
// publishes.
func TestSlogtest(t *testing.T) {
	var h *eventlog.Handler
	slogtest.Run(t, func(*testing.T) slog.Handler {
		h = eventlog.New(slog.DiscardHandler, bus.NewLocal(bus.LocalConfig{}), eventlog.Config{})
		return h
	}, func(t *testing.T) map[string]any {
		recs := h.History(0)
		if len(recs) != 1 {
			t.Fatalf("history holds %d records, want 1", len(recs))
		}
		r := recs[0]
		m := map[string]any{slog.LevelKey: r.Level, slog.MessageKey: r.Message}
		if !r.Time.IsZero() {
			m[slog.TimeKey] = r.Time
		}
		for k, v := range r.Attrs {
			m[k] = v
		}
		return m
	})
}

func TestAttrValues(t *testing.T) {
	h := eventlog.New(nil, bus.NewLocal(bus.LocalConfig{}), eventlog.Config{})
	type point struct{ X, Y int }
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	slog.New(h).Info("values",
		"nan", math.NaN(), "inf", math.Inf(1), "f", 1.5, "u", uint64(7), "b", true,
		"d", 1500*time.Millisecond, "t", at, "err", errors.New("boom"),
		"point", point{1, 2}, "ch", make(chan int), "empty", slog.GroupValue(),
		slog.Group("", slog.Int("inlined", 1)), slog.Group("g", slog.Group("h")),
	)
	got := h.History(0)[0].Attrs
	want := map[string]any{
		"nan": "NaN", "inf": "+Inf", "f": 1.5, "u": uint64(7), "b": true,
		"d": "1.5s", "t": "2026-01-02T03:04:05Z", "err": "boom",
		"point": json.RawMessage(`{"X":1,"Y":2}`), "inlined": int64(1),
	}
	delete(got, "ch") // fmt's %+v of a channel: an address
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attrs (-want +got):\n%s", diff)
	}
	// Everything converted marshals, so the record can be published.
	if _, err := json.Marshal(h.History(0)[0]); err != nil {
		t.Errorf("record does not marshal: %v", err)
	}
}

func TestHistoryBounded(t *testing.T) {
	h := eventlog.New(nil, bus.NewLocal(bus.LocalConfig{}), eventlog.Config{History: 3})
	log := slog.New(h)
	for i := range 5 {
		log.Info("info " + string(rune('a'+i)))
		if i%2 == 0 {
			log.Error("error " + string(rune('a'+i)))
		}
	}
	log.Debug("not kept")
	msgs := func(recs []eventlog.Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, r.Message)
		}
		return out
	}
	// The last 3 of each kind, in the order they were logged.
	want := []string{"error a", "info c", "error c", "info d", "info e", "error e"}
	if diff := cmp.Diff(want, msgs(h.History(0))); diff != "" {
		t.Errorf("History(0) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[len(want)-2:], msgs(h.History(2))); diff != "" {
		t.Errorf("History(2) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"error a", "error c", "error e"}, msgs(h.Errors(0))); diff != "" {
		t.Errorf("Errors(0) (-want +got):\n%s", diff)
	}
}

// A log storm publishes the burst, then the rate; the rest is dropped,
// counted and summed up in one event when the storm ends.
func TestRateLimitAndSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.NewLocal(bus.LocalConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		var mu sync.Mutex
		var got []map[string]any
		wg.Go(func() {
			b.Subscribe(ctx, func(ev bus.Event) {
				var m map[string]any
				json.Unmarshal(ev.Data, &m)
				mu.Lock()
				got = append(got, m)
				mu.Unlock()
			})
		})
		h := eventlog.New(nil, b, eventlog.Config{Rate: 50, Burst: 100})
		wg.Go(func() { h.Run(ctx) })
		synctest.Wait()
		log := slog.New(h)

		for i := range 1000 {
			log.Info("storm", "i", i)
		}
		synctest.Wait()
		if s := h.Stats(); s.Published != 100 || s.RateLimited != 900 {
			t.Fatalf("after a burst of 1000: %+v, want 100 published, 900 rate limited", s)
		}
		// One second later the bucket has 50 tokens again.
		time.Sleep(time.Second)
		for i := range 100 {
			log.Info("storm 2", "i", i)
		}
		synctest.Wait()
		if s := h.Stats(); s.Published != 150 || s.RateLimited != 950 {
			t.Fatalf("a second later: %+v, want 150 published, 950 rate limited", s)
		}
		if s := h.Stats(); s.Summaries != 0 {
			t.Fatalf("summary published during the storm: %+v", s)
		}
		// Quiet: one summary of everything dropped.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if s := h.Stats(); s.Summaries != 1 {
			t.Fatalf("after the storm: %+v, want 1 summary", s)
		}
		mu.Lock()
		last := got[len(got)-1]
		n := len(got)
		mu.Unlock()
		if n != 151 || last["message"] != "950 log events dropped (rate limit 50/s, burst 100, or full queue)" || last["level"] != "WARN" {
			t.Errorf("%d events, last %v", n, last)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if s := h.Stats(); s.Summaries != 1 {
			t.Errorf("summaries repeated without new drops: %+v", s)
		}
	})
}

// A storm that does not end is summed up every SummaryEvery.
func TestSummaryDuringLongStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.NewLocal(bus.LocalConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		h := eventlog.New(nil, b, eventlog.Config{Rate: 1, Burst: 1, SummaryEvery: 10 * time.Second})
		wg.Go(func() { h.Run(ctx) })
		log := slog.New(h)
		// 35 s of 10 records a second, logged between Run's ticks.
		time.Sleep(500 * time.Millisecond)
		for range 35 {
			for range 10 {
				log.Info("storm")
			}
			time.Sleep(time.Second)
		}
		synctest.Wait()
		if s := h.Stats(); s.Summaries < 3 || s.Summaries > 4 {
			t.Errorf("35 s storm with SummaryEvery 10 s: %d summaries", s.Summaries)
		}
	})
}

// blockingPub never returns before its ctx ends.
type blockingPub struct{ calls atomic.Int64 }

func (p *blockingPub) Publish(ctx context.Context, _ string, _ any) error {
	p.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

// Logging never waits on the bus: a stuck publisher fills the queue, the
// rest is dropped and counted.
func TestNeverBlocksLogging(t *testing.T) {
	pub := &blockingPub{}
	h := eventlog.New(nil, pub, eventlog.Config{Rate: -1, Queue: 8, PublishTimeout: time.Hour})
	run(t, h)
	log := slog.New(h)
	t0 := time.Now()
	for range 1000 {
		log.Info("x")
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("1000 logs took %v with a stuck bus", el)
	}
	s := h.Stats()
	if s.QueueFull < 1000-8-1 || s.Queued > 8 {
		t.Errorf("stats %+v: want ≥ %d queue-full drops", s, 1000-8-1)
	}
}

// loggingPub logs through the handler while publishing, as a bus might.
type loggingPub struct {
	log       *slog.Logger
	calls     atomic.Int64
	useCtx    bool
	published atomic.Int64
}

func (p *loggingPub) Publish(ctx context.Context, _ string, _ any) error {
	p.calls.Add(1)
	if p.useCtx {
		p.log.InfoContext(ctx, "bus: publishing")
	} else {
		p.log.Info("bus: publishing (no ctx)")
	}
	p.published.Add(1)
	return nil
}

func TestNoRecursion(t *testing.T) {
	t.Run("ctx", func(t *testing.T) {
		pub := &loggingPub{useCtx: true}
		h := eventlog.New(nil, pub, eventlog.Config{})
		pub.log = slog.New(h)
		run(t, h)
		pub.log.Info("hello")
		eventually(t, func() bool { return h.Stats().Suppressed == 1 }, "the bus's own log not suppressed")
		time.Sleep(50 * time.Millisecond)
		if n := pub.calls.Load(); n != 1 {
			t.Errorf("one log made %d publishes", n)
		}
		if n := len(h.History(0)); n != 2 {
			t.Errorf("history holds %d records, want both", n)
		}
	})
	t.Run("no ctx: bounded by the bucket", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pub := &loggingPub{}
			h := eventlog.New(nil, pub, eventlog.Config{Rate: 10, Burst: 5})
			pub.log = slog.New(h)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { h.Run(ctx); close(done) }()
			pub.log.Info("hello")
			time.Sleep(10 * time.Second)
			synctest.Wait()
			cancel()
			<-done
			// 5 from the burst, then 10 a second (and a summary or two).
			if n := pub.calls.Load(); n > 5+10*10+5 {
				t.Errorf("a feedback loop made %d publishes in 10 s", n)
			}
		})
	})
}

type failingPub struct{}

func (failingPub) Publish(context.Context, string, any) error { return bus.ErrUnavailable }

func TestPublishErrorsCounted(t *testing.T) {
	h := eventlog.New(nil, failingPub{}, eventlog.Config{})
	run(t, h)
	slog.New(h).Info("x")
	eventually(t, func() bool { return h.Stats().PublishErrors == 1 }, "publish error not counted")
	if n := len(h.History(0)); n != 1 {
		t.Errorf("history holds %d records", n)
	}
}

func TestCollector(t *testing.T) {
	h := eventlog.New(nil, bus.NewLocal(bus.LocalConfig{}), eventlog.Config{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	want := []string{"tradecache_eventlog_dropped_total", "tradecache_eventlog_publish_errors_total", "tradecache_eventlog_published_total", "tradecache_eventlog_queued"}
	if diff := cmp.Diff(want, names, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
