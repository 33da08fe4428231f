package store_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/store"
)

// The expected candles below are computed by hand from the 1m candles of
// each case; columns are [ts, open, close, high, low, volume].
func TestGenerationHandComputed(t *testing.T) {
	tests := []struct {
		name  string
		cfg   store.Config
		gen   []string
		steps []store.Candle // 1m candles, in the order they arrive
		want  map[string][][6]float64
		// enableFirstOnly skips the variant enabling generation after the
		// 1m candles: with eviction the result differs by design.
		enableFirstOnly bool
	}{
		{
			name: "complete buckets and the forming one",
			gen:  []string{"5m"},
			steps: []store.Candle{
				c(0, 100, 101, 102, 99, 1),
				c(1, 101, 103, 104, 100, 2),
				c(2, 103, 102, 105, 101, 3),
				c(3, 102, 104, 104, 101, 4),
				c(4, 104, 106, 107, 103, 5),
				c(5, 106, 105, 108, 104, 1),
				c(6, 105, 103, 106, 102, 2),
				c(7, 103, 104, 105, 100, 1.5),
				c(8, 104, 108, 109, 103, 2.5),
				c(9, 108, 107, 110, 106, 3),
				c(10, 107, 109, 111, 105, 4),
			},
			want: map[string][][6]float64{"5m": {
				{m(0), 100, 106, 107, 99, 15},
				{m(5), 106, 107, 110, 100, 10},
				{m(10), 107, 109, 111, 105, 4},
			}},
		},
		{
			name: "forming candle updated in place, high lowered by an update",
			gen:  []string{"5m"},
			steps: []store.Candle{
				c(0, 100, 101, 110, 99, 1),
				c(0, 100, 103, 106, 98, 2), // high 110 → 106
				c(1, 103, 102, 104, 101, 3),
				c(1, 103, 100, 103, 97, 4),
				c(1, 103, 101, 105, 97, 5),
			},
			want: map[string][][6]float64{"5m": {
				{m(0), 100, 101, 106, 97, 7},
			}},
		},
		{
			name: "missing minutes: no candle invented",
			gen:  []string{"5m"},
			steps: []store.Candle{
				c(0, 10, 11, 12, 9, 1),
				c(1, 11, 12, 13, 10, 1),
				// minute 2 missing
				c(3, 12, 10, 12, 8, 2),
				c(4, 10, 11, 11, 10, 1),
				// minutes 5, 6 missing
				c(7, 11, 14, 15, 11, 3),
				// minute 8 missing
				c(9, 14, 13, 14, 12, 2),
				// minutes 10-14 missing: no 5m candle at minute 10
				c(15, 13, 16, 17, 13, 4),
			},
			want: map[string][][6]float64{"5m": {
				{m(0), 10, 11, 13, 8, 5},
				{m(5), 11, 13, 15, 11, 5},
				{m(15), 13, 16, 17, 13, 4},
			}},
		},
		{
			name: "late 1m candles change an already formed 5m candle",
			gen:  []string{"5m"},
			steps: []store.Candle{
				c(0, 10, 11, 12, 9, 1),
				c(1, 11, 12, 13, 10, 1),
				c(3, 12, 10, 12, 8, 2),
				c(4, 10, 11, 11, 10, 1),
				c(5, 11, 12, 12, 11, 1), // 5m@0 formed: 10 11 13 8 5
				c(2, 12, 12, 20, 7, 10), // late insert: 10 11 20 7 15
				c(0, 9, 11, 12, 9, 1),   // late replace: open 9
				c(6, 12, 13, 14, 12, 2),
			},
			want: map[string][][6]float64{"5m": {
				{m(0), 9, 11, 20, 7, 15},
				{m(5), 11, 13, 14, 11, 3},
			}},
		},
		{
			name: "late 1m candles in the forming bucket",
			gen:  []string{"5m"},
			steps: []store.Candle{
				c(5, 11, 12, 12, 11, 1),
				c(7, 12, 13, 14, 12, 2), // 11 13 14 11 3
				c(6, 12, 12, 18, 10, 4), // late insert: 11 13 18 10 7
				c(7, 12, 15, 15, 12, 3), // update newest: 11 15 18 10 8
				c(8, 15, 14, 16, 13, 1), // 11 14 18 10 9
				c(5, 10, 12, 12, 9, 1),  // late replace of the first: 10 14 18 9 9
			},
			want: map[string][][6]float64{"5m": {
				{m(5), 10, 14, 18, 9, 9},
			}},
		},
		{
			name: "3m and 15m with gaps",
			gen:  []string{"15m", "3m"},
			steps: []store.Candle{
				c(0, 1, 2, 3, 1, 1),
				c(1, 2, 3, 4, 2, 1),
				c(2, 3, 2, 3, 1, 1),
				c(14, 5, 6, 7, 4, 2),
				c(15, 6, 5, 6, 4, 3),
			},
			want: map[string][][6]float64{
				"3m": {
					{m(0), 1, 2, 4, 1, 3},
					{m(12), 5, 6, 7, 4, 2},
					{m(15), 6, 5, 6, 4, 3},
				},
				"15m": {
					{m(0), 1, 6, 7, 1, 5},
					{m(15), 6, 5, 6, 4, 3},
				},
			},
		},
		{
			name:            "late candle in a bucket partly evicted from 1m leaves it",
			cfg:             store.Config{CandleCapacity: 5},
			enableFirstOnly: true,
			gen:             []string{"5m"},
			steps: []store.Candle{
				c(0, 10, 11, 12, 9, 1),
				c(1, 11, 12, 13, 10, 1),
				c(2, 12, 10, 12, 8, 2),
				c(3, 10, 11, 11, 10, 1), // 5m@0: 10 11 13 8 5
				c(5, 11, 12, 12, 11, 1),
				c(6, 12, 13, 14, 12, 2),
				c(7, 13, 12, 13, 11, 1),
				c(8, 12, 14, 15, 12, 1), // 1m holds 3 5 6 7 8
				c(4, 11, 11, 30, 1, 9),  // 1m holds 4 5 6 7 8: minutes 0-3 gone
				c(4, 11, 11, 40, 1, 9),  // replace, same
			},
			want: map[string][][6]float64{
				"1m": {c(4, 11, 11, 40, 1, 9), c(5, 11, 12, 12, 11, 1), c(6, 12, 13, 14, 12, 2), c(7, 13, 12, 13, 11, 1), c(8, 12, 14, 15, 12, 1)},
				"5m": {
					{m(0), 10, 11, 13, 8, 5},
					{m(5), 11, 14, 15, 11, 5},
				},
			},
		},
		{
			name:            "generated series is bounded by its own capacity",
			cfg:             store.Config{CandleCapacityByTimeframe: map[string]int{"3m": 2}},
			enableFirstOnly: true,
			gen:             []string{"3m"},
			steps: []store.Candle{
				c(0, 1, 1, 1, 1, 1), c(3, 2, 2, 2, 2, 1), c(6, 3, 3, 3, 3, 1), c(9, 4, 4, 4, 4, 1),
				c(1, 9, 9, 9, 9, 9), // bucket 0 is older than the full 3m series: 3m unchanged
			},
			want: map[string][][6]float64{"3m": {
				{m(6), 3, 3, 3, 3, 1},
				{m(9), 4, 4, 4, 4, 1},
			}},
		},
	}
	for _, tt := range tests {
		orders := []string{"enable first", "enable after warm-up"}
		if tt.enableFirstOnly {
			orders = orders[:1]
		}
		for _, order := range orders {
			t.Run(tt.name+"/"+order, func(t *testing.T) {
				s := store.New(tt.cfg)
				enable := func() {
					if err := s.EnableGeneration(ex, sym, tt.gen...); err != nil {
						t.Fatal(err)
					}
				}
				if order == "enable first" {
					enable()
				}
				for i, c := range tt.steps {
					if err := s.AddCandle(ex, sym, "1m", c); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				}
				if order != "enable first" {
					enable()
				}
				for tf, want := range tt.want {
					if diff := cmp.Diff(want, s.Candles(ex, sym, tf, 0)); diff != "" {
						t.Errorf("%s candles (-want +got):\n%s", tf, diff)
					}
					if cur, _ := s.CurrentCandle(ex, sym, tf); cur != want[len(want)-1] {
						t.Errorf("%s CurrentCandle = %v", tf, cur)
					}
				}
			})
		}
	}
}

// After EnableGeneration on existing 1m candles, the next 1m candle of the
// forming bucket extends it (the prefix was set by the backfill).
func TestGenerationContinuesAfterBackfill(t *testing.T) {
	s := store.New(store.Config{})
	for _, c := range []store.Candle{
		c(5, 106, 105, 108, 104, 1),
		c(6, 105, 103, 106, 102, 2),
		c(10, 107, 109, 111, 105, 4),
	} {
		if err := s.AddCandle(ex, sym, "1m", c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EnableGeneration(ex, sym, "5m"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCandle(ex, sym, "1m", c(11, 109, 110, 112, 108, 1)); err != nil {
		t.Fatal(err)
	}
	want := [][6]float64{
		{m(5), 106, 103, 108, 102, 3},
		{m(10), 107, 110, 112, 105, 5},
	}
	if diff := cmp.Diff(want, s.Candles(ex, sym, "5m", 0)); diff != "" {
		t.Errorf("5m (-want +got):\n%s", diff)
	}
}

func TestGenerationWeekAlignment(t *testing.T) {
	const day = 24 * 60 // minutes
	tests := []struct {
		name   string
		monday bool
		want   [][6]float64
	}{
		// t0 is a Monday; ts - ts%1W is the Thursday before it.
		{"Thursday by default", false, [][6]float64{{float64(t0 - 4*day*60_000), 1, 4, 5, 0.5, 3}}},
		{"MondayWeeks", true, [][6]float64{{float64(t0), 1, 4, 5, 0.5, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store.New(store.Config{MondayWeeks: tt.monday})
			if err := s.EnableGeneration(ex, sym, "1W", "1D"); err != nil {
				t.Fatal(err)
			}
			for _, c := range []store.Candle{c(day, 1, 2, 5, 1, 1), c(2*day+30, 2, 4, 3, 0.5, 2)} {
				if err := s.AddCandle(ex, sym, "1m", c); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.want, s.Candles(ex, sym, "1W", 0)); diff != "" {
				t.Errorf("1W (-want +got):\n%s", diff)
			}
			wantDays := [][6]float64{{m(day), 1, 2, 5, 1, 1}, {m(2 * day), 2, 4, 3, 0.5, 2}}
			if diff := cmp.Diff(wantDays, s.Candles(ex, sym, "1d", 0)); diff != "" {
				t.Errorf("1D (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnableGenerationErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  store.Config
		ex   string
		tfs  []string
		want error
	}{
		{"1m is the source", store.Config{}, ex, []string{"5m", "1m"}, store.ErrInvalid},
		{"unknown timeframe", store.Config{}, ex, []string{"2m"}, store.ErrUnknownTimeframe},
		{"empty exchange", store.Config{}, "", []string{"5m"}, store.ErrInvalid},
		{"1m too small for 4h", store.Config{CandleCapacity: 239}, ex, []string{"4h"}, store.ErrCapacity},
		{"1m override large enough", store.Config{CandleCapacity: 10, CandleCapacityByTimeframe: map[string]int{"1m": 240}}, ex, []string{"4h"}, nil},
		{"twice is a no-op", store.Config{}, ex, []string{"5m", "5m", "15m"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store.New(tt.cfg)
			err := s.EnableGeneration(tt.ex, sym, tt.tfs...)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("EnableGeneration = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestGeneratedTimeframeRejectsDirectWrites(t *testing.T) {
	s := store.New(store.Config{})
	if err := s.AddCandle(ex, sym, "5m", store.Candle{m(0), 1, 1, 1, 1, 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableGeneration(ex, sym, "5m"); err != nil {
		t.Fatal(err)
	}
	err := s.AddCandle(ex, sym, "5m", store.Candle{m(5), 1, 1, 1, 1, 1})
	if !errors.Is(err, store.ErrGenerated) {
		t.Errorf("AddCandle on generated 5m = %v, want ErrGenerated", err)
	}
	// Other routes and timeframes are unaffected.
	if err := s.AddCandle(ex, "ETH-USDT", "5m", store.Candle{m(5), 1, 1, 1, 1, 1}); err != nil {
		t.Errorf("other route: %v", err)
	}
	if err := s.AddCandle(ex, sym, "15m", store.Candle{m(15), 1, 1, 1, 1, 1}); err != nil {
		t.Errorf("other timeframe: %v", err)
	}
	// Rows already present stay; generation does not touch other symbols.
	if err := s.AddCandle(ex, "ETH-USDT", "1m", mk(7, 1)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][6]float64{{m(0), 1, 1, 1, 1, 1}}, s.Candles(ex, sym, "5m", 0)); diff != "" {
		t.Errorf("5m (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][6]float64{{m(5), 1, 1, 1, 1, 1}}, s.Candles(ex, "ETH-USDT", "5m", 0)); diff != "" {
		t.Errorf("ETH 5m (-want +got):\n%s", diff)
	}
}
