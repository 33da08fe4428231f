package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/keyspace"
)

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

func newLocal(t *testing.T, limit int, log *logBuf) *Budget {
	t.Helper()
	cfg := Config{Egress: "test", Limit: limit, Keys: keyspace.MustNew(keyspace.Config{})}
	if log != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func refusal(err error) *Refusal {
	var r *Refusal
	errors.As(err, &r)
	return r
}

// Without Redis the budget is a fixed window aligned to the minute: User
// requests get half of it, System requests all of it, and the count starts
// again at the minute.
func TestLocalWindowAndPriorities(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(10 * time.Second) // 00:00:10 of the bubble's clock
		b := newLocal(t, 10, nil)
		user := context.Background()
		sys := WithPriority(user, System)
		var got []string
		try := func(ctx context.Context, w int) {
			_, err := b.Acquire(ctx, w)
			switch r := refusal(err); {
			case err == nil:
				got = append(got, "ok")
			case r != nil:
				got = append(got, r.Reason)
			default:
				t.Fatal(err)
			}
		}
		try(user, 3)
		try(user, 2)
		try(user, 1) // 6 > 5: the user half is spent
		try(sys, 4)
		try(sys, 2) // 11 > 10
		try(sys, 1)
		try(user, 0)
		want := []string{"ok", "ok", "budget", "ok", "budget", "ok", "ok"}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("decisions (-want +got):\n%s", d)
		}
		_, err := b.Acquire(sys, 1)
		r := refusal(err)
		if r == nil || !r.Until.Equal(time.Now().Truncate(time.Minute).Add(time.Minute)) || r.Used != 10 || r.Ceiling != 10 || r.Status != 429 {
			t.Errorf("refusal = %+v", r)
		}
		if b.Used() != 10 {
			t.Errorf("Used = %d, want 10", b.Used())
		}
		time.Sleep(50 * time.Second) // the next minute
		if b.Used() != 0 {
			t.Errorf("Used in a new minute = %d", b.Used())
		}
		if _, err := b.Acquire(user, 5); err != nil {
			t.Errorf("new minute: %v", err)
		}
	})
}

// The exchange's count raises the budget's in the same window; an answer
// of a past window does not.
func TestLocalObserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newLocal(t, 100, nil)
		ctx := context.Background()
		w, err := b.Acquire(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		b.Observe(ctx, w, 45)
		b.Observe(ctx, w, 30) // lower: kept at 45
		if b.Used() != 45 {
			t.Errorf("Used = %d, want 45", b.Used())
		}
		if _, err := b.Acquire(ctx, 6); refusal(err) == nil {
			t.Errorf("45 + 6 > 50 granted to a user request: %v", err)
		}
		time.Sleep(time.Minute)
		w2, err := b.Acquire(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		b.Observe(ctx, w, 99) // the previous minute's answer
		if b.Used() != 1 || w2 != w+1 {
			t.Errorf("Used = %d (window %d → %d), want 1", b.Used(), w, w2)
		}
	})
}

// A 429/418 refuses every request, of every priority and weight, until
// its Retry-After has passed; it is logged once however often it is
// reported.
func TestLocalCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log logBuf
		b := newLocal(t, 100, &log)
		ctx := WithPriority(context.Background(), System)
		b.Cooldown(ctx, 418, 30*time.Second)
		time.Sleep(10 * time.Second)
		b.Cooldown(ctx, 429, 20*time.Second) // same end: not a new cooldown
		for _, w := range []int{0, 1, 40} {
			_, err := b.Acquire(ctx, w)
			if r := refusal(err); r == nil || r.Reason != ReasonCooldown || r.Status != 418 || !r.Until.Equal(time.Now().Add(20*time.Second)) {
				t.Errorf("weight %d during cooldown: %v", w, err)
			}
		}
		if !b.CooldownUntil().Equal(time.Now().Add(20 * time.Second)) {
			t.Errorf("CooldownUntil = %v", b.CooldownUntil())
		}
		time.Sleep(20 * time.Second)
		if _, err := b.Acquire(ctx, 1); err != nil {
			t.Errorf("after the cooldown: %v", err)
		}
		if n := strings.Count(log.String(), "cooldown ends"); n != 1 {
			t.Errorf("%d cooldown log lines, want 1:\n%s", n, log.String())
		}
		if b.st.cooldowns[1].Load() != 1 || b.st.refused[1][System].Load() != 3 {
			t.Errorf("cooldowns %d, refused %d", b.st.cooldowns[1].Load(), b.st.refused[1][System].Load())
		}
	})
}

func TestEgressOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://fapi.binance.com":  "fapi.binance.com",
		"http://127.0.0.1:9090":     "127.0.0.1_9090",
		"http://[::1]:9090/x":       "___1__9090",
		"":                          "default",
		"fapi.binance.com":          "fapi.binance.com",
		"https://user@host.example": "host.example",
	} {
		if got := EgressOf(in); got != want {
			t.Errorf("EgressOf(%q) = %q, want %q", in, got, want)
		}
		if err := keyspace.ValidPart(EgressOf(in)); err != nil {
			t.Errorf("EgressOf(%q): %v", in, err)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	reg := keyspace.MustNew(keyspace.Config{})
	for _, c := range []Config{
		{Egress: "a:b", Keys: reg},
		{Egress: "", Keys: reg},
		{Egress: "x", Keys: reg, Limit: -1},
		{Egress: "x", Keys: reg, UserShare: 1.5},
		{Egress: "x"},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}
