package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
type market struct{}

var reg = keyspace.MustNew(keyspace.Config{})

func (market) Klines(_ context.Context, symbol, interval string, limit int) ([]exchange.Kline, error) {
	if _, err := reg.Kline(symbol, interval); err != nil {
		return nil, err
	}
	return []exchange.Kline{{OpenTime: 60000, CloseTime: 119999, Open: "1", High: "2", Low: "0.5", Close: "1.5", Volume: "10", QuoteVolume: "15", Trades: 3, TakerBuyBase: "4", TakerBuyQuote: "6"}}[:min(limit, 1)], nil
}
func (market) Ticker24h(_ context.Context, symbol string) (exchange.Ticker24h, error) {
	switch symbol {
	case "NOPE":
		return exchange.Ticker24h{}, fmt.Errorf("cache: load ticker_24h:NOPE: %w: NOPE", marketdata.ErrUnknownSymbol)
	case "BUSY":
		return exchange.Ticker24h{}, fmt.Errorf("rest: %w", refused{time.Now().Add(2500 * time.Millisecond)})
	}
	return exchange.Ticker24h{Symbol: symbol, LastPrice: "9"}, nil
}

// refused stands for the REST weight budget's refusal.
type refused struct{ at time.Time }

func (r refused) Error() string      { return "REST weight budget spent" }
func (r refused) RetryAt() time.Time { return r.at }
func (market) MarketTickers(context.Context) (map[string]exchange.Ticker24h, error) {
	return map[string]exchange.Ticker24h{"A": {Symbol: "A"}}, nil
}
func (market) BookTicker(_ context.Context, symbol string) (exchange.BookTicker, bool, error) {
	return exchange.BookTicker{Symbol: symbol, BidPrice: "1"}, symbol == "BTCUSDT", nil
}
func (market) SymbolInfo(_ context.Context, symbol string) (json.RawMessage, error) {
	if symbol != "BTCUSDT" {
		return nil, fmt.Errorf("%w: %s", marketdata.ErrUnknownSymbol, symbol)
	}
	return json.RawMessage(`{"symbol":"BTCUSDT"}`), nil
}

func TestMarketRoutes(t *testing.T) {
	c, _ := cache.New(cache.Config{})
	s := &httpapi.Server{NodeID: "n", Cache: c, Started: time.Now(), Market: market{}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=1", 200, `[[60000,"1","2","0.5","1.5","10",119999,"15",3,"4","6","0"]]`},
		{"/api/v1/klines?symbol=BTC:USDT&interval=1m", 400, ""},
		{"/api/v1/klines?symbol=BTCUSDT&interval=7m", 400, ""},
		{"/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=1501", 400, ""},
		{"/api/v1/klines?interval=1m", 400, ""},
		{"/api/v1/ticker/24hr?symbol=BTCUSDT", 200, ""},
		{"/api/v1/ticker/24hr", 200, ""},
		{"/api/v1/bookTicker?symbol=BTCUSDT", 200, ""},
		{"/api/v1/bookTicker?symbol=ETHUSDT", 404, ""},
		{"/api/v1/symbols/BTCUSDT", 200, `{"symbol":"BTCUSDT"}`},
		{"/api/v1/symbols/NOPE", 400, `{"code":-1121,"msg":"Invalid symbol."}`},
		{"/api/v1/ticker/24hr?symbol=NOPE", 400, `{"code":-1121,"msg":"Invalid symbol."}`},
		{"/api/v1/ticker/24hr?symbol=BUSY", 503, ""},
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
		if ra := res.Header.Get("Retry-After"); (tt.status == 503) != (ra == "3") {
			t.Errorf("%s: Retry-After %q", tt.path, ra)
		}
		if tt.body != "" {
			var got, want any
			json.Unmarshal(b, &got)
			json.Unmarshal([]byte(tt.body), &want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.path, diff)
			}
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
	}{
		{acct{}, "/api/v1/positions", 200, `[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":"0.5","entryPrice":"","breakEvenPrice":"","unRealizedProfit":"","marginType":"","isolatedWallet":"","updateTime":0}]`},
		{acct{}, "/api/v1/balance?asset=USDT", 200, `{"asset":"USDT","walletBalance":"10000","crossWalletBalance":"","updateTime":0}`},
		{acct{}, "/api/v1/balance?asset=BNB", 404, ""},
		{acct{}, "/api/v1/balance", 400, ""},
		{nil, "/api/v1/positions", 404, ""},
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
		if ra := res.Header.Get("Retry-After"); (tt.status == 503) != (ra == "3") {
			t.Errorf("%s: Retry-After %q", tt.path, ra)
		}
		if tt.body != "" {
			var got, want any
			json.Unmarshal(b, &got)
			json.Unmarshal([]byte(tt.body), &want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.path, diff)
			}
		}
	}
}
