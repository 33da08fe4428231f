package store_test

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/store"
)

func TestAppState(t *testing.T) {
	s := store.New(store.Config{})
	info := map[string]string{"mode": "live"}
	s.SetSession("sess-1", info)
	info["mode"] = "changed" // the store kept its own copy
	s.SetTime(1_700_000_000_000)
	if err := s.SetTimeRange(10, 20); err != nil {
		t.Fatal(err)
	}
	want := store.AppState{Time: 1_700_000_000_000, StartingTime: 10, EndingTime: 20, SessionID: "sess-1", SessionInfo: map[string]string{"mode": "live"}}
	got := s.App()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("App (-want +got):\n%s", diff)
	}
	got.SessionInfo["mode"] = "scribbled"
	if s.App().SessionInfo["mode"] != "live" {
		t.Error("App returned the store's map")
	}
	if s.Time() != 1_700_000_000_000 {
		t.Errorf("Time = %d", s.Time())
	}
	for _, r := range [][2]int64{{20, 10}, {-1, 5}} {
		if err := s.SetTimeRange(r[0], r[1]); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("SetTimeRange%v = %v", r, err)
		}
	}
	if err := s.SetTimeRange(5, 0); err != nil {
		t.Errorf("open-ended range: %v", err)
	}
	if e := s.AddInfoLog(7, "hello"); e != (store.LogEntry{Seq: 1, SessionID: "sess-1", Timestamp: 7, Message: "hello"}) {
		t.Errorf("log entry = %+v", e)
	}
	if e := s.AddErrorLog(8, "boom"); e.Seq != 2 || e.SessionID != "sess-1" {
		t.Errorf("error entry = %+v", e)
	}
	if err := s.AddDailyBalance(1, math.NaN()); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("NaN balance: %v", err)
	}
	_ = s.AddDailyBalance(86_400_000, 1000)
	_ = s.AddDailyBalance(2*86_400_000, 1010.5)
	if diff := cmp.Diff([]store.DailyBalance{{86_400_000, 1000}, {2 * 86_400_000, 1010.5}}, s.DailyBalances()); diff != "" {
		t.Errorf("DailyBalances (-want +got):\n%s", diff)
	}
}

func TestVars(t *testing.T) {
	s := store.New(store.Config{})
	tests := []struct {
		name string
		do   func()
		key  string
		want any
		ok   bool
	}{
		{"missing", func() {}, "a", nil, false},
		{"set", func() { s.SetVar("a", 1) }, "a", 1, true},
		{"replace", func() { s.SetVar("a", "two") }, "a", "two", true},
		{"nil value is held", func() { s.SetVar("n", nil) }, "n", nil, true},
		{"delete", func() { s.DeleteVar("a") }, "a", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.do()
			got, ok := s.Var(tt.key)
			if ok != tt.ok || !cmp.Equal(got, tt.want) {
				t.Errorf("Var(%q) = %v, %v; want %v, %v", tt.key, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestExchanges(t *testing.T) {
	s := store.New(store.Config{})
	balances := map[string]float64{"USDT": 1000}
	if err := s.SetExchange(store.Exchange{Name: "binance", Type: "futures", SettlementCurrency: "USDT", FeeRate: 0.0004, Leverage: 3, LeverageMode: "cross", Balances: balances}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetExchange(store.Exchange{Name: "bybit", Type: "spot"}); err != nil {
		t.Fatal(err)
	}
	balances["USDT"] = 0 // the caller's map is not the store's
	if err := s.SetBalance("binance", "BTC", 0.5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBalance("bybit", "USDT", 10); err != nil { // nil map created
		t.Fatal(err)
	}
	e, ok := s.Exchange("binance")
	want := store.Exchange{Name: "binance", Type: "futures", SettlementCurrency: "USDT", FeeRate: 0.0004, Leverage: 3, LeverageMode: "cross", Balances: map[string]float64{"USDT": 1000, "BTC": 0.5}}
	if diff := cmp.Diff(want, e); !ok || diff != "" {
		t.Errorf("Exchange (-want +got):\n%s", diff)
	}
	e.Balances["USDT"] = -1
	if got := s.Exchanges(); len(got) != 2 || got[0].Name != "binance" || got[0].Balances["USDT"] != 1000 || got[1].Balances["USDT"] != 10 {
		t.Errorf("Exchanges = %+v", got)
	}
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"empty name", s.SetExchange(store.Exchange{}), store.ErrInvalid},
		{"unknown exchange", s.SetBalance("kraken", "USDT", 1), store.ErrNotFound},
		{"empty asset", s.SetBalance("binance", "", 1), store.ErrInvalid},
		{"infinite balance", s.SetBalance("binance", "USDT", math.Inf(1)), store.ErrInvalid},
	} {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if _, ok := s.Exchange("kraken"); ok {
		t.Error("unknown exchange found")
	}
}

func TestPositions(t *testing.T) {
	s := store.New(store.Config{})
	ps := []store.Position{
		{Exchange: "bybit", Symbol: "ETH-USDT", Qty: -2, EntryPrice: 2000},
		{Exchange: "binance", Symbol: "ETH-USDT", Qty: 0},
		{Exchange: "binance", Symbol: "BTC-USDT", Qty: 0.1, EntryPrice: 40_000},
	}
	for _, p := range ps {
		if err := s.SetPosition(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetCurrentPrice("binance", "BTC-USDT", 41_000, 99); err != nil {
		t.Fatal(err)
	}
	want := []store.Position{
		{Exchange: "binance", Symbol: "BTC-USDT", Qty: 0.1, EntryPrice: 40_000, CurrentPrice: 41_000, UpdatedAt: 99},
		{Exchange: "bybit", Symbol: "ETH-USDT", Qty: -2, EntryPrice: 2000},
	}
	if diff := cmp.Diff(want, s.OpenPositions()); diff != "" {
		t.Errorf("OpenPositions (-want +got):\n%s", diff)
	}
	if p, ok := s.Position("binance", "ETH-USDT"); !ok || p.IsOpen() {
		t.Errorf("closed position = %+v, %v", p, ok)
	}
	if _, ok := s.Position("binance", "SOL-USDT"); ok {
		t.Error("unknown position found")
	}
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"empty symbol", s.SetPosition(store.Position{Exchange: "binance"}), store.ErrInvalid},
		{"NaN qty", s.SetPosition(store.Position{Exchange: "binance", Symbol: "X", Qty: math.NaN()}), store.ErrInvalid},
		{"price of unknown position", s.SetCurrentPrice("binance", "SOL-USDT", 1, 1), store.ErrNotFound},
		{"NaN price", s.SetCurrentPrice("binance", "BTC-USDT", math.NaN(), 1), store.ErrInvalid},
	} {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
}

func TestClosedTrades(t *testing.T) {
	s := store.New(store.Config{ClosedTradeCapacity: 2})
	for i := range 3 {
		s.AddClosedTrade(store.ClosedTrade{ID: string(rune('a' + i)), Exchange: ex, Symbol: sym, Type: "long", PNL: float64(i)})
	}
	if diff := cmp.Diff([]store.ClosedTrade{{ID: "c", Exchange: ex, Symbol: sym, Type: "long", PNL: 2}}, s.ClosedTrades(1)); diff != "" {
		t.Errorf("ClosedTrades(1) (-want +got):\n%s", diff)
	}
	if held, added := s.ClosedTradeCount(); held != 2 || added != 3 {
		t.Errorf("ClosedTradeCount = %d, %d; want 2, 3", held, added)
	}
}
