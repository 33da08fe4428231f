package cacheexamples_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/tradecache/tradecache/examples/cacheexamples"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/storefeed"
)

// exampleNode serves a node's /api/v1/klines and /api/v1/ticker/24hr with
// fixed answers, in the node's (Binance's) shapes.
func exampleNode() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/klines", func(w http.ResponseWriter, r *http.Request) {
		// 72 hourly klines from 2026-01-01 00:00 UTC, closing 100, 101, …
		var rows [][]any
		for i := range 72 {
			open := int64(1_767_225_600_000) + int64(i)*3_600_000
			c := fmt.Sprint(100 + i)
			rows = append(rows, []any{open, fmt.Sprint(99 + i), fmt.Sprint(101 + i), fmt.Sprint(98 + i), c, "10", open + 3_599_999, "1000", 42, "5", "500", "0"})
		}
		var limit int
		fmt.Sscan(r.URL.Query().Get("limit"), &limit)
		json.NewEncoder(w).Encode(rows[max(0, len(rows)-limit):])
	})
	mux.HandleFunc("GET /api/v1/ticker/24hr", func(w http.ResponseWriter, r *http.Request) {
		t := map[string]exchange.Ticker24h{
			"BTCUSDT": {Symbol: "BTCUSDT", LastPrice: "97000.5", PriceChangePercent: "2.5"},
			"ETHUSDT": {Symbol: "ETHUSDT", LastPrice: "3500.25", PriceChangePercent: "-0.5"},
		}[r.URL.Query().Get("symbol")]
		json.NewEncoder(w).Encode(t)
	})
	return httptest.NewServer(mux)
}

func tempCache() (*filecache.Cache, func()) {
	dir, _ := os.MkdirTemp("", "cacheexamples-")
	c, err := filecache.Open(dir, filecache.Options{})
	if err != nil {
		panic(err)
	}
	return c, func() { c.Close(); os.RemoveAll(dir) }
}

// The RSI of a symbol, computed once, then read from the cache for an
// hour after its last read.
func ExampleCachedRSI() {
	c, done := tempCache()
	defer done()
	closes := func() ([]float64, error) { return []float64{10, 11, 10.5, 11.5, 12, 11}, nil }
	for range 2 {
		rsi, cached, err := cacheexamples.CachedRSI(c, "BTCUSDT", 3, closes)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s = %.2f (cached %v)\n", cacheexamples.RSIKey("BTCUSDT", 3), rsi, cached)
	}
	// Output:
	// BTCUSDT_RSI_3 = 50.00 (cached false)
	// BTCUSDT_RSI_3 = 50.00 (cached true)
}

// Two days of hourly candles from a node's klines API, cached for two
// hours: Jesse's columns, timestamp, open, close, high, low, volume.
func ExampleHistoricalCandles() {
	node := exampleNode()
	defer node.Close()
	client, _ := storefeed.NewClient(node.URL, "", nil, 0)
	c, done := tempCache()
	defer done()
	for range 2 {
		cs, cached, err := cacheexamples.HistoricalCandles(context.Background(), c, client, "BTCUSDT", "1h", 2)
		if err != nil {
			panic(err)
		}
		first, last := cs[0], cs[len(cs)-1]
		fmt.Printf("%s: %d candles (cached %v), %s %v … %s %v\n", cacheexamples.HistoryKey("BTCUSDT", "1h", 2), len(cs), cached,
			time.UnixMilli(int64(first[0])).UTC().Format(time.DateTime), first[1:],
			time.UnixMilli(int64(last[0])).UTC().Format(time.DateTime), last[1:])
	}
	// Output:
	// history_BTCUSDT_1h_2d: 48 candles (cached false), 2026-01-02 00:00:00 [123 124 125 122 10] … 2026-01-03 23:00:00 [170 171 172 169 10]
	// history_BTCUSDT_1h_2d: 48 candles (cached true), 2026-01-02 00:00:00 [123 124 125 122 10] … 2026-01-03 23:00:00 [170 171 172 169 10]
}

// BTC and ETH from a node's tickers, a sentiment figure (their mean 24h
// change) and the time, cached for five minutes.
func ExampleMarketOverview() {
	node := exampleNode()
	defer node.Close()
	client, _ := storefeed.NewClient(node.URL, "", nil, 0)
	c, done := tempCache()
	defer done()
	now := func() time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 500_000_000, time.UTC) }
	for range 2 {
		o, cached, err := cacheexamples.MarketOverview(context.Background(), c, client, now)
		if err != nil {
			panic(err)
		}
		b, _ := json.Marshal(o)
		fmt.Printf("%s (cached %v): %s\n", cacheexamples.OverviewKey, cached, b)
	}
	// Output:
	// market_overview (cached false): {"btc_price":97000.5,"eth_price":3500.25,"market_sentiment":1,"timestamp":1767268800.5}
	// market_overview (cached true): {"btc_price":97000.5,"eth_price":3500.25,"market_sentiment":1,"timestamp":1767268800.5}
}
