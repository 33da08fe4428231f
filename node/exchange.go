package node

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"

	"github.com/valkey-io/valkey-go"

	"github.com/tradecache/tradecache/account"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/marketdata"
	"github.com/tradecache/tradecache/ratelimit"
)

// exchangeSide is what serve needs of an exchange: REST, a stream factory
// and, for the in-process simulator, a lifecycle to run.
type exchangeSide struct {
	rest    *binance.REST
	budget  *ratelimit.Budget // the REST weight budget every REST call asks
	sim     *sim.Server       // the in-process simulator; nil for a remote exchange
	streams marketdata.StreamFactory
	// user is the user data stream factory; nil without API keys.
	user account.StreamFactory
	run  func(ctx context.Context) error // nil for a remote exchange
	// close releases what newExchange opened (the simulator's listener)
	// when the node is not run after all; nil when nothing was opened.
	close   func()
	desc    string
	metrics *streamMetrics
}

type streamerFunc func(ctx context.Context) error

func (f streamerFunc) Run(ctx context.Context) error { return f(ctx) }

// userStreamer runs a user data stream with its counters in /metrics; it
// keeps Reconnect, which the account calls after a keepalive refused.
type userStreamer struct {
	us *binance.UserStream
	m  *streamMetrics
}

func (u userStreamer) Run(ctx context.Context) error { return u.m.runUser(ctx, u.us) }
func (u userStreamer) Reconnect()                    { u.us.Reconnect() }

// newExchange connects to Binance (or any server speaking its API at
// --exchange-rest / --exchange-ws), or starts the simulated exchange in
// process on a loopback port for --demo and --exchange sim. Its REST
// client asks a weight budget shared through redis (the cache's client
// while it is on the Redis tier).
func newExchange(c Config, log *slog.Logger, reg *keyspace.Registry, redis func() valkey.Client) (*exchangeSide, error) {
	restURL, wsURL := c.Exchange.REST, c.Exchange.WS
	side := &exchangeSide{desc: "Binance USDⓈ-M futures", metrics: newStreamMetrics()}
	apiKey, apiSecret := c.Account.APIKey, c.Account.APISecret
	if c.Exchange.Kind == ExchangeSim {
		scfg := sim.Config{Symbols: c.Market.Symbols}
		if apiKey == "" {
			// The demo account: keys made up for this run, 10,000 USDT.
			apiKey, apiSecret = randomHex(16), randomHex(32)
		}
		scfg.Accounts = []sim.Account{{APIKey: apiKey, APISecret: apiSecret, Balances: map[string]string{"USDT": "10000"}}}
		s, err := sim.New(scfg)
		if err != nil {
			return nil, fmt.Errorf("simulated exchange: %w", err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("simulated exchange: %w", err)
		}
		restURL, wsURL = "http://"+ln.Addr().String(), "ws://"+ln.Addr().String()
		side.desc = "simulated exchange on " + restURL
		side.sim = s
		side.run = func(ctx context.Context) error { return s.Serve(ctx, ln) } // Serve drives the market too
		side.close = func() { ln.Close() }
	} else if restURL != "" {
		side.desc = "exchange at " + restURL
	}
	egress := c.Exchange.RESTEgress
	if egress == "" {
		egress = ratelimit.EgressOf(cmp.Or(restURL, binance.DefaultRESTURL))
	}
	b, err := ratelimit.New(ratelimit.Config{Egress: egress, Limit: c.Exchange.RESTWeightLimit, UserShare: c.Exchange.RESTUserShare,
		Keys: reg, Redis: redis, Logger: log.With("component", "rest")})
	if err != nil {
		return nil, fmt.Errorf("REST weight budget: %w", err)
	}
	side.budget = b
	side.rest = binance.NewREST(binance.RESTConfig{BaseURL: restURL, APIKey: apiKey, APISecret: apiSecret, Budget: b})
	if apiKey != "" {
		side.user = func(listenKey func(context.Context) (string, error), onEvent func(exchange.UserEvent), onConnect func(), onExpired func(string)) (account.UserStreamer, error) {
			us, err := binance.NewUserStream(binance.UserStreamConfig{
				BaseURL: wsURL, ListenKey: listenKey, OnEvent: onEvent, OnConnect: onConnect, OnExpired: onExpired,
				Logger: log.With("component", "user-stream"),
			})
			if err != nil {
				return nil, err
			}
			return userStreamer{us: us, m: side.metrics}, nil
		}
	}
	side.streams = func(names []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
		s, err := binance.NewStreams(binance.StreamConfig{
			BaseURL: wsURL, Streams: names, OnEvent: onEvent, OnConnect: onConnect,
			Logger: log.With("component", "streams"),
		})
		if err != nil {
			return nil, err
		}
		return streamerFunc(func(ctx context.Context) error { return side.metrics.run(ctx, s) }), nil
	}
	return side, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
