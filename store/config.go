package store

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Config. Each list the store keeps is bounded; these are the
// bounds used when the corresponding Config field is zero.
const (
	// DefaultCandleCapacity is one week of 1m candles: enough to generate
	// every timeframe up to 1W from 1m, and Jesse's 210-candle warm-up on
	// any timeframe. A full series takes 10080 × 48 B ≈ 484 KB; storage
	// grows as candles arrive, so a short series takes less.
	DefaultCandleCapacity = 10080
	// DefaultLogCapacity bounds the info log and, separately, the error log.
	DefaultLogCapacity = 1000
	// DefaultClosedTradeCapacity bounds the completed-trade list.
	DefaultClosedTradeCapacity = 10_000
	// DefaultOrderHistoryCapacity bounds the orders held per route.
	DefaultOrderHistoryCapacity = 1000
	// DefaultDailyBalanceCapacity is ten years of daily balances.
	DefaultDailyBalanceCapacity = 3650
	// DefaultTickerCapacity is Jesse's ticker bound (drop_at=120).
	DefaultTickerCapacity = 120
	// DefaultTradeCapacity is Jesse's trade-bucket bound (drop_at=120).
	DefaultTradeCapacity = 120
	// DefaultOrderbookCapacity is Jesse's orderbook-snapshot bound (60).
	DefaultOrderbookCapacity = 60
	// DefaultOrderbookDepth is Jesse's 50 levels per side.
	DefaultOrderbookDepth = 50
	// DefaultTickerThrottle is Jesse's minimum spacing of stored tickers.
	DefaultTickerThrottle = time.Second
	// DefaultOrderbookThrottle is Jesse's minimum spacing of snapshots.
	DefaultOrderbookThrottle = time.Second
	// DefaultTradeBucket is Jesse's trade aggregation window.
	DefaultTradeBucket = time.Second
)

// Config bounds the store's lists and sets its throttles. The zero Config
// is valid: every zero field means the default. New never fails; Validate
// reports what New would ignore or replace.
type Config struct {
	// CandleCapacity is the number of candles kept per (exchange, symbol,
	// timeframe) series; the oldest is dropped when a new one arrives.
	// Generating a timeframe from 1m requires the 1m series to hold at
	// least one bucket of it (1440 for 1D, 10080 for 1W).
	CandleCapacity int
	// CandleCapacityByTimeframe overrides CandleCapacity for some
	// timeframes, e.g. {"1m": 20160, "4h": 500}. Keys are timeframe names
	// as accepted by AddCandle.
	CandleCapacityByTimeframe map[string]int
	// LogCapacity bounds the info log and the error log, each.
	LogCapacity int
	// ClosedTradeCapacity bounds the list of completed trades.
	ClosedTradeCapacity int
	// OrderHistoryCapacity bounds the orders kept per route. When it is
	// exceeded the oldest non-active order is dropped; active orders are
	// never dropped, so a route with more active orders than this holds
	// them all.
	OrderHistoryCapacity int
	// DailyBalanceCapacity bounds the daily balance history.
	DailyBalanceCapacity int
	// TickerCapacity, TradeCapacity and OrderbookCapacity bound the tickers,
	// aggregated trade buckets and orderbook snapshots kept per route.
	TickerCapacity, TradeCapacity, OrderbookCapacity int
	// OrderbookDepth is the number of levels kept per side of an orderbook.
	OrderbookDepth int
	// TickerThrottle is the minimum spacing between the timestamps of two
	// stored tickers of a route; a ticker arriving sooner is not stored.
	// A negative value stores every ticker.
	TickerThrottle time.Duration
	// OrderbookThrottle is the minimum spacing between two stored
	// orderbook snapshots of a route. The latest orderbook is always kept;
	// only the snapshot history is throttled. A negative value snapshots
	// every orderbook.
	OrderbookThrottle time.Duration
	// TradeBucket is the window over which trades are aggregated, at
	// least a millisecond; New replaces a shorter or negative one by the
	// default.
	TradeBucket time.Duration
	// MondayWeeks starts 1W buckets on Monday 00:00 UTC, as Binance does.
	// By default a 1W bucket starts at ts - ts%1W, which, the Unix epoch
	// being a Thursday, is Thursday 00:00 UTC (Jesse's behaviour).
	MondayWeeks bool
}

// Validate reports the fields New would replace by a default or ignore:
// negative capacities, a TradeBucket below a millisecond, and capacity
// overrides for unknown timeframes, with a non-positive value, or naming
// one timeframe twice ("1d" and "1D").
func (c Config) Validate() error {
	var errs []error
	for name, v := range map[string]int{
		"CandleCapacity":       c.CandleCapacity,
		"LogCapacity":          c.LogCapacity,
		"ClosedTradeCapacity":  c.ClosedTradeCapacity,
		"OrderHistoryCapacity": c.OrderHistoryCapacity,
		"DailyBalanceCapacity": c.DailyBalanceCapacity,
		"TickerCapacity":       c.TickerCapacity,
		"TradeCapacity":        c.TradeCapacity,
		"OrderbookCapacity":    c.OrderbookCapacity,
		"OrderbookDepth":       c.OrderbookDepth,
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s is %d: %w", name, v, ErrInvalid))
		}
	}
	if c.TradeBucket < 0 || (c.TradeBucket > 0 && c.TradeBucket < time.Millisecond) {
		errs = append(errs, fmt.Errorf("TradeBucket is %v, not 0 or at least 1ms: %w", c.TradeBucket, ErrInvalid))
	}
	seen := make(map[timeframe]string)
	for name, v := range c.CandleCapacityByTimeframe {
		tf, err := parseTimeframe(name)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("CandleCapacityByTimeframe: %w", err))
		case v <= 0:
			errs = append(errs, fmt.Errorf("CandleCapacityByTimeframe[%q] is %d: %w", name, v, ErrInvalid))
		case seen[tf] != "":
			errs = append(errs, fmt.Errorf("CandleCapacityByTimeframe: %q and %q name the same timeframe: %w", seen[tf], name, ErrInvalid))
		}
		seen[tf] = name
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: config: %w", err)
	}
	return nil
}

// withDefaults returns c with every zero or negative field replaced by its
// default, throttles excepted (negative disables them), and with the
// per-timeframe overrides copied into an array.
func (c Config) withDefaults() (Config, [tfEnd]int) {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.CandleCapacity, DefaultCandleCapacity)
	def(&c.LogCapacity, DefaultLogCapacity)
	def(&c.ClosedTradeCapacity, DefaultClosedTradeCapacity)
	def(&c.OrderHistoryCapacity, DefaultOrderHistoryCapacity)
	def(&c.DailyBalanceCapacity, DefaultDailyBalanceCapacity)
	def(&c.TickerCapacity, DefaultTickerCapacity)
	def(&c.TradeCapacity, DefaultTradeCapacity)
	def(&c.OrderbookCapacity, DefaultOrderbookCapacity)
	def(&c.OrderbookDepth, DefaultOrderbookDepth)
	if c.TickerThrottle == 0 {
		c.TickerThrottle = DefaultTickerThrottle
	}
	if c.OrderbookThrottle == 0 {
		c.OrderbookThrottle = DefaultOrderbookThrottle
	}
	if c.TradeBucket < time.Millisecond {
		c.TradeBucket = DefaultTradeBucket
	}
	var caps [tfEnd]int
	for tf := tf1m; tf < tfEnd; tf++ {
		caps[tf] = c.CandleCapacity
	}
	overrides := make(map[string]int, len(c.CandleCapacityByTimeframe))
	for name, v := range c.CandleCapacityByTimeframe {
		tf, err := parseTimeframe(name)
		if err != nil || v <= 0 {
			continue
		}
		caps[tf] = v
		overrides[tf.String()] = v
	}
	c.CandleCapacityByTimeframe = overrides
	return c, caps
}
