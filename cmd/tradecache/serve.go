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
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		tc.Collector(),
	)
	api := &httpapi.Server{NodeID: c.NodeID, Cache: tc, Gatherer: reg, Started: time.Now(), Version: buildVersion()}

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("serve: listen on %s (set --listen or TRADECACHE_LISTEN): %w", c.Listen, err)
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}

	redisDesc := "embedded memory tier (no Redis)"
	if c.RedisURL != "" {
		redisDesc = "Redis " + cache.Redact(c.RedisURL)
	}
	fmt.Fprintf(stdout, "tradecache %s: node %s on http://%s (health /healthz, metrics /metrics), %s\n",
		buildVersion(), c.NodeID, ln.Addr(), redisDesc)
	if c.Demo {
		fmt.Fprintln(stdout, "demo mode: no Redis, no internet and no API keys needed")
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return tc.Run(gctx) })
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
