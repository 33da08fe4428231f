package node

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/marketdata"
	"github.com/tradecache/tradecache/notify"
	"github.com/tradecache/tradecache/streamgroups"
)

// DefaultAppPort names the event channel of every node that is not told
// otherwise ("9000:channel:1", Jesse's default APP_PORT), so the nodes of
// one deployment share one channel whatever ports they listen on.
const DefaultAppPort = keyspace.DefaultAppPort

// Exchange kinds.
const (
	ExchangeBinance = "binance" // Binance USDⓈ-M futures, or any server speaking its API
	ExchangeSim     = "sim"     // the simulated exchange, in process
)

// Config is everything a node is made of. The zero value of a group means
// its defaults; New checks the whole and names the setting at fault.
type Config struct {
	NodeID string // this node's id in heartbeats, leases and events
	// Demo runs a demo node: the simulated exchange with a demo account
	// and a generated /ws token; Redis only when Redis.URL is set.
	Demo     bool
	Redis    Redis
	Keys     Keys
	Exchange Exchange
	Market   Market
	Account  Account
	HTTP     HTTP
	Events   Events
	Notify   notify.Config

	Logger  *slog.Logger // the node's logs; nil: slog.Default()
	Stdout  io.Writer    // where the start banner goes; nil: nowhere
	Version string       // reported on /healthz and in heartbeats
}

// Redis is the tiered cache's connection to Redis/Valkey.
type Redis struct {
	URL              string        // "" = the embedded memory tier only
	Timeout          time.Duration // deadline of every Redis call
	FailureThreshold int           // consecutive failures before the memory tier
	MemoryEntries    int           // bound of the memory tier
	MemoryTTL        time.Duration // longest life of a memory-tier entry
}

// CacheConfig is the tiered cache's configuration for r; the caller adds
// the logger and hooks.
func (r Redis) CacheConfig() (cache.Config, error) {
	cc := cache.Config{
		CallTimeout:      r.Timeout,
		FailureThreshold: r.FailureThreshold,
		MemoryEntries:    r.MemoryEntries,
		MemoryTTL:        r.MemoryTTL,
	}
	if r.URL != "" {
		opt, err := cache.RedisOptions(r.URL)
		if err != nil {
			return cc, err
		}
		cc.Redis = opt
	}
	return cc, nil
}

// Keys shapes the key registry.
type Keys struct {
	Prefix   string        // prepended to every key and channel
	LeaseTTL time.Duration // leases of the market and user data stream leaders; 0 = the registry's
	// MaxValue caps every value read from Redis, in bytes, over each
	// kind's own limit; 0 = keyspace.DefaultMaxValue (1 MiB).
	MaxValue int
	// Naming is NamingStandard (the default) or NamingCluster: keys with
	// Redis Cluster hash tags (keyspace.Config.HashTags).
	Naming string
}

// Key namings.
const (
	NamingStandard = "standard"
	NamingCluster  = "cluster"
)

// Registry returns the key registry of k.
func (k Keys) Registry() (*keyspace.Registry, error) {
	ttl := map[string]time.Duration{}
	if k.LeaseTTL > 0 {
		ttl[keyspace.KindMarketWSLeader] = k.LeaseTTL
		ttl[keyspace.KindAccountLeader] = k.LeaseTTL
		ttl[keyspace.KindMarketWSGroup] = k.LeaseTTL
		// A node's heartbeat lives as long as a lease: a dead node is
		// absent by the time its leases expire.
		ttl[keyspace.KindMarketNodes] = k.LeaseTTL
	}
	switch k.Naming {
	case "", NamingStandard, NamingCluster:
	default:
		return nil, fmt.Errorf("node: key naming %q: want %s or %s", k.Naming, NamingStandard, NamingCluster)
	}
	return keyspace.New(keyspace.Config{Prefix: k.Prefix, TTL: ttl, MaxValue: k.MaxValue, HashTags: k.Naming == NamingCluster})
}

// Exchange says which exchange the node streams from, and how much REST
// weight the nodes may spend on it.
type Exchange struct {
	Kind string // ExchangeBinance (default) or ExchangeSim
	REST string // REST base URL of a Binance-compatible server; "" = Binance's
	WS   string // stream base URL; "" = Binance's
	// RESTWeightLimit is the REST request weight per minute every node
	// sharing RESTEgress may spend together (the budget, kept in Redis);
	// 0 = ratelimit.DefaultLimit (2000 of Binance's 2400).
	RESTWeightLimit int
	// RESTUserShare is the part of it read-throughs users trigger may use,
	// in (0, 1]; 0 = ratelimit.DefaultUserShare (0.5).
	RESTUserShare float64
	// RESTEgress names the identity the exchange counts weight by (the IP
	// requests leave from): nodes with the same one share one budget.
	// "" = the REST URL's host (ratelimit.EgressOf).
	RESTEgress string
}

// Market is what the node streams.
type Market struct {
	Symbols   []string // upper-case symbols
	Intervals []string // kline intervals
	Window    int      // klines kept per series in Redis; 0 = 1000
	// GroupSize is the most streams one stream group holds, 1 to 1024
	// (Binance's limit per connection); 0 = streamgroups.DefaultSize
	// (200). Streams that fit in one group are led by one node through
	// market_ws_leader; more are cut into groups g0, g1, … shared between
	// the nodes, each with its lease market_ws_leader:{group}.
	GroupSize int
}

// Account holds the exchange keys of the account whose positions and
// balances the node keeps; empty keys: no account.
type Account struct {
	APIKey    string // secret: never logged
	APISecret string // secret: never logged
	Name      string // names listen_key:{account} and account_leader:{account}; "" = "main"
}

// Which routes need an API token (HTTP.APIAuth).
const (
	// APIAuthAccount: the account routes (/api/v1/positions,
	// /api/v1/balance) and /api/v1/keys/audit. The default.
	APIAuthAccount = string(httpapi.ScopeAccount)
	// APIAuthAll: every route but /healthz, the dashboard's files at / and
	// /ws (which has its own tokens).
	APIAuthAll = string(httpapi.ScopeAll)
)

// HTTPLimits bound the HTTP server's requests and connections: timeouts,
// header and query sizes. Zero fields take the defaults (read 30 s,
// write 30 s, idle 2 min, headers 64 KiB, query 8 KiB and 32 parameters).
type HTTPLimits = httpapi.Limits

// HTTP is the node's HTTP side.
//
// Protected mode: a node whose Listen host is not loopback (0.0.0.0, ::,
// a LAN address, a name other than localhost) needs APITokens, or
// TrustNetwork to say that every host that can reach it may use it.
type HTTP struct {
	Listen string // address; "" = 127.0.0.1:8080
	// APITokens are accepted as "Authorization: Bearer <token>" on the
	// routes APIAuth guards. Without any, those routes answer without a
	// token on a loopback listener and 401 on any other.
	APITokens []string
	APIAuth   string // APIAuthAccount ("" too) or APIAuthAll
	// TrustNetwork lets a node listen beyond loopback without APITokens;
	// it then logs a warning at start.
	TrustNetwork bool
	// AllowedHosts are Host header patterns served besides IP addresses,
	// localhost and the Listen host: "name", "name:port", "*.example.com",
	// "*" (any).
	AllowedHosts []string
	// TLSCert and TLSKey are PEM files: with both, the node serves HTTPS
	// (TLS 1.2 or newer).
	TLSCert, TLSKey string
	Limits          HTTPLimits
	WSTokens        []string // tokens accepted on /ws; none (and not Demo): /ws is off
	WSOrigins       []string // Origin patterns allowed on /ws besides same-origin
	// StaleAfter: a node that streams and has had no exchange event for
	// this long reports itself degraded; 0 = 30 s.
	StaleAfter time.Duration
}

// DefaultListen is the listen address of a node that is not told another.
const DefaultListen = "127.0.0.1:8080"

// IsLoopback reports whether the listen address addr binds loopback only:
// its host is a loopback address (127.0.0.0/8, ::1) or localhost. "" (the
// default address) does; 0.0.0.0, ::, an empty host (":8080"), another
// address or another name does not.
func IsLoopback(addr string) bool {
	if addr == "" {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Events names the event channel and what the node's events carry.
type Events struct {
	AppPort string // "<AppPort>:channel:1"; "" = DefaultAppPort
	// Prefix is the mode events are named under, "<Prefix>.<name>"
	// ("live.kline"; Jesse's processes use "livetrade" or "papertrade");
	// "" = "live".
	Prefix string
	// SessionID is Jesse's session_id, carried by the node's log events;
	// "" = a random UUID made at New.
	SessionID string
}

// Check reports contradictory or missing settings; New calls it.
func (c Config) Check() error {
	var errs []error
	simulated := c.Demo || c.Exchange.Kind == ExchangeSim
	if simulated && (c.Exchange.REST != "" || c.Exchange.WS != "") {
		what := "exchange sim"
		if c.Demo {
			what = "demo"
		}
		errs = append(errs, fmt.Errorf("%s runs the simulated exchange in process, so the exchange REST/WS URLs would be ignored: drop one or the other", what))
	}
	switch c.Exchange.Kind {
	case "", ExchangeBinance, ExchangeSim:
	default:
		errs = append(errs, fmt.Errorf("exchange %q: want %s or %s", c.Exchange.Kind, ExchangeBinance, ExchangeSim))
	}
	if (c.Account.APIKey == "") != (c.Account.APISecret == "") {
		errs = append(errs, errors.New("the API key and the API secret go together"))
	}
	if c.Exchange.RESTWeightLimit < 0 {
		errs = append(errs, fmt.Errorf("REST weight limit %d: want a positive weight per minute", c.Exchange.RESTWeightLimit))
	}
	if s := c.Exchange.RESTUserShare; s < 0 || s > 1 {
		errs = append(errs, fmt.Errorf("REST user share %v: want a fraction in (0, 1]", s))
	}
	if e := c.Exchange.RESTEgress; e != "" {
		if err := keyspace.ValidPart(e); err != nil {
			errs = append(errs, fmt.Errorf("REST egress: %w", err))
		}
	}
	if len(c.Market.Symbols) == 0 || len(c.Market.Intervals) == 0 {
		errs = append(errs, errors.New("no symbols or no intervals to stream"))
	} else if c.Market.GroupSize < 0 || c.Market.GroupSize > streamgroups.MaxSize {
		errs = append(errs, fmt.Errorf("stream group size %d: want 1 to %d (Binance's streams per connection)", c.Market.GroupSize, streamgroups.MaxSize))
	} else if _, err := marketdata.StreamGroups(c.Market.Symbols, c.Market.Intervals, cmp.Or(c.Market.GroupSize, streamgroups.DefaultSize)); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.HTTP.check()...)
	return errors.Join(errs...)
}

// check reports the HTTP side's contradictions, protected mode first.
func (h HTTP) check() []error {
	var errs []error
	if !IsLoopback(h.Listen) && len(h.APITokens) == 0 && !h.TrustNetwork {
		errs = append(errs, fmt.Errorf("HTTP.Listen %s is not a loopback address and no API token is set: set HTTP.APITokens (--api-token) to require one, or HTTP.TrustNetwork (--trust-network) if every host that can reach it may use it", h.Listen))
	}
	switch h.APIAuth {
	case "", APIAuthAccount:
	case APIAuthAll:
		if len(h.APITokens) == 0 {
			errs = append(errs, errors.New("HTTP.APIAuth all (--api-auth) guards every route with an API token, and none is set (--api-token)"))
		}
	default:
		errs = append(errs, fmt.Errorf("HTTP.APIAuth %q: want %s or %s", h.APIAuth, APIAuthAccount, APIAuthAll))
	}
	for _, t := range h.APITokens {
		if t == "" {
			errs = append(errs, errors.New("HTTP.APITokens holds an empty token"))
			break
		}
	}
	if (h.TLSCert == "") != (h.TLSKey == "") {
		errs = append(errs, errors.New("the TLS certificate and key go together (--tls-cert and --tls-key): set both or neither"))
	}
	return errs
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultListen
	}
	if c.HTTP.APIAuth == "" {
		c.HTTP.APIAuth = APIAuthAccount
	}
	if c.HTTP.StaleAfter <= 0 {
		c.HTTP.StaleAfter = 30 * time.Second
	}
	if c.Events.AppPort == "" {
		c.Events.AppPort = DefaultAppPort
	}
	if c.Events.Prefix == "" {
		c.Events.Prefix = bus.DefaultMode
	}
	if c.Account.Name == "" {
		c.Account.Name = "main"
	}
	if c.Exchange.Kind == "" {
		c.Exchange.Kind = ExchangeBinance
	}
	if c.Demo {
		c.Exchange.Kind = ExchangeSim
	}
	return c
}
