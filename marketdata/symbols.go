package marketdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tradecache/tradecache/keyspace"
	"github.com/tradecache/tradecache/ratelimit"
)

// The symbol directory: which symbols the exchange lists, so that no REST
// call is made for one it does not.
//
//	exchange_info            hash, symbol → its exchangeInfo entry, every listed symbol; 1 h
//	unknown_symbol:{SYMBOL}  {"code":-1121,"msg":"Invalid symbol."}; 60 s
//
// A symbol is looked up in unknown_symbol:{SYMBOL}, then in exchange_info.
// exchange_info is filled by one exchangeInfo request (weight 1, System
// priority: it is what keeps user requests off REST) when it is missing,
// or when a symbol is not in it and the snapshot is older than
// Config.SymbolRefresh (a new listing); concurrent misses on a node share
// one request, and every node shares the result through Redis. A symbol
// still absent after a reload is written to unknown_symbol:{SYMBOL}, so
// that it does not make the next node reload too; one absent from a fresh
// snapshot is answered from the snapshot alone and writes nothing, so a
// flood of junk symbols cannot grow the keyspace (at most one negative key
// per reload, a reload at most every SymbolRefresh). Without Redis the
// same keys live in this node's memory.

// unknownSymbolBody is Binance's answer to a symbol it does not list.
const unknownSymbolBody = `{"code":-1121,"msg":"Invalid symbol."}`

var errNoREST = errors.New("marketdata: no REST source")

// lookupSymbol returns the exchangeInfo entry of sym (upper-case), or an
// error matching ErrUnknownSymbol when the exchange does not list it.
func (n *Node) lookupSymbol(ctx context.Context, sym string) (json.RawMessage, error) {
	neg, err := n.keys.UnknownSymbol(sym)
	if err != nil {
		return nil, err
	}
	if _, ok, err := n.cache.Get(ctx, neg); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownSymbol, sym)
	}
	key := n.keys.ExchangeInfo()
	if b, ok, err := n.readSink().field(ctx, key, sym); err != nil || ok {
		return b, err
	}
	loaded, err := n.loadSymbols(ctx)
	if err != nil {
		return nil, err
	}
	if loaded == nil { // the snapshot is fresh: it is the answer
		if b, ok, err := n.readSink().field(ctx, key, sym); err != nil || ok {
			return b, err
		}
		return nil, fmt.Errorf("%w: %s", ErrUnknownSymbol, sym)
	}
	if b, ok := loaded[sym]; ok {
		return b, nil
	}
	if err := n.cache.Set(ctx, neg, []byte(unknownSymbolBody)); err != nil {
		n.cfg.Logger.Debug("marketdata: cache unknown symbol", "symbol", sym, "err", err)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownSymbol, sym)
}

// loadSymbols fills exchange_info from REST unless a snapshot younger
// than Config.SymbolRefresh is there, and returns what it loaded (nil when
// the snapshot was fresh). However many callers ask at once, one request
// is made; it runs with its own deadline, not cancelled when the first
// caller gives up.
func (n *Node) loadSymbols(ctx context.Context) (map[string][]byte, error) {
	if n.rest == nil {
		return nil, errNoREST
	}
	ch := n.symbolsSF.DoChan("exchangeInfo", func() (any, error) {
		lctx, cancel := context.WithTimeout(ratelimit.WithPriority(context.WithoutCancel(ctx), ratelimit.System), restCallTimeout)
		defer cancel()
		s := n.readSink()
		key := n.keys.ExchangeInfo()
		if age, ok, err := s.age(lctx, key); err == nil && ok && age < n.cfg.SymbolRefresh {
			return map[string][]byte(nil), nil
		}
		syms, err := n.rest.Symbols(lctx)
		if err != nil {
			return nil, fmt.Errorf("marketdata: load exchangeInfo: %w", err)
		}
		fields := make(map[string][]byte, len(syms))
		for _, si := range syms {
			raw := []byte(si.Raw)
			if len(raw) == 0 {
				raw, _ = json.Marshal(si)
			}
			fields[si.Symbol] = raw
		}
		if len(fields) == 0 {
			return nil, errors.New("marketdata: exchangeInfo lists no symbol")
		}
		if err := s.replaceFields(lctx, key, fields); err != nil {
			return nil, err
		}
		n.st.SymbolLoads.Add(1)
		return fields, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(map[string][]byte), nil
	}
}

// restCallTimeout bounds one REST call made on the node's behalf.
const restCallTimeout = 10 * time.Second

// keyAge is how long ago a key of ttl with pttl left was written.
func keyAge(key keyspace.Key, left time.Duration) time.Duration {
	return max(key.TTL()-left, 0)
}
