package binance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tradecache/tradecache/exchange"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	wantKlineWS = exchange.Kline{
		Symbol: "BTCUSDT", Interval: "1m", OpenTime: 1791382980000, CloseTime: 1791383039999,
		Open: "83120.10", High: "83125.00", Low: "83080.00", Close: "83091.60", Volume: "52.318",
		QuoteVolume: "4347921.33", Trades: 304, TakerBuyBase: "20.114", TakerBuyQuote: "1671540.12",
	}
	wantTickerBTC = exchange.Ticker24h{
		Symbol: "BTCUSDT", PriceChange: "-3058.40", PriceChangePercent: "-3.550",
		WeightedAvgPrice: "84385.14", LastPrice: "83091.60", LastQty: "0.002", OpenPrice: "86150.00",
		HighPrice: "86664.90", LowPrice: "82706.20", Volume: "170340.583", QuoteVolume: "14374214019.71",
		OpenTime: 1791296580000, CloseTime: 1791382993519, FirstID: 8150083791, LastID: 8153634403,
		Count: 3538937,
	}
	wantTickerXPT = exchange.Ticker24h{
		Symbol: "XPTUSDT", PriceChange: "-12.30", PriceChangePercent: "-0.771",
		WeightedAvgPrice: "1590.84", LastPrice: "1583.10", LastQty: "0.150", OpenPrice: "1595.40",
		HighPrice: "1601.00", LowPrice: "1578.20", Volume: "3519.405", QuoteVolume: "5598917.84",
		OpenTime: 1791296580000, CloseTime: 1791382993611, FirstID: 51004381, LastID: 51022917,
		Count: 18537,
	}
	wantBook = exchange.BookTicker{
		Symbol: "BTCUSDT", BidPrice: "83091.60", BidQty: "4.215", AskPrice: "83091.70", AskQty: "3.763",
		UpdateID: 11757092630476, EventTime: 1791382994658, TransactTime: 1791382994657,
	}
)

func TestDecodeFrameGolden(t *testing.T) {
	tests := []struct {
		file string
		want exchange.Event
	}{
		{"ws_kline.json", exchange.Event{Kind: exchange.EventKline, Stream: "btcusdt@kline_1m",
			EventTime: 1791382993250, Kline: wantKlineWS}},
		{"ws_ticker.json", exchange.Event{Kind: exchange.EventTicker, Stream: "btcusdt@ticker",
			EventTime: 1791382993519, Ticker: wantTickerBTC}},
		// The CM row (BTCUSD_PERP, st 2) is dropped; E is the kept row's.
		{"ws_ticker_arr.json", exchange.Event{Kind: exchange.EventTickers, Stream: "!ticker@arr",
			EventTime: 1791382993612, Tickers: []exchange.Ticker24h{wantTickerXPT}}},
		{"ws_bookticker.json", exchange.Event{Kind: exchange.EventBookTicker, Stream: "btcusdt@bookTicker",
			EventTime: 1791382994658, Book: wantBook}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := DecodeFrame(readFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("DecodeFrame mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestDecodeRawPayloads(t *testing.T) {
	k, e, err := DecodeKline(readFixture(t, "ws_kline_doc.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantDoc := exchange.Kline{Symbol: "BTCUSDT", Interval: "1m", OpenTime: 1638747660000,
		CloseTime: 1638747719999, Open: "0.0010", High: "0.0025", Low: "0.0015", Close: "0.0020",
		Volume: "1000", QuoteVolume: "1.0000", Trades: 100, TakerBuyBase: "500", TakerBuyQuote: "0.500"}
	if d := cmp.Diff(wantDoc, k); d != "" || e != 1638747660000 {
		t.Errorf("DecodeKline E=%d (-want +got):\n%s", e, d)
	}

	data := func(file string) []byte {
		b := readFixture(t, file)
		f, err := parseFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		return f.data
	}
	tk, e, err := DecodeTicker(data("ws_ticker.json"))
	if err != nil || e != 1791382993519 {
		t.Fatalf("DecodeTicker: E=%d err=%v", e, err)
	}
	if d := cmp.Diff(wantTickerBTC, tk); d != "" {
		t.Errorf("DecodeTicker (-want +got):\n%s", d)
	}
	rows, e, err := DecodeTickerArray(data("ws_ticker_arr.json"))
	if err != nil || e != 1791382993612 {
		t.Fatalf("DecodeTickerArray: E=%d err=%v", e, err)
	}
	if d := cmp.Diff([]exchange.Ticker24h{wantTickerXPT}, rows); d != "" {
		t.Errorf("DecodeTickerArray (-want +got):\n%s", d)
	}
	bt, err := DecodeBookTicker(data("ws_bookticker.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantBook, bt); d != "" {
		t.Errorf("DecodeBookTicker (-want +got):\n%s", d)
	}
	// A payload of another type through a typed decoder is unknown, not malformed.
	if _, _, err := DecodeKline(data("ws_ticker.json")); !errors.Is(err, ErrUnknownEvent) {
		t.Errorf("DecodeKline(24hrTicker) = %v, want ErrUnknownEvent", err)
	}
}

const klineEnv = `{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1791382993250,"s":"BTCUSDT","k":{"t":1791382980000,"T":1791383039999,"s":"BTCUSDT","i":"1m","o":"83120.10","c":"83091.60","h":"83125.00","l":"83080.00","v":"52.318","n":304,"x":false,"q":"4347921.33","V":"20.114","Q":"1671540.12"}}}`

// frameVariant is a kline frame written differently from klineEnv and
// the event it decodes to.
type frameVariant struct {
	name string
	in   string
	want exchange.Event
}

func frameVariants() []frameVariant {
	base := exchange.Event{Kind: exchange.EventKline, Stream: "btcusdt@kline_1m", EventTime: 1791382993250, Kline: wantKlineWS}
	with := func(f func(*exchange.Event)) exchange.Event { e := base; f(&e); return e }
	return []frameVariant{
		{"base", klineEnv, base},
		{"E as string", strings.Replace(klineEnv, `"E":1791382993250`, `"E":"1791382993250"`, 1), base},
		{"ints as strings", strings.Replace(klineEnv, `"n":304`, `"n":"304"`, 1), base},
		{"decimal as number", strings.Replace(klineEnv, `"o":"83120.10"`, `"o":83120.10`, 1), base},
		{"decimal exponent number", strings.Replace(klineEnv, `"v":"52.318"`, `"v":5.2318e1`, 1),
			with(func(e *exchange.Event) { e.Kline.Volume = "5.2318e1" })},
		{"x as string", strings.Replace(klineEnv, `"x":false`, `"x":"true"`, 1),
			with(func(e *exchange.Event) { e.Kline.Closed = true })},
		{"unknown fields and case twins", strings.Replace(klineEnv, `"k":{`, `"X":"new","st":1,"K":[1,{"a":"}"}],"k":{"X":{"z":1},"B":"0","b":true,`, 1), base},
		{"data before stream, spaces", "{ \"data\" : " + klineEnv[strings.Index(klineEnv, `{"e"`):len(klineEnv)-1] + " ,\n \"stream\" : \"btcusdt@kline_1m\" }", base},
		{"escaped key", strings.Replace(klineEnv, `"E":1791382993250`, `"\u0045":1791382993250`, 1), base},
		{"null optional", strings.Replace(klineEnv, `"s":"BTCUSDT","k"`, `"s":null,"k"`, 1), base},
		{"symbol from outer s", strings.Replace(klineEnv, `"s":"BTCUSDT","i"`, `"i"`, 1), base},
	}
}

func TestDecodeFrameVariants(t *testing.T) {
	for _, tt := range frameVariants() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeFrame([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeFrame(%s): %v", tt.in, err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// frameError is a frame DecodeFrame rejects.
type frameError struct {
	name    string
	in      string
	unknown bool // ErrUnknownEvent rather than ErrMalformed
}

func frameErrors() []frameError {
	return []frameError{
		{"invalid JSON", `{"stream":`, false},
		{"not an object", `[1,2]`, false},
		{"string", `"x"`, false},
		{"stream not string", `{"stream":1,"data":{}}`, false},
		{"no data", `{"stream":"btcusdt@kline_1m"}`, false},
		{"data not object", `{"stream":"a@b","data":"x"}`, false},
		{"no e", `{"stream":"a@b","data":{"E":1}}`, false},
		{"e not string", `{"stream":"a@b","data":{"e":1}}`, false},
		{"missing k", `{"stream":"a@b","data":{"e":"kline","E":1}}`, false},
		{"missing close", strings.Replace(klineEnv, `"c":"83091.60",`, ``, 1), false},
		{"bad decimal", strings.Replace(klineEnv, `"o":"83120.10"`, `"o":"12a"`, 1), false},
		{"empty decimal", strings.Replace(klineEnv, `"o":"83120.10"`, `"o":""`, 1), false},
		{"decimal bool", strings.Replace(klineEnv, `"o":"83120.10"`, `"o":true`, 1), false},
		{"decimal object", strings.Replace(klineEnv, `"o":"83120.10"`, `"o":{}`, 1), false},
		{"float int", strings.Replace(klineEnv, `"n":304`, `"n":30.4`, 1), false},
		{"int overflow", strings.Replace(klineEnv, `"n":304`, `"n":9223372036854775808`, 1), false},
		{"negative trades", strings.Replace(klineEnv, `"n":304`, `"n":-1`, 1), false},
		{"close before open", strings.Replace(klineEnv, `"T":1791383039999`, `"T":1`, 1), false},
		{"empty symbol", strings.Replace(klineEnv, `"s":"BTCUSDT","i"`, `"s":"","i"`, 1), false},
		{"symbol with space", strings.Replace(klineEnv, `"s":"BTCUSDT","i"`, `"s":"BTC USDT","i"`, 1), false},
		{"x not bool", strings.Replace(klineEnv, `"x":false`, `"x":1`, 1), false},
		{"unknown type", `{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1"}}`, true},
		{"unknown array", `{"stream":"!markPrice@arr","data":[{"e":"markPriceUpdate","E":1}]}`, true},
		{"empty unknown array", `{"stream":"!miniTicker@arr","data":[]}`, true},
		{"mixed array", `{"stream":"!ticker@arr","data":[` + tickerRow("AUSDT", 1) + `,{"e":"kline"}]}`, false},
		{"bad row", `{"stream":"!ticker@arr","data":[` + strings.Replace(tickerRow("AUSDT", 1), `"c":"1.5"`, `"c":"x"`, 1) + `]}`, false},
		{"ack", `{"result":null,"id":1}`, true},
		{"other object", `{"foo":1}`, true},
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	for _, tt := range frameErrors() {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeFrame([]byte(tt.in))
			switch {
			case err == nil:
				t.Fatalf("DecodeFrame(%s) succeeded", tt.in)
			case tt.unknown && !errors.Is(err, ErrUnknownEvent):
				t.Errorf("err = %v, want ErrUnknownEvent", err)
			case !tt.unknown && !errors.Is(err, ErrMalformed):
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func tickerRow(sym string, st int) string {
	return `{"e":"24hrTicker","E":1000,"s":"` + sym + `","p":"0.1","P":"1.0","w":"1.4","c":"1.5","Q":"2","o":"1.4","h":"1.6","l":"1.3","v":"100","q":"150","O":1,"C":999,"F":1,"L":10,"n":10,"st":` + string(rune('0'+st)) + `}`
}

func TestDecodeTickerArrayEmptyAndCM(t *testing.T) {
	ev, err := DecodeFrame([]byte(`{"stream":"!ticker@arr","data":[]}`))
	if err != nil || ev.Kind != exchange.EventTickers || len(ev.Tickers) != 0 {
		t.Fatalf("empty !ticker@arr = %+v, %v", ev, err)
	}
	ev, err = DecodeFrame([]byte(`{"stream":"!ticker@arr","data":[` + tickerRow("BTCUSD_PERP", 2) + `]}`))
	if err != nil || ev.Kind != exchange.EventTickers {
		t.Fatalf("CM-only array = %+v, %v", ev, err)
	}
	if d := cmp.Diff([]exchange.Ticker24h{}, ev.Tickers, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("CM rows kept: %s", d)
	}
}

func TestDecodeKlinesREST(t *testing.T) {
	const now = 1791382993519 // inside the last bar
	got, err := DecodeKlinesREST(readFixture(t, "rest_klines.json"), "BTCUSDT", "1m", now)
	if err != nil {
		t.Fatal(err)
	}
	k := func(ot, ct int64, o, h, l, c, v, q string, n int64, vb, qb string, closed bool) exchange.Kline {
		return exchange.Kline{Symbol: "BTCUSDT", Interval: "1m", OpenTime: ot, CloseTime: ct, Open: o, High: h,
			Low: l, Close: c, Volume: v, QuoteVolume: q, Trades: n, TakerBuyBase: vb, TakerBuyQuote: qb, Closed: closed}
	}
	want := []exchange.Kline{
		k(1791382860000, 1791382919999, "83150.00", "83160.20", "83101.30", "83120.10", "120.455", "10013275.81", 1503, "60.210", "5004882.17", true),
		k(1791382920000, 1791382979999, "83120.10", "83140.00", "83090.00", "83120.10", "98.120", "8156611.02", 1187, "41.002", "3408291.55", true),
		k(1791382980000, 1791383039999, "83120.10", "83125.00", "83080.00", "83091.60", "52.318", "4347921.33", 304, "20.114", "1671540.12", false),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	for _, bad := range []string{
		`{}`, `[1]`, `[[1,"1","1","1","1","1",2,"1",1,"1"]]`, `[[1,"1","1","1","1","1",0,"1",1,"1","1","0"]]`,
		`[[1,"1","1","1","1",null,2,"1",1,"1","1","0"]]`, `[["x","1","1","1","1","1",2,"1",1,"1","1","0"]]`,
	} {
		if _, err := DecodeKlinesREST([]byte(bad), "BTCUSDT", "1m", now); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeKlinesREST(%s) = %v, want ErrMalformed", bad, err)
		}
	}
	// 11 elements (no "ignore") and numbers for decimals are accepted.
	ks, err := DecodeKlinesREST([]byte(`[[1,1.5,"2","1","1.5","10",2,"15",3,"5","7"]]`), "BTCUSDT", "1m", now)
	if err != nil || ks[0].Open != "1.5" || !ks[0].Closed {
		t.Errorf("lenient row = %+v, %v", ks, err)
	}
}

func TestDecodeTickerREST(t *testing.T) {
	got, err := decodeTickerREST(readFixture(t, "rest_ticker_24hr.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantTickerBTC, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	all, err := decodeTickersREST(readFixture(t, "rest_ticker_24hr_all.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]exchange.Ticker24h{wantTickerBTC, wantTickerXPT}, all); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestDecodeExchangeInfo(t *testing.T) {
	body := readFixture(t, "rest_exchange_info.json")
	got, err := decodeExchangeInfo(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []exchange.SymbolInfo{
		{Symbol: "BTCUSDT", Status: "TRADING", BaseAsset: "BTC", QuoteAsset: "USDT"},
		{Symbol: "币安人生USDT", Status: "TRADING", BaseAsset: "币安人生", QuoteAsset: "USDT"},
	}
	if d := cmp.Diff(want, got, cmpopts.IgnoreFields(exchange.SymbolInfo{}, "Raw")); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	for _, s := range got {
		// Raw is the entry exactly as sent.
		if !strings.Contains(string(body), string(s.Raw)) || !strings.HasPrefix(string(s.Raw), `{"symbol":"`+s.Symbol) {
			t.Errorf("%s: Raw is not the verbatim entry: %.80s", s.Symbol, s.Raw)
		}
	}
	for _, tc := range []struct{ typ, field, want string }{
		{"PRICE_FILTER", "tickSize", "0.10"},
		{"PERCENT_PRICE", "multiplierDecimal", "4"},
		{"MAX_NUM_ORDERS", "limit", "200"},
		{"MIN_NOTIONAL", "notional", "100"},
		{"POSITION_RISK_CONTROL", "positionControlSide", "NONE"},
	} {
		if v, ok := FilterValue(got[0], tc.typ, tc.field); !ok || v != tc.want {
			t.Errorf("FilterValue(%s.%s) = %q, %v; want %q", tc.typ, tc.field, v, ok, tc.want)
		}
	}
	if _, ok := FilterValue(got[0], "NO_SUCH_FILTER", "x"); ok {
		t.Error("FilterValue found a missing filter")
	}
	if _, err := decodeExchangeInfo([]byte(`{"symbols":[{"status":"TRADING"}]}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("symbol without name: %v", err)
	}
}

func TestDecodeAPIErrorBody(t *testing.T) {
	code, msg, ok := decodeAPIError(readFixture(t, "rest_error.json"))
	if !ok || code != -1121 || msg != "Invalid symbol." {
		t.Errorf("decodeAPIError = %d %q %v", code, msg, ok)
	}
}

func TestScannerHelpers(t *testing.T) {
	for in, want := range map[string]bool{
		"0": true, "-1.5": true, "1e5": true, "1.0E-7": true, "0.00000078": true,
		"": false, "-": false, "1.": false, ".5": false, "+1": false, "1e": false, "NaN": false, "1,0": false,
	} {
		if got := validDecimal([]byte(in)); got != want {
			t.Errorf("validDecimal(%q) = %v", in, got)
		}
	}
	for in, want := range map[string]int64{"0": 0, "-9223372036854775808": -1 << 63, "9223372036854775807": 1<<63 - 1, `"42"`: 42} {
		if got, err := intVal([]byte(in)); err != nil || got != want {
			t.Errorf("intVal(%s) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"9223372036854775808", "-9223372036854775809", "1.0", `"4\u0032"`, "", "-", "true"} {
		if _, err := intVal([]byte(in)); err == nil {
			t.Errorf("intVal(%s) succeeded", in)
		}
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	kline := readFixture(b, "ws_kline.json")
	book := readFixture(b, "ws_bookticker.json")
	var rows []string
	for i := range 800 {
		rows = append(rows, tickerRow(fmt.Sprintf("S%03dUSDT", i), 1))
	}
	arr := []byte(`{"stream":"!ticker@arr","data":[` + strings.Join(rows, ",") + `]}`)
	for _, bc := range []struct {
		name string
		in   []byte
	}{{"kline", kline}, {"bookTicker", book}, {"tickerArr800", arr}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeFrame(bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
