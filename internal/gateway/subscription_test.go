package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// A reply waits for the subscription to be in place again after Redis
// was lost: the promise holds across an outage, not only at the start.
func TestSubscribedReplyWaitsAfterAnOutage(t *testing.T) {
	const wait = 300 * time.Millisecond
	b, r := redisBus(t)
	e := startOn(t, b, Config{SubscribeWait: wait})
	first := e.program()
	subscribe(t, first, "live.*")
	if st := e.g.Stats(); st.BusWaitTimeouts != 0 {
		t.Fatalf("stats %+v", st)
	}
	r.Stop(t)
	// Once the gateway knows, a new client's reply waits SubscribeWait.
	testenv.Eventually(t, 10*time.Second, func() bool {
		e.g.mu.Lock()
		defer e.g.mu.Unlock()
		return !e.g.readyUp
	}, "the gateway never learned that its subscription was lost")
	during := e.program()
	began := time.Now()
	subscribe(t, during, "live.*")
	if took, st := time.Since(began), e.g.Stats(); took < wait || st.BusWaitTimeouts != 1 {
		t.Fatalf("a reply during the outage came after %v with stats %+v; want SubscribeWait (%v) and one timeout", took, st, wait)
	}
	r.Restart(t)
	testenv.Eventually(t, 20*time.Second, func() bool { return r.NumPat(t) == 1 }, "never resubscribed after the restart")
	after := e.program()
	subscribe(t, after, "live.*")
	if err := b.Publish(context.Background(), "back", 1); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, after); !strings.Contains(got, `"event":"live.back"`) {
		t.Fatalf("after the outage: got %s", got)
	}
	if st := e.g.Stats(); st.BusWaitTimeouts != 1 || st.BusSubscriptions != 1 {
		t.Errorf("stats %+v: want the one subscription kept through the outage", st)
	}
}

// redisBus returns a bus on a Redis of its own (a single server whatever
// the topology, so PUBSUB NUMPAT counts every pattern subscription), with
// its Run going, and the server.
func redisBus(t *testing.T) (*bus.Redis, *testenv.Redis) {
	t.Helper()
	r := testenv.StartOne(t)
	quiet := slog.New(slog.DiscardHandler)
	opt, err := cache.RedisOptions(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{Redis: opt, CallTimeout: 200 * time.Millisecond, ProbeMin: 20 * time.Millisecond, ProbeMax: 200 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.NewRedis(c, bus.RedisConfig{Channel: "gw:channel:1", Logger: quiet, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { c.Run(ctx); done <- struct{}{} }()
	go func() { b.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	testenv.Eventually(t, 5*time.Second, func() bool { return c.Tier() == cache.TierRedis }, "cache never reached redis")
	return b, r
}

// The gateway holds no subscription on Redis while no client listens;
// the first subscribe makes one, and its reply comes once Redis has
// confirmed it, so an event published right after the reply arrives; the
// subscription ends SubscribeLinger after the last client stopped
// listening, and a later subscribe makes a new one.
func TestGatewaySubscribesWhileClientsListen(t *testing.T) {
	const linger = 300 * time.Millisecond
	b, r := redisBus(t)
	e := startOn(t, b, Config{SubscribeLinger: linger})

	c := e.program()
	send(t, c, `{"type":"subscribe","events":[]}`) // an empty set listens to nothing
	recv(t, c)
	time.Sleep(100 * time.Millisecond)
	if n, st := r.NumPat(t), e.g.Stats(); n != 0 || st.BusSubscribed || st.BusSubscriptions != 0 {
		t.Fatalf("with no client listening: NUMPAT %d, stats %+v; want no subscription", n, st)
	}

	for round := 1; round <= 2; round++ {
		if got, want := subscribe(t, c, "live.*"), `{"type":"subscribed","events":["live.*"]}`; got != want {
			t.Fatalf("round %d: reply %s, want %s", round, got, want)
		}
		// Published the moment the reply is read: it must arrive.
		if err := b.Publish(context.Background(), "x", round); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); !strings.Contains(got, `"event":"live.x"`) || !strings.HasSuffix(got, `"data":`+string(rune('0'+round))+`}`) {
			t.Fatalf("round %d: got %s, want the event published after the reply", round, got)
		}
		if n, st := r.NumPat(t), e.g.Stats(); n != 1 || !st.BusSubscribed || st.BusSubscriptions != uint64(round) {
			t.Fatalf("round %d, listening: NUMPAT %d, stats %+v; want one subscription, %d made", round, n, st, round)
		}
		// Stop listening: by unsubscribing, then by leaving.
		stopped := time.Now()
		if round == 1 {
			send(t, c, `{"type":"unsubscribe","events":["live.*"]}`)
			recv(t, c)
		} else {
			c.CloseNow()
		}
		testenv.Eventually(t, 5*time.Second, func() bool { return r.NumPat(t) == 0 && !e.g.Stats().BusSubscribed }, "round %d: still subscribed after the linger", round)
		if took := time.Since(stopped); took < linger {
			t.Errorf("round %d: unsubscribed after %v, before the linger of %v", round, took, linger)
		}
	}
}

// A client that listens again within the linger keeps the subscription:
// no new one is made.
func TestGatewayKeepsItsSubscriptionWithinTheLinger(t *testing.T) {
	b, r := redisBus(t)
	e := startOn(t, b, Config{SubscribeLinger: time.Minute})
	c := e.program()
	subscribe(t, c, "*")
	send(t, c, `{"type":"unsubscribe","events":["*"]}`)
	recv(t, c)
	c2 := e.program()
	subscribe(t, c2, "live.*")
	if err := b.Publish(context.Background(), "y", 1); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c2); !strings.Contains(got, `"event":"live.y"`) {
		t.Fatalf("got %s", got)
	}
	if n, st := r.NumPat(t), e.g.Stats(); n != 1 || st.BusSubscriptions != 1 || st.BusWaitTimeouts != 0 {
		t.Fatalf("NUMPAT %d, stats %+v; want the one subscription kept", n, st)
	}
}

// noRedis is a bus source whose Redis is unreachable.
type noRedis struct{}

func (noRedis) Redis() valkey.Client { return nil }

// With Redis unreachable the bus cannot confirm: the reply still comes,
// after SubscribeWait, and says so in the stats.
func TestSubscribedReplyWhenTheBusCannotSubscribe(t *testing.T) {
	const wait = 200 * time.Millisecond
	b, err := bus.NewRedis(noRedis{}, bus.RedisConfig{Channel: "gw:channel:1", Logger: slog.New(slog.DiscardHandler), BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := startOn(t, b, Config{SubscribeWait: wait})
	c := e.program()
	began := time.Now()
	if got, want := subscribe(t, c, "*"), `{"type":"subscribed","events":["*"]}`; got != want {
		t.Fatalf("reply %s, want %s", got, want)
	}
	if took := time.Since(began); took < wait || took > wait+2*time.Second {
		t.Errorf("reply after %v, want about SubscribeWait (%v)", took, wait)
	}
	if st := e.g.Stats(); st.BusWaitTimeouts != 1 || !st.BusSubscribed {
		t.Errorf("stats %+v: want one wait timeout, the subscription still being tried", st)
	}
}

// With SubscribeLinger negative the gateway subscribes from Run, before
// any client, as with a Subscriber that cannot say when it is ready.
func TestGatewayAlwaysSubscribed(t *testing.T) {
	for _, tc := range []struct {
		name string
		sub  bus.Subscriber
		cfg  Config
	}{
		{"linger negative", bus.NewLocal(bus.LocalConfig{}), Config{SubscribeLinger: -1}},
		{"not a ReadySubscriber", newFakeSub(), Config{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startOn(t, tc.sub, tc.cfg)
			if l, ok := tc.sub.(*bus.Local); ok {
				testenv.Eventually(t, 5*time.Second, func() bool { return l.Stats().Subscribers == 1 }, "not subscribed without a client")
				if st := e.g.Stats(); !st.BusSubscribed || st.BusSubscriptions != 1 {
					t.Errorf("stats %+v", st)
				}
				return
			}
			select {
			case <-tc.sub.(*fakeSub).ready:
			case <-time.After(5 * time.Second):
				t.Fatal("not subscribed without a client")
			}
		})
	}
}

// A gateway whose lazy subscription fails ends Run with the error.
func TestLazySubscriptionErrorEndsRun(t *testing.T) {
	g, err := New(failingReadySub{}, Config{Tokens: []string{testToken}, SubscribeWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- g.Run(ctx) }()
	srv := httptest.NewServer(g)
	defer srv.Close()
	e := &env{t: t, g: g, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
	c := e.program()
	send(t, c, `{"type":"subscribe","events":["*"]}`)
	go func() { // read, so that the gateway's close handshake completes
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	select {
	case err := <-runErr:
		if !errors.Is(err, errSubFailed) {
			t.Fatalf("Run = %v, want the subscription's error", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return")
	}
}

var errSubFailed = errors.New("subscription failed")

type failingReadySub struct{}

func (failingReadySub) Subscribe(ctx context.Context, fn func(bus.Event)) error { return errSubFailed }
func (failingReadySub) SubscribeReady(ctx context.Context, fn func(bus.Event), ready func(bool)) error {
	return errSubFailed
}
