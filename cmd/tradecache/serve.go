package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/leader"
	"github.com/tradecache/tradecache/marketdata"
)

// serve runs a node until ctx ends: the tiered cache's connect/probe loop
// and the HTTP API. It shuts the HTTP server down gracefully (10 s) and
// closes the Redis client on the way out.
func serve(ctx context.Context, c config.Config, stdout, stderr io.Writer) error {
	log := newLogger(c, stderr)
	cc, err := c.CacheConfig()
	if err != nil {
		return err
	}
	cc.Logger = log
	tc, err := cache.New(cc)
	if err != nil {
		return err
	}
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		tc.Collector(),
	)
	reg, err := c.Keyspace()
	if err != nil {
		return err
	}
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
	md, err := marketdata.New(marketdata.Config{Symbols: c.Symbols, Intervals: c.Intervals, Window: c.Window, Logger: log}, reg, tc, ex.rest, ex.streams, elector)
	if err != nil {
		return err
	}
	reg2.MustRegister(md.Collector(), ex.metrics)
	api := &httpapi.Server{NodeID: c.NodeID, Cache: tc, Gatherer: reg2, Started: time.Now(), Version: buildVersion(),
		Market: md.Reader(), Leader: md.Streaming, Mode: func() string { return md.Mode().String() }}

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("serve: listen on %s (set --listen or TRADECACHE_LISTEN): %w", c.Listen, err)
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}

	redisDesc := "embedded memory tier (no Redis)"
	if c.RedisURL != "" {
		redisDesc = "Redis " + cache.Redact(c.RedisURL)
	}
	fmt.Fprintf(stdout, "tradecache %s: node %s on http://%s (health /healthz, metrics /metrics), %s, %s; streaming %v × %v\n",
		buildVersion(), c.NodeID, ln.Addr(), redisDesc, ex.desc, c.Symbols, c.Intervals)
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
	g.Go(func() error { return md.Run(gctx) })
	if ex.run != nil {
		g.Go(func() error { return ex.run(gctx) })
	}
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
	log.Info("node stopped", "node_id", c.NodeID)
	return err
}
