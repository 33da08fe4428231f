package storefeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startFeeder runs a feeder of a new Store against n until the test ends.
func startFeeder(t *testing.T, n *fakeNode, cfg Config) (*Feeder, *store.Store, <-chan error) {
	t.Helper()
	st := store.New(store.Config{})
	cfg.Node = n.srv.URL
	if cfg.WSToken == "" {
		cfg.WSToken = testToken
	}
	if cfg.Symbols == nil {
		cfg.Symbols = []string{"BTCUSDT"}
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	f, err := New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		done <- f.Run(ctx)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return 5 s after its context ended")
		}
	})
	return f, st, done
}

func waitReady(t *testing.T, f *Feeder) {
	t.Helper()
	select {
	case <-f.Ready():
	case <-time.After(5 * time.Second):
		t.Fatalf("not ready after 5 s: %+v", f.Stats())
	}
}

// rows converts the node's klines to the Store's rows.
func rows(t *testing.T, ks []exchange.Kline) [][6]float64 {
	t.Helper()
	out := make([][6]float64, len(ks))
	for i, k := range ks {
		c, err := candleOf(k)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c
	}
	return out
}

// accountNode is a node with 200 1m klines of BTCUSDT, its ticker, a long
// position and a USDT balance.
func accountNode(t *testing.T) *fakeNode {
	n := newFakeNode(t)
	n.setKlines("BTCUSDT", 200)
	n.setTicker(ticker("BTCUSDT", 299, t0+199*minute+30_000))
	n.setPositions(exchange.Position{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "0.5", EntryPrice: "100", UpdateTime: 1000})
	n.setBalance(exchange.Balance{Asset: "USDT", WalletBalance: "10000", UpdateTime: 1000})
	return n
}

func position(st *store.Store) store.Position {
	p, _ := st.Position("binance", "BTCUSDT")
	return p
}

func balance(st *store.Store, asset string) float64 {
	e, _ := st.Exchange("binance")
	return e.Balances[asset]
}

func TestWarmUpThenEvents(t *testing.T) {
	n := accountNode(t)
	closedCh := make(chan int64, 10)
	f, st, _ := startFeeder(t, n, Config{Generate: []string{"5m"}, OnClosed: func(sym, iv string, ts int64) { closedCh <- ts }})
	waitReady(t, f)

	// Warm-up: the node's klines, the 5m derived from them, the ticker,
	// the position and the balance.
	if diff := cmp.Diff(rows(t, n.series("BTCUSDT")), st.Candles("binance", "BTCUSDT", "1m", 0)); diff != "" {
		t.Errorf("1m after warm-up (-node +store):\n%s", diff)
	}
	// Minutes 195…199 (closes 295…299; open = close-1, high +2, low -2,
	// volume 10 each) make the forming 5m candle.
	want5m := store.Candle{float64(t0 + 195*minute), 294, 299, 301, 293, 50}
	if got, _ := st.CurrentCandle("binance", "BTCUSDT", "5m"); got != want5m {
		t.Errorf("5m forming candle = %v, want %v", got, want5m)
	}
	if n := st.Len("binance", "BTCUSDT", "5m"); n != 40 {
		t.Errorf("%d 5m candles, want 40", n)
	}
	if tk, ok := st.CurrentTicker("binance", "BTCUSDT"); !ok || tk.Last != 299 {
		t.Errorf("ticker %+v %v", tk, ok)
	}
	wantPos := store.Position{Exchange: "binance", Symbol: "BTCUSDT", Qty: 0.5, EntryPrice: 100, CurrentPrice: 299, OpenedAt: 1000, UpdatedAt: 1000}
	if diff := cmp.Diff(wantPos, position(st)); diff != "" {
		t.Errorf("position (-want +got):\n%s", diff)
	}
	if b := balance(st, "USDT"); b != 10000 {
		t.Errorf("USDT balance %v", b)
	}
	before := f.Stats()

	// Events.
	last := t0 + 199*minute
	n.publish("kline", kline("BTCUSDT", "1m", last, minute, 310, 20, false))
	n.publish("kline", kline("BTCUSDT", "1m", last, minute, 305, 15, false)) // fewer trades: older
	n.publish("kline", kline("BTCUSDT", "1m", last, minute, 311, 25, true))
	n.publish("kline", kline("BTCUSDT", "1m", last+minute, minute, 312, 1, false))
	n.publish("kline", kline("ETHUSDT", "1m", last, minute, 1, 1, false)) // not configured
	n.publish("ticker", ticker("BTCUSDT", 312, last+minute+2000))
	n.publish("orders", exchange.OrderUpdate{Symbol: "BTCUSDT", ClientOrderID: "c1", OrderID: 7, Side: "BUY", Type: "MARKET", OrigQty: "1", CumQty: "0", Price: "0", StopPrice: "0", Status: "NEW", TransactTime: 1500})
	n.publish("orders", exchange.OrderUpdate{Symbol: "BTCUSDT", ClientOrderID: "c1", OrderID: 7, Side: "BUY", Type: "MARKET", OrigQty: "1", CumQty: "1", Price: "0", StopPrice: "0", Status: "FILLED", TransactTime: 1600})
	n.publish("orders", exchange.OrderUpdate{Symbol: "BTCUSDT", ClientOrderID: "c1", OrderID: 7, Side: "BUY", Type: "MARKET", OrigQty: "1", CumQty: "0", Price: "0", StopPrice: "0", Status: "NEW", TransactTime: 1500}) // late
	n.publish("positions", []exchange.Position{{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "1.5", EntryPrice: "105", UpdateTime: 2000}})
	n.publish("positions", []exchange.Position{{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "9", EntryPrice: "1", UpdateTime: 1500}}) // older
	n.publish("balance", []exchange.Balance{{Asset: "USDT", WalletBalance: "9990.5", UpdateTime: 2000}})
	n.publish("info_log", map[string]any{"id": "x", "timestamp": 3000, "level": "INFO", "message": "hello", "attrs": map[string]any{"b": 2, "a": "one"}, "node_id": "n1"})
	n.publish("error_log", map[string]any{"id": "y", "timestamp": 3001, "level": "ERROR", "message": "boom", "node_id": "n1"})
	n.publishRaw([]byte(`{"id":"z","event":"backtest.kline","is_compressed":false,"data":{}}`)) // another mode
	n.publishRaw([]byte(`not json`))
	n.publish("kline", map[string]any{"s": "BTCUSDT", "i": "1m", "t": "soon"})

	testenv.Eventually(t, 5*time.Second, func() bool {
		s := f.Stats()
		return s.EventsApplied-before.EventsApplied == 10 && s.EventsMalformed-before.EventsMalformed == 2
	}, "events not applied")
	s := f.Stats()
	if got := [3]uint64{s.EventsStale - before.EventsStale, s.EventsIgnored - before.EventsIgnored, s.Resyncs}; got != [3]uint64{3, 2, 1} {
		t.Errorf("stale, ignored, resyncs = %v, want [3 2 1]", got)
	}
	if diff := cmp.Diff([]store.Candle{
		{float64(last), 310, 311, 313, 309, 25},
		{float64(last + minute), 311, 312, 314, 310, 1},
	}, st.Candles("binance", "BTCUSDT", "1m", 2)); diff != "" {
		t.Errorf("newest 1m candles (-want +got):\n%s", diff)
	}
	select {
	case ts := <-closedCh:
		if ts != last {
			t.Errorf("OnClosed(%d), want %d", ts, last)
		}
	default:
		t.Error("OnClosed not called for the closed kline")
	}
	wantPos = store.Position{Exchange: "binance", Symbol: "BTCUSDT", Qty: 1.5, EntryPrice: 105, CurrentPrice: 312, OpenedAt: 1000, UpdatedAt: 2000}
	if diff := cmp.Diff(wantPos, position(st)); diff != "" {
		t.Errorf("position (-want +got):\n%s", diff)
	}
	if b := balance(st, "USDT"); b != 9990.5 {
		t.Errorf("USDT balance %v, want 9990.5", b)
	}
	wantOrders := []store.Order{{ID: "c1", ExchangeID: "7", Exchange: "binance", Symbol: "BTCUSDT", Side: "buy", Type: "market",
		Qty: 1, FilledQty: 1, Status: store.OrderExecuted, CreatedAt: 1500, ExecutedAt: 1600}}
	if diff := cmp.Diff(wantOrders, st.Orders("binance", "BTCUSDT")); diff != "" {
		t.Errorf("orders (-want +got):\n%s", diff)
	}
	logs := func(es []store.LogEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Message)
		}
		return out
	}
	if diff := cmp.Diff([]string{"hello node_id=n1 a=one b=2"}, logs(st.InfoLogs(0))); diff != "" {
		t.Errorf("info log (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"boom node_id=n1"}, logs(st.ErrorLogs(0))); diff != "" {
		t.Errorf("error log (-want +got):\n%s", diff)
	}
}

// A node's seed (account_snapshot) is the whole account: a position it
// does not list is closed.
func TestAccountSnapshotEvent(t *testing.T) {
	n := accountNode(t)
	f, st, _ := startFeeder(t, n, Config{})
	waitReady(t, f)
	n.publish("account_snapshot", exchange.AccountSnapshot{
		Positions: []exchange.Position{{Symbol: "ETHUSDT", PositionSide: "BOTH", PositionAmt: "-3", EntryPrice: "3000", UpdateTime: 4000}},
		Balances:  []exchange.Balance{{Asset: "USDT", WalletBalance: "10100", UpdateTime: 4000}, {Asset: "BNB", WalletBalance: "2", UpdateTime: 4000}},
	})
	testenv.Eventually(t, 3*time.Second, func() bool { return balance(st, "BNB") == 2 }, "snapshot not applied")
	var got []string
	for _, p := range st.OpenPositions() {
		got = append(got, fmt.Sprint(p.Symbol, " ", p.Qty, " @ ", p.EntryPrice))
	}
	if diff := cmp.Diff([]string{"ETHUSDT -3 @ 3000"}, got); diff != "" {
		t.Errorf("open positions (-want +got):\n%s", diff)
	}
	if p, _ := st.Position("binance", "BTCUSDT"); p.Qty != 0 || p.OpenedAt != 0 {
		t.Errorf("BTCUSDT after a snapshot without it: %+v", p)
	}
	if b := balance(st, "USDT"); b != 10100 {
		t.Errorf("USDT %v, want 10100", b)
	}
}

// A /ws drop: the feeder reconnects and reads the 300 klines, the position
// and the balance that changed while it was away.
func TestReconnectReadsWhatWasMissed(t *testing.T) {
	n := accountNode(t)
	f, st, _ := startFeeder(t, n, Config{BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	waitReady(t, f)
	n.drop()
	n.advance("BTCUSDT", 300)
	n.setPositions() // closed
	n.setBalance(exchange.Balance{Asset: "USDT", WalletBalance: "10042", UpdateTime: 5000})
	testenv.Eventually(t, 5*time.Second, func() bool {
		c, _ := st.CurrentCandle("binance", "BTCUSDT", "1m")
		ks := n.series("BTCUSDT")
		return f.Stats().Reconnects == 1 && int64(c[0]) == ks[len(ks)-1].OpenTime && position(st).Qty == 0 && balance(st, "USDT") == 10042
	}, "the Store did not catch up after the reconnection: %+v", f.Stats())
	if diff := cmp.Diff(rows(t, n.series("BTCUSDT")), st.Candles("binance", "BTCUSDT", "1m", 0)); diff != "" {
		t.Errorf("1m after the reconnection (-node +store):\n%s", diff)
	}
	s := f.Stats()
	if s.Connects != 2 || s.Resyncs != 2 || s.KlinesResynced < 200+300 || s.GapsUnfilled != 0 {
		t.Errorf("stats %+v: want 2 connects, 2 resyncs, ≥ 500 klines resynced, no unfilled gap", s)
	}
}

// A kline more than one interval after the newest held: the feeder reads
// the klines in between.
func TestGapInEventsIsFilled(t *testing.T) {
	n := accountNode(t)
	f, st, _ := startFeeder(t, n, Config{})
	waitReady(t, f)
	newest := n.advance("BTCUSDT", 5) // published to nobody
	n.publish("kline", newest)
	testenv.Eventually(t, 5*time.Second, func() bool { return st.Len("binance", "BTCUSDT", "1m") == 205 }, "gap not filled")
	if diff := cmp.Diff(rows(t, n.series("BTCUSDT")), st.Candles("binance", "BTCUSDT", "1m", 0)); diff != "" {
		t.Errorf("1m after the gap (-node +store):\n%s", diff)
	}
	if s := f.Stats(); s.Gaps != 1 || s.Resyncs != 2 || s.Connects != 1 {
		t.Errorf("stats %+v: want 1 gap, 2 resyncs, 1 connection", s)
	}
}

// A full queue drops frames, counts them, and resyncs.
func TestQueueFullDropsAndResyncs(t *testing.T) {
	n := accountNode(t)
	release := make(chan struct{})
	f, st, _ := startFeeder(t, n, Config{Queue: 4, OnClosed: func(string, string, int64) { <-release }})
	waitReady(t, f)
	n.publish("kline", kline("BTCUSDT", "1m", t0+199*minute, minute, 299, 10, true)) // blocks the applier
	testenv.Eventually(t, 2*time.Second, func() bool { return f.Stats().Queued == 0 }, "the closed kline was not taken")
	for i := range 50 {
		n.publish("info_log", map[string]any{"timestamp": 1000 + i, "message": "flood"})
	}
	testenv.Eventually(t, 2*time.Second, func() bool { return f.Stats().EventsDropped > 0 }, "nothing dropped with a queue of 4")
	n.setBalance(exchange.Balance{Asset: "USDT", WalletBalance: "1", UpdateTime: 9000})
	close(release)
	testenv.Eventually(t, 5*time.Second, func() bool {
		s := f.Stats()
		return balance(st, "USDT") == 1 && s.Queued == 0 && s.EventsDropped+uint64(len(st.InfoLogs(0))) == 50
	}, "no resync after the drops, or frames unaccounted for: %+v", f.Stats())
	// Frames still unread when the applier resumed may overflow the queue
	// again: each overflow is a resync.
	if s := f.Stats(); s.Resyncs < 2 || s.Connects != 1 {
		t.Errorf("stats %+v: want ≥ 2 resyncs, 1 connection", s)
	}
}

// A silent connection that answers pings is kept and the account read
// over HTTP every StaleAfter; one that answers none is left.
func TestSilence(t *testing.T) {
	t.Run("alive", func(t *testing.T) {
		n := accountNode(t)
		f, st, _ := startFeeder(t, n, Config{StaleAfter: 300 * time.Millisecond})
		waitReady(t, f)
		n.setPositions(exchange.Position{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "-2", EntryPrice: "300", UpdateTime: 7000})
		testenv.Eventually(t, 3*time.Second, func() bool { return position(st).Qty == -2 }, "silence not polled")
		if s := f.Stats(); s.Silences == 0 || s.Connects != 1 || s.StaleReconnects != 0 {
			t.Errorf("stats %+v: want silences, one connection", s)
		}
	})
	t.Run("deaf", func(t *testing.T) {
		n := accountNode(t)
		n.deaf = true
		f, _, _ := startFeeder(t, n, Config{StaleAfter: 300 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
		waitReady(t, f)
		testenv.Eventually(t, 3*time.Second, func() bool { s := f.Stats(); return s.StaleReconnects > 0 && s.Connects > 1 }, "a connection without pongs was kept: %+v", f.Stats())
	})
}

// Heartbeats and tier changes say when events were lost.
func TestHeartbeatsAndTierChanges(t *testing.T) {
	n := accountNode(t)
	f, _, _ := startFeeder(t, n, Config{HeartbeatGap: 300 * time.Millisecond})
	waitReady(t, f)
	resyncs := func() uint64 { return f.Stats().Resyncs }
	beat := func(tier string, uptime float64) {
		n.publish("heartbeat", map[string]any{"node_id": "n1", "cache_tier": tier, "uptime_s": uptime, "status": "ok"})
	}
	steps := []struct {
		name string
		do   func()
		want uint64
	}{
		{"first heartbeat of the connection", func() { beat("redis", 10) }, 2},
		{"on time", func() { beat("redis", 10.1) }, 2},
		{"late", func() { time.Sleep(400 * time.Millisecond); beat("redis", 10.5) }, 3},
		{"memory tier", func() { beat("memory", 10.6) }, 3},
		{"back on redis", func() { beat("redis", 10.7) }, 4},
		{"restarted", func() { beat("redis", 0.2) }, 5},
		{"tier event to memory", func() { n.publish("cache_tier", map[string]string{"node_id": "n1", "from": "redis", "to": "memory"}) }, 5},
		{"tier event to redis", func() { n.publish("cache_tier", map[string]string{"node_id": "n1", "from": "memory", "to": "redis"}) }, 6},
	}
	for _, s := range steps {
		hb := f.Stats().Heartbeats
		s.do()
		testenv.Eventually(t, 2*time.Second, func() bool {
			return f.Stats().Heartbeats > hb || strings.HasPrefix(s.name, "tier")
		}, "%s: heartbeat not seen", s.name)
		time.Sleep(50 * time.Millisecond)
		if got := resyncs(); got != s.want {
			t.Fatalf("%s: %d resyncs, want %d", s.name, got, s.want)
		}
	}
}

func TestTokens(t *testing.T) {
	t.Run("wrong /ws token", func(t *testing.T) {
		n := accountNode(t)
		_, _, done := startFeeder(t, n, Config{WSToken: "wrong-token-0123456789"})
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("Run = %v, want ErrUnauthorized", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run still running with a wrong token")
		}
	})
	t.Run("API token sent", func(t *testing.T) {
		n := accountNode(t)
		n.apiToken = "api-token-abcdefghijklmnop"
		f, st, _ := startFeeder(t, n, Config{APIToken: "api-token-abcdefghijklmnop"})
		waitReady(t, f)
		if position(st).Qty != 0.5 || st.Len("binance", "BTCUSDT", "1m") != 200 {
			t.Errorf("with the API token: position %+v, %d klines", position(st), st.Len("binance", "BTCUSDT", "1m"))
		}
	})
	t.Run("wrong API token", func(t *testing.T) {
		n := accountNode(t)
		n.apiToken = "api-token-abcdefghijklmnop"
		_, _, done := startFeeder(t, n, Config{APIToken: "nope"})
		select {
		case err := <-done:
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("Run = %v, want ErrUnauthorized", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run still running with a wrong API token")
		}
	})
}

func TestNodeWithoutAccount(t *testing.T) {
	n := accountNode(t)
	n.noAccount = true
	f, st, _ := startFeeder(t, n, Config{})
	waitReady(t, f)
	if _, ok := st.Position("binance", "BTCUSDT"); ok || f.Stats().ResyncErrors != 0 {
		t.Errorf("no account: position %v, stats %+v", ok, f.Stats())
	}
	if n.count("/api/v1/balance") != 0 {
		t.Errorf("balances read from a node without an account")
	}
}

func TestNewRefuses(t *testing.T) {
	base := Config{Node: "http://127.0.0.1:1", WSToken: testToken, Symbols: []string{"BTCUSDT"}}
	for _, tt := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no token", func(c *Config) { c.WSToken = "" }, "WSToken"},
		{"no symbols", func(c *Config) { c.Symbols = nil }, "no symbols"},
		{"bad node", func(c *Config) { c.Node = "127.0.0.1:8080" }, "want http://"},
		{"unknown interval", func(c *Config) { c.Intervals = []string{"7m"} }, "7m"},
		{"generate without 1m", func(c *Config) { c.Intervals = []string{"5m"}; c.Generate = []string{"1h"} }, "add 1m"},
		{"read and derived", func(c *Config) { c.Intervals = []string{"1m", "5m"}; c.Generate = []string{"5m"} }, "both read"},
		{"1D needs capacity", func(c *Config) { c.Generate = []string{"1D"} }, "capacity"},
	} {
		cfg := base
		tt.mod(&cfg)
		st := store.New(store.Config{CandleCapacity: 100})
		if _, err := New(st, cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want an error naming %q", tt.name, err, tt.want)
		}
	}
}

// applyKline keeps the newest state of every candle.
func TestApplyKlineKeepsNewest(t *testing.T) {
	k := func(open int64, close float64, trades int64, closed bool) exchange.Kline {
		return kline("BTCUSDT", "1m", open, minute, close, trades, closed)
	}
	bad := k(t0, 1, 1, false)
	bad.Close = "x"
	tests := []struct {
		name    string
		klines  []exchange.Kline
		want    []result
		closes  []float64 // of the Store's candles, oldest first
		newestN int64     // trades of the newest held
	}{
		{"forming updated in place", []exchange.Kline{k(t0, 1, 1, false), k(t0, 2, 2, false)}, []result{applied, applied}, []float64{2}, 2},
		{"fewer trades is older", []exchange.Kline{k(t0, 1, 5, false), k(t0, 2, 3, false)}, []result{applied, stale}, []float64{1}, 5},
		{"forming after closed is older", []exchange.Kline{k(t0, 1, 5, true), k(t0, 2, 100, false)}, []result{applied, stale}, []float64{1}, 5},
		{"closed wins", []exchange.Kline{k(t0, 1, 5, false), k(t0, 2, 3, true)}, []result{applied, applied}, []float64{2}, 3},
		{"older forming is older", []exchange.Kline{k(t0+minute, 1, 1, false), k(t0, 2, 1, false)}, []result{applied, stale}, []float64{1}, 1},
		{"older closed fills in", []exchange.Kline{k(t0+minute, 1, 1, false), k(t0, 2, 1, true)}, []result{applied, applied}, []float64{2, 1}, 1},
		{"next candle appended", []exchange.Kline{k(t0, 1, 9, true), k(t0+minute, 2, 1, false)}, []result{applied, applied}, []float64{1, 2}, 1},
		{"not a number", []exchange.Kline{bad}, []result{malformed}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := store.New(store.Config{})
			f, err := New(st, Config{Node: "http://127.0.0.1:1", WSToken: testToken, Symbols: []string{"BTCUSDT"}, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			s := f.series[seriesKey{"BTCUSDT", "1m"}]
			var got []result
			for _, k := range tt.klines {
				got = append(got, f.applyKline(s, k))
			}
			var closes []float64
			for _, c := range st.Candles("binance", "BTCUSDT", "1m", 0) {
				closes = append(closes, c[store.ColClose])
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.closes, closes); diff != "" {
				t.Errorf("closes (-want +got):\n%s", diff)
			}
			if s.trades != tt.newestN {
				t.Errorf("newest trades %d, want %d", s.trades, tt.newestN)
			}
		})
	}
}

func TestOrderOf(t *testing.T) {
	u := exchange.OrderUpdate{Symbol: "ETHUSDT", ClientOrderID: "web_1", OrderID: 8389765, Side: "SELL", Type: "LIMIT",
		OrigQty: "0.5", CumQty: "0.2", Price: "3000.5", StopPrice: "0", TransactTime: 1700000000000, ReduceOnly: true}
	with := func(mod func(*exchange.OrderUpdate)) exchange.OrderUpdate { v := u; mod(&v); return v }
	base := store.Order{ID: "web_1", ExchangeID: "8389765", Exchange: "binance", Symbol: "ETHUSDT", Side: "sell", Type: "limit",
		Qty: 0.5, FilledQty: 0.2, Price: 3000.5, ReduceOnly: true, CreatedAt: 1700000000000}
	order := func(mod func(*store.Order)) store.Order { v := base; mod(&v); return v }
	tests := []struct {
		name string
		in   exchange.OrderUpdate
		want store.Order
		err  bool
	}{
		{"new", with(func(o *exchange.OrderUpdate) { o.Status = "NEW" }), order(func(o *store.Order) { o.Status = store.OrderActive }), false},
		{"partially filled", with(func(o *exchange.OrderUpdate) { o.Status = "PARTIALLY_FILLED" }), order(func(o *store.Order) { o.Status = store.OrderPartiallyFilled }), false},
		{"filled", with(func(o *exchange.OrderUpdate) { o.Status = "FILLED" }), order(func(o *store.Order) { o.Status, o.ExecutedAt = store.OrderExecuted, 1700000000000 }), false},
		{"canceled", with(func(o *exchange.OrderUpdate) { o.Status = "CANCELED" }), order(func(o *store.Order) { o.Status, o.CanceledAt = store.OrderCanceled, 1700000000000 }), false},
		{"expired", with(func(o *exchange.OrderUpdate) { o.Status = "EXPIRED" }), order(func(o *store.Order) { o.Status, o.CanceledAt = store.OrderCanceled, 1700000000000 }), false},
		{"liquidation", with(func(o *exchange.OrderUpdate) { o.Status = "NEW_INSURANCE" }), order(func(o *store.Order) { o.Status, o.ExecutedAt = store.OrderLiquidated, 1700000000000 }), false},
		{"stop market: the stop price", with(func(o *exchange.OrderUpdate) {
			o.Status, o.Type, o.Price, o.StopPrice = "NEW", "STOP_MARKET", "0", "2900"
		}),
			order(func(o *store.Order) { o.Status, o.Type, o.Price = store.OrderActive, "stop_market", 2900 }), false},
		{"no client id: the exchange's", with(func(o *exchange.OrderUpdate) { o.Status, o.ClientOrderID = "NEW", "" }),
			order(func(o *store.Order) { o.Status, o.ID = store.OrderActive, "8389765" }), false},
		{"unknown status", with(func(o *exchange.OrderUpdate) { o.Status = "PENDING" }), store.Order{}, true},
		{"bad quantity", with(func(o *exchange.OrderUpdate) { o.Status, o.OrigQty = "NEW", "½" }), store.Order{}, true},
	}
	for _, tt := range tests {
		got, err := orderOf("binance", tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%s: err %v, want error %v", tt.name, err, tt.err)
			continue
		}
		if !tt.err {
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.name, diff)
			}
		}
	}
}

func TestParseKlineRow(t *testing.T) {
	row := func(s string) []json.RawMessage {
		var r []json.RawMessage
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name string
		in   string
		want exchange.Kline
		err  bool
	}{
		{"binance row", `[1767225600000,"100.5","102","99.5","101","12.3",1767225659999,"1240.1",42,"6.1","615.2","0"]`,
			exchange.Kline{OpenTime: 1767225600000, Open: "100.5", High: "102", Low: "99.5", Close: "101", Volume: "12.3", CloseTime: 1767225659999,
				QuoteVolume: "1240.1", Trades: 42, TakerBuyBase: "6.1", TakerBuyQuote: "615.2"}, false},
		{"short", `[1767225600000,"100.5"]`, exchange.Kline{}, true},
		{"time as string", `["1767225600000","100.5","102","99.5","101","12.3",1767225659999,"1240.1",42,"6.1","615.2","0"]`, exchange.Kline{}, true},
		{"price as number", `[1767225600000,100.5,"102","99.5","101","12.3",1767225659999,"1240.1",42,"6.1","615.2","0"]`, exchange.Kline{}, true},
		{"price not a number", `[1767225600000,"abc","102","99.5","101","12.3",1767225659999,"1240.1",42,"6.1","615.2","0"]`, exchange.Kline{}, true},
	}
	for _, tt := range tests {
		got, err := parseKlineRow(row(tt.in))
		if (err != nil) != tt.err {
			t.Errorf("%s: err %v, want error %v", tt.name, err, tt.err)
			continue
		}
		if !tt.err {
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.name, diff)
			}
		}
	}
}
