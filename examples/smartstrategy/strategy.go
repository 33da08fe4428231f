package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tradecache/tradecache/bus"
	"github.com/tradecache/tradecache/examples/ta"
	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/store"
)

// IndicatorTTL is how long the indicator stays in the file cache: Jesse's
// expire_seconds=1800.
const IndicatorTTL = 1800 * time.Second

// Threshold is the indicator value above which the signal is bullish and
// a flat strategy goes long.
const Threshold = 50

var (
	// ErrNotPublished is wrapped by ShouldLong's error when the decision
	// was made but the analysis could not be published.
	ErrNotPublished = errors.New("analysis not published")
)

// Analysis is the data of the strategy_analysis event, Jesse's
// {'symbol', 'indicator_value', 'signal'}.
type Analysis struct {
	Symbol         string  `json:"symbol"`
	IndicatorValue float64 `json:"indicator_value"`
	Signal         string  `json:"signal"` // bullish above Threshold, else bearish
}

// SmartStrategy is Jesse's SmartStrategy example: a complex indicator
// kept in the file cache, an analysis published as an event, and a long
// entry when the indicator is high and the position flat.
type SmartStrategy struct {
	// Exchange, Symbol and Timeframe name the strategy's route and
	// candles in Store.
	Exchange, Symbol, Timeframe string
	// Store is the runtime state: candles and the position (kept live by
	// a storefeed.Feeder in the program).
	Store *store.Store
	// Cache holds the indicator between calls.
	Cache *filecache.Cache
	// Events receives strategy_analysis (the publisher adds its mode:
	// live.strategy_analysis).
	Events bus.Publisher
}

// CacheKey is Jesse's f"{self.symbol}_complex_indicator".
func (s *SmartStrategy) CacheKey() string { return s.Symbol + "_complex_indicator" }

// ComplexIndicator returns the cached indicator, or computes it over the
// closes of the strategy's candles in the Store and caches it for
// IndicatorTTL. It reports whether the value came from the cache.
//
// As in Jesse's example, the cache key names the symbol only and the file
// cache renews an entry at each hit (sliding expiry, like Jesse's cache):
// a strategy that asks at least every 30 minutes keeps the first value.
func (s *SmartStrategy) ComplexIndicator() (value float64, cached bool, err error) {
	v, ok, err := filecache.GetJSON[float64](s.Cache, s.CacheKey())
	if err != nil || ok {
		return v, ok, err
	}
	candles := s.Store.Candles(s.Exchange, s.Symbol, s.Timeframe, 0)
	closes := make([]float64, len(candles))
	for i, c := range candles {
		closes[i] = c[store.ColClose]
	}
	if v, err = ComplexIndicator(closes); err != nil {
		return 0, false, fmt.Errorf("%s %s: %w", s.Symbol, s.Timeframe, err)
	}
	if err := filecache.SetJSON(s.Cache, s.CacheKey(), v, IndicatorTTL); err != nil {
		return v, false, err
	}
	return v, false, nil
}

// ShouldLong is Jesse's should_long: it publishes the analysis as
// strategy_analysis and returns true only when the indicator is above
// Threshold and the position in the Store is flat (qty 0). When the
// analysis cannot be published the decision is still returned, with an
// error wrapping ErrNotPublished.
func (s *SmartStrategy) ShouldLong(ctx context.Context) (bool, error) {
	indicator, _, err := s.ComplexIndicator()
	if err != nil {
		return false, err
	}
	signal := "bearish"
	if indicator > Threshold {
		signal = "bullish"
	}
	pos, _ := s.Store.Position(s.Exchange, s.Symbol)
	decision := indicator > Threshold && pos.Qty == 0
	if err := s.Events.Publish(ctx, "strategy_analysis", Analysis{Symbol: s.Symbol, IndicatorValue: indicator, Signal: signal}); err != nil {
		return decision, fmt.Errorf("%w: %w", ErrNotPublished, err)
	}
	return decision, nil
}

// ComplexIndicator is the SmartStrategy's indicator over closes, oldest
// first: (SMA10 / SMA30 − 1) × 100 + RSI14, Jesse's
// (ta.sma(candles, 10) / ta.sma(candles, 30) - 1) * 100 + ta.rsi(candles, 14).
func ComplexIndicator(closes []float64) (float64, error) {
	fast, err := ta.SMA(closes, 10)
	if err != nil {
		return 0, err
	}
	slow, err := ta.SMA(closes, 30)
	if err != nil {
		return 0, err
	}
	rsi, err := ta.RSI(closes, 14)
	if err != nil {
		return 0, err
	}
	return (fast/slow-1)*100 + rsi, nil
}
