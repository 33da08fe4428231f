package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/notify"
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
}

// Registry returns the key registry of k.
func (k Keys) Registry() (*keyspace.Registry, error) {
	ttl := map[string]time.Duration{}
	if k.LeaseTTL > 0 {
		ttl[keyspace.KindMarketWSLeader] = k.LeaseTTL
		ttl[keyspace.KindAccountLeader] = k.LeaseTTL
	}
	return keyspace.New(keyspace.Config{Prefix: k.Prefix, TTL: ttl, MaxValue: k.MaxValue})
}

// Exchange says which exchange the node streams from.
type Exchange struct {
	Kind string // ExchangeBinance (default) or ExchangeSim
	REST string // REST base URL of a Binance-compatible server; "" = Binance's
	WS   string // stream base URL; "" = Binance's
}

// Market is what the node streams.
type Market struct {
	Symbols   []string // upper-case symbols
	Intervals []string // kline intervals
	Window    int      // klines kept per series in Redis; 0 = 1000
}

// Account holds the exchange keys of the account whose positions and
// balances the node keeps; empty keys: no account.
type Account struct {
	APIKey    string // secret: never logged
	APISecret string // secret: never logged
	Name      string // names listen_key:{account} and account_leader:{account}; "" = "main"
}

// HTTP is the node's HTTP side.
type HTTP struct {
	Listen    string   // address; "" = 127.0.0.1:8080
	WSTokens  []string // tokens accepted on /ws; none (and not Demo): /ws is off
	WSOrigins []string // Origin patterns allowed on /ws besides same-origin
	// StaleAfter: a node that streams and has had no exchange event for
	// this long reports itself degraded; 0 = 30 s.
	StaleAfter time.Duration
}

// Events names the event channel.
type Events struct {
	AppPort string // "<AppPort>:channel:1"; "" = DefaultAppPort
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
	if len(c.Market.Symbols) == 0 || len(c.Market.Intervals) == 0 {
		errs = append(errs, errors.New("no symbols or no intervals to stream"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if c.HTTP.StaleAfter <= 0 {
		c.HTTP.StaleAfter = 30 * time.Second
	}
	if c.Events.AppPort == "" {
		c.Events.AppPort = DefaultAppPort
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
