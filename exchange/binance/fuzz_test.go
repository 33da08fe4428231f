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

func FuzzDecodeUserEvent(f *testing.F) {
	for _, name := range []string{"ws_account_update.json", "ws_account_update_funding.json", "ws_order_trade_update.json",
		"ws_listen_key_expired.json", "rest_account_v3.json", "rest_position_risk_v3.json", "rest_order.json", "rest_listen_key.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"stream":"abc","data":{"e":"listenKeyExpired","E":1}}`))
	f.Add([]byte(`{"e":"ACCOUNT_UPDATE","E":"2","T":1,"a":{"m":"FUNDING_FEE","B":[{"a":"USDT","wb":1.5,"cw":"1"}],"P":null}}`))
	f.Add([]byte(`{"e":"ACCOUNT_CONFIG_UPDATE","E":1}`))
	f.Add([]byte(`{"result":null,"id":1}`))
	f.Add([]byte(`{"\u0065":"listenKeyExpired","E":"1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The REST account decoders share the input: no panic, and only
		// ErrMalformed errors.
		for _, err := range []error{
			func() error { _, err := decodeAccountAssets(b); return err }(),
			func() error { _, err := decodePositionRisk(b); return err }(),
			func() error { _, err := decodeOrderResponse(b); return err }(),
			func() error { _, err := decodeListenKey(b); return err }(),
		} {
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("REST decoder error %v is not ErrMalformed", err)
			}
		}
		if ps, err := decodePositionRisk(b); err == nil {
			for _, p := range ps {
				checkPositionSane(t, p)
				if isZeroDecimal(p.PositionAmt) {
					t.Fatalf("zero position kept: %+v", p)
				}
			}
		}

		ev, err := DecodeUserEvent(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownEvent) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrUnknownEvent", err)
			}
			return
		}
		if ev.EventTime < 0 {
			t.Fatalf("negative E %d", ev.EventTime)
		}
		switch ev.Kind {
		case exchange.UserAccountUpdate:
			a := ev.Account
			if a.EventTime != ev.EventTime || a.TransactTime < 0 || !validName(a.Reason) || a.Balances == nil || a.Positions == nil {
				t.Fatalf("insane account update %+v", a)
			}
			for _, bal := range a.Balances {
				if !validName(bal.Asset) || bal.AvailableBalance != "" || bal.UpdateTime != a.TransactTime {
					t.Fatalf("insane balance %+v", bal)
				}
				checkDecimals(t, bal.WalletBalance, bal.CrossWalletBalance)
			}
			for _, p := range a.Positions {
				checkPositionSane(t, p)
				if p.UpdateTime != a.TransactTime {
					t.Fatalf("position UpdateTime %d, T %d", p.UpdateTime, a.TransactTime)
				}
			}
		case exchange.UserOrderUpdate:
			o := ev.Order
			if o.EventTime != ev.EventTime || o.TransactTime < 0 || !validName(o.Symbol) || o.OrderID < 0 || o.TradeID < 0 ||
				!validText(o.ClientOrderID, maxIDLen) || !validName(o.Side) || !validName(o.Status) || !validName(o.PositionSide) {
				t.Fatalf("insane order %+v", o)
			}
			checkDecimals(t, o.OrigQty, o.Price, o.AvgPrice, o.StopPrice, o.LastFilledQty, o.CumQty, o.LastFilledPrice, o.RealizedProfit)
			if o.Commission != "" {
				checkDecimals(t, o.Commission)
			}
		case exchange.UserListenKeyExpired:
			if ev.ListenKey != "" && !validListenKey(ev.ListenKey) {
				t.Fatalf("bad listenKey %q", ev.ListenKey)
			}
		default:
			t.Fatalf("bad kind %d", ev.Kind)
		}
	})
}

func checkPositionSane(t *testing.T, p exchange.Position) {
	t.Helper()
	if !validName(p.Symbol) || !validName(p.PositionSide) || !validName(p.MarginType) || p.UpdateTime < 0 ||
		strings.ToLower(p.MarginType) != p.MarginType {
		t.Fatalf("insane position %+v", p)
	}
	checkDecimals(t, p.PositionAmt, p.EntryPrice, p.BreakEvenPrice, p.UnrealizedProfit, p.IsolatedWallet)
}
