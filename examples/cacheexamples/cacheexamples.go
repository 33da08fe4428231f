// Package cacheexamples is Jesse's other file cache examples in Go, each
// with its key and expiry as the example writes them, reading a tradecache
// node where Jesse reads its database or an exchange:
//
//	RSI                 {symbol}_RSI_{period}              3,600 s
//	historical candles  history_{symbol}_{timeframe}_{days}d  7,200 s, from the node's klines API
//	market overview     market_overview                    300 s, BTC and ETH tickers from the node
//
// Each reads the cache first and, on a miss, computes, stores with the
// expiry and returns; it reports whether the value came from the cache.
// The file cache renews an entry at each hit (sliding expiry, as Jesse's
// cache does): the expiry counts from the last read, not from the write.
package cacheexamples

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tradecache/tradecache/examples/ta"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/filecache"
	"github.com/tradecache/tradecache/store"
	"github.com/tradecache/tradecache/storefeed"
)

// Expiries, as Jesse's examples set them.
const (
	RSIExpire      = 3600 * time.Second
	HistoryExpire  = 7200 * time.Second
	OverviewExpire = 300 * time.Second
)

// RSIKey is f"{symbol}_RSI_{period}".
func RSIKey(symbol string, period int) string { return fmt.Sprintf("%s_RSI_%d", symbol, period) }

// CachedRSI returns the RSI (ta.RSI: Wilder's, as Jesse's ta.rsi) of
// symbol over period: from the cache, or computed over the closes that
// closes returns (oldest first) and cached for RSIExpire.
func CachedRSI(c *filecache.Cache, symbol string, period int, closes func() ([]float64, error)) (rsi float64, cached bool, err error) {
	key := RSIKey(symbol, period)
	if v, ok, err := filecache.GetJSON[float64](c, key); err != nil || ok {
		return v, ok, err
	}
	xs, err := closes()
	if err != nil {
		return 0, false, err
	}
	if rsi, err = ta.RSI(xs, period); err != nil {
		return 0, false, err
	}
	return rsi, false, filecache.SetJSON(c, key, rsi, RSIExpire)
}

// HistoryKey is f"history_{symbol}_{timeframe}_{days}d".
func HistoryKey(symbol, timeframe string, days int) string {
	return fmt.Sprintf("history_%s_%s_%dd", symbol, timeframe, days)
}

// HistoricalCandles returns the candles of the last days days of symbol
// and timeframe, in Jesse's column order (store.Candle), oldest first:
// from the cache, or from the node's klines API, cached for HistoryExpire.
// The days count back from the newest candle's open. A node serves at most
// storefeed.MaxKlines candles per request and holds its --window (1000 by
// default): a longer history is cut to what it serves.
func HistoricalCandles(ctx context.Context, c *filecache.Cache, node *storefeed.Client, symbol, timeframe string, days int) (candles []store.Candle, cached bool, err error) {
	if days < 1 {
		return nil, false, fmt.Errorf("history of %d days", days)
	}
	key := HistoryKey(symbol, timeframe, days)
	if v, ok, err := filecache.GetJSON[[]store.Candle](c, key); err != nil || ok {
		return v, ok, err
	}
	tf, err := store.TimeframeDuration(timeframe)
	if err != nil {
		return nil, false, err
	}
	span := time.Duration(days) * 24 * time.Hour
	ks, err := node.Klines(ctx, symbol, timeframe, int(min(int64(span/tf), storefeed.MaxKlines)))
	if err != nil {
		return nil, false, err
	}
	if len(ks) == 0 {
		return nil, false, fmt.Errorf("the node serves no %s %s klines (yet)", symbol, timeframe)
	}
	candles = []store.Candle{}
	for _, k := range ks {
		if k.OpenTime <= ks[len(ks)-1].OpenTime-span.Milliseconds() {
			continue
		}
		row, err := candleOf(k)
		if err != nil {
			return nil, false, err
		}
		candles = append(candles, row)
	}
	return candles, false, filecache.SetJSON(c, key, candles, HistoryExpire)
}

func candleOf(k exchange.Kline) (store.Candle, error) {
	c := store.Candle{float64(k.OpenTime)}
	for i, s := range []string{k.Open, k.Close, k.High, k.Low, k.Volume} {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return c, fmt.Errorf("kline %s %d: %w", k.Symbol, k.OpenTime, err)
		}
		c[i+1] = v
	}
	return c, nil
}

// OverviewKey is the market overview's key.
const OverviewKey = "market_overview"

// Overview is Jesse's market overview: {'btc_price', 'eth_price',
// 'market_sentiment', 'timestamp'}.
type Overview struct {
	BTCPrice float64 `json:"btc_price"`
	ETHPrice float64 `json:"eth_price"`
	// MarketSentiment is Sentiment of the two tickers.
	MarketSentiment float64 `json:"market_sentiment"`
	// Timestamp is when the overview was made, in Unix seconds (Jesse's
	// time.time()).
	Timestamp float64 `json:"timestamp"`
}

// Sentiment is the overview's sentiment figure: the mean 24-hour price
// change of BTC and ETH, in percent (positive: the market is up).
func Sentiment(btc, eth exchange.Ticker24h) (float64, error) {
	a, err := strconv.ParseFloat(btc.PriceChangePercent, 64)
	if err != nil {
		return 0, fmt.Errorf("BTC 24h change %q: %w", btc.PriceChangePercent, err)
	}
	b, err := strconv.ParseFloat(eth.PriceChangePercent, 64)
	if err != nil {
		return 0, fmt.Errorf("ETH 24h change %q: %w", eth.PriceChangePercent, err)
	}
	return (a + b) / 2, nil
}

// MarketOverview returns the market overview: from the cache, or made
// from the node's BTCUSDT and ETHUSDT 24hr tickers at now() and cached for
// OverviewExpire.
func MarketOverview(ctx context.Context, c *filecache.Cache, node *storefeed.Client, now func() time.Time) (o Overview, cached bool, err error) {
	if v, ok, err := filecache.GetJSON[Overview](c, OverviewKey); err != nil || ok {
		return v, ok, err
	}
	btc, err := node.Ticker24h(ctx, "BTCUSDT")
	if err != nil {
		return o, false, err
	}
	eth, err := node.Ticker24h(ctx, "ETHUSDT")
	if err != nil {
		return o, false, err
	}
	if o.BTCPrice, err = strconv.ParseFloat(btc.LastPrice, 64); err != nil {
		return o, false, fmt.Errorf("BTC price %q: %w", btc.LastPrice, err)
	}
	if o.ETHPrice, err = strconv.ParseFloat(eth.LastPrice, 64); err != nil {
		return o, false, fmt.Errorf("ETH price %q: %w", eth.LastPrice, err)
	}
	if o.MarketSentiment, err = Sentiment(btc, eth); err != nil {
		return o, false, err
	}
	o.Timestamp = float64(now().UnixMilli()) / 1000
	return o, false, filecache.SetJSON(c, OverviewKey, o, OverviewExpire)
}
