package marketdata

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tradecache/tradecache/cache"
	"github.com/tradecache/tradecache/exchange"
)

// ErrUnknownSymbol is returned for a symbol the exchange does not list.
var ErrUnknownSymbol = exchange.ErrUnknownSymbol

// Reader reads market data on any node: from Redis when it is reachable,
// from this node's memory sink when it is not.
//
// A symbol is checked against the exchange's list before any REST call
// made for it (see Node's symbol directory): an unknown one is refused
// with ErrUnknownSymbol, from cache.
type Reader struct {
	n *Node
}

// Reader returns the node's reader.
func (n *Node) Reader() *Reader { return &Reader{n: n} }

// Klines returns the last limit klines of symbol and interval, oldest
// first. A series nobody writes (not configured on the leader) is read from
// REST, not stored.
func (r *Reader) Klines(ctx context.Context, symbol, interval string, limit int) ([]exchange.Kline, error) {
	if limit <= 0 || limit > 1500 {
		return nil, fmt.Errorf("marketdata: limit %d out of 1..1500", limit)
	}
	key, err := r.n.keys.Kline(symbol, interval)
	if err != nil {
		return nil, err
	}
	ks, err := r.n.readSink().klines(ctx, key, limit)
	if err != nil || len(ks) > 0 || r.n.rest == nil {
		return ks, err
	}
	sym := strings.ToUpper(symbol)
	if _, ok := r.n.series[seriesID{sym, interval}]; ok {
		return ks, nil // configured but empty: the leader is backfilling
	}
	if _, err := r.n.lookupSymbol(ctx, sym); err != nil {
		return nil, err
	}
	return r.n.rest.Klines(ctx, sym, interval, 0, 0, limit)
}

// Ticker24h returns the 24-hour ticker of symbol, read-through: a miss of
// a listed symbol is loaded from REST once however many callers wait.
func (r *Reader) Ticker24h(ctx context.Context, symbol string) (exchange.Ticker24h, error) {
	key, err := r.n.keys.Ticker24h(symbol)
	if err != nil {
		return exchange.Ticker24h{}, err
	}
	return cache.GetOrLoadJSON(ctx, r.n.cache, key, func(ctx context.Context) (exchange.Ticker24h, error) {
		if r.n.rest == nil {
			return exchange.Ticker24h{}, errNoREST
		}
		sym := strings.ToUpper(symbol)
		if _, err := r.n.lookupSymbol(ctx, sym); err != nil {
			return exchange.Ticker24h{}, err
		}
		return r.n.rest.Ticker24h(ctx, sym)
	})
}

// MarketTickers returns the whole-market 24-hour tickers by symbol.
func (r *Reader) MarketTickers(ctx context.Context) (map[string]exchange.Ticker24h, error) {
	fs, err := r.n.readSink().fields(ctx, r.n.keys.MarketTicker24h())
	if err != nil {
		return nil, err
	}
	out := make(map[string]exchange.Ticker24h, len(fs))
	for sym, b := range fs {
		var t exchange.Ticker24h
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("marketdata: decode market ticker %s: %w", sym, err)
		}
		out[sym] = t
	}
	return out, nil
}

// BookTicker returns the best bid and ask of symbol; false when none is held.
func (r *Reader) BookTicker(ctx context.Context, symbol string) (exchange.BookTicker, bool, error) {
	var bt exchange.BookTicker
	if _, err := r.n.keys.Ticker24h(symbol); err != nil { // validates the symbol
		return bt, false, err
	}
	b, ok, err := r.n.readSink().field(ctx, r.n.keys.BookTicker(), strings.ToUpper(symbol))
	if err != nil || !ok {
		return bt, false, err
	}
	if err := json.Unmarshal(b, &bt); err != nil {
		return bt, false, fmt.Errorf("marketdata: decode book ticker %s: %w", symbol, err)
	}
	return bt, true, nil
}

// SymbolInfo returns the exchangeInfo entry of symbol: from
// symbol_info:{SYMBOL} (an hour), else from the exchange_info hash, loaded
// from REST once for every symbol (see Node's symbol directory).
func (r *Reader) SymbolInfo(ctx context.Context, symbol string) (json.RawMessage, error) {
	key, err := r.n.keys.SymbolInfo(symbol)
	if err != nil {
		return nil, err
	}
	if b, ok, err := r.n.cache.Get(ctx, key); err != nil || ok {
		return b, err
	}
	b, err := r.n.lookupSymbol(ctx, strings.ToUpper(symbol))
	if err != nil {
		return nil, err
	}
	if err := r.n.cache.Set(ctx, key, b); err != nil {
		r.n.cfg.Logger.Debug("marketdata: cache symbol info", "symbol", symbol, "err", err)
	}
	return b, nil
}
