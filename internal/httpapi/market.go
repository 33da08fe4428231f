package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tradecache/tradecache/exchange"
	"github.com/tradecache/tradecache/keyspace"
)

// MarketReader is what the market data routes read (for example marketdata.Reader).
type MarketReader interface {
	Klines(ctx context.Context, symbol, interval string, limit int) ([]exchange.Kline, error)
	Ticker24h(ctx context.Context, symbol string) (exchange.Ticker24h, error)
	MarketTickers(ctx context.Context) (map[string]exchange.Ticker24h, error)
	BookTicker(ctx context.Context, symbol string) (exchange.BookTicker, bool, error)
	SymbolInfo(ctx context.Context, symbol string) (json.RawMessage, error)
}

func (s *Server) marketRoutes(mux *http.ServeMux) {
	if s.Market == nil {
		return
	}
	mux.Handle("GET /api/v1/klines", s.guard(false, http.HandlerFunc(s.klines)))
	mux.Handle("GET /api/v1/ticker/24hr", s.guard(false, http.HandlerFunc(s.ticker24h)))
	mux.Handle("GET /api/v1/bookTicker", s.guard(false, http.HandlerFunc(s.bookTicker)))
	mux.Handle("GET /api/v1/symbols/{symbol}", s.guard(false, http.HandlerFunc(s.symbol)))
}

// klines answers like Binance's GET /fapi/v1/klines: 12-element arrays.
func (s *Server) klines(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 500
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1500 {
			writeError(w, http.StatusBadRequest, "limit must be 1..1500")
			return
		}
		limit = n
	}
	if q.Get("symbol") == "" || q.Get("interval") == "" {
		writeError(w, http.StatusBadRequest, "symbol and interval are required")
		return
	}
	ks, err := s.Market.Klines(r.Context(), q.Get("symbol"), q.Get("interval"), limit)
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

func (s *Server) ticker24h(w http.ResponseWriter, r *http.Request) {
	sym := r.URL.Query().Get("symbol")
	if sym == "" {
		m, err := s.Market.MarketTickers(r.Context())
		if err != nil {
			readerError(w, err)
			return
		}
		out := make([]exchange.Ticker24h, 0, len(m))
		for _, t := range m {
			out = append(out, t)
		}
		writeJSON(w, out)
		return
	}
	t, err := s.Market.Ticker24h(r.Context(), sym)
	if err != nil {
		readerError(w, err)
		return
	}
	writeJSON(w, t)
}

func (s *Server) bookTicker(w http.ResponseWriter, r *http.Request) {
	sym := r.URL.Query().Get("symbol")
	if sym == "" {
		writeError(w, http.StatusBadRequest, "symbol is required")
		return
	}
	bt, ok, err := s.Market.BookTicker(r.Context(), sym)
	if err != nil {
		readerError(w, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, "no book ticker for "+sym)
		return
	}
	writeJSON(w, bt)
}

func (s *Server) symbol(w http.ResponseWriter, r *http.Request) {
	info, err := s.Market.SymbolInfo(r.Context(), r.PathValue("symbol"))
	if err != nil {
		readerError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(info)
}

// invalidSymbol is Binance's answer to a symbol it does not list.
const invalidSymbol = `{"code":-1121,"msg":"Invalid symbol."}` + "\n"

// readerError answers a reader's error: 400 for a malformed part, 400
// with Binance's -1121 body for a symbol the exchange does not list, 503
// otherwise, with Retry-After when the REST weight budget or a cooldown
// refused the call.
func readerError(w http.ResponseWriter, err error) {
	var retry interface{ RetryAt() time.Time }
	switch {
	case errors.Is(err, keyspace.ErrInvalidPart):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, exchange.ErrUnknownSymbol):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, invalidSymbol)
	case errors.Is(err, context.Canceled):
		// the client went away
	case errors.As(err, &retry):
		secs := int64(math.Ceil(time.Until(retry.RetryAt()).Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
