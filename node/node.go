package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tradecache/tradecache/account"
	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/eventlog"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/internal/gateway"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/marketdata"
	"github.com/tradecache/tradecache/notify"
)

// eventBus is what serve needs of a bus: publish (sync and without
// blocking), subscribe, run, metrics.
type eventBus interface {
	bus.Publisher
	bus.Subscriber
	PublishAsync(name string, data any) error
	Run(ctx context.Context) error
	Collector() prometheus.Collector
}

// localBus adapts bus.Local (which never blocks) to eventBus.
type localBus struct{ *bus.Local }

func (l localBus) PublishAsync(name string, data any) error {
	return l.Publish(context.Background(), name, data)
}
func (localBus) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// serve runs a node until ctx ends: the tiered cache, market data (elected
// or standalone), the event bus with logs as events, notifications, the
// WebSocket gateway and the HTTP API. Shutdown is graceful: HTTP gets 10 s,
// the leader releases its lease, and the cache closes last.
func serve(ctx context.Context, c config.Config, stdout, stderr io.Writer, getenv func(string) string) error {
	base := newLogger(c, stderr)
	reg, err := c.Keyspace()
	if err != nil {
		return err
	}
	channel, err := reg.Channel(c.AppPort)
	if err != nil {
		return err
	}
	ncfg, err := notify.FromEnv(getenv)
	if err != nil {
		return fmt.Errorf("%w: serve: notifications: %w", errUsage, err)
	}
	tokens := c.WSTokens
	if len(tokens) == 0 && c.Demo {
		t, err := gateway.GenerateToken()
		if err != nil {
			return err
		}
		tokens = []string{t}
	}

	cc, err := c.CacheConfig()
	if err != nil {
		return err
	}
	// The cache's tier changes become events once the bus exists; the hook
	// is set before the cache runs and reads the bus through a variable
	// assigned before Run starts.
	var events eventBus
	cc.OnTierChange = func(from, to cache.Tier, reason string) {
		if events != nil {
			events.PublishAsync("cache_tier", map[string]string{"node_id": c.NodeID, "from": from.String(), "to": to.String(), "reason": reason})
		}
	}
	cc.Logger = base
	tc, err := cache.New(cc)
	if err != nil {
		return err
	}
	if c.RedisURL != "" {
		rb, err := bus.NewRedis(tc, bus.RedisConfig{Channel: channel, Mode: "live", Publisher: c.NodeID, Logger: base})
		if err != nil {
			return err
		}
		events = rb
	} else {
		events = localBus{bus.NewLocal(bus.LocalConfig{Mode: "live", Publisher: c.NodeID})}
	}
	logs := eventlog.New(base.Handler(), events, eventlog.Config{NodeID: c.NodeID})
	log := slog.New(logs)
	tc.SetLogger(log)

	ex, err := newExchange(c, log)
	if err != nil {
		return err
	}
	var elector *leader.Elector
	if c.RedisURL != "" {
		lease := reg.MarketWSLeader()
		epoch, err := reg.LeaderEpoch(lease)
		if err != nil {
			return err
		}
		if elector, err = leader.New(tc, leader.Config{Lease: lease, Epoch: epoch, NodeID: c.NodeID, Logger: log}); err != nil {
			return err
		}
	}
	md, err := marketdata.New(marketdata.Config{Symbols: c.Symbols, Intervals: c.Intervals, Window: c.Window, Logger: log, Events: events},
		reg, tc, ex.rest, ex.streams, elector)
	if err != nil {
		return err
	}
	var acct *account.Node
	if ex.user != nil {
		var el *leader.Elector
		if c.RedisURL != "" {
			lease, err := reg.AccountLeader(c.Account)
			if err != nil {
				return err
			}
			epoch, err := reg.LeaderEpoch(lease)
			if err != nil {
				return err
			}
			if el, err = leader.New(tc, leader.Config{Lease: lease, Epoch: epoch, NodeID: c.NodeID, Logger: log}); err != nil {
				return err
			}
		}
		if acct, err = account.New(account.Config{Account: c.Account, Events: events, Logger: log}, reg, tc, ex.rest, ex.user, el); err != nil {
			return err
		}
	}
	notifier, err := notify.New(ncfg, notify.WithLogger(log))
	if err != nil {
		return fmt.Errorf("%w: serve: notifications: %w", errUsage, err)
	}
	var gw *gateway.Gateway
	if len(tokens) > 0 {
		if gw, err = gateway.New(events, gateway.Config{Tokens: tokens, Origins: c.WSOrigins, Logger: log}); err != nil {
			return fmt.Errorf("%w: serve: /ws: %w", errUsage, err)
		}
	}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		tc.Collector(), md.Collector(), ex.metrics, events.Collector(), logs.Collector(), notifier.Collector(),
	)
	api := &httpapi.Server{NodeID: c.NodeID, Cache: tc, Gatherer: metrics, Started: time.Now(), Version: buildVersion(),
		Market: md.Reader(), Leader: md.Streaming, Mode: func() string { return md.Mode().String() }}
	if gw != nil {
		metrics.MustRegister(gw.Collector())
		api.WS = gw
	}
	if acct != nil {
		api.Account = acct
	}
	if c.RedisURL != "" {
		api.Audit = newAuditor(tc, reg)
	}

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("serve: listen on %s (set --listen or TRADECACHE_LISTEN): %w", c.Listen, err)
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}

	redisDesc := "embedded memory tier (no Redis)"
	if c.RedisURL != "" {
		redisDesc = "Redis " + cache.Redact(c.RedisURL)
	}
	fmt.Fprintf(stdout, "tradecache %s: node %s on http://%s (health /healthz, metrics /metrics), %s, %s; streaming %v × %v; events on %s\n",
		buildVersion(), c.NodeID, ln.Addr(), redisDesc, ex.desc, c.Symbols, c.Intervals, channel)
	switch {
	case gw == nil:
		fmt.Fprintln(stdout, "/ws is off: set --ws-token (TRADECACHE_WS_TOKEN) to relay events")
	case len(c.WSTokens) == 0:
		fmt.Fprintf(stdout, "/ws token (generated for this run): %s\n", tokens[0])
	}
	if c.Demo {
		fmt.Fprintln(stdout, "demo mode: no Redis, no internet and no API keys needed")
	}

	// The cache outlives everything that uses it: on shutdown the leader
	// releases its lease through the cache's client, so the cache's Run is
	// stopped only after the rest has returned.
	cctx, stopCache := context.WithCancel(context.WithoutCancel(ctx))
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- tc.Run(cctx) }()
	defer func() { stopCache(); <-cacheDone }()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return events.Run(gctx) })
	g.Go(func() error { return logs.Run(gctx) })
	g.Go(func() error { return md.Run(gctx) })
	if acct != nil {
		g.Go(func() error { return acct.Run(gctx) })
	}
	if ex.run != nil {
		g.Go(func() error { return ex.run(gctx) })
	}
	if ncfg.Enabled() {
		g.Go(func() error { return notifier.Run(gctx) })
		g.Go(func() error { return notifier.Forward(gctx, events, nil) })
	}
	if gw != nil {
		g.Go(func() error { return gw.Run(gctx) })
	}
	g.Go(func() error {
		// A heartbeat lets every node (and the dashboard) see the others.
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			events.PublishAsync("heartbeat", api.Health())
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("serve: shutdown: %w", err)
		}
		return nil
	})
	err = g.Wait()
	base.Info("node stopped", "node_id", c.NodeID)
	return err
}
