package main

import (
	"errors"
	"math"
)

// Analysis is the composite indicator of the SmartStrategy example.
type Analysis struct {
	Symbol    string  `json:"symbol"`
	Timeframe string  `json:"timeframe"`
	CandleTS  int64   `json:"candle_ts"` // open time of the newest candle used
	Close     float64 `json:"close"`
	SMA10     float64 `json:"sma10"`
	SMA30     float64 `json:"sma30"`
	RSI14     float64 `json:"rsi14"`
	Signal    string  `json:"signal"` // long | short | hold
}

var errTooFew = errors.New("fewer than 31 candles")

// analyse computes SMA 10, SMA 30 and RSI 14 (Wilder's smoothing) over
// closes, oldest first, and derives the signal: the fast average above the
// slow one is a long unless RSI says overbought (≥ 70), below it a short
// unless oversold (≤ 30).
func analyse(closes []float64) (sma10, sma30, rsi14 float64, signal string, err error) {
	if len(closes) < 31 {
		return 0, 0, 0, "", errTooFew
	}
	sma10, sma30 = sma(closes, 10), sma(closes, 30)
	rsi14 = rsi(closes, 14)
	switch {
	case sma10 > sma30 && rsi14 < 70:
		signal = "long"
	case sma10 < sma30 && rsi14 > 30:
		signal = "short"
	default:
		signal = "hold"
	}
	return sma10, sma30, rsi14, signal, nil
}

func sma(xs []float64, n int) float64 {
	sum := 0.0
	for _, x := range xs[len(xs)-n:] {
		sum += x
	}
	return sum / float64(n)
}

// rsi is Wilder's RSI: the first average over n changes, then smoothed
// with weight 1/n over the rest.
func rsi(closes []float64, n int) float64 {
	var gain, loss float64
	for i := 1; i <= n; i++ {
		d := closes[i] - closes[i-1]
		gain += math.Max(d, 0)
		loss += math.Max(-d, 0)
	}
	gain, loss = gain/float64(n), loss/float64(n)
	for i := n + 1; i < len(closes); i++ {
		d := closes[i] - closes[i-1]
		gain = (gain*float64(n-1) + math.Max(d, 0)) / float64(n)
		loss = (loss*float64(n-1) + math.Max(-d, 0)) / float64(n)
	}
	if loss == 0 {
		return 100
	}
	return 100 - 100/(1+gain/loss)
}
