package store_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/store"
)

func TestTickerThrottle(t *testing.T) {
	tests := []struct {
		name     string
		throttle time.Duration
		ts       []int64
		stored   []bool
	}{
		{"Jesse's 1 s by default", 0, []int64{1000, 1500, 1999, 2000, 2500, 3100}, []bool{true, false, false, true, false, true}},
		{"configured 250 ms", 250 * time.Millisecond, []int64{1000, 1100, 1250, 1499, 1500}, []bool{true, false, true, false, true}},
		{"negative stores every non-older ticker", -1, []int64{1000, 1000, 1001, 999}, []bool{true, true, true, false}},
		{"older ticker never stored", 0, []int64{5000, 1000}, []bool{true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store.New(store.Config{TickerThrottle: tt.throttle})
			var want []store.Ticker
			for i, ts := range tt.ts {
				tk := store.Ticker{Timestamp: ts, Last: float64(i)}
				ok, err := s.AddTicker(ex, sym, tk)
				if err != nil || ok != tt.stored[i] {
					t.Errorf("ticker %d (ts %d): stored %v, %v; want %v", i, ts, ok, err, tt.stored[i])
				}
				if tt.stored[i] {
					want = append(want, tk)
				}
			}
			if diff := cmp.Diff(want, s.Tickers(ex, sym, 0)); diff != "" {
				t.Errorf("Tickers (-want +got):\n%s", diff)
			}
			if cur, ok := s.CurrentTicker(ex, sym); !ok || cur != want[len(want)-1] {
				t.Errorf("CurrentTicker = %+v, %v", cur, ok)
			}
		})
	}
	s := store.New(store.Config{})
	for _, bad := range []store.Ticker{{Timestamp: 0}, {Timestamp: 1, Last: math.NaN()}} {
		if _, err := s.AddTicker(ex, sym, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AddTicker(%+v) = %v", bad, err)
		}
	}
}

// The numbers are those of Jesse's test_can_add_add_trade, computed by
// hand: VWAP = (10·1 + 20·2 + 30·1 + 10·4 + 20·2) / 10 = 16.
func TestTradeBuckets(t *testing.T) {
	s := store.New(store.Config{})
	trades := []store.Trade{
		{Timestamp: 1000, Price: 10, Qty: 1, Buy: true},
		{Timestamp: 1100, Price: 20, Qty: 2},
		{Timestamp: 1200, Price: 30, Qty: 1, Buy: true},
		{Timestamp: 1500, Price: 10, Qty: 4},
		{Timestamp: 1999, Price: 20, Qty: 2, Buy: true},
	}
	for _, tr := range trades {
		if err := s.AddTrade(ex, sym, tr); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.TradeBuckets(ex, sym, 0); len(got) != 0 {
		t.Fatalf("buckets within the first second: %v", got)
	}
	first := store.TradeBucket{Timestamp: 1000, VWAP: 16, BuyQty: 4, SellQty: 6, BuyCount: 3, SellCount: 2}
	if got, ok := s.PendingTradeBucket(ex, sym); !ok || got != first {
		t.Errorf("pending = %+v, %v; want %+v", got, ok, first)
	}
	if err := s.AddTrade(ex, sym, store.Trade{Timestamp: 2000, Price: 50, Qty: 1}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.TradeBucket{first}, s.TradeBuckets(ex, sym, 0)); diff != "" {
		t.Errorf("buckets (-want +got):\n%s", diff)
	}
	if got, _ := s.CurrentTradeBucket(ex, sym); got != first {
		t.Errorf("current = %+v", got)
	}
	want := store.TradeBucket{Timestamp: 2000, VWAP: 50, SellQty: 1, SellCount: 1}
	if got, ok := s.PendingTradeBucket(ex, sym); !ok || got != want {
		t.Errorf("pending = %+v, %v; want %+v", got, ok, want)
	}
	for _, bad := range []store.Trade{{Timestamp: 1, Price: 1}, {Timestamp: 1, Qty: 1}, {Price: 1, Qty: 1}, {Timestamp: 1, Price: math.Inf(1), Qty: 1}} {
		if err := s.AddTrade(ex, sym, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AddTrade(%+v) = %v", bad, err)
		}
	}
}

func TestOrderbooks(t *testing.T) {
	lv := func(p, q float64) store.Level { return store.Level{Price: p, Qty: q} }
	s := store.New(store.Config{OrderbookDepth: 2})
	books := []struct {
		ob       store.Orderbook
		snapshot bool
		wantErr  error
	}{
		{store.Orderbook{Timestamp: 1000, Asks: []store.Level{lv(101, 1), lv(102, 2), lv(103, 3)}, Bids: []store.Level{lv(100, 1), lv(99, 2), lv(98, 3)}}, true, nil},
		{store.Orderbook{Timestamp: 1500, Asks: []store.Level{lv(101.5, 1)}, Bids: []store.Level{lv(100.5, 1)}}, false, nil}, // latest, no snapshot
		{store.Orderbook{Timestamp: 1400, Asks: []store.Level{lv(1, 1)}}, false, nil},                                        // older: ignored
		{store.Orderbook{Timestamp: 2000, Asks: []store.Level{lv(102, 1), lv(101, 1)}}, false, store.ErrInvalid},             // asks descending
		{store.Orderbook{Timestamp: 2000, Bids: []store.Level{lv(99, 1), lv(100, 1)}}, false, store.ErrInvalid},              // bids ascending
		{store.Orderbook{Timestamp: 2000, Bids: []store.Level{lv(math.NaN(), 1)}}, false, store.ErrInvalid},
		{store.Orderbook{Timestamp: 0}, false, store.ErrInvalid},
		{store.Orderbook{Timestamp: 2000, Asks: []store.Level{lv(102, 1)}, Bids: []store.Level{lv(101, 0), lv(100, 3)}}, true, nil},
	}
	for i, b := range books {
		snap, err := s.AddOrderbook(ex, sym, b.ob)
		if snap != b.snapshot || !errors.Is(err, b.wantErr) || (b.wantErr == nil && err != nil) {
			t.Errorf("book %d: snapshot %v, %v; want %v, %v", i, snap, err, b.snapshot, b.wantErr)
		}
	}
	wantSnaps := []store.Orderbook{
		{Timestamp: 1000, Asks: []store.Level{lv(101, 1), lv(102, 2)}, Bids: []store.Level{lv(100, 1), lv(99, 2)}}, // depth 2
		{Timestamp: 2000, Asks: []store.Level{lv(102, 1)}, Bids: []store.Level{lv(101, 0), lv(100, 3)}},
	}
	if diff := cmp.Diff(wantSnaps, s.Orderbooks(ex, sym, 0)); diff != "" {
		t.Errorf("snapshots (-want +got):\n%s", diff)
	}
	cur, ok := s.CurrentOrderbook(ex, sym)
	if diff := cmp.Diff(wantSnaps[1], cur); !ok || diff != "" {
		t.Errorf("current (-want +got):\n%s", diff)
	}
	cur.Asks[0].Price = 0 // a reader's copy
	if a, _ := s.BestAsk(ex, sym); a != lv(102, 1) {
		t.Errorf("best ask = %+v", a)
	}
	if b, _ := s.BestBid(ex, sym); b != lv(101, 0) {
		t.Errorf("best bid = %+v", b)
	}
	// The caller's slices are copied on the way in too.
	in := store.Orderbook{Timestamp: 3000, Asks: []store.Level{lv(105, 1)}}
	if _, err := s.AddOrderbook(ex, sym, in); err != nil {
		t.Fatal(err)
	}
	in.Asks[0].Price = 1
	if a, _ := s.BestAsk(ex, sym); a != lv(105, 1) {
		t.Errorf("best ask after caller's write = %+v", a)
	}
	if _, ok := s.BestBid(ex, sym); ok {
		t.Error("best bid of a book without bids")
	}
}
