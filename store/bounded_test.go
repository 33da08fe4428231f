package store

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestBoundedPushWraps(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		push     int
		lastN    int
		want     []int
	}{
		{"empty", 3, 0, 0, nil},
		{"below capacity", 3, 2, 0, []int{1, 2}},
		{"exactly full", 3, 3, 0, []int{1, 2, 3}},
		{"wrapped once", 3, 4, 0, []int{2, 3, 4}},
		{"wrapped many times", 3, 11, 0, []int{9, 10, 11}},
		{"last 2 across the wrap point", 4, 6, 2, []int{5, 6}},
		{"last 3 across the wrap point", 4, 6, 3, []int{4, 5, 6}},
		{"n beyond length means all", 4, 2, 9, []int{1, 2}},
		{"negative n means all", 4, 5, -1, []int{2, 3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBounded[int](tt.capacity)
			for i := 1; i <= tt.push; i++ {
				b.push(i)
			}
			if diff := cmp.Diff(tt.want, b.lastN(tt.lastN)); diff != "" {
				t.Errorf("lastN(%d) (-want +got):\n%s", tt.lastN, diff)
			}
			if got := b.appendLast([]int{-1}, tt.lastN); !slices.Equal(got, append([]int{-1}, tt.want...)) {
				t.Errorf("appendLast = %v", got)
			}
			if b.len() > tt.capacity || cap(b.buf) > tt.capacity*2 {
				t.Errorf("len %d, cap %d beyond capacity %d", b.len(), cap(b.buf), tt.capacity)
			}
			if wantDropped := max(tt.push-tt.capacity, 0); b.dropped != uint64(wantDropped) {
				t.Errorf("dropped = %d, want %d", b.dropped, wantDropped)
			}
		})
	}
}

func TestBoundedInsertAt(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		push     []int // initial content, pushed in order (may wrap)
		at       int
		v        int
		want     []int
		ok       bool
	}{
		{"middle, not full", 5, []int{10, 30, 40}, 1, 20, []int{10, 20, 30, 40}, true},
		{"front, not full", 5, []int{10, 30}, 0, 5, []int{5, 10, 30}, true},
		{"end is a push", 3, []int{10, 20, 30}, 3, 40, []int{20, 30, 40}, true},
		{"middle, full: oldest dropped", 4, []int{10, 20, 40, 50}, 2, 30, []int{20, 30, 40, 50}, true},
		{"middle, full and wrapped", 4, []int{0, 0, 10, 20, 40, 50}, 2, 30, []int{20, 30, 40, 50}, true},
		{"just after oldest, full and wrapped", 4, []int{0, 10, 30, 40, 50}, 1, 20, []int{20, 30, 40, 50}, true},
		{"front, full: refused", 3, []int{10, 20, 30}, 0, 5, []int{10, 20, 30}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBounded[int](tt.capacity)
			for _, v := range tt.push {
				b.push(v)
			}
			if ok := b.insertAt(tt.at, tt.v); ok != tt.ok {
				t.Errorf("insertAt = %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, b.lastN(0)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUpsertCandleModel checks the candle ring against a plain sorted
// slice under random appends, updates, replacements and late inserts.
func TestUpsertCandleModel(t *testing.T) {
	for _, capacity := range []int{1, 2, 3, 7, 16} {
		rng := rand.New(rand.NewPCG(1, uint64(capacity)))
		b := newBounded[Candle](capacity)
		var model []Candle // sorted by timestamp, at most capacity
		for step := range 3000 {
			ts := float64(rng.IntN(60)+1) * 60_000
			if rng.IntN(3) == 0 && len(model) > 0 { // favour the newest
				ts = model[len(model)-1][0] + float64(rng.IntN(2))*60_000
			}
			c := Candle{ts, float64(step), 0, 0, 0, 0}
			_, err := upsertCandle(&b, c)

			i, found := slices.BinarySearchFunc(model, ts, func(c Candle, ts float64) int {
				switch {
				case c[0] < ts:
					return -1
				case c[0] > ts:
					return 1
				}
				return 0
			})
			var wantErr error
			switch {
			case found:
				model[i] = c
			case len(model) == capacity && i == 0:
				wantErr = ErrTooOld
			default:
				model = slices.Insert(model, i, c)
				if len(model) > capacity {
					model = model[1:]
				}
			}
			if !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
				t.Fatalf("cap %d step %d ts %v: err %v, want %v", capacity, step, ts, err, wantErr)
			}
			if got := b.lastN(0); !slices.Equal(model, got) {
				diff := cmp.Diff(model, got, cmpopts.EquateEmpty())
				t.Fatalf("cap %d step %d ts %v (-model +ring):\n%s", capacity, step, ts, diff)
			}
		}
	}
}

func TestBucketing(t *testing.T) {
	const t0 = int64(1_704_067_200_000) // Monday 2024-01-01 00:00 UTC
	tests := []struct {
		name   string
		tf     timeframe
		monday bool
		ts     int64
		want   int64
	}{
		{"5m aligned", tf5m, false, t0, t0},
		{"5m inside", tf5m, false, t0 + 4*minuteMs + 59_999, t0},
		{"5m next", tf5m, false, t0 + 5*minuteMs, t0 + 5*minuteMs},
		{"45m", tf45m, false, t0 + 50*minuteMs, t0 + 45*minuteMs},
		{"1D", tf1D, false, t0 + 23*60*minuteMs, t0},
		{"1W Thursday by default", tf1W, false, t0, t0 - 4*dayMs},
		{"1W Monday", tf1W, true, t0 + 6*dayMs, t0},
		{"1W Monday, before the first Monday", tf1W, true, dayMs, -3 * dayMs},
		{"MondayWeeks leaves 1D alone", tf1D, true, t0 + dayMs/2, t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bucketingFor(tt.tf, tt.monday).start(tt.ts); got != tt.want {
				t.Errorf("start(%d) = %d, want %d (diff %d ms)", tt.ts, got, tt.want, got-tt.want)
			}
		})
	}
}
