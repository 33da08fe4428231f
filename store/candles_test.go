package store_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/store"
)

const (
	ex  = "binance"
	sym = "BTC-USDT"
	// t0 is Monday 2024-01-01 00:00 UTC, aligned to every timeframe but
	// 3D and (Thursday) 1W.
	t0 = int64(1_704_067_200_000)
)

// m returns the timestamp of minute i after t0.
func m(i int) float64 { return float64(t0 + int64(i)*60_000) }

// c returns a 1m candle of minute i: [ts, open, close, high, low, volume].
func c(i int, open, close, high, low, vol float64) store.Candle {
	return store.Candle{m(i), open, close, high, low, vol}
}

// mk returns a candle of minute i whose values derive from k.
func mk(i int, k float64) store.Candle { return c(i, k, k+0.5, k+1, k-1, 2*k) }

func TestAddCandleRing(t *testing.T) {
	type step struct {
		c       store.Candle
		wantErr error
	}
	tests := []struct {
		name     string
		capacity int
		steps    []step
		want     [][6]float64
	}{
		{
			name:     "append below capacity",
			capacity: 4,
			steps:    []step{{c: mk(0, 1)}, {c: mk(1, 2)}, {c: mk(2, 3)}},
			want:     [][6]float64{mk(0, 1), mk(1, 2), mk(2, 3)},
		},
		{
			name:     "wraparound drops the oldest",
			capacity: 3,
			steps:    []step{{c: mk(0, 1)}, {c: mk(1, 2)}, {c: mk(2, 3)}, {c: mk(3, 4)}, {c: mk(4, 5)}},
			want:     [][6]float64{mk(2, 3), mk(3, 4), mk(4, 5)},
		},
		{
			name:     "update in place of the open candle",
			capacity: 3,
			steps:    []step{{c: mk(0, 1)}, {c: mk(1, 2)}, {c: mk(1, 7)}, {c: mk(1, 8)}},
			want:     [][6]float64{mk(0, 1), mk(1, 8)},
		},
		{
			name:     "update in place after wraparound",
			capacity: 2,
			steps:    []step{{c: mk(0, 1)}, {c: mk(1, 2)}, {c: mk(2, 3)}, {c: mk(2, 9)}},
			want:     [][6]float64{mk(1, 2), mk(2, 9)},
		},
		{
			name:     "late insert keeps order",
			capacity: 5,
			steps:    []step{{c: mk(0, 1)}, {c: mk(3, 4)}, {c: mk(4, 5)}, {c: mk(1, 2)}, {c: mk(2, 3)}},
			want:     [][6]float64{mk(0, 1), mk(1, 2), mk(2, 3), mk(3, 4), mk(4, 5)},
		},
		{
			name:     "late insert into a full wrapped ring drops the oldest",
			capacity: 3,
			steps:    []step{{c: mk(0, 1)}, {c: mk(1, 2)}, {c: mk(3, 4)}, {c: mk(5, 6)}, {c: mk(4, 5)}},
			want:     [][6]float64{mk(3, 4), mk(4, 5), mk(5, 6)},
		},
		{
			name:     "late candle older than a full ring is refused",
			capacity: 2,
			steps:    []step{{c: mk(5, 1)}, {c: mk(6, 2)}, {c: mk(4, 9), wantErr: store.ErrTooOld}},
			want:     [][6]float64{mk(5, 1), mk(6, 2)},
		},
		{
			name:     "late candle older than a ring not full is inserted first",
			capacity: 3,
			steps:    []step{{c: mk(5, 1)}, {c: mk(6, 2)}, {c: mk(4, 9)}},
			want:     [][6]float64{mk(4, 9), mk(5, 1), mk(6, 2)},
		},
		{
			name:     "duplicate timestamps replace, never add",
			capacity: 4,
			steps:    []step{{c: mk(0, 1)}, {c: mk(1, 2)}, {c: mk(2, 3)}, {c: mk(0, 10)}, {c: mk(1, 20)}, {c: mk(0, 11)}},
			want:     [][6]float64{mk(0, 11), mk(1, 20), mk(2, 3)},
		},
		{
			name:     "invalid candles change nothing",
			capacity: 4,
			steps: []step{
				{c: mk(0, 1)},
				{c: store.Candle{0, 1, 1, 1, 1, 1}, wantErr: store.ErrInvalidCandle},
				{c: store.Candle{-60_000, 1, 1, 1, 1, 1}, wantErr: store.ErrInvalidCandle},
				{c: store.Candle{m(1) + 0.5, 1, 1, 1, 1, 1}, wantErr: store.ErrInvalidCandle},
				{c: store.Candle{m(1) + 1000, 1, 1, 1, 1, 1}, wantErr: store.ErrInvalidCandle},
				{c: c(1, math.NaN(), 1, 1, 1, 1), wantErr: store.ErrInvalidCandle},
				{c: c(1, 1, 1, math.Inf(1), 1, 1), wantErr: store.ErrInvalidCandle},
				{c: c(1, 1, 1, 1, 1, math.Inf(-1)), wantErr: store.ErrInvalidCandle},
				{c: store.Candle{math.Inf(1), 1, 1, 1, 1, 1}, wantErr: store.ErrInvalidCandle},
			},
			want: [][6]float64{mk(0, 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store.New(store.Config{CandleCapacity: tt.capacity})
			for i, st := range tt.steps {
				err := s.AddCandle(ex, sym, "1m", st.c)
				if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
					t.Fatalf("step %d: AddCandle(%v) = %v, want %v", i, st.c, err, st.wantErr)
				}
			}
			if diff := cmp.Diff(tt.want, s.Candles(ex, sym, "1m", 0)); diff != "" {
				t.Errorf("Candles (-want +got):\n%s", diff)
			}
			if got := s.Len(ex, sym, "1m"); got != len(tt.want) {
				t.Errorf("Len = %d, want %d", got, len(tt.want))
			}
			cur, ok := s.CurrentCandle(ex, sym, "1m")
			if !ok || cur != tt.want[len(tt.want)-1] {
				t.Errorf("CurrentCandle = %v, %v; want %v", cur, ok, tt.want[len(tt.want)-1])
			}
			for _, w := range tt.want {
				if got, ok := s.CandleAt(ex, sym, "1m", int64(w[0])); !ok || got != w {
					t.Errorf("CandleAt(%v) = %v, %v", w[0], got, ok)
				}
			}
		})
	}
}

func TestCandlesReadsAreCopies(t *testing.T) {
	s := store.New(store.Config{CandleCapacity: 3})
	for i := range 3 {
		if err := s.AddCandle(ex, sym, "1m", mk(i, float64(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Candles(ex, sym, "1m", 2)
	want := [][6]float64{mk(1, 1), mk(2, 2)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Candles(2) (-want +got):\n%s", diff)
	}
	// Writes after the read: update in place, wrap, late replace.
	for _, c := range []store.Candle{mk(2, 50), mk(3, 60), mk(4, 70), mk(3, 61)} {
		if err := s.AddCandle(ex, sym, "1m", c); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("returned slice changed by later writes (-want +got):\n%s", diff)
	}
	// And the caller's writes do not reach the store.
	got[0][1] = -1
	if diff := cmp.Diff([][6]float64{mk(2, 50), mk(3, 61), mk(4, 70)}, s.Candles(ex, sym, "1m", 0)); diff != "" {
		t.Errorf("store content (-want +got):\n%s", diff)
	}
	buf := make([][6]float64, 0, 8)
	buf = s.AppendCandles(buf, ex, sym, "1m", 2)
	buf = s.AppendCandles(buf, ex, sym, "1m", 1)
	if diff := cmp.Diff([][6]float64{mk(3, 61), mk(4, 70), mk(4, 70)}, buf); diff != "" {
		t.Errorf("AppendCandles (-want +got):\n%s", diff)
	}
}

func TestCandlesArguments(t *testing.T) {
	s := store.New(store.Config{})
	for i := range 5 {
		if err := s.AddCandle(ex, sym, "1m", mk(i, float64(i))); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name         string
		ex, sym, tf  string
		n            int
		wantLen      int // of the result
		wantFirstMin int
		wantSeries   int // Len of the series
	}{
		{"last 2", ex, sym, "1m", 2, 2, 3, 5},
		{"all with 0", ex, sym, "1m", 0, 5, 0, 5},
		{"all with negative", ex, sym, "1m", -3, 5, 0, 5},
		{"all when n exceeds", ex, sym, "1m", 99, 5, 0, 5},
		{"unknown symbol", ex, "ETH-USDT", "1m", 2, 0, 0, 0},
		{"unknown exchange", "bybit", sym, "1m", 2, 0, 0, 0},
		{"empty timeframe series", ex, sym, "5m", 2, 0, 0, 0},
		{"invalid timeframe", ex, sym, "7m", 2, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.Candles(tt.ex, tt.sym, tt.tf, tt.n)
			if len(got) != tt.wantLen {
				t.Fatalf("len = %d, want %d", len(got), tt.wantLen)
			}
			if tt.wantLen > 0 && got[0][0] != m(tt.wantFirstMin) {
				t.Errorf("first ts = %v, want minute %d", got[0][0], tt.wantFirstMin)
			}
			if n := s.Len(tt.ex, tt.sym, tt.tf); n != tt.wantSeries {
				t.Errorf("Len = %d, want %d", n, tt.wantSeries)
			}
			if _, ok := s.CurrentCandle(tt.ex, tt.sym, tt.tf); ok != (tt.wantSeries > 0) {
				t.Errorf("CurrentCandle ok = %v", ok)
			}
		})
	}
	for _, tt := range []struct {
		name        string
		ex, sym, tf string
		want        error
	}{
		{"unknown timeframe", ex, sym, "7m", store.ErrUnknownTimeframe},
		{"month unsupported", ex, sym, "1M", store.ErrUnknownTimeframe},
		{"empty exchange", "", sym, "1m", store.ErrInvalid},
		{"empty symbol", ex, "", "1m", store.ErrInvalid},
		{"unaligned for 5m", ex, sym, "5m", store.ErrInvalidCandle},
	} {
		t.Run("add "+tt.name, func(t *testing.T) {
			err := s.AddCandle(tt.ex, tt.sym, tt.tf, mk(1, 1))
			if !errors.Is(err, tt.want) {
				t.Errorf("AddCandle = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTimeframes(t *testing.T) {
	want := []string{"1m", "3m", "5m", "15m", "30m", "45m", "1h", "2h", "3h", "4h", "6h", "8h", "12h", "1D", "3D", "1W"}
	if diff := cmp.Diff(want, store.Timeframes()); diff != "" {
		t.Errorf("Timeframes (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		tf   string
		want float64 // minutes
	}{
		{"1m", 1}, {"45m", 45}, {"12h", 720}, {"1D", 1440}, {"1d", 1440}, {"3d", 4320}, {"1W", 10080}, {"1w", 10080},
	} {
		d, err := store.TimeframeDuration(tt.tf)
		if err != nil || d.Minutes() != tt.want {
			t.Errorf("TimeframeDuration(%q) = %v, %v; want %v minutes", tt.tf, d, err, tt.want)
		}
	}
	if _, err := store.TimeframeDuration("1M"); !errors.Is(err, store.ErrUnknownTimeframe) {
		t.Errorf("TimeframeDuration(1M) error = %v", err)
	}
	// "1d" and "1D" name the same series.
	s := store.New(store.Config{})
	if err := s.AddCandle(ex, sym, "1d", store.Candle{float64(t0), 1, 2, 3, 0.5, 4}); err != nil {
		t.Fatal(err)
	}
	if got := s.Candles(ex, sym, "1D", 0); !slices.Equal(got, [][6]float64{{float64(t0), 1, 2, 3, 0.5, 4}}) {
		t.Errorf("1D = %v", got)
	}
}
