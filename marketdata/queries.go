package marketdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
)

// Reads that answer Binance's REST queries in full: a kline query with
// its time bounds and any limit up to 1500, every book ticker, every
// symbol of exchangeInfo.

// MaxKlineLimit is the largest limit of a kline query, Binance's.
const MaxKlineLimit = 1500

// ErrBadKlineQuery wraps the refusal of a kline query's limit or times.
var ErrBadKlineQuery = errors.New("marketdata: bad kline query")

// KlinesRange answers a kline query as GET /fapi/v1/klines does, oldest
// first: start and end (open times, ms) are optional (0); with start, the
// first limit klines opening at or after it (and at or before end);
// without, the last limit klines opening at or before end (or the newest).
// limit is 1..MaxKlineLimit.
//
// A configured series is answered from the window the leader keeps
// (Config.Window klines). Only the part of the answer older than the
// window's first kline is read from REST, and only while the window is
// full (a series holding fewer klines holds all there are, or is being
// backfilled); the REST call is made at the context's priority, so the
// REST weight budget may refuse it. A series nobody streams, or one the
// store holds nothing of yet, is read from REST, for a listed symbol only.
func (r *Reader) KlinesRange(ctx context.Context, symbol, interval string, start, end int64, limit int) ([]exchange.Kline, error) {
	if limit < 1 || limit > MaxKlineLimit {
		return nil, fmt.Errorf("%w: limit %d out of 1..%d", ErrBadKlineQuery, limit, MaxKlineLimit)
	}
	if start < 0 || end < 0 || (start > 0 && end > 0 && start > end) {
		return nil, fmt.Errorf("%w: start %d, end %d", ErrBadKlineQuery, start, end)
	}
	key, err := r.n.keys.Kline(symbol, interval)
	if err != nil {
		return nil, err
	}
	window := r.n.cfg.Window
	n := window // a time-bounded query looks at the whole window
	if start == 0 && end == 0 {
		n = min(limit, window)
	}
	held, err := r.n.readSink().klines(ctx, key, n)
	if err != nil {
		return nil, err
	}
	sym := strings.ToUpper(symbol)
	if len(held) == 0 {
		if r.n.rest == nil {
			return held, nil
		}
		// Nobody streams it, or the leader has not written it yet (a new
		// term's backfill, a Redis that lost the key): REST answers, at
		// the caller's priority, rather than an empty series a strategy
		// would take for "no history".
		if _, err := r.n.lookupSymbol(ctx, sym); err != nil {
			return nil, err
		}
		return r.n.rest.Klines(ctx, sym, interval, start, end, limit)
	}
	var older func(start, end int64, limit int) ([]exchange.Kline, error)
	if len(held) >= window && r.n.rest != nil {
		older = func(start, end int64, limit int) ([]exchange.Kline, error) {
			return r.n.rest.Klines(ctx, sym, interval, start, end, limit)
		}
	}
	return klinesAround(held, start, end, limit, older)
}

// klinesAround answers a kline query (see KlinesRange) from held, the
// newest klines of a series (oldest first, contiguous), and older, which
// reads from REST what lies before held; nil when nothing does (the
// series holds every kline there is).
func klinesAround(held []exchange.Kline, start, end int64, limit int, older func(start, end int64, limit int) ([]exchange.Kline, error)) ([]exchange.Kline, error) {
	first := held[0].OpenTime
	in := func(k exchange.Kline) bool { return k.OpenTime >= start && (end == 0 || k.OpenTime <= end) }
	// held's klines within the query, oldest first
	var within []exchange.Kline
	for _, k := range held {
		if in(k) {
			within = append(within, k)
		}
	}
	if start > 0 {
		if start >= first || older == nil {
			return within[:min(limit, len(within))], nil
		}
		// The answer starts before the window: REST up to it, then the window.
		to := first - 1
		if end > 0 {
			to = min(end, to)
		}
		out, err := older(start, to, limit)
		if err != nil {
			return nil, err
		}
		out = slices.DeleteFunc(out, func(k exchange.Kline) bool { return k.OpenTime >= first })
		if len(out) >= limit || to < first-1 {
			return out[:min(limit, len(out))], nil
		}
		return append(out, within[:min(limit-len(out), len(within))]...), nil
	}
	// The last limit klines at or before end.
	if len(within) >= limit || older == nil {
		return within[max(0, len(within)-limit):], nil
	}
	to := first - 1
	if end > 0 && end < first {
		to = end
	}
	out, err := older(0, to, limit-len(within))
	if err != nil {
		return nil, err
	}
	out = slices.DeleteFunc(out, func(k exchange.Kline) bool { return k.OpenTime >= first })
	return append(out, within...), nil
}

// BookTickers returns the best bid and ask of every symbol held (those
// the leader streams), by symbol. A field that is not its symbol's book
// ticker is skipped and reported (the leader overwrites or removes it).
func (r *Reader) BookTickers(ctx context.Context) (map[string]exchange.BookTicker, error) {
	key := r.n.keys.BookTicker()
	fs, err := r.n.readSink().fields(ctx, key)
	if err != nil {
		return nil, err
	}
	out := make(map[string]exchange.BookTicker, len(fs))
	for sym, b := range fs {
		var bt exchange.BookTicker
		if err := decodeField(b, sym, &bt, &bt.Symbol); err != nil {
			r.n.cache.ReportBad(key.Name(), key.Kind(), cache.BadUndecodable, fmt.Sprintf("field %s: %v; skipped", sym, err))
			continue
		}
		out[sym] = bt
	}
	return out, nil
}

// ExchangeInfo returns the exchangeInfo entry of every symbol the exchange
// lists, ordered by symbol: from the exchange_info hash, loaded from REST
// once (shared by every node) when it is missing. A field that is not its
// symbol's JSON entry is skipped and reported.
func (r *Reader) ExchangeInfo(ctx context.Context) ([]json.RawMessage, error) {
	key := r.n.keys.ExchangeInfo()
	fs, err := r.n.readSink().fields(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		loaded, err := r.n.loadSymbols(ctx)
		if err != nil {
			return nil, err
		}
		if fs = loaded; fs == nil { // a fresh snapshot appeared meanwhile
			if fs, err = r.n.readSink().fields(ctx, key); err != nil {
				return nil, err
			}
		}
	}
	syms := make([]string, 0, len(fs))
	for sym, b := range fs {
		var s struct {
			Symbol string `json:"symbol"`
		}
		if err := decodeField(b, sym, &s, &s.Symbol); err != nil {
			r.n.cache.ReportBad(key.Name(), key.Kind(), cache.BadUndecodable, fmt.Sprintf("field %s: %v; skipped", sym, err))
			continue
		}
		syms = append(syms, sym)
	}
	slices.Sort(syms)
	out := make([]json.RawMessage, len(syms))
	for i, sym := range syms {
		out[i] = fs[sym]
	}
	return out, nil
}
