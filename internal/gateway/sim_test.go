package gateway

// Timer-driven behaviour (auth timeout, pings, idle timeout, write timeout)
// and the queue policies, run on a fake transport inside a synctest bubble:
// virtual time, exact instants, no sleeps.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// fakeConn is a transport whose peer is the test.
type fakeConn struct {
	in     chan []byte // messages from the peer
	closed chan struct{}
	once   sync.Once
	answer bool // answer pings

	mu       sync.Mutex
	out      [][]byte
	deadline time.Time
	stall    bool          // writes block until the write deadline
	gate     chan struct{} // non-nil: each write waits for a token (or close)
	pong     func()
	pings    int
	code     websocket.StatusCode
	reason   string
	closedAt time.Time
	discard  bool
	corkedAt int // len(out) at Cork
	flushes  int // Uncorks that sent something
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte, 16), closed: make(chan struct{})}
}

func (f *fakeConn) Read(context.Context) (websocket.MessageType, []byte, error) {
	select {
	case b := <-f.in:
		return websocket.MessageText, b, nil
	case <-f.closed:
		return 0, nil, net.ErrClosed
	}
}

func (f *fakeConn) WaitReadable() {}

func (f *fakeConn) Write(_ context.Context, _ websocket.MessageType, p []byte) error {
	f.mu.Lock()
	stall, gate, dl := f.stall, f.gate, f.deadline
	f.mu.Unlock()
	if stall {
		if dl.IsZero() {
			<-f.closed
			return net.ErrClosed
		}
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		select {
		case <-t.C:
			return fmt.Errorf("write: %w", os.ErrDeadlineExceeded)
		case <-f.closed:
			return net.ErrClosed
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-f.closed:
			return net.ErrClosed
		}
	}
	select {
	case <-f.closed:
		return net.ErrClosed
	default:
	}
	f.mu.Lock()
	f.out = append(f.out, p)
	f.mu.Unlock()
	return nil
}

func (f *fakeConn) Ping(ctx context.Context) error {
	f.mu.Lock()
	f.pings++
	pong := f.pong
	f.mu.Unlock()
	if pong != nil {
		pong()
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-f.closed:
		return net.ErrClosed
	}
}

func (f *fakeConn) Close(code websocket.StatusCode, reason string) error {
	f.finish(code, reason)
	return nil
}

func (f *fakeConn) Abort() error {
	f.finish(-1, "abort")
	return nil
}

func (f *fakeConn) finish(code websocket.StatusCode, reason string) {
	f.once.Do(func() {
		f.mu.Lock()
		f.code, f.reason, f.closedAt = code, reason, time.Now()
		f.mu.Unlock()
		close(f.closed)
	})
}

func (f *fakeConn) SetWriteDeadline(t time.Time) error {
	f.mu.Lock()
	f.deadline = t
	f.mu.Unlock()
	return nil
}

func (f *fakeConn) Cork() {
	f.mu.Lock()
	f.corkedAt = len(f.out)
	f.mu.Unlock()
}

func (f *fakeConn) Uncork() error {
	f.mu.Lock()
	if len(f.out) > f.corkedAt {
		f.flushes++
	}
	f.mu.Unlock()
	return nil
}

func (f *fakeConn) DiscardOnClose() {
	f.mu.Lock()
	f.discard = true
	f.mu.Unlock()
}

func (f *fakeConn) discarded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.discard
}

func (f *fakeConn) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// state returns a copy of what the test asserts on.
func (f *fakeConn) state() (out [][]byte, code websocket.StatusCode, reason string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.out...), f.code, f.reason, f.closedAt
}

// sim is a gateway running in a bubble.
type sim struct {
	t    *testing.T
	g    *Gateway
	sub  *fakeSub
	stop func()
}

func newSim(t *testing.T, cfg Config) *sim {
	cfg.Tokens = []string{testToken}
	sub := newFakeSub()
	g, err := New(sub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	<-sub.ready
	return &sim{t: t, g: g, sub: sub, stop: func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}}
}

// connect attaches f as a client, as ServeHTTP does after the upgrade.
func (s *sim) connect(f *fakeConn, authed bool) {
	sl, status := s.g.admit(authed)
	if status != 0 {
		s.t.Fatalf("admit: %d", status)
	}
	c := s.g.newClient()
	c.tr = f
	if f.answer {
		f.pong = c.seen
	}
	go s.g.serveClient(c, sl)
	synctest.Wait()
}

// subscribe sends a subscribe and checks the reply.
func (s *sim) subscribe(f *fakeConn, patterns ...string) {
	s.t.Helper()
	b, _ := json.Marshal(clientMessage{Type: typeSubscribe, Events: patterns})
	f.in <- b
	synctest.Wait()
	out, _, _, _ := f.state()
	if len(out) == 0 || string(out[len(out)-1]) != string(subscribedReply(newMatcher(patterns))) {
		s.t.Fatalf("no subscribed reply: %q", out)
	}
}

func TestSimAuthTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{AuthTimeout: 5 * time.Second})
		defer s.stop()
		watcher := newFakeConn()
		s.connect(watcher, true)
		s.subscribe(watcher, "*")
		f := newFakeConn()
		start := time.Now()
		s.connect(f, false)
		for time.Since(start) < 6*time.Second {
			s.sub.push(event("live.info_log", "x"))
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		out, code, reason, at := f.state()
		if len(out) != 0 || code != websocket.StatusPolicyViolation || reason != "authentication timeout" || at.Sub(start) != 5*time.Second {
			t.Fatalf("got %d frames, closed %d %q after %v; want 0 frames, 1008 at 5s", len(out), code, reason, at.Sub(start))
		}
		if out, _, _, _ := watcher.state(); len(out) != 61 {
			t.Errorf("watcher got %d frames, want the reply and 60 events", len(out))
		}
		if st := s.g.Stats(); st.AuthFailures != 1 || st.Clients != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestSimPingAndIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{}) // ping 20 s, idle 60 s
		defer s.stop()
		alive, silent := newFakeConn(), newFakeConn()
		alive.answer = true
		start := time.Now()
		s.connect(alive, true)
		s.connect(silent, true)
		time.Sleep(200*time.Second + 500*time.Millisecond)
		synctest.Wait()

		_, code, reason, at := silent.state()
		if code != websocket.StatusPolicyViolation || reason != "idle timeout" || at.Sub(start) <= 60*time.Second || at.Sub(start) > 61*time.Second {
			t.Errorf("silent: closed %d %q after %v, want 1008 idle timeout in (60s, 61s]", code, reason, at.Sub(start))
		}
		if !silent.discarded() {
			t.Error("idle close keeps unsent data")
		}
		if alive.isClosed() {
			t.Error("client answering pings was closed")
		}
		alive.mu.Lock()
		pings := alive.pings
		alive.mu.Unlock()
		if pings != 10 {
			t.Errorf("alive: %d pings in 200 s, want 10", pings)
		}
		if st := s.g.Stats(); st.IdleDisconnects != 1 || st.Clients != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestSimWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{WriteTimeout: 5 * time.Second})
		defer s.stop()
		stalled, healthy := newFakeConn(), newFakeConn()
		s.connect(stalled, true)
		s.connect(healthy, true)
		s.subscribe(stalled, "*")
		s.subscribe(healthy, "*")
		stalled.mu.Lock()
		stalled.stall = true // a peer that stops reading: the next write never completes
		stalled.mu.Unlock()
		time.Sleep(time.Second) // past FlushInterval

		start := time.Now()
		for i := range 80 { // logs, 100 ms apart: never coalesced, never dropped, never paced
			s.sub.push(event("live.info_log", i))
			synctest.Wait()
			if out, _, _, _ := healthy.state(); len(out) != i+2 {
				t.Fatalf("healthy client: %d frames after event %d, want it at once", len(out), i)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, code, reason, at := stalled.state()
		if code != websocket.StatusPolicyViolation || reason != "slow consumer" || at.Sub(start) != 5*time.Second {
			t.Errorf("stalled: closed %d %q after %v, want 1008 slow consumer at 5s", code, reason, at.Sub(start))
		}
		if st := s.g.Stats(); st.SlowDisconnects != 1 || st.Clients != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

// label names a frame for comparison: symbol+seq for klines, the event name
// otherwise.
func label(b []byte) string {
	var env struct {
		Event string
		Data  struct {
			S   string
			Seq int
		}
	}
	_ = json.Unmarshal(b, &env)
	if env.Event == "live.kline" {
		return fmt.Sprintf("%s%d", env.Data.S, env.Data.Seq)
	}
	return env.Event
}

func kline(sym string, seq int) eventArgs {
	return eventArgs{"live.kline", map[string]any{"s": sym, "i": "1m", "t": 1, "seq": seq}}
}

type eventArgs struct {
	name string
	data any
}

func TestSimQueuePolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		publish []eventArgs // the first is in flight when the rest arrive
		want    []string    // frames after the reply, once writes resume; nil: disconnected
		dropped uint64
	}{
		{
			name:    "room: nothing coalesced",
			publish: []eventArgs{kline("A", 0), kline("A", 1), kline("A", 2), kline("B", 1), kline("A", 3)},
			want:    []string{"A0", "A1", "A2", "B1", "A3"},
		},
		{
			name:    "full: a stream's newest queued value is replaced in place",
			publish: []eventArgs{kline("A", 0), kline("A", 1), kline("B", 1), kline("A", 2), kline("B", 2), kline("A", 3), kline("B", 3)},
			want:    []string{"A0", "A1", "B1", "A3", "B3"},
			dropped: 2,
		},
		{
			name:    "full: a log compacts superseded market values to make room",
			publish: []eventArgs{kline("A", 0), kline("A", 1), kline("B", 1), kline("A", 2), kline("B", 2), {"live.info_log", 1}, {"live.info_log", 2}},
			want:    []string{"A0", "A2", "B2", "live.info_log", "live.info_log"},
			dropped: 2,
		},
		{
			name:    "full: a new stream compacts too",
			publish: []eventArgs{kline("A", 0), kline("A", 1), kline("A", 2), kline("A", 3), kline("A", 4), kline("C", 1)},
			want:    []string{"A0", "A4", "C1"},
			dropped: 3,
		},
		{
			name:    "full of logs: disconnected, nothing dropped",
			publish: []eventArgs{{"live.info_log", 0}, {"live.info_log", 1}, {"live.info_log", 2}, {"live.info_log", 3}, {"live.info_log", 4}, {"live.info_log", 5}},
		},
		{
			name:    "full of distinct streams: disconnected",
			publish: []eventArgs{kline("A", 0), kline("A", 1), kline("B", 1), kline("C", 1), kline("D", 1), kline("E", 1)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSim(t, Config{ClientQueue: 4})
				defer s.stop()
				f := newFakeConn()
				s.connect(f, true)
				s.subscribe(f, "*")
				gate := make(chan struct{})
				f.mu.Lock()
				f.gate = gate
				f.mu.Unlock()
				time.Sleep(time.Second) // past FlushInterval: the first event goes out at once
				for _, e := range tc.publish {
					s.sub.push(event(e.name, e.data))
					synctest.Wait()
				}
				close(gate) // the peer reads again
				time.Sleep(time.Second)
				synctest.Wait()
				out, code, reason, _ := f.state()
				st := s.g.Stats()
				if tc.want == nil {
					if code != websocket.StatusPolicyViolation || reason != "slow consumer" || st.SlowDisconnects != 1 || st.Dropped != 0 || !f.discarded() {
						t.Fatalf("closed %d %q, stats %+v; want 1008 slow consumer, nothing dropped", code, reason, st)
					}
					return
				}
				var got []string
				for _, b := range out[1:] {
					got = append(got, label(b))
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("frames (-want +got):\n%s", diff)
				}
				if f.isClosed() || st.Dropped != tc.dropped || st.SlowDisconnects != 0 {
					t.Errorf("closed=%v stats %+v, want open and %d dropped", f.isClosed(), st, tc.dropped)
				}
			})
		})
	}
}

func TestSimShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSim(t, Config{})
		fs := []*fakeConn{newFakeConn(), newFakeConn(), newFakeConn()}
		s.connect(fs[0], true)
		s.connect(fs[1], true)
		s.connect(fs[2], false) // authenticating
		s.subscribe(fs[0], "*")
		s.subscribe(fs[1], "*")
		fs[1].mu.Lock()
		fs[1].stall = true // its writer is stuck in a write when shutdown comes
		fs[1].mu.Unlock()
		s.sub.push(event("live.info_log", 1))
		synctest.Wait()
		s.stop()
		for i, f := range fs {
			if _, code, reason, _ := f.state(); code != websocket.StatusGoingAway || reason != "server shutting down" {
				t.Errorf("client %d: closed %d %q, want 1001", i, code, reason)
			}
		}
		if n := s.g.Stats().Clients; n != 0 {
			t.Errorf("%d clients after Run returned", n)
		}
	})
}

func TestSimFlushPacing(t *testing.T) {
	for _, tc := range []struct {
		every          time.Duration
		minFl, maxFl   int
		wantMaxLatency time.Duration
	}{
		{10 * time.Millisecond, 10, 11, 10 * time.Millisecond}, // 100 events over 100 ms
		{-1, 100, 100, 0}, // no pacing: a write per event
	} {
		t.Run(fmt.Sprint(tc.every), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSim(t, Config{FlushInterval: tc.every})
				defer s.stop()
				f := newFakeConn()
				s.connect(f, true)
				s.subscribe(f, "*")
				time.Sleep(time.Second)
				f.mu.Lock()
				f.flushes = 0
				f.mu.Unlock()

				sent := map[int]time.Time{}
				var worst time.Duration
				seen := 1 // the reply
				for i := range 100 {
					sent[i] = time.Now()
					s.sub.push(event("live.info_log", i))
					time.Sleep(time.Millisecond)
					synctest.Wait()
					out, _, _, _ := f.state()
					for ; seen < len(out); seen++ {
						worst = max(worst, time.Since(sent[seen-1])-time.Millisecond)
					}
				}
				time.Sleep(time.Second)
				synctest.Wait()
				out, _, _, _ := f.state()
				if len(out) != 101 {
					t.Fatalf("%d frames, want 101", len(out))
				}
				f.mu.Lock()
				flushes := f.flushes
				f.mu.Unlock()
				if flushes < tc.minFl || flushes > tc.maxFl || worst > tc.wantMaxLatency {
					t.Errorf("%d writes, worst added latency %v; want %d..%d writes, ≤ %v", flushes, worst, tc.minFl, tc.maxFl, tc.wantMaxLatency)
				}
				// Quiet for longer than writerLinger: no writer goroutine left.
				time.Sleep(2 * writerLinger)
				synctest.Wait()
				c := (*s.g.snap.Load())[0]
				c.mu.Lock()
				writing := c.writing
				c.mu.Unlock()
				if writing {
					t.Error("writer still running on an idle connection")
				}
			})
		})
	}
}
