// Package httpapi serves a node's HTTP API: /healthz, /metrics, the market
// data and account paths, the event gateway and the dashboard. It reads
// state through small interfaces and owns no goroutine; HTTPServer builds
// the http.Server that package node runs.
//
// # Binance's answers
//
// The market data routes answer as Binance's USDⓈ-M futures REST API
// does, under the node's paths and under Binance's own, so that a Binance
// client given a node's base URL reads from it:
//
//	/api/v1/klines          /fapi/v1/klines             12-element arrays; limit 1..1500, default 500; startTime, endTime
//	/api/v1/ticker/24hr     /fapi/v1/ticker/24hr        one symbol's ticker, or every symbol's (an array)
//	/api/v1/bookTicker      /fapi/v1/ticker/bookTicker  {lastUpdateId,symbol,bidPrice,bidQty,askPrice,askQty,time}, or an array
//	/api/v1/symbols/{sym}   /fapi/v1/exchangeInfo       one symbol's entry; every listed symbol's
//	                        /fapi/v1/ping, /fapi/v1/time
//
// A symbol must be upper case, as Binance requires. Every error answer of
// this package is Binance's {"code":…,"msg":"…"} (the Code constants say
// which code means what; the event gateway at /ws, a handler of its own,
// refuses in plain text); a path or method no route serves is 404 with
// -5000, Binance's answer to an unknown path, the exchange's account and
// order paths included: a node is not an exchange.
//
// # Protection
//
// Every response carries X-Content-Type-Options: nosniff, X-Frame-Options:
// DENY, Referrer-Policy: no-referrer, Cross-Origin-Resource-Policy:
// same-origin and a Content-Security-Policy under which the dashboard
// loads only its own script, style sheet and data; API answers are
// Cache-Control: no-store (the dashboard's files no-cache, with ETags).
// Refusals of the protection layer, like every error answer, have a body
// in Binance's shape, {"code":…,"msg":"…"}:
//
//   - Host allow-list: a request whose Host header is neither an IP
//     address, localhost, nor matched by Server.AllowedHosts is 421
//     (code -1002), /ws included. DNS rebinding, by which a web page
//     reaches a node on loopback or a private network, needs a name the
//     attacker's DNS answers; an IP address or localhost cannot be one.
//   - Query bounds: a query string over Limits.MaxQueryBytes (8 KiB) or with
//     more than Limits.MaxQueryParams (32) parameters is 400 (code -1101),
//     before a route parses it; a request line and headers over
//     MaxHeaderBytes (64 KiB) are refused by net/http (431).
//   - API token (Server.Auth): the account routes (/api/v1/positions,
//     /api/v1/balance) and /api/v1/keys/audit always need "Authorization:
//     Bearer <token>"; with ScopeAll so does every route but /healthz, the
//     dashboard's files at / (which hold no data) and /ws (which checks its
//     own tokens). Without it, or with a wrong one, the answer is 401 with
//     WWW-Authenticate: Bearer (code -2015). With no token configured, the
//     guarded routes answer 401 unless Auth.OpenWithoutToken (a node that
//     listens on loopback only). Tokens are checked by package
//     internal/bearer, as on /ws.
//
// HTTPServer bounds each connection with Limits: 5 s to send the headers,
// 30 s for the whole request, 30 s from the end of the headers to the end
// of the response (a client that does not read is cut off; an upgraded
// /ws connection is not bound by it), 2 min idle between requests.
//
// GET /healthz always answers 200 with a Health. Its status is "degraded",
// with the reasons, while the node serves from its memory tier although
// Redis is configured, or while it holds the exchange streams (leader or
// standalone) and they have not connected within Server.StaleAfter of the
// start of streaming, have delivered no event for StaleAfter, or its
// backfills have failed for longer than that. A follower does not stream:
// the exchange's state is not its health.
// With Server.Groups it also says which stream groups the node holds (and,
// with several groups, who holds each and which nodes are live); a group
// elsewhere is not this node's health either.
package httpapi

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
)

// CacheStatus is what health needs of the tiered cache (*cache.Cache).
type CacheStatus interface {
	Tier() cache.Tier
	Embedded() bool
	RedisLatency() time.Duration
	LastError() string // cause of the last Redis failure; "" for none
}

// StreamReporter is what health needs of the market data node
// (*marketdata.Node).
type StreamReporter interface {
	StreamStatus(staleAfter time.Duration) exchange.StreamStatus
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
	// Exchange reports the exchange streams' state for /healthz; nil: no
	// exchange section, and the exchange never degrades the status.
	Exchange StreamReporter
	// Groups reports the stream groups for /healthz; nil: no section.
	Groups func() *GroupsHealth
	// StaleAfter is how long a node that streams may go without an event
	// from the exchange, or without a connection since it started
	// streaming, before it is degraded (default exchange.DefaultStaleAfter,
	// 30 s).
	StaleAfter time.Duration
	// Auth says which routes need an API token and which tokens are
	// accepted. The zero value: the account routes and the audit answer
	// 401, the others need no token.
	Auth Auth
	// AllowedHosts are the Host header patterns served besides IP
	// addresses and localhost: "name" (any port), "name:port",
	// "*.example.com" (its subdomains), "*" (any host).
	AllowedHosts []string
	// Limits bound requests (query size here; timeouts and header size in
	// HTTPServer).
	Limits Limits
}

// Health is the body of GET /healthz.
type Health struct {
	Status     string   `json:"status"`                     // ok | degraded
	Reasons    []string `json:"reasons,omitempty"`          // why degraded
	CacheTier  string   `json:"cache_tier"`                 // redis | memory
	Redis      string   `json:"redis"`                      // configured | embedded
	RedisMS    float64  `json:"redis_latency_ms,omitempty"` // last health PING round trip
	RedisError string   `json:"redis_error,omitempty"`      // cause of the last Redis failure (WRONGPASS…, connection refused)
	Leader     bool     `json:"leader"`
	Mode       string   `json:"mode,omitempty"` // leader | follower | standalone
	NodeID     string   `json:"node_id"`
	UptimeS    float64  `json:"uptime_s"`
	Version    string   `json:"version"`
	// Exchange is the state of the exchange streams; nil when the server
	// has no Exchange.
	Exchange *ExchangeHealth `json:"exchange,omitempty"`
	// Groups says which stream groups this node holds; nil when the
	// server has no Groups.
	Groups *GroupsHealth `json:"stream_groups,omitempty"`
}

// GroupsHealth is the stream groups section of Health: the market streams
// are cut into Total groups (g0, g1, …), each held by one node.
type GroupsHealth struct {
	Total int      `json:"total"`
	Held  []string `json:"held"` // the groups this node streams now
	// Holders is group → node holding its lease, as this node last read
	// the leases (a free group is absent); Live the nodes sharing the
	// groups, from their heartbeats. Both only with several groups.
	Holders map[string]string `json:"holders,omitempty"`
	Live    []string          `json:"live_nodes,omitempty"`
}

// ExchangeHealth is the exchange section of Health.
type ExchangeHealth struct {
	// State is connected | connecting | down on the node that streams,
	// not_streaming on the others (exchange.StreamConnected…).
	State string `json:"state"`
	// LastEventAgeS is the age of the newest event received from the
	// exchange streams, LastConnectAgeS of their last (re)connection, in
	// seconds; absent when none yet, and on a node that does not stream.
	LastEventAgeS   *float64 `json:"last_event_age_s,omitempty"`
	LastConnectAgeS *float64 `json:"last_connect_age_s,omitempty"`
	// BackfillError is a failure of the last backfill round while rounds
	// are failing.
	BackfillError string `json:"backfill_error,omitempty"`
	// Reason says why the exchange degrades the node; empty when it does
	// not.
	Reason string `json:"reason,omitempty"`
}

// Handler returns the node's HTTP routes behind the protection layer: the
// security headers, the Host allow-list and the query bounds apply to
// every route (/ws included), the API token to the guarded ones.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.Handle("GET /metrics", s.guard(false, promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{})))
	mux.Handle("/", s.fallback(s.dashboard())) // the dashboard (Web, or the embedded build); Binance's -5000 for the rest
	s.marketRoutes(mux)
	s.accountRoutes(mux)
	s.auditRoutes(mux)
	if s.WS != nil {
		mux.Handle("GET /ws", s.WS) // its own tokens (--ws-token)
	}
	return secure(hostCheck(newHosts(s.AllowedHosts), bounded(s.Limits.WithDefaults(), mux)))
}

// fallback serves what no other route does: the dashboard's files to GET
// and HEAD outside /api/ and /fapi/; Binance's 404 {"code":-5000,"msg":
// "Path …, Method … is invalid"} to anything else (an unknown path, or a
// known one with another method).
func (s *Server) fallback(dashboard http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/fapi/") {
			invalidPath(w, r)
			return
		}
		dashboard.ServeHTTP(w, r)
	})
}

// Health reports the node's state. A node whose Redis is configured but
// unreachable is "degraded": it still serves from its memory tier. So is a
// node that streams while the exchange is down (see the package comment).
func (s *Server) Health() Health {
	h := Health{
		Status:     "ok",
		CacheTier:  s.Cache.Tier().String(),
		Redis:      "configured",
		RedisError: s.Cache.LastError(),
		NodeID:     s.NodeID,
		UptimeS:    time.Since(s.Started).Seconds(),
		Version:    s.Version,
	}
	if s.Cache.Embedded() {
		h.Redis = "embedded"
	} else if s.Cache.Tier() != cache.TierRedis {
		reason := "redis not in use: serving from the memory tier"
		if h.RedisError != "" {
			reason += ": " + h.RedisError
		}
		h.degrade(reason)
	} else {
		h.RedisMS = float64(s.Cache.RedisLatency().Microseconds()) / 1000
	}
	if s.Leader != nil {
		h.Leader = s.Leader()
	}
	if s.Mode != nil {
		h.Mode = s.Mode()
	}
	if s.Exchange != nil {
		st := s.Exchange.StreamStatus(s.StaleAfter)
		h.Exchange = &ExchangeHealth{State: st.State, BackfillError: st.BackfillError, Reason: st.Reason}
		if st.State != exchange.StreamNotStreaming {
			h.Exchange.LastEventAgeS = ageS(st.LastEvent)
			h.Exchange.LastConnectAgeS = ageS(st.LastConnect)
		}
		if st.Reason != "" {
			h.degrade(st.Reason)
		}
	}
	if s.Groups != nil {
		h.Groups = s.Groups()
		if h.Groups != nil && h.Groups.Held == nil {
			h.Groups.Held = []string{}
		}
	}
	return h
}

func (h *Health) degrade(reason string) {
	h.Status = "degraded"
	h.Reasons = append(h.Reasons, reason)
}

// ageS is the age of t in seconds, to the millisecond; nil for the zero time.
func ageS(t time.Time) *float64 {
	if t.IsZero() {
		return nil
	}
	s := float64(time.Since(t).Milliseconds()) / 1000
	return &s
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
