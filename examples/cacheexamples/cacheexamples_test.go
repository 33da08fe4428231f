package cacheexamples_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/examples/cacheexamples"
	"github.com/tradecache/tradecache/examples/ta"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/node"
	"github.com/tradecache/tradecache/storefeed"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Each example keeps its value for its expiry after the last read, then
// computes it again: the node (or the closes) is asked once per expiry.
func TestExpiries(t *testing.T) {
	var asked atomic.Int64
	inner := exampleNode()
	defer inner.Close()
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Redirect(w, r, inner.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer node.Close()
	client, err := storefeed.NewClient(node.URL, "", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name   string
		key    string
		expire time.Duration
		get    func(c *filecache.Cache, now func() time.Time) (cached bool, err error)
	}{
		{"rsi", "ETHUSDT_RSI_14", cacheexamples.RSIExpire, func(c *filecache.Cache, _ func() time.Time) (bool, error) {
			_, cached, err := cacheexamples.CachedRSI(c, "ETHUSDT", 14, func() ([]float64, error) {
				asked.Add(1)
				cs, _, err := cacheexamples.HistoricalCandles(ctx, c, client, "ETHUSDT", "1h", 1)
				closes := make([]float64, len(cs))
				for i, k := range cs {
					closes[i] = k[2]
				}
				return closes, err
			})
			return cached, err
		}},
		{"history", "history_BTCUSDT_1h_3d", cacheexamples.HistoryExpire, func(c *filecache.Cache, _ func() time.Time) (bool, error) {
			_, cached, err := cacheexamples.HistoricalCandles(ctx, c, client, "BTCUSDT", "1h", 3)
			return cached, err
		}},
		{"overview", "market_overview", cacheexamples.OverviewExpire, func(c *filecache.Cache, now func() time.Time) (bool, error) {
			_, cached, err := cacheexamples.MarketOverview(ctx, c, client, now)
			return cached, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			c, err := filecache.Open(t.TempDir(), filecache.Options{Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			type step struct {
				Cached bool
				Asked  bool
			}
			var got []step
			call := func() {
				before := asked.Load()
				cached, err := tt.get(c, clock)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, step{cached, asked.Load() > before})
			}
			call()
			if _, ok, _ := c.Get(tt.key); !ok {
				t.Errorf("nothing under %s", tt.key)
			}
			advance(tt.expire - time.Second)
			call()
			advance(tt.expire - time.Second) // renewed by the read
			call()
			advance(tt.expire + time.Second)
			call()
			want := []step{{false, true}, {true, false}, {true, false}, {false, true}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("reads over time (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	c, err := filecache.Open(t.TempDir(), filecache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	down, _ := storefeed.NewClient("http://127.0.0.1:1", "", nil, time.Second)
	ctx := context.Background()
	if _, _, err := cacheexamples.HistoricalCandles(ctx, c, down, "BTCUSDT", "1h", 1); err == nil {
		t.Error("history from a node that is down")
	}
	if _, _, err := cacheexamples.MarketOverview(ctx, c, down, time.Now); err == nil {
		t.Error("overview from a node that is down")
	}
	if _, _, err := cacheexamples.CachedRSI(c, "BTCUSDT", 14, func() ([]float64, error) { return []float64{1, 2}, nil }); err == nil {
		t.Error("RSI 14 of two closes")
	}
	if s, err := c.Inspect(ctx); err != nil || s.Entries != 0 {
		t.Errorf("entries after failures: %+v %v", s, err)
	}
}

// Against a real node (a demo node in process: simulated exchange, memory
// tier): the history is the node's klines, contiguous; the overview holds
// the node's BTC and ETH prices.
func TestAgainstADemoNode(t *testing.T) {
	var banner syncBuf
	n, err := node.New(node.Config{NodeID: "examples", Demo: true, Stdout: &banner,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		HTTP:   node.HTTP{Listen: "127.0.0.1:0"},
		Market: node.Market{Symbols: []string{"BTCUSDT", "ETHUSDT"}, Intervals: []string{"1h"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()
	addr := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)`)
	var m []string
	testenv.Eventually(t, 10*time.Second, func() bool { m = addr.FindStringSubmatch(banner.String()); return m != nil }, "no address")
	client, err := storefeed.NewClient(m[1], "", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		ks, err := client.Klines(ctx, "BTCUSDT", "1h", 100)
		return err == nil && len(ks) == 100
	}, "the node serves no klines")

	c, err := filecache.Open(t.TempDir(), filecache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cs, cached, err := cacheexamples.HistoricalCandles(ctx, c, client, "BTCUSDT", "1h", 2)
	if err != nil || cached || len(cs) != 48 {
		t.Fatalf("history: %d candles, cached %v, %v", len(cs), cached, err)
	}
	for i := 1; i < len(cs); i++ {
		if cs[i][0]-cs[i-1][0] != 3_600_000 {
			t.Fatalf("history jumps from %v to %v", cs[i-1][0], cs[i][0])
		}
	}
	ks, err := client.Klines(ctx, "BTCUSDT", "1h", 48)
	if err != nil {
		t.Fatal(err)
	}
	if ks[0].OpenTime == int64(cs[0][0]) { // the hour did not turn meanwhile
		if open, _ := strconv.ParseFloat(ks[0].Open, 64); cs[0][1] != open {
			t.Errorf("first candle's open %v, node's %s", cs[0][1], ks[0].Open)
		}
	}
	closes := make([]float64, len(cs))
	for i, k := range cs {
		closes[i] = k[2]
	}
	rsi, _, err := cacheexamples.CachedRSI(c, "BTCUSDT", 14, func() ([]float64, error) { return closes, nil })
	if want, _ := ta.RSI(closes, 14); err != nil || rsi != want || rsi <= 0 || rsi >= 100 {
		t.Errorf("RSI %v, %v; want %v in (0, 100)", rsi, err, want)
	}

	o, _, err := cacheexamples.MarketOverview(ctx, c, client, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	var btc exchange.Ticker24h
	res, err := http.Get(m[1] + "/api/v1/ticker/24hr?symbol=BTCUSDT")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&btc)
	res.Body.Close()
	// The node's ticker moves every 2 s: the same price, or close to it.
	if p, _ := strconv.ParseFloat(btc.LastPrice, 64); o.ETHPrice <= 0 || math.Abs(o.BTCPrice-p) > p/100 {
		t.Errorf("overview %+v, node's BTC ticker %+v", o, btc)
	}
	if age := time.Since(time.UnixMilli(int64(o.Timestamp * 1000))); age < 0 || age > 10*time.Second {
		t.Errorf("overview timestamp %v is %v old", o.Timestamp, age)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}
