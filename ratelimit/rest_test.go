package ratelimit_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/ratelimit"
)

// These tests run real binance.REST clients, each with its own Budget as
// a node would have, against the simulated exchange, which counts what
// reaches it.

func startSim(t *testing.T) (*sim.Server, string) {
	t.Helper()
	s, err := sim.New(sim.Config{Symbols: []string{"BTCUSDT"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func client(t *testing.T, url string, b *ratelimit.Budget) *binance.REST {
	t.Helper()
	return binance.NewREST(binance.RESTConfig{BaseURL: url, Budget: b, Timeout: 5 * time.Second})
}

// hammer calls klines (weight 1) from workers goroutines per client at
// priority p for d, and returns how many calls were sent and refused.
func hammer(t *testing.T, clients []*binance.REST, workers int, p ratelimit.Priority, d time.Duration) (sent, refused int64) {
	t.Helper()
	var ns, nr atomic.Int64
	ctx := ratelimit.WithPriority(context.Background(), p)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for _, c := range clients {
		for range workers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					_, err := c.Klines(ctx, "BTCUSDT", "1m", 0, 0, 10)
					var ae *binance.APIError
					switch {
					case err == nil:
						ns.Add(1)
					case errors.As(err, &ae) && ae.NotSent && errors.Is(err, binance.ErrRateLimited):
						nr.Add(1)
						time.Sleep(5 * time.Millisecond)
					default:
						t.Errorf("klines: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	return ns.Load(), nr.Load()
}

// Two nodes' clients sharing one Redis never send more than the limit in
// a minute together, under a load that would, and user requests stay
// within their share.
func TestTwoNodesNeverExceedTheLimit(t *testing.T) {
	r := testenv.Shared(t)
	cl := r.Client(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	s, url := startSim(t)
	const limit = 60
	a, b := newBudget(t, reg, cl, limit, nil), newBudget(t, reg, cl, limit, nil)
	clients := []*binance.REST{client(t, url, a), client(t, url, b)}
	awayFromMinuteEdge(t, 15*time.Second)

	sent, refused := hammer(t, clients, 4, ratelimit.User, 1500*time.Millisecond)
	t.Logf("user load: %d sent, %d refused", sent, refused)
	if sent != limit/2 || refused == 0 {
		t.Errorf("user load: %d sent, %d refused; want exactly the user half, %d, sent", sent, refused, limit/2)
	}
	sent2, refused := hammer(t, clients, 4, ratelimit.System, 1500*time.Millisecond)
	t.Logf("system load: %d sent, %d refused", sent2, refused)
	if sent+sent2 != limit || refused == 0 {
		t.Errorf("then system load: %d sent, %d refused; want %d in all", sent2, refused, limit)
	}
	st := s.RESTStats()
	minute := time.Now().Unix() / 60
	if st.WeightByMinute[minute] != limit || st.RateLimited != 0 || len(st.WeightByMinute) != 1 {
		t.Errorf("the exchange saw %v weight by minute (want %d this minute), %d refused", st.WeightByMinute, limit, st.RateLimited)
	}
	if a.Used() != limit || b.Used() != limit {
		t.Errorf("budgets know %d and %d used, want %d", a.Used(), b.Used(), limit)
	}
}

// A 429 (or a 418) one client meets puts every client sharing the budget
// in cooldown: none sends until the Retry-After has passed.
func TestA429CoolsDownEveryNode(t *testing.T) {
	for _, status := range []int{429, 418} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			r := testenv.Shared(t)
			cl := r.Client(t)
			reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
			s, url := startSim(t)
			var log logBuf
			a, b := newBudget(t, reg, cl, 1000, &log), newBudget(t, reg, cl, 1000, &log)
			ca, cb := client(t, url, a), client(t, url, b)
			ctx := ratelimit.WithPriority(context.Background(), ratelimit.System)
			if err := s.SetRESTRefusal(sim.RESTRefusal{Status: status, RetryAfter: 2 * time.Second}); err != nil {
				t.Fatal(err)
			}
			_, err := ca.Ticker24h(ctx, "BTCUSDT")
			var ae *binance.APIError
			if !errors.As(err, &ae) || ae.HTTPStatus != status || ae.NotSent {
				t.Fatalf("the refused request: %v", err)
			}
			s.SetRESTRefusal(sim.RESTRefusal{}) // the exchange would answer again: the clients must not ask
			before := s.RESTStats().Requests
			for name, c := range map[string]*binance.REST{"a": ca, "b": cb} {
				_, err := c.Klines(ctx, "BTCUSDT", "1m", 0, 0, 10)
				if !errors.As(err, &ae) || !ae.NotSent || ae.HTTPStatus != status || !errors.Is(err, binance.ErrRateLimited) ||
					time.Until(ae.RetryAt) > 2*time.Second || time.Until(ae.RetryAt) < time.Second {
					t.Errorf("client %s during the cooldown: %v", name, err)
				}
			}
			if n := s.RESTStats().Requests - before; n != 0 {
				t.Errorf("%d requests sent during the cooldown", n)
			}
			if n := strings.Count(log.String(), "cooldown ends"); n != 1 || !strings.Contains(log.String(), "status="+strconv.Itoa(status)) {
				t.Errorf("%d cooldown log lines, want 1:\n%s", n, log.String())
			}
			time.Sleep(2100 * time.Millisecond)
			for name, c := range map[string]*binance.REST{"a": ca, "b": cb} {
				if _, err := c.Klines(ctx, "BTCUSDT", "1m", 0, 0, 10); err != nil {
					t.Errorf("client %s after the cooldown: %v", name, err)
				}
			}
		})
	}
}

// With Redis down each node's budget, in memory, still holds its limit;
// two nodes behind one IP see each other through the exchange's
// X-MBX-USED-WEIGHT-1M, so together they pass it by no more than the
// requests in flight.
func TestRedisDownPerNodeBudgetStillLimits(t *testing.T) {
	r := testenv.Start(t)
	cl := r.Client(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	const limit, workers = 60, 4
	t.Run("one node", func(t *testing.T) {
		s, url := startSim(t)
		a := newBudget(t, reg, cl, limit, &logBuf{})
		awayFromMinuteEdge(t, 15*time.Second)
		r.Stop(t)
		sent, refused := hammer(t, []*binance.REST{client(t, url, a)}, workers, ratelimit.System, 1500*time.Millisecond)
		t.Logf("one node, Redis down: %d sent, %d refused", sent, refused)
		if sent != limit || refused == 0 || a.Shared() {
			t.Errorf("%d sent, %d refused, shared %v; want %d sent, in memory", sent, refused, a.Shared(), limit)
		}
		if st := s.RESTStats(); st.WeightByMinute[time.Now().Unix()/60] != limit {
			t.Errorf("the exchange saw %v", st.WeightByMinute)
		}
	})
	t.Run("two nodes", func(t *testing.T) {
		s, url := startSim(t)
		a, b := newBudget(t, reg, cl, limit, &logBuf{}), newBudget(t, reg, cl, limit, &logBuf{})
		awayFromMinuteEdge(t, 15*time.Second)
		r.Stop(t)
		sent, refused := hammer(t, []*binance.REST{client(t, url, a), client(t, url, b)}, workers, ratelimit.System, 1500*time.Millisecond)
		t.Logf("two nodes, Redis down: %d sent, %d refused", sent, refused)
		if sent > limit+2*workers || refused == 0 || a.Shared() || b.Shared() {
			t.Errorf("%d sent, %d refused; want at most %d (alone, each would send %d)", sent, refused, limit+2*workers, limit)
		}
		if st := s.RESTStats(); st.RateLimited != 0 {
			t.Errorf("the exchange refused %d", st.RateLimited)
		}
	})
}
