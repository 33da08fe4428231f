package store_test

import (
	"testing"

	"github.com/tradecache/tradecache/store"
)

// BenchmarkAddCandle appends 1m candles; past 10080 the ring wraps, so this
// is the steady state of a long session.
func BenchmarkAddCandle(b *testing.B) {
	s := store.New(store.Config{})
	i := 0
	for b.Loop() {
		if err := s.AddCandle(ex, sym, "1m", mk(i, 1)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAddCandleGenerating appends 1m candles of a route generating
// all fifteen higher timeframes.
func BenchmarkAddCandleGenerating(b *testing.B) {
	s := store.New(store.Config{})
	if err := s.EnableGeneration(ex, sym, store.Timeframes()[1:]...); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if err := s.AddCandle(ex, sym, "1m", mk(i, 1)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkUpdateOpenCandle updates the forming candle in place, as a
// kline stream does several times a second.
func BenchmarkUpdateOpenCandle(b *testing.B) {
	for _, gen := range []bool{false, true} {
		name := "plain"
		if gen {
			name = "generating-15-timeframes"
		}
		b.Run(name, func(b *testing.B) {
			s := store.New(store.Config{})
			if gen {
				if err := s.EnableGeneration(ex, sym, store.Timeframes()[1:]...); err != nil {
					b.Fatal(err)
				}
			}
			for i := range 1000 {
				if err := s.AddCandle(ex, sym, "1m", mk(i, 1)); err != nil {
					b.Fatal(err)
				}
			}
			k := 0.0
			for b.Loop() {
				if err := s.AddCandle(ex, sym, "1m", mk(999, k)); err != nil {
					b.Fatal(err)
				}
				k++
			}
		})
	}
}

// BenchmarkCandlesRead reads Jesse's 210 warm-up candles from a full,
// wrapped series: Candles allocates the copy, AppendCandles reuses one.
func BenchmarkCandlesRead(b *testing.B) {
	s := store.New(store.Config{})
	for i := range store.DefaultCandleCapacity + 777 {
		if err := s.AddCandle(ex, sym, "1m", mk(i, 1)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Candles", func(b *testing.B) {
		for b.Loop() {
			if got := s.Candles(ex, sym, "1m", 210); len(got) != 210 {
				b.Fatal(len(got))
			}
		}
	})
	b.Run("AppendCandles", func(b *testing.B) {
		buf := make([][6]float64, 0, 210)
		for b.Loop() {
			if buf = s.AppendCandles(buf[:0], ex, sym, "1m", 210); len(buf) != 210 {
				b.Fatal(len(buf))
			}
		}
	})
}

// BenchmarkLateInsert inserts a missing candle in the middle of a full
// 10080-candle series (the O(n) path) and then removes the need for it by
// re-adding at a later minute.
func BenchmarkLateInsert(b *testing.B) {
	s := store.New(store.Config{})
	// Even minutes only, so odd minutes are missing.
	const n = store.DefaultCandleCapacity
	for i := range n {
		if err := s.AddCandle(ex, sym, "1m", mk(2*i, 1)); err != nil {
			b.Fatal(err)
		}
	}
	next := 2 * n
	for b.Loop() {
		// One append keeps the series full of mostly even minutes, one
		// late insert fills an odd minute in the middle.
		if err := s.AddCandle(ex, sym, "1m", mk(next, 1)); err != nil {
			b.Fatal(err)
		}
		if err := s.AddCandle(ex, sym, "1m", mk(next-n+1, 1)); err != nil {
			b.Fatal(err)
		}
		next += 2
	}
}
