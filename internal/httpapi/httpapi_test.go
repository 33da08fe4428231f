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
)

type fakeStatus struct {
	tier     cache.Tier
	embedded bool
}

func (f fakeStatus) Tier() cache.Tier { return f.tier }
func (f fakeStatus) Embedded() bool   { return f.embedded }
func (f fakeStatus) RedisLatency() time.Duration {
	return 0
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name   string
		status fakeStatus
		want   httpapi.Health
	}{
		{"embedded", fakeStatus{cache.TierMemory, true}, httpapi.Health{Status: "ok", CacheTier: "memory", Redis: "embedded", NodeID: "n1"}},
		{"redis up", fakeStatus{cache.TierRedis, false}, httpapi.Health{Status: "ok", CacheTier: "redis", Redis: "configured", NodeID: "n1"}},
		{"redis down", fakeStatus{cache.TierMemory, false}, httpapi.Health{Status: "degraded", CacheTier: "memory", Redis: "configured", NodeID: "n1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.New(cache.Config{})
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(c.Collector())
			s := &httpapi.Server{NodeID: "n1", Cache: tt.status, Gatherer: reg, Started: time.Now()}
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
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(httpapi.Health{}, "UptimeS")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
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
