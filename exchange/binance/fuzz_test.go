package binance

import (
	"errors"
	"strings"
	"testing"

	"github.com/tradecache/tradecache/exchange"
)

func FuzzDecodeFrame(f *testing.F) {
	for _, name := range []string{"ws_kline.json", "ws_ticker.json", "ws_ticker_arr.json", "ws_bookticker.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(klineEnv))
	f.Add([]byte(strings.Replace(klineEnv, `"E":1791382993250`, `"E":"1791382993250"`, 1)))
	f.Add([]byte(`{"stream":"!ticker@arr","data":[]}`))
	f.Add([]byte(`{"stream":"!ticker@arr","data":[` + tickerRow("BTCUSD_PERP", 2) + `,` + tickerRow("AUSDT", 1) + `]}`))
	f.Add([]byte(`{"result":null,"id":1}`))
	f.Add([]byte(`{"error":{"code":4,"msg":"Too many subscriptions"},"id":7}`))
	f.Add([]byte(`{"stream":"x@markPrice","data":{"e":"markPriceUpdate"}}`))
	f.Add([]byte(`{"\u0073tream":"a@b","data":{"e":"kline"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownEvent) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrUnknownEvent", err)
			}
			return
		}
		if !validStreamName(ev.Stream) {
			t.Fatalf("bad stream %q", ev.Stream)
		}
		if ev.EventTime < 0 {
			t.Fatalf("negative E %d", ev.EventTime)
		}
		switch ev.Kind {
		case exchange.EventKline:
			checkKlineSane(t, ev.Kline)
		case exchange.EventTicker:
			checkTickerSane(t, ev.Ticker)
		case exchange.EventTickers:
			for _, tk := range ev.Tickers {
				checkTickerSane(t, tk)
			}
		case exchange.EventBookTicker:
			b := ev.Book
			if !validName(b.Symbol) || b.EventTime != ev.EventTime {
				t.Fatalf("bad book %+v", b)
			}
			checkDecimals(t, b.BidPrice, b.BidQty, b.AskPrice, b.AskQty)
		default:
			t.Fatalf("bad kind %d", ev.Kind)
		}
	})
}

func FuzzDecodeKlineREST(f *testing.F) {
	f.Add(readFixture(f, "rest_klines.json"), "BTCUSDT", "1m", int64(1791382993519))
	f.Add([]byte(`[[1,1.5,"2","1","1.5","10",2,"15",3,"5","7"]]`), "ETHUSDT", "1h", int64(0))
	f.Add([]byte(`[]`), "币安人生USDT", "1M", int64(1))
	f.Add([]byte(`[["1","1","1","1","1","1","2","1","1","1","1",{}]]`), "X", "1m", int64(3))
	f.Fuzz(func(t *testing.T, b []byte, symbol, interval string, now int64) {
		ks, err := DecodeKlinesREST(b, symbol, interval, now)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		for _, k := range ks {
			if k.Symbol != symbol || k.Interval != interval {
				t.Fatalf("symbol/interval not the request's: %+v", k)
			}
			checkKlineSane(t, k)
			if k.Closed != (k.CloseTime < now) {
				t.Fatalf("Closed=%v with CloseTime %d, now %d", k.Closed, k.CloseTime, now)
			}
		}
	})
}

func checkKlineSane(t *testing.T, k exchange.Kline) {
	t.Helper()
	if !validName(k.Symbol) || !validName(k.Interval) || k.OpenTime < 0 || k.CloseTime < k.OpenTime || k.Trades < 0 {
		t.Fatalf("insane kline %+v", k)
	}
	checkDecimals(t, k.Open, k.High, k.Low, k.Close, k.Volume, k.QuoteVolume, k.TakerBuyBase, k.TakerBuyQuote)
}

func checkTickerSane(t *testing.T, tk exchange.Ticker24h) {
	t.Helper()
	if !validName(tk.Symbol) || tk.OpenTime < 0 || tk.CloseTime < tk.OpenTime || tk.Count < 0 {
		t.Fatalf("insane ticker %+v", tk)
	}
	checkDecimals(t, tk.PriceChange, tk.PriceChangePercent, tk.WeightedAvgPrice, tk.LastPrice, tk.LastQty,
		tk.OpenPrice, tk.HighPrice, tk.LowPrice, tk.Volume, tk.QuoteVolume)
}

func checkDecimals(t *testing.T, ds ...string) {
	t.Helper()
	for _, d := range ds {
		if !validDecimal([]byte(d)) {
			t.Fatalf("bad decimal %q", d)
		}
	}
}
