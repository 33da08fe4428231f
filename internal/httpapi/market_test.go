package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tradecache/tradecache/account"
	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/internal/httpapi"
	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/marketdata"
)

// market is an in-memory MarketReader: the routes' contract is tested
// here; the reader itself is tested against Redis in package marketdata.
// BTCUSDT and ETHUSDT are listed, only BTCUSDT has a book ticker; NOPE is
// not listed; BUSY's REST call is refused by the budget, SLOW's times out
// and DOWN's fails.
type market struct{}

var reg = keyspace.MustNew(keyspace.Config{})

// KlinesRange echoes its query in the one kline it returns: start as the
// open time, end as the close time, limit as the trade count.
func (market) KlinesRange(_ context.Context, symbol, interval string, start, end int64, limit int) ([]exchange.Kline, error) {
	if _, err := reg.Kline(symbol, interval); err != nil {
		return nil, err
	}
	if err := readErr(symbol); err != nil {
		return nil, err
	}
	return []exchange.Kline{{OpenTime: start, CloseTime: end, Open: "1", High: "2", Low: "0.5", Close: "1.5", Volume: "10", QuoteVolume: "15", Trades: int64(limit), TakerBuyBase: "4", TakerBuyQuote: "6"}}, nil
}

// readErr is the reader's error for symbol.
func readErr(symbol string) error {
	switch symbol {
	case "NOPE":
		return fmt.Errorf("cache: load ticker_24h:NOPE: %w: NOPE", marketdata.ErrUnknownSymbol)
	case "BUSY":
		return fmt.Errorf("rest: %w", refused{time.Now().Add(2500 * time.Millisecond)})
	case "SLOW":
		return fmt.Errorf("rest: %w", context.DeadlineExceeded)
	case "DOWN":
		return fmt.Errorf("redis: connection refused")
	}
	return nil
}

func (market) Ticker24h(_ context.Context, symbol string) (exchange.Ticker24h, error) {
	if err := readErr(symbol); err != nil {
		return exchange.Ticker24h{}, err
	}
	return exchange.Ticker24h{Symbol: symbol, LastPrice: "9"}, nil
}

// refused stands for the REST weight budget's refusal.
type refused struct{ at time.Time }

func (r refused) Error() string      { return "REST weight budget spent" }
func (r refused) RetryAt() time.Time { return r.at }
func (market) MarketTickers(context.Context) (map[string]exchange.Ticker24h, error) {
	return map[string]exchange.Ticker24h{"B": {Symbol: "B"}, "A": {Symbol: "A"}}, nil
}
func (market) BookTicker(_ context.Context, symbol string) (exchange.BookTicker, bool, error) {
	if err := readErr(symbol); err != nil {
		return exchange.BookTicker{}, false, err
	}
	return book(symbol), symbol == "BTCUSDT", nil
}
func book(symbol string) exchange.BookTicker {
	return exchange.BookTicker{Symbol: symbol, BidPrice: "1", BidQty: "2", AskPrice: "3", AskQty: "4", UpdateID: 7, EventTime: 1701, TransactTime: 1700}
}
func (market) BookTickers(context.Context) (map[string]exchange.BookTicker, error) {
	return map[string]exchange.BookTicker{"BTCUSDT": book("BTCUSDT"), "ADAUSDT": book("ADAUSDT")}, nil
}
func (market) SymbolInfo(_ context.Context, symbol string) (json.RawMessage, error) {
	if symbol != "BTCUSDT" && symbol != "ETHUSDT" {
		return nil, fmt.Errorf("%w: %s", marketdata.ErrUnknownSymbol, symbol)
	}
	return json.RawMessage(`{"symbol":"` + symbol + `"}`), nil
}
func (market) ExchangeInfo(context.Context) ([]json.RawMessage, error) {
	return []json.RawMessage{json.RawMessage(`{"symbol":"BTCUSDT"}`), json.RawMessage(`{"symbol":"ETHUSDT"}`)}, nil
}

// Binance's bodies.
const (
	invalidSymbol   = `{"code":-1121,"msg":"Invalid symbol."}`
	invalidInterval = `{"code":-1120,"msg":"Invalid interval."}`
	invalidLimit    = `{"code":-1130,"msg":"Data sent for parameter 'limit' is not valid."}`
	symbolChars     = `{"code":-1100,"msg":"Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."}`
)

// echo is the answer of market.KlinesRange to a query: one kline row.
func echo(start, end int64, limit int) string {
	return fmt.Sprintf(`[[%d,"1","2","0.5","1.5","10",%d,"15",%d,"4","6","0"]]`, start, end, limit)
}

// The market routes answer in Binance's shapes, with its parameter rules
// and its {code,msg} errors, under the node's paths and Binance's alike.
func TestMarketRoutes(t *testing.T) {
	c, _ := cache.New(cache.Config{})
	s := &httpapi.Server{NodeID: "n", Cache: c, Started: time.Now(), Market: market{}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	const btcBook = `{"lastUpdateId":7,"symbol":"BTCUSDT","bidPrice":"1","bidQty":"2","askPrice":"3","askQty":"4","time":1700}`
	const adaBook = `{"lastUpdateId":7,"symbol":"ADAUSDT","bidPrice":"1","bidQty":"2","askPrice":"3","askQty":"4","time":1700}`
	tests := []struct {
		path   string
		status int
		body   string // the whole body, as JSON; "" to check only code
		code   int    // the error code of a body that is not given whole
	}{
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=1", 200, echo(0, 0, 1), 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m", 200, echo(0, 0, 500), 0}, // Binance's default
		{"/api/v1/klines?symbol=BTCUSDT&interval=1M&limit=1500", 200, echo(0, 0, 1500), 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&startTime=1000&endTime=2000&limit=3", 200, echo(1000, 2000, 3), 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&endTime=2000", 200, echo(0, 2000, 500), 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&startTime=0", 200, echo(1, 0, 500), 0}, // from the first kline
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&endTime=0", 200, `[]`, 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&startTime=5&endTime=5", 200, echo(5, 5, 500), 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=1501", 400, invalidLimit, 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=0", 400, invalidLimit, 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=x", 400, `{"code":-1100,"msg":"Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."}`, 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=%2B5", 400, `{"code":-1100,"msg":"Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."}`, 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&startTime=-1", 400, `{"code":-1100,"msg":"Illegal characters found in parameter 'startTime'; legal range is '^[0-9]{1,20}$'."}`, 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&startTime=2000&endTime=1000", 400, `{"code":-1023,"msg":"Start time is greater than end time."}`, 0},
		{"/api/v1/klines?symbol=btcusdt&interval=1m", 400, invalidSymbol, 0},
		{"/api/v1/klines?symbol=BTC:USDT&interval=1m", 400, symbolChars, 0},
		{"/api/v1/klines?symbol=ABCDEFGHIJKLMNOPQRSTU&interval=1m", 400, symbolChars, 0},
		{"/api/v1/klines?symbol=NOPE&interval=1m", 400, invalidSymbol, 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=7m", 400, invalidInterval, 0},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1s", 400, invalidInterval, 0},
		{"/api/v1/klines?interval=1m", 400, `{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}`, 0},
		{"/api/v1/klines?symbol=BTCUSDT", 400, `{"code":-1102,"msg":"Mandatory parameter 'interval' was not sent, was empty/null, or malformed."}`, 0},
		{"/api/v1/klines?symbol=BUSY&interval=1m", 503, "", httpapi.CodeTooManyRequests},

		{"/api/v1/ticker/24hr?symbol=BTCUSDT", 200, `{"symbol":"BTCUSDT","priceChange":"","priceChangePercent":"","weightedAvgPrice":"","lastPrice":"9","lastQty":"","openPrice":"","highPrice":"","lowPrice":"","volume":"","quoteVolume":"","openTime":0,"closeTime":0,"firstId":0,"lastId":0,"count":0}`, 0},
		{"/api/v1/ticker/24hr", 200, `[{"symbol":"A","priceChange":"","priceChangePercent":"","weightedAvgPrice":"","lastPrice":"","lastQty":"","openPrice":"","highPrice":"","lowPrice":"","volume":"","quoteVolume":"","openTime":0,"closeTime":0,"firstId":0,"lastId":0,"count":0},` +
			`{"symbol":"B","priceChange":"","priceChangePercent":"","weightedAvgPrice":"","lastPrice":"","lastQty":"","openPrice":"","highPrice":"","lowPrice":"","volume":"","quoteVolume":"","openTime":0,"closeTime":0,"firstId":0,"lastId":0,"count":0}]`, 0},
		{"/api/v1/ticker/24hr?symbol=NOPE", 400, invalidSymbol, 0},
		{"/api/v1/ticker/24hr?symbol=btcusdt", 400, invalidSymbol, 0},
		{"/api/v1/ticker/24hr?symbol=BUSY", 503, "", httpapi.CodeTooManyRequests},
		{"/api/v1/ticker/24hr?symbol=SLOW", 503, "", httpapi.CodeTimeout},
		{"/api/v1/ticker/24hr?symbol=DOWN", 503, "", httpapi.CodeUnavailable},

		{"/api/v1/bookTicker?symbol=BTCUSDT", 200, btcBook, 0},
		{"/api/v1/bookTicker", 200, "[" + adaBook + "," + btcBook + "]", 0},
		{"/api/v1/bookTicker?symbol=ETHUSDT", 404, "", httpapi.CodeUnknown}, // listed, not streamed
		{"/api/v1/bookTicker?symbol=NOPE", 400, invalidSymbol, 0},
		{"/api/v1/bookTicker?symbol=btcusdt", 400, invalidSymbol, 0},

		{"/api/v1/symbols/BTCUSDT", 200, `{"symbol":"BTCUSDT"}`, 0},
		{"/api/v1/symbols/NOPE", 400, invalidSymbol, 0},
		{"/api/v1/symbols/btcusdt", 400, invalidSymbol, 0},

		// Binance's own paths.
		{"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=2", 200, echo(0, 0, 2), 0},
		{"/fapi/v1/klines?symbol=btcusdt&interval=1m", 400, invalidSymbol, 0},
		{"/fapi/v1/ticker/24hr?symbol=NOPE", 400, invalidSymbol, 0},
		{"/fapi/v1/ticker/bookTicker?symbol=BTCUSDT", 200, btcBook, 0},
		{"/fapi/v1/ticker/bookTicker", 200, "[" + adaBook + "," + btcBook + "]", 0},
		{"/fapi/v1/ping", 200, `{}`, 0},
	}
	for _, tt := range tests {
		res, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.path, res.StatusCode, tt.status, b)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", tt.path, ct)
		}
		if ra := res.Header.Get("Retry-After"); (tt.code == httpapi.CodeTooManyRequests) != (ra == "3") {
			t.Errorf("%s: Retry-After %q", tt.path, ra)
		}
		if tt.body != "" {
			var got, want any
			json.Unmarshal(b, &got)
			if err := json.Unmarshal([]byte(tt.body), &want); err != nil {
				t.Fatalf("%s: want %s: %v", tt.path, tt.body, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.path, diff)
			}
		}
		if tt.code != 0 {
			var e httpapi.CodeError
			if json.Unmarshal(b, &e); e.Code != tt.code || e.Msg == "" {
				t.Errorf("%s: body %s, want code %d and a message", tt.path, b, tt.code)
			}
		}
	}
}

// /fapi/v1/exchangeInfo holds every listed symbol's entry, in the shape
// of Binance's answer; /fapi/v1/time the node's clock.
func TestExchangeInfoAndTime(t *testing.T) {
	c, _ := cache.New(cache.Config{})
	srv := httptest.NewServer((&httpapi.Server{NodeID: "n", Cache: c, Started: time.Now(), Market: market{}}).Handler())
	defer srv.Close()
	var info map[string]any
	getJSON(t, srv.URL+"/fapi/v1/exchangeInfo", &info)
	now := float64(time.Now().UnixMilli())
	if st, _ := info["serverTime"].(float64); st < now-5000 || st > now {
		t.Errorf("serverTime %v, want about %v", info["serverTime"], now)
	}
	delete(info, "serverTime")
	want := map[string]any{"timezone": "UTC", "futuresType": "U_MARGINED", "rateLimits": []any{}, "exchangeFilters": []any{}, "assets": []any{},
		"symbols": []any{map[string]any{"symbol": "BTCUSDT"}, map[string]any{"symbol": "ETHUSDT"}}}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("exchangeInfo (-want +got):\n%s", diff)
	}
	var tm struct {
		ServerTime int64 `json:"serverTime"`
	}
	getJSON(t, srv.URL+"/fapi/v1/time", &tm)
	if d := time.Since(time.UnixMilli(tm.ServerTime)); d < 0 || d > 5*time.Second {
		t.Errorf("serverTime %d is %v from now", tm.ServerTime, d)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// What no route serves is Binance's 404 -5000, naming the path and the
// method: the exchange's account and order paths, other versions, an
// unknown /api/ path, a known path with another method, a file the
// dashboard does not have.
func TestUnknownPaths(t *testing.T) {
	h := fullServer(httpapi.Auth{OpenWithoutToken: true}).Handler()
	for _, tc := range []struct{ method, path string }{
		{"GET", "/fapi/v1/order"},
		{"POST", "/fapi/v1/order"},
		{"GET", "/fapi/v3/account"},
		{"GET", "/fapi/v2/ticker/price"},
		{"GET", "/fapi/v1/depth"},
		{"POST", "/fapi/v1/listenKey"},
		{"GET", "/api/v1/nope"},
		{"POST", "/api/v1/klines"},
		{"DELETE", "/healthz"},
		{"GET", "/missing.js"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		r.Host = "127.0.0.1:8080"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		want := httpapi.CodeError{Code: httpapi.CodeInvalidPath, Msg: "Path " + tc.path + ", Method " + tc.method + " is invalid"}
		var got httpapi.CodeError
		json.Unmarshal(w.Body.Bytes(), &got)
		if w.Code != 404 || got != want {
			t.Errorf("%s %s: %d %s, want 404 %+v", tc.method, tc.path, w.Code, strings.TrimSpace(w.Body.String()), want)
		}
	}
}

type acct struct{}

func (acct) Positions(context.Context) ([]exchange.Position, error) {
	return []exchange.Position{{Symbol: "BTCUSDT", PositionSide: "BOTH", PositionAmt: "0.5"}}, nil
}
func (acct) Balance(_ context.Context, asset string) (exchange.Balance, error) {
	if asset != "USDT" {
		return exchange.Balance{}, fmt.Errorf("%w: %s", account.ErrNoBalance, asset)
	}
	return exchange.Balance{Asset: "USDT", WalletBalance: "10000"}, nil
}

func TestAccountRoutes(t *testing.T) {
	c, _ := cache.New(cache.Config{})
	for _, tt := range []struct {
		reader httpapi.AccountReader
		path   string
		status int
		body   string
		code   int
	}{
		{acct{}, "/api/v1/positions", 200, `[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":"0.5","entryPrice":"","breakEvenPrice":"","unRealizedProfit":"","marginType":"","isolatedWallet":"","updateTime":0}]`, 0},
		{acct{}, "/api/v1/balance?asset=USDT", 200, `{"asset":"USDT","walletBalance":"10000","crossWalletBalance":"","updateTime":0}`, 0},
		{acct{}, "/api/v1/balance?asset=BNB", 404, "", httpapi.CodeUnknown},
		{acct{}, "/api/v1/balance", 400, `{"code":-1102,"msg":"Mandatory parameter 'asset' was not sent, was empty/null, or malformed."}`, 0},
		{nil, "/api/v1/positions", 404, "", httpapi.CodeUnknown},
		{nil, "/api/v1/keys/audit", 404, "", httpapi.CodeUnknown}, // no Redis
	} {
		s := &httpapi.Server{NodeID: "n", Cache: c, Started: time.Now(), Auth: httpapi.Auth{OpenWithoutToken: true}} // on loopback without a token
		if tt.reader != nil {
			s.Account = tt.reader
		}
		srv := httptest.NewServer(s.Handler())
		res, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		srv.Close()
		if res.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.path, res.StatusCode, tt.status, b)
		}
		if tt.body != "" {
			var got, want any
			json.Unmarshal(b, &got)
			json.Unmarshal([]byte(tt.body), &want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.path, diff)
			}
		}
		if tt.code != 0 {
			var e httpapi.CodeError
			if json.Unmarshal(b, &e); e.Code != tt.code || e.Msg == "" {
				t.Errorf("%s: body %s, want code %d and a message", tt.path, b, tt.code)
			}
		}
	}
}
