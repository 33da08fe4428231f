package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/exchange/binance"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/store"
	"github.com/tradecache/tradecache/storefeed"
)

// freePort returns a loopback port nobody listens on now, so a node can be
// restarted at the same address.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// storeMatchesNode compares the Store's current 1m candle, BTCUSDT
// position and USDT balance with the node's /api/v1 answers; "" when
// they are equal.
func storeMatchesNode(st *store.Store, url string) string {
	var rows [][]any
	if err := getJSON(url+"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=1", &rows); err != nil || len(rows) != 1 {
		return fmt.Sprintf("klines: %v (%d rows)", err, len(rows))
	}
	r := rows[0]
	f := func(v any) float64 { s, _ := v.(string); x, _ := strconv.ParseFloat(s, 64); return x }
	node := store.Candle{r[0].(float64), f(r[1]), f(r[4]), f(r[2]), f(r[3]), f(r[5])}
	if c, _ := st.CurrentCandle("binance", "BTCUSDT", "1m"); c != node {
		return fmt.Sprintf("current candle: store %v, node %v", c, node)
	}
	var ps []exchange.Position
	if err := getJSON(url+"/api/v1/positions", &ps); err != nil {
		return err.Error()
	}
	var qty, entry float64
	for _, p := range ps {
		if p.Symbol == "BTCUSDT" {
			qty, entry = f(p.PositionAmt), f(p.EntryPrice)
		}
	}
	if p, _ := st.Position("binance", "BTCUSDT"); p.Qty != qty || (qty != 0 && p.EntryPrice != entry) {
		return fmt.Sprintf("position: store %v @ %v, node %v @ %v", p.Qty, p.EntryPrice, qty, entry)
	}
	var b exchange.Balance
	if err := getJSON(url+"/api/v1/balance?asset=USDT", &b); err != nil {
		return err.Error()
	}
	if e, _ := st.Exchange("binance"); e.Balances["USDT"] != f(b.WalletBalance) {
		return fmt.Sprintf("USDT: store %v, node %v", e.Balances["USDT"], b.WalletBalance)
	}
	return ""
}

// TestStoreFeedSurvivesRestarts: a Store fed by storefeed beside a node on
// Redis (simulated exchange and account at 60× speed, a candle a second)
// equals the node's answers after a warm-up, after a node restart and
// after a Redis restart, with fills placed while it was cut off, and its
// 1m series has no gap.
func TestStoreFeedSurvivesRestarts(t *testing.T) {
	r := testenv.Start(t)
	c := &cluster{t: t, redis: r}
	c.sim = spawn(t, "sim", "sim", "--listen", "127.0.0.1:0", "--speed", "60", "--symbols", "BTCUSDT",
		"--api-key", e2eKey, "--api-secret", e2eSecret, "--balance", "USDT=10000")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startNode := func(name string) *proc {
		return spawn(t, name, "serve", "--listen", addr, "--redis", r.URL(), "--node-id", "feed-node",
			"--exchange-rest", c.sim.url, "--exchange-ws", "ws"+c.sim.url[len("http"):], "--symbols", "BTCUSDT", "--intervals", "1m",
			"--lease-ttl", "3s", "--window", "1000", "--ws-token", clusterToken, "--api-key", e2eKey, "--api-secret", e2eSecret)
	}
	node := startNode("node")
	rest := binance.NewREST(binance.RESTConfig{BaseURL: c.sim.url, APIKey: e2eKey, APISecret: e2eSecret})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	order := func(side, qty string) {
		t.Helper()
		if _, err := rest.PlaceOrder(ctx, binance.OrderRequest{Symbol: "BTCUSDT", Side: side, Type: "MARKET", Quantity: qty}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 15*time.Second, func() bool { return len(klineTimes(t, node, 1000)) > 500 }, "no klines on the node")
	order("BUY", "0.010")

	st := store.New(store.Config{})
	f, err := storefeed.New(st, storefeed.Config{Node: node.url, WSToken: clusterToken, Symbols: []string{"BTCUSDT"},
		Generate: []string{"5m"}, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-f.Ready():
	case <-time.After(15 * time.Second):
		t.Fatalf("feeder not ready: %+v", f.Stats())
	}
	// match waits for the Store to equal the node's answers, then, after
	// two seconds of live events (two candles closed, eight updates),
	// for it to equal them again: a node that has just started may have
	// lost what it published before its own subscription to Redis was up
	// (its first seed of the account), which the feeder reads again at
	// the first heartbeat (every 5 s).
	match := func(within time.Duration, when string) {
		t.Helper()
		for _, phase := range []string{when, when + ", then live"} {
			start := time.Now()
			for {
				diff := storeMatchesNode(st, node.url)
				if diff == "" {
					break
				}
				if time.Since(start) > within {
					t.Fatalf("%s: the Store does not match the node after %v: %s; stats %+v", phase, within, diff, f.Stats())
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("%s: the Store matches the node after %v", phase, time.Since(start).Round(time.Millisecond))
			within = 6 * time.Second
			if phase == when {
				time.Sleep(2 * time.Second)
			}
		}
	}
	match(5*time.Second, "warm-up")

	// A node restart, with a fill while the node is down.
	node.cmd.Process.Signal(syscall.SIGTERM)
	node.cmd.Wait()
	order("BUY", "0.005")
	node = startNode("node-restarted")
	match(15*time.Second, "node restart")

	// A Redis restart (empty), with a fill while Redis is down.
	r.Stop(t)
	time.Sleep(500 * time.Millisecond)
	order("SELL", "0.012")
	time.Sleep(1500 * time.Millisecond)
	r.Restart(t)
	match(20*time.Second, "Redis restart")

	// No gap in the 1m series since the warm-up, the 5m derived from it.
	cs := st.Candles("binance", "BTCUSDT", "1m", 0)
	for i := 1; i < len(cs); i++ {
		if cs[i][0]-cs[i-1][0] != 60000 {
			t.Fatalf("the Store's 1m series jumps from %v to %v (candle %d of %d)", cs[i-1][0], cs[i][0], i, len(cs))
		}
	}
	if n := st.Len("binance", "BTCUSDT", "5m"); n < len(cs)/5 {
		t.Errorf("%d 5m candles derived from %d 1m candles", n, len(cs))
	}
	s := f.Stats()
	t.Logf("feeder stats: %+v; %d 1m candles", s, len(cs))
	if s.Reconnects < 1 || s.Resyncs < 3 || s.GapsUnfilled != 0 || s.EventsApplied < 30 || s.Heartbeats < 1 {
		t.Errorf("stats %+v: want ≥ 1 reconnection, ≥ 3 resyncs, no unfilled gap, ≥ 30 events applied, heartbeats", s)
	}
}

// testWriter sends a logger's lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
