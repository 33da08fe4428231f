package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/store"
)

// TestListsDropOldestBeyondCapacity adds capacity+extra entries to every
// bounded list and checks that exactly the newest capacity remain.
func TestListsDropOldestBeyondCapacity(t *testing.T) {
	const capacity = 3
	cfg := store.Config{
		LogCapacity: capacity, ClosedTradeCapacity: capacity, DailyBalanceCapacity: capacity,
		TickerCapacity: capacity, TradeCapacity: capacity, OrderbookCapacity: capacity,
		CandleCapacity: capacity,
	}
	tests := []struct {
		name string
		add  func(s *store.Store, i int) // i from 1
		read func(s *store.Store) []int  // the ids of the entries held
	}{
		{"info log", func(s *store.Store, i int) { s.AddInfoLog(int64(i), "") }, func(s *store.Store) []int {
			return ids(s.InfoLogs(0), func(e store.LogEntry) int { return int(e.Timestamp) })
		}},
		{"error log", func(s *store.Store, i int) { s.AddErrorLog(int64(i), "") }, func(s *store.Store) []int {
			return ids(s.ErrorLogs(0), func(e store.LogEntry) int { return int(e.Timestamp) })
		}},
		{"closed trades", func(s *store.Store, i int) { s.AddClosedTrade(store.ClosedTrade{ClosedAt: int64(i)}) }, func(s *store.Store) []int {
			return ids(s.ClosedTrades(0), func(c store.ClosedTrade) int { return int(c.ClosedAt) })
		}},
		{"daily balances", func(s *store.Store, i int) { _ = s.AddDailyBalance(int64(i), 1) }, func(s *store.Store) []int {
			return ids(s.DailyBalances(), func(d store.DailyBalance) int { return int(d.Timestamp) })
		}},
		{"tickers", func(s *store.Store, i int) { _, _ = s.AddTicker(ex, sym, store.Ticker{Timestamp: int64(i) * 1000}) }, func(s *store.Store) []int {
			return ids(s.Tickers(ex, sym, 0), func(t store.Ticker) int { return int(t.Timestamp / 1000) })
		}},
		{"trade buckets", func(s *store.Store, i int) {
			// The bucket of trade i is stored when trade i+1 arrives.
			_ = s.AddTrade(ex, sym, store.Trade{Timestamp: int64(i) * 1000, Price: 1, Qty: 1})
		}, func(s *store.Store) []int {
			return ids(s.TradeBuckets(ex, sym, 0), func(b store.TradeBucket) int { return int(b.Timestamp / 1000) })
		}},
		{"orderbook snapshots", func(s *store.Store, i int) {
			_, _ = s.AddOrderbook(ex, sym, store.Orderbook{Timestamp: int64(i) * 1000})
		}, func(s *store.Store) []int {
			return ids(s.Orderbooks(ex, sym, 0), func(o store.Orderbook) int { return int(o.Timestamp / 1000) })
		}},
		{"candles", func(s *store.Store, i int) { _ = s.AddCandle(ex, sym, "1m", mk(i, 1)) }, func(s *store.Store) []int {
			return ids(s.Candles(ex, sym, "1m", 0), func(c [6]float64) int { return int((int64(c[0]) - t0) / 60_000) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store.New(cfg)
			for i := 1; i <= 10; i++ {
				tt.add(s, i)
			}
			want := []int{8, 9, 10}
			if tt.name == "trade buckets" {
				want = []int{7, 8, 9} // 10 is pending
			}
			if diff := cmp.Diff(want, tt.read(s)); diff != "" {
				t.Errorf("held (-want +got):\n%s", diff)
			}
		})
	}
}

func ids[T any](xs []T, id func(T) int) []int {
	var out []int
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func TestDefaultsAndValidate(t *testing.T) {
	got := store.New(store.Config{TickerThrottle: -1}).Config()
	want := store.Config{
		CandleCapacity: 10080, CandleCapacityByTimeframe: map[string]int{},
		LogCapacity: 1000, ClosedTradeCapacity: 10_000, OrderHistoryCapacity: 1000,
		DailyBalanceCapacity: 3650, TickerCapacity: 120, TradeCapacity: 120, OrderbookCapacity: 60,
		OrderbookDepth: 50, TickerThrottle: -1, OrderbookThrottle: store.DefaultOrderbookThrottle,
		TradeBucket: store.DefaultTradeBucket,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("effective config (-want +got):\n%s", diff)
	}
	if got := store.New(store.Config{CandleCapacityByTimeframe: map[string]int{"1d": 5, "7m": 3, "5m": 0}}).Config().CandleCapacityByTimeframe; !cmp.Equal(got, map[string]int{"1D": 5}) {
		t.Errorf("overrides = %v", got)
	}

	for _, tt := range []struct {
		name    string
		cfg     store.Config
		wantErr bool
	}{
		{"zero", store.Config{}, false},
		{"explicit", store.Config{LogCapacity: 5, CandleCapacityByTimeframe: map[string]int{"1m": 20000, "1w": 10}}, false},
		{"negative throttle disables", store.Config{TickerThrottle: -1, OrderbookThrottle: -1}, false},
		{"negative capacity", store.Config{LogCapacity: -1}, true},
		{"negative trade bucket", store.Config{TradeBucket: -1}, true},
		{"unknown timeframe override", store.Config{CandleCapacityByTimeframe: map[string]int{"1M": 10}}, true},
		{"zero override", store.Config{CandleCapacityByTimeframe: map[string]int{"5m": 0}}, true},
		{"same timeframe twice", store.Config{CandleCapacityByTimeframe: map[string]int{"1d": 5, "1D": 6}}, true},
		{"sub-millisecond trade bucket", store.Config{TradeBucket: time.Microsecond}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestReset(t *testing.T) {
	s := store.New(store.Config{})
	s.SetTime(5)
	s.SetVar("k", 1)
	s.AddInfoLog(1, "x")
	s.AddClosedTrade(store.ClosedTrade{ID: "t"})
	_ = s.SetExchange(store.Exchange{Name: ex})
	_ = s.SetPosition(store.Position{Exchange: ex, Symbol: sym, Qty: 1})
	_ = s.AddOrder(store.Order{ID: "1", Exchange: ex, Symbol: sym, Status: store.OrderActive})
	_ = s.EnableGeneration(ex, sym, "5m")
	_ = s.AddCandle(ex, sym, "1m", mk(0, 1))
	_, _ = s.AddTicker(ex, sym, store.Ticker{Timestamp: 1})
	_ = s.AddDailyBalance(1, 1)

	s.Reset()

	checks := map[string]bool{
		"time":          s.Time() == 0,
		"var":           func() bool { _, ok := s.Var("k"); return !ok }(),
		"logs":          len(s.InfoLogs(0)) == 0,
		"closed trades": len(s.ClosedTrades(0)) == 0,
		"exchanges":     len(s.Exchanges()) == 0,
		"positions":     len(s.OpenPositions()) == 0,
		"orders":        len(s.Orders(ex, sym)) == 0,
		"candles":       s.Len(ex, sym, "1m")+s.Len(ex, sym, "5m") == 0,
		"tickers":       len(s.Tickers(ex, sym, 0)) == 0,
		"balances":      len(s.DailyBalances()) == 0,
		"generation":    s.AddCandle(ex, sym, "5m", store.Candle{m(0), 1, 1, 1, 1, 1}) == nil,
		"log sequence":  s.AddInfoLog(1, "y").Seq == 1,
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("%s not reset", name)
		}
	}
}

func ExampleConfig_Validate() {
	err := store.Config{LogCapacity: -5}.Validate()
	fmt.Println(err)
	// Output: store: config: LogCapacity is -5: invalid argument
}
