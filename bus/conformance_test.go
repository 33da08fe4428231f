package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/internal/testenv"
)

// The optional parts of a bus the suite uses when present.
type (
	compressor interface {
		PublishCompressed(ctx context.Context, name string, data any) error
	}
	statser interface{ Stats() bus.Stats }
)

// suiteQueue is the per-subscriber queue bound both implementations get in
// the suite, small enough for the slow-subscriber case to overflow it.
const suiteQueue = 1024

// recorder is a subscriber that keeps what it receives.
type recorder struct {
	mu   sync.Mutex
	evs  []bus.Event
	hook func(bus.Event) // called before recording, from Subscribe's goroutine

	cancel context.CancelFunc
	done   chan error
}

// record subscribes a recorder until stop or the end of the test.
func record(t *testing.T, sub bus.Subscriber, hook func(bus.Event)) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{hook: hook, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- sub.Subscribe(ctx, func(ev bus.Event) {
			if r.hook != nil {
				r.hook(ev)
			}
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			r.mu.Unlock()
		})
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the subscription and waits for Subscribe to return.
func (r *recorder) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Subscribe returned %v after its ctx ended, want nil", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Subscribe did not return within 5s of its ctx ending")
	}
}

// named returns the events received with name.
func (r *recorder) named(name string) []bus.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []bus.Event
	for _, ev := range r.evs {
		if ev.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

var syncSeq atomic.Int64

// ready publishes a "sync" event until every recorder has one: then their
// subscriptions are live (a Redis PSUBSCRIBE takes a round trip).
func ready(t *testing.T, pub bus.Publisher, recs ...*recorder) {
	t.Helper()
	nonce := fmt.Sprint(syncSeq.Add(1))
	seen := func(r *recorder) bool {
		for _, ev := range r.named("live.sync") {
			if string(ev.Data) == `"`+nonce+`"` {
				return true
			}
		}
		return false
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		pub.Publish(context.Background(), "sync", nonce) // errors: retried
		for _, r := range recs {
			if !seen(r) {
				return false
			}
		}
		return true
	}, "subscribers never received the sync event")
}

type seqMsg struct {
	P   int `json:"p"`
	Seq int `json:"seq"`
}

// checkSeqs verifies r received, for each of publishers publishers, seqs
// 0..n-1 of event name in order.
func checkSeqs(t *testing.T, r *recorder, name string, publishers, n int) {
	t.Helper()
	got := make([][]int, publishers)
	for _, ev := range r.named(name) {
		var m seqMsg
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			t.Fatalf("event data %s: %v", ev.Data, err)
		}
		got[m.P] = append(got[m.P], m.Seq)
	}
	want := make([][]int, publishers)
	for p := range want {
		for i := range n {
			want[p] = append(want[p], i)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("seqs received per publisher (-want +got):\n%s", diff)
	}
}

func mustPublish(t *testing.T, pub bus.Publisher, name string, data any) {
	t.Helper()
	if err := pub.Publish(context.Background(), name, data); err != nil {
		t.Fatalf("Publish(%s): %v", name, err)
	}
}

// envelope parses an event's Raw.
func envelope(t *testing.T, ev bus.Event) bus.Envelope {
	t.Helper()
	var env bus.Envelope
	if err := json.Unmarshal(ev.Raw, &env); err != nil {
		t.Fatalf("Raw is not an envelope: %v: %s", err, ev.Raw)
	}
	return env
}

// runConformance is the bus contract, run against Local and Redis. newBus
// returns a fresh bus (mode "live", per-subscriber queue suiteQueue) whose
// publisher and subscriber are the same bus.
func runConformance(t *testing.T, newBus func(t *testing.T) (bus.Publisher, bus.Subscriber)) {
	t.Run("FanOutInOrder", func(t *testing.T) {
		pub, sub := newBus(t)
		recs := []*recorder{record(t, sub, nil), record(t, sub, nil), record(t, sub, nil)}
		ready(t, pub, recs...)
		const n = 200
		for i := range n {
			mustPublish(t, pub, "seq", seqMsg{Seq: i})
		}
		for _, r := range recs {
			testenv.Eventually(t, 5*time.Second, func() bool { return len(r.named("live.seq")) >= n }, "subscriber got %d of %d events", len(r.named("live.seq")), n)
			checkSeqs(t, r, "live.seq", 1, n)
			for _, ev := range r.named("live.seq")[:3] {
				if ev.Publisher == "" {
					t.Errorf("event without publisher: %s", ev.Raw)
				}
				dec, err := bus.Decode(ev.Raw)
				if err != nil {
					t.Fatalf("Decode(Raw): %v", err)
				}
				if diff := cmp.Diff(ev, dec); diff != "" {
					t.Errorf("Raw does not decode to the event (-event +decoded):\n%s", diff)
				}
			}
		}
	})

	t.Run("CompressionRoundTrip", func(t *testing.T) {
		pub, sub := newBus(t)
		c, ok := pub.(compressor)
		if !ok {
			t.Fatalf("%T has no PublishCompressed", pub)
		}
		r := record(t, sub, nil)
		ready(t, pub, r)
		payload := map[string]any{"symbol": "BTCUSDT", "price": 64000.5, "tags": []any{"a", "<b>&"}}
		if err := c.PublishCompressed(context.Background(), "zipped", payload); err != nil {
			t.Fatal(err)
		}
		mustPublish(t, pub, "plain", payload)
		testenv.Eventually(t, 5*time.Second, func() bool { return len(r.named("live.plain")) == 1 }, "plain event not received")
		zipped, plain := r.named("live.zipped"), r.named("live.plain")
		if len(zipped) != 1 {
			t.Fatalf("received %d compressed events, want 1", len(zipped))
		}
		for _, tc := range []struct {
			ev   bus.Event
			want bool
		}{{zipped[0], true}, {plain[0], false}} {
			if got := envelope(t, tc.ev).IsCompressed; got != tc.want {
				t.Errorf("%s: is_compressed = %v, want %v", tc.ev.Name, got, tc.want)
			}
			var got map[string]any
			if err := json.Unmarshal(tc.ev.Data, &got); err != nil {
				t.Fatalf("%s: data %s: %v", tc.ev.Name, tc.ev.Data, err)
			}
			if diff := cmp.Diff(payload, got); diff != "" {
				t.Errorf("%s: payload (-sent +received):\n%s", tc.ev.Name, diff)
			}
		}
	})

	t.Run("BigPayloadAutoCompressed", func(t *testing.T) {
		pub, sub := newBus(t)
		r := record(t, sub, nil)
		ready(t, pub, r)
		big := strings.Repeat("kline ", 40<<10) // 240 KiB of JSON, above 64 KiB
		mustPublish(t, pub, "big", big)
		testenv.Eventually(t, 5*time.Second, func() bool { return len(r.named("live.big")) == 1 }, "big event not received")
		ev := r.named("live.big")[0]
		if !envelope(t, ev).IsCompressed {
			t.Errorf("a %d-byte payload was not compressed", len(big))
		}
		if len(ev.Raw) > len(big)/10 {
			t.Errorf("compressed envelope is %d bytes for a %d-byte repetitive payload", len(ev.Raw), len(big))
		}
		var got string
		if err := json.Unmarshal(ev.Data, &got); err != nil || got != big {
			t.Errorf("payload did not round-trip (err %v, %d bytes)", err, len(got))
		}
	})

	t.Run("CancelUnsubscribes", func(t *testing.T) {
		pub, sub := newBus(t)
		stay, leave := record(t, sub, nil), record(t, sub, nil)
		ready(t, pub, stay, leave)
		leave.stop(t)
		before := len(leave.named("live.after"))
		if st, ok := sub.(statser); ok {
			if n := st.Stats().Subscribers; n != 1 {
				t.Errorf("Stats.Subscribers = %d after one of two left, want 1", n)
			}
		}
		for i := range 10 {
			mustPublish(t, pub, "after", seqMsg{Seq: i})
		}
		testenv.Eventually(t, 5*time.Second, func() bool { return len(stay.named("live.after")) == 10 }, "remaining subscriber missed events")
		if got := len(leave.named("live.after")); got != before {
			t.Errorf("a subscriber whose ctx ended received %d events", got-before)
		}
	})

	t.Run("SubscribeReturnsOnCtxEnd", func(t *testing.T) {
		_, sub := newBus(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := sub.Subscribe(ctx, func(bus.Event) {}); err != nil {
			t.Errorf("Subscribe(cancelled ctx) = %v, want nil", err)
		}
		const d = 200 * time.Millisecond
		ctx, cancel = context.WithTimeout(context.Background(), d)
		defer cancel()
		t0 := time.Now()
		if err := sub.Subscribe(ctx, func(bus.Event) {}); err != nil {
			t.Errorf("Subscribe = %v at its deadline, want nil", err)
		}
		if el := time.Since(t0); el < d || el > d+time.Second {
			t.Errorf("Subscribe with a %v deadline returned after %v", d, el)
		}
		if st, ok := sub.(statser); ok {
			if n := st.Stats().Subscribers; n != 0 {
				t.Errorf("Stats.Subscribers = %d after every Subscribe returned", n)
			}
		}
	})

	t.Run("ConcurrentPublishers", func(t *testing.T) {
		pub, sub := newBus(t)
		recs := []*recorder{record(t, sub, nil), record(t, sub, nil), record(t, sub, nil)}
		ready(t, pub, recs...)
		const publishers, n = 4, 200
		var wg sync.WaitGroup
		errs := make(chan error, publishers)
		for p := range publishers {
			wg.Go(func() {
				for i := range n {
					if err := pub.Publish(context.Background(), "conc", seqMsg{P: p, Seq: i}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, r := range recs {
			testenv.Eventually(t, 10*time.Second, func() bool { return len(r.named("live.conc")) >= publishers*n }, "subscriber got %d of %d events", len(r.named("live.conc")), publishers*n)
			checkSeqs(t, r, "live.conc", publishers, n)
		}
	})

	t.Run("SlowSubscriberDoesNotBlockPublish", func(t *testing.T) {
		pub, sub := newBus(t)
		release := make(chan struct{})
		var blocked atomic.Bool
		slow := record(t, sub, func(ev bus.Event) {
			if ev.Name == "live.flood" && !blocked.Swap(true) {
				<-release // stuck on the first flood event until the end
			}
		})
		fast := record(t, sub, nil)
		unblock := sync.OnceFunc(func() { close(release) })
		t.Cleanup(unblock) // before the recorders stop, even on failure
		ready(t, pub, slow, fast)
		// Publish in chunks the fast subscriber can keep up with: only the
		// stuck one may lose events.
		const n, chunk = 3 * suiteQueue, suiteQueue / 4
		var worst time.Duration
		for i := range n {
			t0 := time.Now()
			mustPublish(t, pub, "flood", seqMsg{Seq: i})
			worst = max(worst, time.Since(t0))
			if (i+1)%chunk == 0 {
				testenv.Eventually(t, 10*time.Second, func() bool { return len(fast.named("live.flood")) > i }, "fast subscriber fell behind")
			}
		}
		if worst > 200*time.Millisecond {
			t.Errorf("a publish took %v with a stuck subscriber", worst)
		}
		testenv.Eventually(t, 10*time.Second, func() bool { return len(fast.named("live.flood")) >= n }, "fast subscriber got %d of %d events", len(fast.named("live.flood")), n)
		checkSeqs(t, fast, "live.flood", 1, n)
		if st, ok := sub.(statser); ok {
			testenv.Eventually(t, 5*time.Second, func() bool { return st.Stats().DroppedSlow >= n-suiteQueue-1 }, "Stats.DroppedSlow = %d, want ≥ %d", st.Stats().DroppedSlow, n-suiteQueue-1)
		} else {
			t.Errorf("%T has no Stats", sub)
		}
		unblock()
		// The slow subscriber gets what its queue kept, in order.
		testenv.Eventually(t, 5*time.Second, func() bool { return len(slow.named("live.flood")) > suiteQueue }, "slow subscriber got %d events after release", len(slow.named("live.flood")))
		last := -1
		for _, ev := range slow.named("live.flood") {
			var m seqMsg
			if err := json.Unmarshal(ev.Data, &m); err != nil || m.Seq <= last {
				t.Fatalf("slow subscriber: seq %d after %d (err %v): out of order", m.Seq, last, err)
			}
			last = m.Seq
		}
	})
}

func TestConformanceLocal(t *testing.T) {
	runConformance(t, func(t *testing.T) (bus.Publisher, bus.Subscriber) {
		b := bus.NewLocal(bus.LocalConfig{Publisher: "node-a", Queue: suiteQueue})
		return b, b
	})
}

func TestConformanceRedis(t *testing.T) {
	r := testenv.Shared(t)
	runConformance(t, func(t *testing.T) (bus.Publisher, bus.Subscriber) {
		b, _ := newRedisBus(t, r, bus.RedisConfig{Publisher: "node-a", Queue: suiteQueue})
		return b, b
	})
}
