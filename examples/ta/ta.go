// Package ta holds the indicators Jesse's examples call as ta.sma and
// ta.rsi, computed as Jesse computes them (with TA-Lib) for the last value
// (sequential=False): over the newest WarmupCandles candles.
package ta

import (
	"errors"
	"fmt"
)

// ErrTooFew is wrapped by an indicator's error when there are fewer
// values than its period needs (Jesse's TA-Lib call would return NaN).
var ErrTooFew = errors.New("ta: not enough candles")

// WarmupCandles is how many of the newest candles Jesse's indicators read
// when asked for the last value only (sequential=False): its
// env.data.warmup_candles_num, 240 by default.
const WarmupCandles = 240

// SMA is the simple moving average of the last n values, as Jesse's
// ta.sma(candles, n) (TA-Lib's SMA, last value).
func SMA(xs []float64, n int) (float64, error) {
	if n < 1 || len(xs) < n {
		return 0, fmt.Errorf("SMA %d of %d values: %w", n, len(xs), ErrTooFew)
	}
	sum := 0.0
	for _, x := range xs[len(xs)-n:] {
		sum += x
	}
	return sum / float64(n), nil
}

// RSI is Wilder's relative strength index of the last close, as Jesse's
// ta.rsi(candles, n) computes it with TA-Lib: over the newest 240 closes,
// the average gain and loss of the first n changes seed it, each later
// change is smoothed in with weight 1/n, and RSI = 100 × gain / (gain +
// loss), which is 100 − 100 / (1 + gain/loss), and 0 when nothing moved.
func RSI(closes []float64, n int) (float64, error) {
	if len(closes) > WarmupCandles {
		closes = closes[len(closes)-WarmupCandles:]
	}
	if n < 1 || len(closes) < n+1 {
		return 0, fmt.Errorf("RSI %d of %d closes: %w", n, len(closes), ErrTooFew)
	}
	var gain, loss float64
	for i := 1; i <= n; i++ {
		d := closes[i] - closes[i-1]
		gain += max(d, 0)
		loss += max(-d, 0)
	}
	gain, loss = gain/float64(n), loss/float64(n)
	for i := n + 1; i < len(closes); i++ {
		d := closes[i] - closes[i-1]
		gain = (gain*float64(n-1) + max(d, 0)) / float64(n)
		loss = (loss*float64(n-1) + max(-d, 0)) / float64(n)
	}
	if gain+loss == 0 {
		return 0, nil
	}
	return 100 * gain / (gain + loss), nil
}
