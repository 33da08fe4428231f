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
// first. A series nobody writes (not configured on the leader), or one
// the store holds nothing of yet, is read from REST, not stored.
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
	if _, err := r.n.lookupSymbol(ctx, sym); err != nil {
		return nil, err
	}
	return r.n.rest.Klines(ctx, sym, interval, 0, 0, limit)
}

// Ticker24h returns the 24-hour ticker of symbol, read-through: a miss of
// a listed symbol is loaded from REST once however many callers wait. What
// the key holds but is not a ticker's JSON (or has no TTL, or is too
// large) is a miss: loaded again and overwritten with its TTL.
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

// MarketTickers returns the whole-market 24-hour tickers by symbol. A
// field that is not a ticker of its symbol is skipped and reported (the
// leader removes it).
func (r *Reader) MarketTickers(ctx context.Context) (map[string]exchange.Ticker24h, error) {
	key := r.n.keys.MarketTicker24h()
	fs, err := r.n.readSink().fields(ctx, key)
	if err != nil {
		return nil, err
	}
	out := make(map[string]exchange.Ticker24h, len(fs))
	for sym, b := range fs {
		var t exchange.Ticker24h
		if err := decodeField(b, sym, &t, &t.Symbol); err != nil {
			r.n.cache.ReportBad(key.Name(), key.Kind(), cache.BadUndecodable, fmt.Sprintf("field %s: %v; skipped", sym, err))
			continue
		}
		out[sym] = t
	}
	return out, nil
}

// decodeField decodes the JSON of a hash field into v, whose symbol (at
// sym, once decoded) must be the field.
func decodeField(b []byte, field string, v any, sym *string) error {
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	if *sym != field {
		return fmt.Errorf("holds symbol %q", *sym)
	}
	return nil
}

// BookTicker returns the best bid and ask of symbol; false when none is
// held, or when what is held is not its book ticker (reported; the leader
// overwrites or removes it).
func (r *Reader) BookTicker(ctx context.Context, symbol string) (exchange.BookTicker, bool, error) {
	var bt exchange.BookTicker
	if _, err := r.n.keys.Ticker24h(symbol); err != nil { // validates the symbol
		return bt, false, err
	}
	key, sym := r.n.keys.BookTicker(), strings.ToUpper(symbol)
	b, ok, err := r.n.readSink().field(ctx, key, sym)
	if err != nil || !ok {
		return bt, false, err
	}
	if err := decodeField(b, sym, &bt, &bt.Symbol); err != nil {
		r.n.cache.ReportBad(key.Name(), key.Kind(), cache.BadUndecodable, fmt.Sprintf("field %s: %v; read as missing", sym, err))
		return exchange.BookTicker{}, false, nil
	}
	return bt, true, nil
}

// SymbolInfo returns the exchangeInfo entry of symbol: from
// symbol_info:{SYMBOL} (an hour), else from the exchange_info hash, loaded
// from REST once for every symbol (see Node's symbol directory). What the
// key holds but is not the symbol's JSON entry is a miss: loaded again
// and overwritten.
func (r *Reader) SymbolInfo(ctx context.Context, symbol string) (json.RawMessage, error) {
	key, err := r.n.keys.SymbolInfo(symbol)
	if err != nil {
		return nil, err
	}
	sym := strings.ToUpper(symbol)
	return r.n.cache.GetOrLoadValid(ctx, key, func(ctx context.Context) ([]byte, error) {
		return r.n.lookupSymbol(ctx, sym)
	}, func(b []byte) error {
		var s struct {
			Symbol string `json:"symbol"`
		}
		return decodeField(b, sym, &s, &s.Symbol)
	})
}
