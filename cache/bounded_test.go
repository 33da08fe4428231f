package cache_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
)

// smallLimit is the size limit of the "small" kind of these tests.
const smallLimit = 64

func smallKey(t *testing.T, reg *keyspace.Registry, id string) keyspace.Key {
	t.Helper()
	if _, ok := reg.Lookup("small"); !ok {
		if err := reg.Register(keyspace.Kind{Name: "small", Pattern: "small:{id}", TTL: time.Minute, MaxValue: smallLimit}); err != nil {
			t.Fatal(err)
		}
	}
	k, err := reg.Key("small", id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestGetIsBounded: Get reads a value up to its key's limit, refuses a
// longer one with an error naming the key and the size, counts it, and
// reports a key of another type.
func TestGetIsBounded(t *testing.T) {
	r := testenv.Shared(t)
	c := start(t, r, cache.Config{})
	reg := registry(t, time.Minute)
	rc := r.Client(t)
	ctx := context.Background()
	at := strings.Repeat("a", smallLimit)
	tests := []struct {
		name    string
		plant   func(name string) valkey.Completed
		want    string
		wantOK  bool
		wantErr string // a substring; "" for none
		over    bool   // an *OversizedError
	}{
		{"at the limit", func(n string) valkey.Completed { return rc.B().Set().Key(n).Value(at).Ex(time.Minute).Build() }, at, true, "", false},
		{"one byte over", func(n string) valkey.Completed { return rc.B().Set().Key(n).Value(at + "b").Ex(time.Minute).Build() }, "", false, "a value of 65 bytes, over the key's limit of 64 bytes", true},
		{"a megabyte over", func(n string) valkey.Completed {
			return rc.B().Set().Key(n).Value(strings.Repeat("x", 1<<20)).Ex(time.Minute).Build()
		}, "", false, "a value of 1048576 bytes", true},
		{"empty", func(n string) valkey.Completed { return rc.B().Set().Key(n).Value("").Ex(time.Minute).Build() }, "", true, "", false},
		{"without TTL", func(n string) valkey.Completed { return rc.B().Set().Key(n).Value("v").Build() }, "v", true, "", false},
		{"a hash", func(n string) valkey.Completed { return rc.B().Hset().Key(n).FieldValue().FieldValue("f", "v").Build() }, "", false, "WRONGTYPE", false},
		{"missing", nil, "", false, "", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := smallKey(t, reg, string(rune('a'+i)))
			if tt.plant != nil {
				if err := rc.Do(ctx, tt.plant(k.Name())).Error(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { rc.Do(ctx, rc.B().Del().Key(k.Name()).Build()) })
			}
			v, ok, err := c.Get(ctx, k)
			if string(v) != tt.want || ok != tt.wantOK {
				t.Errorf("Get = %q %v, want %q %v", v, ok, tt.want, tt.wantOK)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want %q in it", err, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), k.Name()):
				t.Errorf("err = %v, does not name the key", err)
			}
			if got := errors.Is(err, cache.ErrOversized); got != tt.over {
				t.Errorf("errors.Is(err, ErrOversized) = %v, want %v", got, tt.over)
			}
		})
	}
	bad := c.Stats().Bad
	want := map[cache.BadCount]uint64{{Kind: "small", Reason: cache.BadOversized}: 2, {Kind: "small", Reason: cache.BadWrongType}: 1}
	if diff := cmp.Diff(want, bad); diff != "" {
		t.Errorf("bad counts (-want +got):\n%s", diff)
	}
	if c.Tier() != cache.TierRedis {
		t.Error("bad content switched the tier")
	}
}

// TestOversizedValueIsNeverFetched: 32 callers Get a key holding 30 MB;
// the process allocates a small fraction of one copy of it.
func TestOversizedValueIsNeverFetched(t *testing.T) {
	r := testenv.Shared(t)
	c := start(t, r, cache.Config{})
	reg := registry(t, time.Minute)
	rc := r.Client(t)
	ctx := context.Background()
	k := smallKey(t, reg, "huge")
	if err := rc.Do(ctx, rc.B().Set().Key(k.Name()).Value(strings.Repeat("x", 30<<20)).Ex(time.Minute).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	defer rc.Do(ctx, rc.B().Del().Key(k.Name()).Build())
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 32 {
		wg.Go(func() {
			if _, _, err := c.Get(ctx, k); errors.Is(err, cache.ErrOversized) {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("32 Gets of a 30 MB value: %d refused, %.2f MB allocated", refused.Load(), float64(alloc)/(1<<20))
	if refused.Load() != 32 {
		t.Errorf("%d of 32 refused", refused.Load())
	}
	if alloc > 8<<20 {
		t.Errorf("allocated %d bytes: the value was fetched", alloc)
	}
}

func TestSetRefusesOversizedValues(t *testing.T) {
	for _, tier := range []string{"redis", "embedded"} {
		t.Run(tier, func(t *testing.T) {
			var r *testenv.Redis
			if tier == "redis" {
				r = testenv.Shared(t)
			}
			c := start(t, r, cache.Config{})
			reg := registry(t, time.Minute)
			k := smallKey(t, reg, "set")
			err := c.Set(context.Background(), k, bytes.Repeat([]byte("x"), smallLimit+1))
			if !errors.Is(err, cache.ErrOversized) || !strings.Contains(err.Error(), k.Name()) || !strings.Contains(err.Error(), "65 bytes") {
				t.Fatalf("Set over the limit = %v", err)
			}
			if _, ok, _ := c.Get(context.Background(), k); ok {
				t.Fatal("the refused value was stored")
			}
			if err := c.Set(context.Background(), k, bytes.Repeat([]byte("x"), smallLimit)); err != nil {
				t.Fatalf("Set at the limit: %v", err)
			}
		})
	}
}

// TestGetOrLoadHealsBadContent: what a read-through key holds but cannot
// be used is a miss: loaded again once, overwritten with the key's TTL,
// counted by kind and reason.
func TestGetOrLoadHealsBadContent(t *testing.T) {
	r := testenv.Shared(t)
	rc := r.Client(t)
	ctx := context.Background()
	type ticker struct {
		Symbol    string `json:"symbol"`
		LastPrice string `json:"lastPrice"`
	}
	good := ticker{"BTCUSDT", "100"}
	tests := []struct {
		name   string
		plant  func(name string) valkey.Completed
		reason string
	}{
		{"not JSON", func(n string) valkey.Completed { return rc.B().Set().Key(n).Value("<html>").Ex(time.Minute).Build() }, cache.BadUndecodable},
		{"another JSON", func(n string) valkey.Completed { return rc.B().Set().Key(n).Value(`[1,2]`).Ex(time.Minute).Build() }, cache.BadUndecodable},
		{"no TTL", func(n string) valkey.Completed {
			return rc.B().Set().Key(n).Value(`{"symbol":"BTCUSDT","lastPrice":"1"}`).Build()
		}, cache.BadNoTTL},
		{"not JSON and no TTL", func(n string) valkey.Completed { return rc.B().Set().Key(n).Value("garbage").Build() }, cache.BadNoTTL},
		{"oversized", func(n string) valkey.Completed {
			return rc.B().Set().Key(n).Value(`{"symbol":"` + strings.Repeat("X", 100) + `"}`).Ex(time.Minute).Build()
		}, cache.BadOversized},
		{"a hash", func(n string) valkey.Completed { return rc.B().Hset().Key(n).FieldValue().FieldValue("f", "v").Build() }, cache.BadWrongType},
		{"a sorted set", func(n string) valkey.Completed { return rc.B().Zadd().Key(n).ScoreMember().ScoreMember(1, "m").Build() }, cache.BadWrongType},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			var mu sync.Mutex
			c := start(t, r, cache.Config{Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs, mu: &mu}, nil))})
			reg := registry(t, time.Minute)
			k := smallKey(t, reg, string(rune('a'+i)))
			if err := rc.Do(ctx, tt.plant(k.Name())).Error(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rc.Do(ctx, rc.B().Del().Key(k.Name()).Build()) })
			var loads atomic.Int32
			load := func(context.Context) (ticker, error) { loads.Add(1); return good, nil }
			for range 3 {
				got, err := cache.GetOrLoadJSON(ctx, c, k, load)
				if err != nil || got != good {
					t.Fatalf("GetOrLoadJSON = %+v %v, want %+v", got, err, good)
				}
			}
			if n := loads.Load(); n != 1 {
				t.Errorf("loaded %d times, want once (then read back)", n)
			}
			v, err := rc.Do(ctx, rc.B().Get().Key(k.Name()).Build()).ToString()
			if err != nil || v != `{"symbol":"BTCUSDT","lastPrice":"100"}` {
				t.Errorf("Redis holds %q %v, want the loaded value", v, err)
			}
			if pttl, _ := rc.Do(ctx, rc.B().Pttl().Key(k.Name()).Build()).AsInt64(); pttl <= 50_000 || pttl > 60_000 {
				t.Errorf("PTTL %d after healing, want the key's 60 s", pttl)
			}
			if diff := cmp.Diff(map[cache.BadCount]uint64{{Kind: "small", Reason: tt.reason}: 1}, c.Stats().Bad); diff != "" {
				t.Errorf("bad counts (-want +got):\n%s", diff)
			}
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(logs.String(), "unusable value in Redis") || !strings.Contains(logs.String(), k.Name()) || !strings.Contains(logs.String(), "reason="+tt.reason) {
				t.Errorf("log does not report the key and reason:\n%s", logs.String())
			}
		})
	}
}

// TestGetValidJSONMissesBadContent: a reader that stores nothing takes
// what GetOrLoadJSON would heal for a miss, reported, and leaves it.
func TestGetValidJSONMissesBadContent(t *testing.T) {
	r := testenv.Shared(t)
	rc := r.Client(t)
	ctx := context.Background()
	type ticker struct {
		Symbol string `json:"symbol"`
	}
	c := start(t, r, cache.Config{})
	reg := registry(t, time.Minute)
	plants := map[string]valkey.Completed{}
	for name, v := range map[string]string{"json": `{"symbol":"BTCUSDT"}`, "notjson": "<html>", "another": "[1]", "oversized": `{"symbol":"` + strings.Repeat("X", 100) + `"}`} {
		k := smallKey(t, reg, name)
		plants[name] = rc.B().Set().Key(k.Name()).Value(v).Ex(time.Minute).Build()
	}
	plants["nottl"] = rc.B().Set().Key(smallKey(t, reg, "nottl").Name()).Value(`{"symbol":"BTCUSDT"}`).Build()
	plants["hash"] = rc.B().Hset().Key(smallKey(t, reg, "hash").Name()).FieldValue().FieldValue("f", "v").Build()
	for name, cmd := range plants {
		if err := rc.Do(ctx, cmd).Error(); err != nil {
			t.Fatal(err)
		}
		k := smallKey(t, reg, name)
		t.Cleanup(func() { rc.Do(ctx, rc.B().Del().Key(k.Name()).Build()) })
	}
	if v, ok, err := cache.GetValidJSON[ticker](ctx, c, smallKey(t, reg, "json")); err != nil || !ok || v.Symbol != "BTCUSDT" {
		t.Errorf("a good value: %+v %v %v", v, ok, err)
	}
	for _, name := range []string{"notjson", "another", "oversized", "nottl", "hash", "absent"} {
		if v, ok, err := cache.GetValidJSON[ticker](ctx, c, smallKey(t, reg, name)); err != nil || ok {
			t.Errorf("%s: %+v %v %v, want a miss", name, v, ok, err)
		}
	}
	if v, _ := rc.Do(ctx, rc.B().Get().Key(smallKey(t, reg, "notjson").Name()).Build()).ToString(); v != "<html>" {
		t.Errorf("the bad value was replaced by %q", v)
	}
	want := map[cache.BadCount]uint64{
		{Kind: "small", Reason: cache.BadUndecodable}: 2, {Kind: "small", Reason: cache.BadOversized}: 1,
		{Kind: "small", Reason: cache.BadNoTTL}: 1, {Kind: "small", Reason: cache.BadWrongType}: 1,
	}
	if diff := cmp.Diff(want, c.Stats().Bad); diff != "" {
		t.Errorf("bad counts (-want +got):\n%s", diff)
	}
}

// TestGetOrLoadValidRefusesABadLoad: a loaded value the check refuses is an
// error and is not stored.
func TestGetOrLoadValidRefusesABadLoad(t *testing.T) {
	r := testenv.Shared(t)
	c := start(t, r, cache.Config{})
	reg := registry(t, time.Minute)
	k := key(t, reg, "refused")
	ctx := context.Background()
	_, err := c.GetOrLoadValid(ctx, k, func(context.Context) ([]byte, error) { return []byte("nope"), nil }, cache.DecodesAs[map[string]string])
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("GetOrLoadValid of a bad load = %v", err)
	}
	if _, ok, _ := c.Get(ctx, k); ok {
		t.Fatal("a refused load was stored")
	}
	if s := c.Stats(); s.LoadErrors != 1 {
		t.Errorf("load errors %d, want 1", s.LoadErrors)
	}
}

// TestReportBadIsRateLimited: the same bad key met a hundred times within
// a minute is one log line, every one counted; the next line, a minute
// later, says how many were not logged. Another key is logged on its own.
func TestReportBadIsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		c, err := cache.New(cache.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			c.ReportBad("market:kline:BTCUSDT:1m", "kline", cache.BadWrongType, "a string")
			time.Sleep(100 * time.Millisecond)
		}
		c.ReportBad("market:kline:ETHUSDT:1m", "kline", cache.BadWrongType, "a string")
		if n := strings.Count(logs.String(), "\n"); n != 2 {
			t.Fatalf("%d lines in 10 s, want 2 (one per key):\n%s", n, logs.String())
		}
		time.Sleep(time.Minute)
		c.ReportBad("market:kline:BTCUSDT:1m", "kline", cache.BadWrongType, "a string")
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if len(lines) != 3 || !strings.Contains(lines[2], "more_since_last_report=99") {
			t.Fatalf("after a minute:\n%s", logs.String())
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c.Collector())
		want := `
# HELP tradecache_cache_invalid_total Values in Redis not used: reason=undecodable, no_ttl or wrong_type, by key kind.
# TYPE tradecache_cache_invalid_total counter
tradecache_cache_invalid_total{kind="kline",reason="wrong_type"} 102
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tradecache_cache_invalid_total"); err != nil {
			t.Error(err)
		}
	})
}
