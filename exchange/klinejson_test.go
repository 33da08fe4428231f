package exchange

import (
	"encoding/json"
	"testing"
)

// FuzzAppendJSON checks that the AppendJSON methods write what
// encoding/json writes, for any field values.
func FuzzAppendJSON(f *testing.F) {
	f.Add("BTCUSDT", "1m", int64(1700000000000), int64(1700000059999), "42000.10", "7", int64(12), true)
	f.Add("A<B>&\"\\", "\x00\xff", int64(-1), int64(0), "\u2028é", "", int64(0), false)
	f.Fuzz(func(t *testing.T, sym, iv string, open, close int64, price, vol string, trades int64, closed bool) {
		k := Kline{Symbol: sym, Interval: iv, OpenTime: open, CloseTime: close, Open: price, High: vol, Low: price + vol,
			Close: vol + price, Volume: vol, QuoteVolume: price, Trades: trades, TakerBuyBase: sym, TakerBuyQuote: iv, Closed: closed}
		want, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		same(t, k.AppendJSON(nil), want)
		tk := Ticker24h{Symbol: sym, PriceChange: price, PriceChangePercent: vol, WeightedAvgPrice: iv, LastPrice: price + iv, LastQty: vol,
			OpenPrice: price, HighPrice: vol, LowPrice: sym, Volume: vol, QuoteVolume: price, OpenTime: open, CloseTime: close, FirstID: trades, LastID: -trades, Count: open ^ close}
		want, _ = json.Marshal(tk)
		same(t, tk.AppendJSON(nil), want)
		bt := BookTicker{Symbol: sym, BidPrice: price, BidQty: vol, AskPrice: iv, AskQty: sym + vol, UpdateID: trades, EventTime: open, TransactTime: close}
		want, _ = json.Marshal(bt)
		same(t, bt.AppendJSON(nil), want)
	})
}

func same(t *testing.T, got, want []byte) {
	t.Helper()
	if string(got) != string(want) {
		t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
	}
}

func TestKlineAppendJSONAllocs(t *testing.T) {
	k := Kline{Symbol: "BTCUSDT", Interval: "1m", OpenTime: 1, CloseTime: 2, Open: "1.5", High: "2", Low: "1", Close: "1.7",
		Volume: "10", QuoteVolume: "15", Trades: 3, TakerBuyBase: "4", TakerBuyQuote: "6", Closed: true}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = k.AppendJSON(buf[:0]) }); n != 0 {
		t.Fatalf("AppendJSON allocates %v times per kline; want 0", n)
	}
}

func BenchmarkKlineJSON(b *testing.B) {
	k := Kline{Symbol: "BTCUSDT", Interval: "1m", OpenTime: 1700000000000, CloseTime: 1700000059999, Open: "42000.10", High: "42010.00",
		Low: "41990.50", Close: "42001.20", Volume: "123.456", QuoteVolume: "5185000.12", Trades: 812, TakerBuyBase: "60.1", TakerBuyQuote: "2524000.5"}
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = k.AppendJSON(buf[:0])
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(k)
		}
	})
}
