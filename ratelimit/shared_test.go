package ratelimit_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/ratelimit"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newBudget(t *testing.T, reg *keyspace.Registry, cl valkey.Client, limit int, log *logBuf) *ratelimit.Budget {
	t.Helper()
	cfg := ratelimit.Config{Egress: "egress-1", Limit: limit, Keys: reg, CallTimeout: time.Second}
	if cl != nil {
		cfg.Redis = func() valkey.Client { return cl }
	}
	if log != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	b, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// awayFromMinuteEdge waits, if need be, until at least d is left of the
// current minute, so that a test's window does not roll over under it.
func awayFromMinuteEdge(t *testing.T, d time.Duration) {
	t.Helper()
	if left := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)); left < d {
		time.Sleep(left + 100*time.Millisecond)
	}
}

func refusal(err error) *ratelimit.Refusal {
	var r *ratelimit.Refusal
	errors.As(err, &r)
	return r
}

var (
	user = context.Background()
	sys  = ratelimit.WithPriority(context.Background(), ratelimit.System)
)

// Two nodes' budgets on one Redis count in one window: what one spends,
// the other cannot, and the user share is the deployment's, not a node's.
func TestSharedWindow(t *testing.T) {
	r := testenv.Shared(t)
	cl := r.Client(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	a, b := newBudget(t, reg, cl, 20, nil), newBudget(t, reg, cl, 20, nil)
	awayFromMinuteEdge(t, 5*time.Second)
	for range 5 {
		if _, err := a.Acquire(user, 2); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.Acquire(user, 1)
	if rf := refusal(err); rf == nil || rf.Reason != ratelimit.ReasonBudget || rf.Used != 10 || rf.Ceiling != 10 || rf.Priority != ratelimit.User {
		t.Fatalf("user request past the deployment's user half: %v", err)
	}
	for range 10 {
		if _, err := b.Acquire(sys, 1); err != nil {
			t.Fatalf("system request within the limit: %v", err)
		}
	}
	if _, err := a.Acquire(sys, 1); refusal(err) == nil {
		t.Fatalf("system request past the limit: %v", err)
	}
	if a.Used() != 20 || b.Used() != 20 || !a.Shared() {
		t.Errorf("Used: a %d, b %d, want 20; shared %v", a.Used(), b.Used(), a.Shared())
	}
	key, _ := reg.RESTWeight("egress-1")
	h, err := cl.Do(context.Background(), cl.B().Hgetall().Key(key.Name()).Build()).AsStrMap()
	if err != nil || h["used"] != "20" || h["window"] != strconv.FormatInt(time.Now().Unix()/60, 10) {
		t.Errorf("%s = %v, %v", key, h, err)
	}
	if ttl, _ := cl.Do(context.Background(), cl.B().Pttl().Key(key.Name()).Build()).AsInt64(); ttl <= 0 || ttl > 120_000 {
		t.Errorf("%s PTTL = %d", key, ttl)
	}
}

// The exchange's header raises the shared count for every node; an answer
// of the previous minute does not.
func TestSharedObserve(t *testing.T) {
	r := testenv.Shared(t)
	cl := r.Client(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	a, b := newBudget(t, reg, cl, 20, nil), newBudget(t, reg, cl, 20, nil)
	awayFromMinuteEdge(t, 5*time.Second)
	w, err := a.Acquire(user, 1)
	if err != nil {
		t.Fatal(err)
	}
	a.Observe(user, w-1, 19) // a past window's answer: ignored
	if _, err := b.Acquire(user, 1); err != nil {
		t.Fatalf("after a stale header: %v", err)
	}
	a.Observe(user, w, 15)
	_, err = b.Acquire(user, 1)
	if rf := refusal(err); rf == nil || rf.Used != 15 {
		t.Fatalf("after the header said 15: %v", err)
	}
	if _, err := b.Acquire(sys, 5); err != nil || b.Used() != 20 {
		t.Fatalf("system: %v, used %d", err, b.Used())
	}
}

// A cooldown one node meets is every node's: each refuses until it ends.
// It is logged once, by the node that started it.
func TestSharedCooldown(t *testing.T) {
	r := testenv.Shared(t)
	cl := r.Client(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	var log logBuf
	a, b := newBudget(t, reg, cl, 100, &log), newBudget(t, reg, cl, 100, &log)
	a.Cooldown(user, 418, 2*time.Second)
	b.Cooldown(user, 418, 2*time.Second) // the same refusal met by another node
	for _, bud := range []*ratelimit.Budget{a, b} {
		_, err := bud.Acquire(sys, 0)
		if rf := refusal(err); rf == nil || rf.Reason != ratelimit.ReasonCooldown || rf.HTTPStatus() != 418 || time.Until(rf.RetryAt()) > 2*time.Second || time.Until(rf.RetryAt()) < time.Second {
			t.Errorf("during the cooldown: %v", err)
		}
	}
	if n := strings.Count(log.String(), "cooldown ends"); n != 1 {
		t.Errorf("%d cooldown log lines, want 1:\n%s", n, log.String())
	}
	key, _ := reg.RESTCooldown("egress-1")
	if ttl, _ := cl.Do(context.Background(), cl.B().Pttl().Key(key.Name()).Build()).AsInt64(); ttl <= 0 || ttl > 2000 {
		t.Errorf("%s PTTL = %d", key, ttl)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := b.Acquire(user, 1); err != nil {
		t.Errorf("after the cooldown: %v", err)
	}
}

// While Redis is down each node decides alone, with the same rules; what
// it spent alone reaches the shared count when Redis is back.
func TestFallbackToMemory(t *testing.T) {
	r := testenv.Start(t)
	cl := r.Client(t)
	reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
	var log logBuf
	a := newBudget(t, reg, cl, 20, &log)
	awayFromMinuteEdge(t, 20*time.Second)
	if _, err := a.Acquire(user, 4); err != nil || !a.Shared() {
		t.Fatalf("with Redis: %v, shared %v", err, a.Shared())
	}
	r.Stop(t)
	granted := 0
	for range 20 {
		if _, err := a.Acquire(user, 1); err == nil {
			granted++
		} else if refusal(err) == nil {
			t.Fatalf("with Redis down: %v", err)
		}
	}
	if granted != 6 || a.Shared() || a.Used() != 10 {
		t.Errorf("with Redis down: %d granted (want 6: 4 known + 6 = the user half of 20), shared %v, used %d", granted, a.Shared(), a.Used())
	}
	if n := strings.Count(log.String(), "deciding in this node's memory"); n != 1 {
		t.Errorf("%d Redis failure log lines, want 1:\n%s", n, log.String())
	}
	r.Restart(t)
	testenv.Eventually(t, 10*time.Second, func() bool { _, err := a.Acquire(sys, 1); return err == nil && a.Shared() }, "the budget never used Redis again")
	b := newBudget(t, reg, cl, 20, nil)
	_, err := b.Acquire(user, 1)
	if rf := refusal(err); rf == nil || rf.Used != 11 {
		t.Errorf("another node after the outage: %v (want the 11 spent, 10 of them while Redis was down)", err)
	}
}

// A cooldown this node met while its Redis calls failed (or whose write
// to Redis failed) holds once Redis answers: the shared path refuses
// during it, and its next call starts it in Redis, so every node refuses
// too. Binance lengthens the bans of whoever sends during a 418.
func TestCooldownKnownHereHoldsOnRedis(t *testing.T) {
	check := func(t *testing.T, who string, err error, max time.Duration) {
		t.Helper()
		rf := refusal(err)
		if rf == nil || rf.Reason != ratelimit.ReasonCooldown || rf.HTTPStatus() != 418 || time.Until(rf.RetryAt()) > max || time.Until(rf.RetryAt()) < max-3*time.Second {
			t.Errorf("%s during the 418 cooldown: %v", who, err)
		}
	}
	cooldownTTL := func(t *testing.T, cl valkey.Client, reg *keyspace.Registry) int64 {
		key, _ := reg.RESTCooldown("egress-1")
		ttl, _ := cl.Do(context.Background(), cl.B().Pttl().Key(key.Name()).Build()).AsInt64()
		return ttl
	}
	t.Run("Redis unreachable", func(t *testing.T) {
		r := testenv.Shared(t)
		cl := r.Client(t)
		reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
		var up atomic.Bool
		a, err := ratelimit.New(ratelimit.Config{Egress: "egress-1", Limit: 100, Keys: reg, CallTimeout: time.Second,
			Redis: func() valkey.Client {
				if up.Load() {
					return cl
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		b := newBudget(t, reg, cl, 100, nil)
		a.Cooldown(sys, 418, 5*time.Second) // known to a alone
		up.Store(true)
		_, err = a.Acquire(sys, 1)
		check(t, "a, Redis back", err, 5*time.Second)
		if !a.Shared() {
			t.Error("a did not decide on Redis")
		}
		if ttl := cooldownTTL(t, cl, reg); ttl <= 3000 || ttl > 5000 {
			t.Errorf("rest_cooldown PTTL %d after a's call, want a's cooldown", ttl)
		}
		_, err = b.Acquire(sys, 0)
		check(t, "b", err, 5*time.Second)
	})
	t.Run("Redis down", func(t *testing.T) {
		r := testenv.Start(t)
		cl := r.Client(t)
		reg := keyspace.MustNew(testenv.Keys(keyspace.Config{Prefix: testenv.Prefix(t)}))
		a := newBudget(t, reg, cl, 100, &logBuf{})
		if _, err := a.Acquire(sys, 1); err != nil {
			t.Fatal(err)
		}
		r.Stop(t)
		a.Cooldown(sys, 418, 10*time.Second) // its write to Redis fails
		r.Restart(t)
		var err error
		testenv.Eventually(t, 5*time.Second, func() bool {
			_, err = a.Acquire(sys, 1)
			return a.Shared()
		}, "the budget never used Redis again")
		check(t, "a, Redis back", err, 10*time.Second)
		if ttl := cooldownTTL(t, cl, reg); ttl <= 3000 || ttl > 10000 {
			t.Errorf("rest_cooldown PTTL %d after a's call, want a's cooldown", ttl)
		}
		b := newBudget(t, reg, cl, 100, nil)
		// The client may still be reconnecting after the restart: a call
		// that fails decides in memory, so ask until b decides on Redis.
		testenv.Eventually(t, 5*time.Second, func() bool {
			_, err = b.Acquire(user, 1)
			return b.Shared()
		}, "b never used Redis")
		check(t, "b", err, 10*time.Second)
	})
}
