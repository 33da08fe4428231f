package main

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tradecache/tradecache/examples/ta"
)

// seq returns from, from+step, … (n values).
func seq(from, step float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = from + step*float64(i)
	}
	return out
}

// The complex indicator, (SMA10 / SMA30 − 1) × 100 + RSI14, worked out by
// hand (package ta checks SMA and RSI alone).
func TestComplexIndicatorHandComputed(t *testing.T) {
	tests := []struct {
		name   string
		closes []float64
		want   float64
		err    error
	}{
		// Rising 1…31: SMA10 = 26.5, SMA30 = 16.5, RSI 100 → (26.5/16.5 − 1)·100 + 100.
		{"rising", seq(1, 1, 31), 1000/16.5 + 100, nil},
		// Falling 31…1: SMA10 = 5.5, SMA30 = 15.5, RSI 0 → (5.5/15.5 − 1)·100 = −1000/15.5.
		{"falling", seq(31, -1, 31), -1000 / 15.5, nil},
		// Flat: SMA10 = SMA30, RSI 0 (TA-Lib's when nothing moved) → 0.
		{"flat", seq(7, 0, 30), 0, nil},
		{"29 closes", seq(1, 1, 29), 0, ta.ErrTooFew},
	}
	for _, tt := range tests {
		got, err := ComplexIndicator(tt.closes)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}
