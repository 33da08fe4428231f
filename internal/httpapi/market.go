package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/keyspace"
)

// MarketReader is what the market data routes read (for example
// *marketdata.Reader).
type MarketReader interface {
	// KlinesRange answers a kline query as GET /fapi/v1/klines does: start
	// and end are open times in ms, 0 for none; limit is 1..1500.
	KlinesRange(ctx context.Context, symbol, interval string, start, end int64, limit int) ([]exchange.Kline, error)
	Ticker24h(ctx context.Context, symbol string) (exchange.Ticker24h, error)
	MarketTickers(ctx context.Context) (map[string]exchange.Ticker24h, error)
	BookTicker(ctx context.Context, symbol string) (exchange.BookTicker, bool, error)
	// BookTickers returns the book ticker of every symbol held.
	BookTickers(ctx context.Context) (map[string]exchange.BookTicker, error)
	SymbolInfo(ctx context.Context, symbol string) (json.RawMessage, error)
	// ExchangeInfo returns the exchangeInfo entry of every listed symbol.
	ExchangeInfo(ctx context.Context) ([]json.RawMessage, error)
}

// Kline query parameters, Binance's.
const (
	defaultKlineLimit = 500
	maxKlineLimit     = 1500
)

// marketRoutes serves the market data under the node's paths (/api/v1/…)
// and under Binance's own (/fapi/v1/…), with the same answers: Binance's
// shapes, parameter rules and error bodies. /fapi/v1/ping and
// /fapi/v1/time are served without a MarketReader too.
func (s *Server) marketRoutes(mux *http.ServeMux) {
	route := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.guard(false, h)) }
	route("GET /fapi/v1/ping", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, struct{}{}) })
	route("GET /fapi/v1/time", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]int64{"serverTime": time.Now().UnixMilli()})
	})
	if s.Market == nil {
		return
	}
	route("GET /api/v1/klines", s.klines)
	route("GET /fapi/v1/klines", s.klines)
	route("GET /api/v1/ticker/24hr", s.ticker24h)
	route("GET /fapi/v1/ticker/24hr", s.ticker24h)
	route("GET /api/v1/bookTicker", s.bookTicker)
	route("GET /fapi/v1/ticker/bookTicker", s.bookTicker)
	route("GET /api/v1/symbols/{symbol}", s.symbol)
	route("GET /fapi/v1/exchangeInfo", s.exchangeInfo)
}

// klines answers like GET /fapi/v1/klines: 12-element arrays, oldest
// first. Parameters are checked in Binance's order: symbol and interval
// present, numbers well formed, then the symbol's form, the interval, the
// limit (1..1500, default 500) and the times; the reader then refuses a
// symbol the exchange does not list.
func (s *Server) klines(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sym, iv := q.Get("symbol"), q.Get("interval")
	if sym == "" {
		mandatory("symbol").write(w)
		return
	}
	if iv == "" {
		mandatory("interval").write(w)
		return
	}
	var nums [3]int64
	var has [3]bool
	for i, name := range []string{"limit", "startTime", "endTime"} {
		var e *apiError
		if nums[i], has[i], e = intParam(q, name); e != nil {
			e.write(w)
			return
		}
	}
	limit, start, end := nums[0], nums[1], nums[2]
	if !has[0] {
		limit = defaultKlineLimit
	}
	if e := checkSymbol(sym); e != nil {
		e.write(w)
		return
	}
	if _, err := keyspace.IntervalDuration(iv); err != nil {
		errInvalidInterval.write(w)
		return
	}
	if limit < 1 || limit > maxKlineLimit {
		errInvalidLimit.write(w)
		return
	}
	if has[1] && has[2] && start > end {
		errStartAfterEnd.write(w)
		return
	}
	switch {
	case has[2] && end == 0:
		writeJSON(w, [][]any{}) // nothing opens at or before the epoch
		return
	case has[1] && start == 0:
		start = 1 // from the first kline; the reader's 0 is "no start"
	}
	ks, err := s.Market.KlinesRange(r.Context(), sym, iv, start, end, int(limit))
	if err != nil {
		readerError(w, err)
		return
	}
	rows := make([][]any, len(ks))
	for i, k := range ks {
		rows[i] = []any{k.OpenTime, k.Open, k.High, k.Low, k.Close, k.Volume, k.CloseTime, k.QuoteVolume, k.Trades, k.TakerBuyBase, k.TakerBuyQuote, "0"}
	}
	writeJSON(w, rows)
}

// ticker24h answers like GET /fapi/v1/ticker/24hr: one symbol's ticker,
// or without symbol every symbol's (an array, by symbol).
func (s *Server) ticker24h(w http.ResponseWriter, r *http.Request) {
	sym := r.URL.Query().Get("symbol")
	if sym == "" {
		m, err := s.Market.MarketTickers(r.Context())
		if err != nil {
			readerError(w, err)
			return
		}
		out := make([]exchange.Ticker24h, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, m[k])
		}
		writeJSON(w, out)
		return
	}
	if e := checkSymbol(sym); e != nil {
		e.write(w)
		return
	}
	t, err := s.Market.Ticker24h(r.Context(), sym)
	if err != nil {
		readerError(w, err)
		return
	}
	writeJSON(w, t)
}

// BookTicker is the answer of GET /fapi/v1/ticker/bookTicker for one
// symbol: Time is the transaction time of the update, LastUpdateID its
// update id.
type BookTicker struct {
	LastUpdateID int64  `json:"lastUpdateId"`
	Symbol       string `json:"symbol"`
	BidPrice     string `json:"bidPrice"`
	BidQty       string `json:"bidQty"`
	AskPrice     string `json:"askPrice"`
	AskQty       string `json:"askQty"`
	Time         int64  `json:"time"`
}

func restBook(b exchange.BookTicker) BookTicker {
	return BookTicker{LastUpdateID: b.UpdateID, Symbol: b.Symbol, BidPrice: b.BidPrice, BidQty: b.BidQty,
		AskPrice: b.AskPrice, AskQty: b.AskQty, Time: cmp.Or(b.TransactTime, b.EventTime)}
}

// bookTicker answers like GET /fapi/v1/ticker/bookTicker: one symbol's
// best bid and ask, or without symbol those of every symbol held (an
// array, by symbol). A listed symbol whose book ticker the node does not
// keep (it streams only its configured symbols) is 404.
func (s *Server) bookTicker(w http.ResponseWriter, r *http.Request) {
	sym := r.URL.Query().Get("symbol")
	if sym == "" {
		m, err := s.Market.BookTickers(r.Context())
		if err != nil {
			readerError(w, err)
			return
		}
		out := make([]BookTicker, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, restBook(m[k]))
		}
		writeJSON(w, out)
		return
	}
	if e := checkSymbol(sym); e != nil {
		e.write(w)
		return
	}
	bt, ok, err := s.Market.BookTicker(r.Context(), sym)
	if err != nil {
		readerError(w, err)
		return
	}
	if !ok {
		// Listed? An unknown symbol is Binance's -1121 (from cache).
		if _, err := s.Market.SymbolInfo(r.Context(), sym); err != nil {
			readerError(w, err)
			return
		}
		writeCode(w, http.StatusNotFound, CodeUnknown, "No book ticker held for "+sym+": a node keeps those of the symbols it streams.")
		return
	}
	writeJSON(w, restBook(bt))
}

// symbol answers one symbol's exchangeInfo entry.
func (s *Server) symbol(w http.ResponseWriter, r *http.Request) {
	sym := r.PathValue("symbol")
	if e := checkSymbol(sym); e != nil {
		e.write(w)
		return
	}
	info, err := s.Market.SymbolInfo(r.Context(), sym)
	if err != nil {
		readerError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(info)
}

// ExchangeInfo is the answer of GET /fapi/v1/exchangeInfo. A node holds
// the symbols' entries only: rateLimits, exchangeFilters and assets are
// empty.
type ExchangeInfo struct {
	Timezone        string            `json:"timezone"`
	ServerTime      int64             `json:"serverTime"`
	FuturesType     string            `json:"futuresType"`
	RateLimits      []any             `json:"rateLimits"`
	ExchangeFilters []any             `json:"exchangeFilters"`
	Assets          []any             `json:"assets"`
	Symbols         []json.RawMessage `json:"symbols"`
}

func (s *Server) exchangeInfo(w http.ResponseWriter, r *http.Request) {
	syms, err := s.Market.ExchangeInfo(r.Context())
	if err != nil {
		readerError(w, err)
		return
	}
	writeJSON(w, ExchangeInfo{Timezone: "UTC", ServerTime: time.Now().UnixMilli(), FuturesType: "U_MARGINED",
		RateLimits: []any{}, ExchangeFilters: []any{}, Assets: []any{}, Symbols: syms})
}
