package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/internal/testenv"
	"github.com/tradecache/tradecache/store"
)

// events collects what a bus delivers.
type events struct {
	mu  sync.Mutex
	evs []bus.Event
}

func (e *events) all() []bus.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]bus.Event(nil), e.evs...)
}

// listen subscribes to b until the test ends.
func listen(t *testing.T, b *bus.Local) *events {
	t.Helper()
	e := &events{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		b.Subscribe(ctx, func(ev bus.Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() })
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	testenv.Eventually(t, time.Second, func() bool { return b.Stats().Subscribers == 1 }, "not subscribed")
	return e
}

// strategyOver returns a SmartStrategy whose Store holds 1m candles with
// these closes and a BTCUSDT position of qty.
func strategyOver(t *testing.T, closes []float64, qty float64, fc *filecache.Cache, b bus.Publisher) *SmartStrategy {
	t.Helper()
	st := store.New(store.Config{})
	setCloses(t, st, closes)
	if err := st.SetPosition(store.Position{Exchange: "binance", Symbol: "BTCUSDT", Qty: qty, EntryPrice: 100}); err != nil {
		t.Fatal(err)
	}
	return &SmartStrategy{Exchange: "binance", Symbol: "BTCUSDT", Timeframe: "1m", Store: st, Cache: fc, Events: b}
}

func setCloses(t *testing.T, st *store.Store, closes []float64) {
	t.Helper()
	for i, c := range closes {
		if err := st.AddCandle("binance", "BTCUSDT", "1m", store.Candle{float64(60_000 * (i + 1)), c, c, c, c, 1}); err != nil {
			t.Fatal(err)
		}
	}
}

func openCache(t *testing.T, now func() time.Time) *filecache.Cache {
	t.Helper()
	fc, err := filecache.Open(t.TempDir(), filecache.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fc.Close() })
	return fc
}

func TestShouldLong(t *testing.T) {
	rising, falling := seq(1, 1, 31), seq(31, -1, 31)
	bullish := 1000/16.5 + 100 // see TestComplexIndicatorHandComputed
	bearish := -1000 / 15.5
	tests := []struct {
		name   string
		closes []float64
		qty    float64
		want   bool
		data   Analysis
	}{
		{"above 50 and flat: long", rising, 0, true, Analysis{"BTCUSDT", bullish, "bullish"}},
		{"above 50 but long already", rising, 0.5, false, Analysis{"BTCUSDT", bullish, "bullish"}},
		{"above 50 but short", rising, -0.5, false, Analysis{"BTCUSDT", bullish, "bullish"}},
		{"below 50 and flat", falling, 0, false, Analysis{"BTCUSDT", bearish, "bearish"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bus.NewLocal(bus.LocalConfig{Mode: "livetrade"})
			evs := listen(t, b)
			s := strategyOver(t, tt.closes, tt.qty, openCache(t, nil), b)
			got, err := s.ShouldLong(context.Background())
			if err != nil || got != tt.want {
				t.Fatalf("ShouldLong = %v, %v; want %v", got, err, tt.want)
			}
			testenv.Eventually(t, time.Second, func() bool { return len(evs.all()) == 1 }, "no event")
			ev := evs.all()[0]
			if ev.Name != "livetrade.strategy_analysis" {
				t.Errorf("event %q, want livetrade.strategy_analysis", ev.Name)
			}
			// Exactly Jesse's three fields.
			var fields map[string]any
			if err := json.Unmarshal(ev.Data, &fields); err != nil || len(fields) != 3 {
				t.Errorf("data %s: want symbol, indicator_value, signal", ev.Data)
			}
			var a Analysis
			if err := json.Unmarshal(ev.Data, &a); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.data, a, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("analysis (-want +got):\n%s", diff)
			}
		})
	}
}

// The indicator lives in the file cache under {symbol}_complex_indicator
// for 1800 s without a read (the cache's expiry slides, as Jesse's does).
func TestIndicatorCachedForHalfAnHour(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	fc := openCache(t, clock)
	s := strategyOver(t, seq(1, 1, 31), 0, fc, bus.NewLocal(bus.LocalConfig{}))

	type step struct {
		Value  float64
		Cached bool
	}
	var got []step
	indicator := func() {
		v, cached, err := s.ComplexIndicator()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, step{v, cached})
	}
	indicator() // computed and cached
	if v, ok, err := filecache.GetJSON[float64](fc, "BTCUSDT_complex_indicator"); err != nil || !ok || v != got[0].Value {
		t.Fatalf("BTCUSDT_complex_indicator = %v, %v, %v; want %v", v, ok, err, got[0].Value)
	}
	setCloses(t, s.Store, seq(31, -1, 31)) // the market turns
	indicator()                            // still the cached value
	advance(IndicatorTTL - time.Second)
	indicator() // cached; the read renews it
	advance(IndicatorTTL - time.Second)
	indicator() // cached still
	advance(IndicatorTTL + time.Second)
	indicator() // expired: computed over the new candles
	bullish, bearish := 1000/16.5+100, -1000/15.5
	want := []step{{bullish, false}, {bullish, true}, {bullish, true}, {bullish, true}, {bearish, false}}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("indicator over time (-want +got):\n%s", diff)
	}
}

func TestTooFewCandles(t *testing.T) {
	s := strategyOver(t, seq(1, 1, 29), 0, openCache(t, nil), bus.NewLocal(bus.LocalConfig{}))
	if _, err := s.ShouldLong(context.Background()); err == nil {
		t.Fatal("a decision over 29 candles")
	}
	if _, ok, _ := s.Cache.Get(s.CacheKey()); ok {
		t.Error("an indicator cached over 29 candles")
	}
}

// The event channel comes from the environment alone: APP_PORT (9000 by
// default) names it, REDIS_URL or Jesse's REDIS_HOST/REDIS_PORT find Redis.
func TestPublisherFindsTheChannel(t *testing.T) {
	r := testenv.Shared(t)
	port := strings.TrimPrefix(r.Addr(), "127.0.0.1:")
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"REDIS_URL, default APP_PORT", map[string]string{"REDIS_URL": r.URL()}, "9000:channel:1"},
		{"REDIS_URL and APP_PORT", map[string]string{"REDIS_URL": r.URL(), "APP_PORT": "9100"}, "9100:channel:1"},
		{"Jesse's REDIS_HOST and REDIS_PORT", map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": port}, "9000:channel:1"},
	}
	for _, tt := range tests {
		getenv := func(k string) string { return tt.env[k] }
		p, closeBus, err := publisher(context.Background(), options{redis: getenv("REDIS_URL"), mode: "papertrade"}, getenv)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		rb, ok := p.(*bus.Redis)
		if !ok {
			t.Fatalf("%s: publisher %T, want *bus.Redis", tt.name, p)
		}
		if got := rb.Channel(); got != tt.want {
			t.Errorf("%s: channel %q, want %q", tt.name, got, tt.want)
		}
		closeBus()
	}
	p, closeBus, err := publisher(context.Background(), options{mode: "live"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer closeBus()
	if _, ok := p.(*bus.Local); !ok {
		t.Errorf("without Redis: publisher %T, want *bus.Local", p)
	}
}
