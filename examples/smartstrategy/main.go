// Command smartstrategy is Jesse's SmartStrategy example, as the example
// writes it, against a tradecache node:
//
//	class SmartStrategy(Strategy):
//	    complex_indicator: cache.get_value(f"{symbol}_complex_indicator"),
//	        else (ta.sma(candles, 10) / ta.sma(candles, 30) - 1) * 100
//	        + ta.rsi(candles, 14), cache.set_value(..., expire_seconds=1800)
//	    should_long: sync_publish('strategy_analysis', {'symbol',
//	        'indicator_value', 'signal': 'bullish' if > 50 else 'bearish'});
//	        return indicator > 50 and self.position.qty == 0
//
// Its candles and position come from a store.Store kept live from the node
// by a storefeed.Feeder (klines over HTTP, then /ws events; higher
// timeframes derived from 1m by the Store), the indicator from the file
// cache, and the analysis goes to the node's event channel:
//
//	go run ./cmd/tradecache serve --demo          # prints a /ws token
//	go run ./examples/smartstrategy --token <token> --decisions 3
//
// It makes a decision at start and at each closed candle of its
// timeframe. With REDIS_URL (or Jesse's REDIS_HOST, REDIS_PORT,
// REDIS_PASSWORD, REDIS_DB) it publishes on the channel every node of the
// deployment uses, <APP_PORT>:channel:1 with APP_PORT from the environment
// (9000 by default), so each node's /ws relays it as
// <mode>.strategy_analysis; without Redis, on an in-process bus.
//
// Where it departs from Jesse: with fewer than 30 candles there is no
// decision (Jesse's SMA would be NaN, which JSON cannot carry).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/store"
	"github.com/tradecache/tradecache/storefeed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "smartstrategy:", err)
		os.Exit(1)
	}
}

type options struct {
	node, token, apiToken, redis, mode, symbol, timeframe, cacheDir string
	decisions                                                       int
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("smartstrategy", flag.ContinueOnError)
	fs.StringVar(&o.node, "node", cmp.Or(getenv("TRADECACHE_NODE"), "http://127.0.0.1:8080"), "the node's base URL (TRADECACHE_NODE)")
	fs.StringVar(&o.token, "token", getenv("TRADECACHE_WS_TOKEN"), "the node's /ws token (TRADECACHE_WS_TOKEN)")
	fs.StringVar(&o.apiToken, "api-token", getenv("TRADECACHE_API_TOKEN"), "the node's API token, when its routes require one (TRADECACHE_API_TOKEN)")
	fs.StringVar(&o.redis, "redis", getenv("REDIS_URL"), "Redis of the event channel (REDIS_URL, or REDIS_HOST…; empty: an in-process bus)")
	fs.StringVar(&o.mode, "mode", bus.DefaultMode, `prefix of the event name: <mode>.strategy_analysis (Jesse: "livetrade", "papertrade")`)
	fs.StringVar(&o.symbol, "symbol", "BTCUSDT", "symbol")
	fs.StringVar(&o.timeframe, "timeframe", "1m", "timeframe of the strategy's candles (above 1m: derived from 1m)")
	fs.StringVar(&o.cacheDir, "cache-dir", filepath.Join(os.TempDir(), "tradecache-smartstrategy"), "file cache directory")
	fs.IntVar(&o.decisions, "decisions", 1, "decisions to make, one at start and one per closed candle; 0: until interrupted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.token == "" {
		return errors.New("--token (or TRADECACHE_WS_TOKEN) is required: the node's /ws token")
	}
	tf, err := store.TimeframeDuration(o.timeframe)
	if err != nil {
		return err
	}
	fc, err := filecache.Open(o.cacheDir, filecache.Options{})
	if err != nil {
		return err
	}
	defer fc.Close()
	events, closeBus, err := publisher(ctx, o, getenv)
	if err != nil {
		return err
	}
	defer closeBus()

	st := store.New(store.Config{})
	closed := make(chan struct{}, 1)
	cfg := storefeed.Config{Node: o.node, WSToken: o.token, APIToken: o.apiToken, Symbols: []string{o.symbol},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnClosed: func(symbol, interval string, openTime int64) {
			// A candle of the strategy's timeframe closes with its last minute.
			if (openTime+time.Minute.Milliseconds())%tf.Milliseconds() == 0 {
				select {
				case closed <- struct{}{}:
				default:
				}
			}
		}}
	if o.timeframe != "1m" {
		cfg.Generate = []string{o.timeframe}
	}
	feed, err := storefeed.New(st, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	fed := make(chan error, 1)
	go func() { fed <- feed.Run(ctx) }()
	feedDone := false
	defer func() {
		cancel()
		if !feedDone {
			<-fed
		}
	}()
	select {
	case <-feed.Ready():
	case err := <-fed:
		feedDone = true
		return fmt.Errorf("store feed: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}

	s := &SmartStrategy{Exchange: storefeed.DefaultExchange, Symbol: o.symbol, Timeframe: o.timeframe, Store: st, Cache: fc, Events: events}
	for n := 0; o.decisions == 0 || n < o.decisions; n++ {
		if n > 0 {
			select {
			case <-closed:
			case err := <-fed:
				feedDone = true
				return fmt.Errorf("store feed: %w", err)
			case <-ctx.Done():
				return nil
			}
		}
		if err := decide(ctx, s, o.mode, stdout); err != nil {
			return err
		}
	}
	return nil
}

// decide runs should_long once and prints the outcome.
func decide(ctx context.Context, s *SmartStrategy, mode string, w io.Writer) error {
	long, err := s.ShouldLong(ctx)
	if err != nil && !errors.Is(err, ErrNotPublished) {
		return err
	}
	v, _, _ := s.ComplexIndicator() // cached by ShouldLong
	pos, _ := s.Store.Position(s.Exchange, s.Symbol)
	c, _ := s.Store.CurrentCandle(s.Exchange, s.Symbol, s.Timeframe)
	published := mode + ".strategy_analysis"
	if err != nil {
		published = "not published: " + err.Error()
	}
	fmt.Fprintf(w, "%s %s candle %s close %.2f: indicator %.4f, position %g → should_long %v (%s)\n",
		s.Symbol, s.Timeframe, time.UnixMilli(int64(c[store.ColTimestamp])).UTC().Format(time.DateTime), c[store.ColClose], v, pos.Qty, long, published)
	return nil
}

// publisher returns the bus strategy_analysis goes to: Redis pub/sub on
// the deployment's channel (<APP_PORT>:channel:1, APP_PORT from the
// environment, 9000 by default) when Redis is configured, else an
// in-process bus.
func publisher(ctx context.Context, o options, getenv func(string) string) (bus.Publisher, func(), error) {
	redisURL := o.redis
	if redisURL == "" && getenv("REDIS_HOST") != "" {
		u, err := cache.JesseURL(getenv("REDIS_HOST"), getenv("REDIS_PORT"), getenv("REDIS_PASSWORD"), getenv("REDIS_DB"))
		if err != nil {
			return nil, nil, err
		}
		redisURL = u
	}
	if redisURL == "" {
		return bus.NewLocal(bus.LocalConfig{Mode: o.mode, Publisher: "smartstrategy"}), func() {}, nil
	}
	opt, err := cache.RedisOptions(redisURL)
	if err != nil {
		return nil, nil, err
	}
	c, err := cache.New(cache.Config{Redis: opt, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, nil, err
	}
	ch, err := keyspace.MustNew(keyspace.Config{}).Channel(cmp.Or(getenv("APP_PORT"), keyspace.DefaultAppPort))
	if err != nil {
		return nil, nil, err
	}
	rb, err := bus.NewRedis(c, bus.RedisConfig{Channel: ch, Mode: o.mode, Publisher: "smartstrategy"})
	if err != nil {
		return nil, nil, err
	}
	if err := c.Connect(ctx); err != nil {
		return nil, nil, err
	}
	// The cache's Run reconnects after an outage; it closes the client
	// when its context ends.
	cctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		c.Run(cctx)
		close(done)
	}()
	return rb, func() { stop(); <-done }, nil
}
