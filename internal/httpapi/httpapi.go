// Package httpapi serves a node's HTTP API: /healthz, /metrics and, as the
// other parts land, the market data, account and dashboard paths of
// DESIGN.md. It reads state through small interfaces and owns no goroutine;
// cmd/tradecache runs the http.Server.
package httpapi

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tradecache/tradecache/cache"
)

// CacheStatus is what health needs of the tiered cache.
type CacheStatus interface {
	Tier() cache.Tier
	Embedded() bool
	RedisLatency() time.Duration
}

// Server holds what the handlers read.
type Server struct {
	NodeID   string
	Cache    CacheStatus
	Leader   func() bool   // nil: not leading
	Mode     func() string // market data role (leader, follower, standalone); nil: none
	Gatherer prometheus.Gatherer
	Started  time.Time
	Version  string
	Market   MarketReader  // nil: no market data routes
	WS       http.Handler  // the event gateway at GET /ws; nil: none
	Audit    Auditor       // GET /api/v1/keys/audit; nil without Redis
	Account  AccountReader // nil: the account routes answer 404 with how to configure one
	Web      fs.FS         // the dashboard served at / (index.html and what it loads); nil: the build embedded in the binary (package web)
}

// Health is the body of GET /healthz.
type Health struct {
	Status    string  `json:"status"`                     // ok | degraded
	CacheTier string  `json:"cache_tier"`                 // redis | memory
	Redis     string  `json:"redis"`                      // configured | embedded
	RedisMS   float64 `json:"redis_latency_ms,omitempty"` // last health PING round trip
	Leader    bool    `json:"leader"`
	Mode      string  `json:"mode,omitempty"` // leader | follower | standalone
	NodeID    string  `json:"node_id"`
	UptimeS   float64 `json:"uptime_s"`
	Version   string  `json:"version"`
}

// Handler returns the node's HTTP routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	mux.Handle("GET /", s.dashboard()) // the dashboard (Web, or the embedded build)
	s.marketRoutes(mux)
	s.accountRoutes(mux)
	s.auditRoutes(mux)
	if s.WS != nil {
		mux.Handle("GET /ws", s.WS)
	}
	return mux
}

// Health reports the node's state. A node whose Redis is configured but
// unreachable is "degraded": it still serves from its memory tier.
func (s *Server) Health() Health {
	h := Health{
		Status:    "ok",
		CacheTier: s.Cache.Tier().String(),
		Redis:     "configured",
		NodeID:    s.NodeID,
		UptimeS:   time.Since(s.Started).Seconds(),
		Version:   s.Version,
	}
	if s.Cache.Embedded() {
		h.Redis = "embedded"
	} else if s.Cache.Tier() != cache.TierRedis {
		h.Status = "degraded"
	} else {
		h.RedisMS = float64(s.Cache.RedisLatency().Microseconds()) / 1000
	}
	if s.Leader != nil {
		h.Leader = s.Leader()
	}
	if s.Mode != nil {
		h.Mode = s.Mode()
	}
	return h
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.Health())
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	h := s.Health()
	b, _ := json.MarshalIndent(h, "", "  ")
	w.Write([]byte(`<!doctype html><meta charset="utf-8"><title>tradecache</title>
<h1>tradecache node</h1><pre id="h">` + string(b) + `</pre>
<p><a href="/healthz">/healthz</a> · <a href="/metrics">/metrics</a></p>`))
}
