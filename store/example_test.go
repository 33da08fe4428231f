package store_test

import (
	"fmt"

	"github.com/tradecache/tradecache/store"
)

// Adding 1m candles to a route generating 5m candles: the 5m series holds
// the completed bucket and the forming one. Rows are
// [timestamp, open, close, high, low, volume].
func Example() {
	s := store.New(store.Config{})
	if err := s.EnableGeneration("binance", "BTC-USDT", "5m"); err != nil {
		panic(err)
	}
	const t0 = 1_704_067_200_000 // 2024-01-01 00:00 UTC
	for i, c := range [][5]float64{
		// open, close, high, low, volume
		{100, 101, 102, 99, 1},
		{101, 103, 104, 100, 2},
		{103, 102, 105, 101, 3},
		{102, 104, 104, 101, 4},
		{104, 106, 107, 103, 5},
		{106, 105, 108, 104, 1}, // first minute of the next bucket
	} {
		ts := float64(t0 + int64(i)*60_000)
		if err := s.AddCandle("binance", "BTC-USDT", "1m", store.Candle{ts, c[0], c[1], c[2], c[3], c[4]}); err != nil {
			panic(err)
		}
	}
	for _, c := range s.Candles("binance", "BTC-USDT", "5m", 0) {
		fmt.Printf("%.0f O=%v C=%v H=%v L=%v V=%v\n", c[store.ColTimestamp],
			c[store.ColOpen], c[store.ColClose], c[store.ColHigh], c[store.ColLow], c[store.ColVolume])
	}
	// Output:
	// 1704067200000 O=100 C=106 H=107 L=99 V=15
	// 1704067500000 O=106 C=105 H=108 L=104 V=1
}
