package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/exchange/sim"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/marketdata"
)

// exchangeNode runs, until the test ends, a market data node standalone on
// the embedded memory tier (no Redis, no election) against the exchange
// at addr (host:port), and serves its HTTP API with the given stale limit.
func exchangeNode(t *testing.T, addr string, staleAfter time.Duration) *httptest.Server {
	t.Helper()
	c, err := cache.New(cache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	streams := func(names []string, onEvent func(exchange.Event), onConnect func(string)) (marketdata.Streamer, error) {
		return binance.NewStreams(binance.StreamConfig{BaseURL: "ws://" + addr, Streams: names, OnEvent: onEvent, OnConnect: onConnect,
			DialTimeout: time.Second, BackoffMax: time.Second})
	}
	rest := binance.NewREST(binance.RESTConfig{BaseURL: "http://" + addr})
	n, err := marketdata.New(marketdata.Config{Symbols: []string{"BTCUSDT"}, Intervals: []string{"1m"}, Logger: slog.New(slog.DiscardHandler)},
		keyspace.MustNew(testenv.Keys(keyspace.Config{})), c, rest, streams, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	wg.Go(func() { n.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	s := &httpapi.Server{NodeID: "n1", Cache: c, Started: time.Now(), Market: n.Reader(),
		Leader: n.Streaming, Mode: func() string { return n.Mode().String() }, Exchange: n, StaleAfter: staleAfter}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func getHealth(t *testing.T, url string) httpapi.Health {
	t.Helper()
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: status %d", res.StatusCode)
	}
	var h httpapi.Health
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHealthExchangeUnreachable: a node whose exchange (REST and streams)
// is a closed port is degraded, and says the exchange is why, once the
// stale limit has passed since it started streaming.
func TestHealthExchangeUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	srv := exchangeNode(t, dead, 300*time.Millisecond)

	var h httpapi.Health
	testenv.Eventually(t, 5*time.Second, func() bool {
		h = getHealth(t, srv.URL)
		return h.Status == "degraded"
	}, "never degraded with the exchange unreachable")
	if len(h.Reasons) == 0 || !strings.Contains(strings.Join(h.Reasons, "; "), "exchange") {
		t.Errorf("reasons %q do not mention the exchange", h.Reasons)
	}
	if h.Exchange == nil || h.Exchange.State != marketdata.StreamDown || h.Exchange.Reason == "" || h.Exchange.LastEventAgeS != nil {
		t.Errorf("exchange section %+v: want down, a reason, and no event", h.Exchange)
	}
	if !h.Leader || h.Mode != "standalone" || h.CacheTier != "memory" || h.Redis != "embedded" {
		t.Errorf("health %+v: want a standalone node on the embedded memory tier", h)
	}
}

// TestHealthExchangeConnected: against the simulated exchange the node is
// ok, its streams connected and their newest event recent.
func TestHealthExchangeConnected(t *testing.T) {
	s, err := sim.New(sim.Config{Symbols: []string{"BTCUSDT"}, History: 10})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Generous: the sim pushes the book ticker every 100 ms, but a loaded
	// 2-core machine running the race detector may pause longer than 300 ms.
	srv := exchangeNode(t, ln.Addr().String(), 5*time.Second)

	var h httpapi.Health
	testenv.Eventually(t, 10*time.Second, func() bool {
		h = getHealth(t, srv.URL)
		return h.Exchange != nil && h.Exchange.State == marketdata.StreamConnected && h.Exchange.LastEventAgeS != nil
	}, "streams never connected to the simulated exchange")
	if h.Status != "ok" || len(h.Reasons) != 0 {
		t.Errorf("status %s %q, want ok", h.Status, h.Reasons)
	}
	if age := *h.Exchange.LastEventAgeS; age < 0 || age > 2 {
		t.Errorf("last_event_age_s = %v, want a fresh event", age)
	}
	if h.Exchange.LastConnectAgeS == nil || h.Exchange.Reason != "" {
		t.Errorf("exchange section %+v", h.Exchange)
	}
}
