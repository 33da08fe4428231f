package ta

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// seq returns from, from+step, … (n values).
func seq(from, step float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = from + step*float64(i)
	}
	return out
}

// alternating is 15 closes from 100 whose 14 changes alternate +2, −1
// (seven gains of 2, seven losses of 1), then the closes of extra changes.
func alternating(extra ...float64) []float64 {
	xs := []float64{100}
	for i := range 14 {
		d := 2.0
		if i%2 == 1 {
			d = -1
		}
		xs = append(xs, xs[len(xs)-1]+d)
	}
	for _, d := range extra {
		xs = append(xs, xs[len(xs)-1]+d)
	}
	return xs
}

// The expected values are worked out by hand in each case's comment.
func TestIndicatorsHandComputed(t *testing.T) {
	type out struct {
		V   float64
		Err error
	}
	tests := []struct {
		name string
		got  func() (float64, error)
		want out
	}{
		// SMA: the mean of the last n values.
		{"SMA 3 of 1…5", func() (float64, error) { return SMA(seq(1, 1, 5), 3) }, out{V: 4}},        // (3+4+5)/3
		{"SMA 10 of 1…31", func() (float64, error) { return SMA(seq(1, 1, 31), 10) }, out{V: 26.5}}, // (22+…+31)/10 = 265/10
		{"SMA 30 of 1…31", func() (float64, error) { return SMA(seq(1, 1, 31), 30) }, out{V: 16.5}}, // (2+…+31)/30 = 495/30
		{"SMA 30 of 29 values", func() (float64, error) { return SMA(seq(1, 1, 29), 30) }, out{Err: ErrTooFew}},

		// RSI 3 of 10, 11, 10.5, 11.5, 12, 11: changes +1, −0.5, +1, +0.5, −1.
		// Seed over the first three: gain 2/3, loss 0.5/3 = 1/6 → 100·(2/3)/(5/6) = 80.
		{"RSI 3, seed only", func() (float64, error) { return RSI([]float64{10, 11, 10.5, 11.5}, 3) }, out{V: 80}},
		// +0.5: gain (2/3·2 + 0.5)/3 = 11/18, loss (1/6·2)/3 = 2/18 → 1100/13.
		{"RSI 3, one smoothed gain", func() (float64, error) { return RSI([]float64{10, 11, 10.5, 11.5, 12}, 3) }, out{V: 1100.0 / 13}},
		// −1: gain (11/18·2)/3 = 11/27, loss (2/18·2 + 1)/3 = 11/27 → 50.
		{"RSI 3, then a loss", func() (float64, error) { return RSI([]float64{10, 11, 10.5, 11.5, 12, 11}, 3) }, out{V: 50}},
		// RSI 14, seed: gain 14/14 = 1, loss 7/14 = 0.5 → 100·1/1.5.
		{"RSI 14, seed only", func() (float64, error) { return RSI(alternating(), 14) }, out{V: 200.0 / 3}},
		// +3: gain (1·13 + 3)/14 = 8/7, loss (0.5·13)/14 = 13/28 → 100·(32/28)/(45/28) = 3200/45.
		{"RSI 14, a gain", func() (float64, error) { return RSI(alternating(3), 14) }, out{V: 3200.0 / 45}},
		// −2: gain (8/7·13)/14 = 52/49, loss (13/28·13 + 2)/14 = 225/392 → 100·416/641.
		{"RSI 14, then a loss", func() (float64, error) { return RSI(alternating(3, -2), 14) }, out{V: 41600.0 / 641}},
		{"RSI 14, only gains", func() (float64, error) { return RSI(seq(1, 1, 31), 14) }, out{V: 100}},
		{"RSI 14, only losses", func() (float64, error) { return RSI(seq(31, -1, 31), 14) }, out{V: 0}},
		{"RSI 14, nothing moved (TA-Lib: 0)", func() (float64, error) { return RSI(seq(7, 0, 31), 14) }, out{V: 0}},
		{"RSI 14 of 14 closes", func() (float64, error) { return RSI(seq(1, 1, 14), 14) }, out{Err: ErrTooFew}},
	}
	approx := cmpopts.EquateApprox(0, 1e-9)
	for _, tt := range tests {
		v, err := tt.got()
		got := out{V: v, Err: err}
		if tt.want.Err != nil {
			if !errors.Is(err, tt.want.Err) {
				t.Errorf("%s: error %v, want %v", tt.name, err, tt.want.Err)
			}
			continue
		}
		if diff := cmp.Diff(tt.want, got, approx, cmpopts.EquateErrors()); diff != "" || math.IsNaN(v) {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

// Only the newest 240 closes count, as in Jesse's ta.rsi (sequential=False
// slices the candles to its 240 warm-up candles): what comes before them
// changes nothing, what comes within them does.
func TestRSIReadsTheNewest240(t *testing.T) {
	tail := append(seq(100, 0, 223), alternating(3, -2)...) // 240 closes
	crash := append(seq(5000, -40, 100), tail...)
	calm := append(seq(100, 0, 100), tail...)
	a, _ := RSI(crash, 14)
	b, _ := RSI(calm, 14)
	c, _ := RSI(tail, 14)
	if a != b || b != c {
		t.Errorf("RSI over 340 closes differing before the newest 240: %v, %v; over the 240: %v", a, b, c)
	}
	within := append(seq(100, 0, 100), tail...)
	within[len(within)-200] = 90 // inside the newest 240
	if d, _ := RSI(within, 14); d == c {
		t.Errorf("a change within the newest 240 closes left RSI at %v", d)
	}
}
