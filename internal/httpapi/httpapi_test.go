package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/marketdata"
)

type fakeStatus struct {
	tier     cache.Tier
	embedded bool
	lastErr  string
}

func (f fakeStatus) Tier() cache.Tier { return f.tier }
func (f fakeStatus) Embedded() bool   { return f.embedded }
func (f fakeStatus) RedisLatency() time.Duration {
	return 0
}
func (f fakeStatus) LastError() string { return f.lastErr }

// fakeStream reports a fixed StreamStatus and the stale limit it was asked
// with.
type fakeStream struct {
	st    marketdata.StreamStatus
	stale *time.Duration
}

func (f fakeStream) StreamStatus(staleAfter time.Duration) marketdata.StreamStatus {
	*f.stale = staleAfter
	return f.st
}

func TestHealth(t *testing.T) {
	now := time.Now()
	age := func(s float64) *float64 { return &s }
	down := marketdata.StreamStatus{State: marketdata.StreamDown, Since: now.Add(-time.Minute), LastConnect: now.Add(-50 * time.Second), LastEvent: now.Add(-40 * time.Second),
		Reason: "no event from the exchange streams for 40s"}
	tests := []struct {
		name       string
		status     fakeStatus
		stream     *marketdata.StreamStatus // nil: no Exchange
		staleAfter time.Duration
		want       httpapi.Health
	}{
		{"embedded", fakeStatus{cache.TierMemory, true, ""}, nil, 0, httpapi.Health{Status: "ok", CacheTier: "memory", Redis: "embedded", NodeID: "n1"}},
		{"redis up", fakeStatus{cache.TierRedis, false, ""}, nil, 0, httpapi.Health{Status: "ok", CacheTier: "redis", Redis: "configured", NodeID: "n1"}},
		{"redis down", fakeStatus{cache.TierMemory, false, ""}, nil, 0, httpapi.Health{Status: "degraded", CacheTier: "memory", Redis: "configured", NodeID: "n1",
			Reasons: []string{"redis not in use: serving from the memory tier"}}},
		{"redis refuses", fakeStatus{cache.TierMemory, false, "WRONGPASS invalid username-password pair or user is disabled."}, nil, 0,
			httpapi.Health{Status: "degraded", CacheTier: "memory", Redis: "configured", NodeID: "n1",
				RedisError: "WRONGPASS invalid username-password pair or user is disabled.",
				Reasons:    []string{"redis not in use: serving from the memory tier: WRONGPASS invalid username-password pair or user is disabled."}}},
		{"permission error on redis", fakeStatus{cache.TierRedis, false, "NOPERM this user has no permissions to run the 'set' command"}, nil, 0,
			httpapi.Health{Status: "ok", CacheTier: "redis", Redis: "configured", NodeID: "n1", RedisError: "NOPERM this user has no permissions to run the 'set' command"}},
		{"exchange connected", fakeStatus{cache.TierRedis, false, ""},
			&marketdata.StreamStatus{State: marketdata.StreamConnected, Connected: true, Since: now.Add(-time.Minute), LastConnect: now.Add(-50 * time.Second), LastEvent: now.Add(-200 * time.Millisecond)}, 0,
			httpapi.Health{Status: "ok", CacheTier: "redis", Redis: "configured", NodeID: "n1",
				Exchange: &httpapi.ExchangeHealth{State: "connected", LastEventAgeS: age(0.2), LastConnectAgeS: age(50)}}},
		{"exchange connecting", fakeStatus{cache.TierRedis, false, ""}, &marketdata.StreamStatus{State: marketdata.StreamConnecting, Since: now}, 0,
			httpapi.Health{Status: "ok", CacheTier: "redis", Redis: "configured", NodeID: "n1", Exchange: &httpapi.ExchangeHealth{State: "connecting"}}},
		{"exchange down", fakeStatus{cache.TierRedis, false, ""}, &down, 10 * time.Second,
			httpapi.Health{Status: "degraded", CacheTier: "redis", Redis: "configured", NodeID: "n1", Reasons: []string{down.Reason},
				Exchange: &httpapi.ExchangeHealth{State: "down", LastEventAgeS: age(40), LastConnectAgeS: age(50), Reason: down.Reason}}},
		{"exchange and redis down", fakeStatus{cache.TierMemory, false, "dial tcp 127.0.0.1:6379: connect: connection refused"}, &down, 0,
			httpapi.Health{Status: "degraded", CacheTier: "memory", Redis: "configured", NodeID: "n1", RedisError: "dial tcp 127.0.0.1:6379: connect: connection refused",
				Reasons:  []string{"redis not in use: serving from the memory tier: dial tcp 127.0.0.1:6379: connect: connection refused", down.Reason},
				Exchange: &httpapi.ExchangeHealth{State: "down", LastEventAgeS: age(40), LastConnectAgeS: age(50), Reason: down.Reason}}},
		{"follower", fakeStatus{cache.TierRedis, false, ""}, &marketdata.StreamStatus{State: marketdata.StreamNotStreaming, LastEvent: now.Add(-time.Hour)}, 0,
			httpapi.Health{Status: "ok", CacheTier: "redis", Redis: "configured", NodeID: "n1", Exchange: &httpapi.ExchangeHealth{State: "not_streaming"}}},
		{"backfill failing", fakeStatus{cache.TierRedis, false, ""},
			&marketdata.StreamStatus{State: marketdata.StreamConnected, Connected: true, Since: now.Add(-time.Minute), LastConnect: now.Add(-time.Minute), LastEvent: now,
				BackfillError: "BTCUSDT 1m: binance: 418", BackfillFailingSince: now.Add(-time.Minute), Reason: "backfill failing for 1m0s: BTCUSDT 1m: binance: 418"}, 0,
			httpapi.Health{Status: "degraded", CacheTier: "redis", Redis: "configured", NodeID: "n1", Reasons: []string{"backfill failing for 1m0s: BTCUSDT 1m: binance: 418"},
				Exchange: &httpapi.ExchangeHealth{State: "connected", LastEventAgeS: age(0), LastConnectAgeS: age(60), BackfillError: "BTCUSDT 1m: binance: 418",
					Reason: "backfill failing for 1m0s: BTCUSDT 1m: binance: 418"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.New(cache.Config{})
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(c.Collector())
			s := &httpapi.Server{NodeID: "n1", Cache: tt.status, Gatherer: reg, Started: time.Now(), StaleAfter: tt.staleAfter}
			var asked time.Duration
			if tt.stream != nil {
				s.Exchange = fakeStream{*tt.stream, &asked}
			}
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			res, err := http.Get(srv.URL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var got httpapi.Health
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusOK {
				t.Errorf("status %d, want 200 whatever the health", res.StatusCode)
			}
			// Ages are measured when the request is served: to 0.5 s.
			approx := cmpopts.EquateApprox(0, 0.5)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(httpapi.Health{}, "UptimeS"), approx); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tt.stream != nil && asked != tt.staleAfter {
				t.Errorf("StreamStatus asked with stale limit %v, want the server's %v", asked, tt.staleAfter)
			}
			res, err = http.Get(srv.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if !strings.Contains(string(body), `tradecache_cache_tier{tier="memory"} 1`) {
				t.Errorf("/metrics lacks the cache tier:\n%s", body)
			}
		})
	}
}
